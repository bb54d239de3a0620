//! `serve` reads the Direct mailbox (`[direct] imap_url`) from a real IMAP server over TLS
//! (Dovecot on loopback): the specialist's reply to our note request closes the loop, and is marked seen
//! only once kept.

use std::time::Duration;

use refloop_testkit::{Backend, Dovecot, TestDb, cda_example, direct_letter};
use serde_json::json;

use crate::process::{Serve, token};

/// `serve`'s settings to read `mail` at `url`, trusting the test CA, every second.
fn mailbox_env(mail: &Dovecot, url: String) -> Vec<(&'static str, String)> {
    vec![
        ("REFLOOP_DIRECT_IMAP_URL", url),
        ("REFLOOP_DIRECT_IMAP_CA", refloop_testkit::tls::file("ca.pem").display().to_string()),
        ("REFLOOP_DIRECT_IMAP_USER", mail.user.clone()),
        ("REFLOOP_DIRECT_IMAP_PASSWORD", mail.password.clone()),
        ("REFLOOP_DIRECT_IMAP_POLL", "1s".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_the_direct_mailbox_and_a_consult_note_closes_the_loop() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let mail = Dovecot::start().await;
    let vars = mailbox_env(&mail, mail.tls_url());
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let serve = Serve::start(&db.url, &env, &[]);
    let order = json!({"patient_id": "p-mailbox", "referring_provider": "dr-a", "specialty": "cardiology"});
    let (status, created) = serve.call(&admin, "POST", "/api/v1/referrals", Some(order)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let reply = direct_letter(
        "<serve-1@direct.specialists.example>",
        &format!("Re: Request for consult note — referral {id}"),
        None,
        Some(("consult.xml", &cda_example("Consultation_Note.xml"))),
    );
    mail.deliver(&reply).await;
    let mut state = String::new();
    for _ in 0..300 {
        let (_, r) = serve.call(&admin, "GET", &format!("/api/v1/referrals/{id}"), None).await;
        state = r["state"].as_str().unwrap_or_default().to_owned();
        if state == "note-received" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "note-received", "{}", serve.log());
    assert_eq!(mail.unseen().await, 0, "marked seen once kept");
    assert!(serve.log().contains("direct mailbox read"), "{}", serve.log());
    assert!(!serve.log().contains("Eve"), "no patient data in the log");
    serve.stop();
}

/// kill -9 while `serve` works through the mailbox — soon after it logs a message kept (which
/// it does before marking that message seen). Wherever the kill lands, after a restart every
/// message is kept once and marked seen, and no referral's note is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_serve_while_it_reads_the_mailbox_loses_and_doubles_nothing() {
    const N: usize = 40;
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let mail = Dovecot::start().await;
    let first = Serve::start(&db.url, &[], &[]);
    let mut ids = Vec::new();
    for i in 0..N {
        let order =
            json!({"patient_id": format!("p-kill-{i}"), "referring_provider": "dr-a", "specialty": "cardiology"});
        let (status, created) = first.call(&admin, "POST", "/api/v1/referrals", Some(order)).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    first.stop();
    let note = cda_example("Consultation_Note.xml");
    for (i, id) in ids.iter().enumerate() {
        let reply = direct_letter(
            &format!("<kill-{i}@direct.specialists.example>"),
            &format!("Re: Request for consult note — referral {id}"),
            None,
            Some(("consult.xml", &note)),
        );
        mail.deliver(&reply).await;
    }
    // imap://, upgraded with STARTTLS.
    let vars = mailbox_env(&mail, mail.url());
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let crashing = Serve::start(&db.url, &env, &[]);
    assert!(crashing.until_logged("direct message kept").await, "{}", crashing.log());
    crashing.kill();

    let serve = Serve::start(&db.url, &env, &[]);
    let mut done = false;
    for _ in 0..300 {
        if mail.unseen().await == 0 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "every message marked seen after the restart: {}", serve.log());
    for id in &ids {
        let (_, r) = serve.call(&admin, "GET", &format!("/api/v1/referrals/{id}"), None).await;
        assert_eq!(r["state"], "note-received", "{r}");
        let notes = r["events"].as_array().unwrap().iter().filter(|e| e["type"] == "note-received").count();
        assert_eq!(notes, 1, "applied once: {r}");
    }
    let (_, inbox) = serve.call(&admin, "GET", "/api/v1/inbox?limit=200", None).await;
    let kept: Vec<&str> = inbox["items"].as_array().unwrap().iter().filter_map(|m| m["control_id"].as_str()).collect();
    let unique: std::collections::BTreeSet<&str> = kept.iter().copied().collect();
    assert_eq!((kept.len(), unique.len()), (N, N), "each message kept once");
    serve.stop();
}
