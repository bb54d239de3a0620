//! HL7 against the real binary: nothing acknowledged is lost when the process dies, batch
//! files import, dead letters are listed, shown and retried.

use refloop_testkit::{Backend, MllpClient, TestDb, ack_code};

use crate::process::{Serve, run, token};

fn ref_i12(control: &str, number: &str) -> String {
    format!(
        "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000||REF^I12|{control}|P|2.5.1\r\
         RF1|P|R|CAR||O|{number}^EPIC|20260302\rPRD|RP|ADAMS^ANN|||||NPI123\rPID|1||MRN-{number}^^^NORTH^MR\r"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_acknowledged_before_a_crash_is_kept() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let s = Serve::start(&db.url, &[], &[]);
    let mut c = MllpClient::connect(s.mllp).await;
    assert_eq!(ack_code(&c.send(&ref_i12("K1", "R-1")).await), "AA");
    s.kill();

    let s = Serve::start(&db.url, &[], &[]);
    let (status, list) = s.call(&admin, "GET", "/api/v1/referrals", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["source_ids"][0], "R-1", "the referral behind the AA survived SIGKILL");
    // The sender, unsure, resends: the same answer, nothing applied twice.
    let mut c = MllpClient::connect(s.mllp).await;
    assert_eq!(ack_code(&c.send(&ref_i12("K1", "R-1")).await), "AA");
    let (_, list) = s.call(&admin, "GET", "/api/v1/referrals", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    s.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_files_import_and_dead_letters_are_listed_shown_and_retried() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = run(&["migrate", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch.hl7");
    let cancel = "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302110000||REF^I14|B3|P|2.5.1\rRF1|P|R|CAR||O|R-LATE^EPIC\rPID|1||MRN-X^^^NORTH^MR\r";
    let file = format!(
        "FHS|^~\\&|EPIC\rBHS|^~\\&|EPIC\r# nightly extract\n{}{}{}BTS|3\rFTS|1\r",
        ref_i12("B1", "R-10"),
        ref_i12("B2", "R-11"),
        cancel
    );
    std::fs::write(&batch, file).unwrap();
    let (ok, out, err) = run(&["import", "hl7", "--database", &db.url, batch.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("1 messages refused"), "a message not applied fails the import: {err}");
    assert!(out.contains("3 messages from 1 files: 2 applied, 1 dead"), "{out}");
    let refused = format!("refused: {}: message 3 (control id B3, inbox inb_", batch.display());
    assert!(out.contains(&refused) && out.contains("): dead ("), "{out}");
    assert!(!out.contains("MRN-X"), "ids of messages, never patients': {out}");
    let (_, out, _) = run(&["import", "hl7", "--database", &db.url, batch.to_str().unwrap()], &[]);
    assert!(out.contains("3 already received"), "{out}");

    let (ok, out, err) = run(&["dead-letters", "list", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let id = out.split('\t').next().unwrap().to_owned();
    assert!(id.starts_with("inb_") && out.contains("REF^I14") && out.contains("R-LATE"), "{out}");
    let (ok, shown, _) = run(&["dead-letters", "show", &id, "--database", &db.url], &[]);
    assert!(ok && shown.contains("RF1|P|R|CAR||O|R-LATE^EPIC"), "{shown}");

    let late = dir.path().join("late.hl7");
    std::fs::write(&late, ref_i12("B4", "R-LATE")).unwrap();
    assert!(run(&["import", "hl7", "--database", &db.url, late.to_str().unwrap()], &[]).0);
    let (ok, out, err) = run(&["dead-letters", "retry", "--all", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{id}\tapplied")), "{out}");
    let (_, out, _) = run(&["dead-letters", "list", "--database", &db.url], &[]);
    assert_eq!(out.trim(), "no dead letters");
}

/// The referral numbers the API lists.
async fn numbers(s: &Serve, admin: &str) -> Vec<String> {
    let (status, list) = s.call(admin, "GET", "/api/v1/referrals", None).await;
    assert_eq!(status, 200, "{list}");
    let mut numbers: Vec<String> =
        list["items"].as_array().unwrap().iter().map(|r| r["source_ids"][0].as_str().unwrap().to_owned()).collect();
    numbers.sort();
    numbers
}

/// A test certificate file's path (`crates/testkit/data/tls/`).
fn tls_file(name: &str) -> String {
    refloop_testkit::tls::file(name).display().to_string()
}

/// `serve`'s environment for MLLP over TLS with the test certificates; with `client_ca`,
/// senders must present a certificate from the test CA.
struct TlsEnv {
    cert: String,
    key: String,
    ca: String,
}

impl TlsEnv {
    fn new() -> TlsEnv {
        TlsEnv { cert: tls_file("server.pem"), key: tls_file("server.key"), ca: tls_file("ca.pem") }
    }

    fn vars(&self, client_ca: bool) -> Vec<(&str, &str)> {
        let mut vars = vec![("REFLOOP_HL7_TLS_CERT", self.cert.as_str()), ("REFLOOP_HL7_TLS_KEY", self.key.as_str())];
        if client_ca {
            vars.push(("REFLOOP_HL7_TLS_CLIENT_CA", self.ca.as_str()));
        }
        vars
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_over_tls_takes_only_tls_and_with_a_client_ca_only_known_senders() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let tls = TlsEnv::new();

    let s = Serve::start(&db.url, &tls.vars(false), &[]);
    let mut c = MllpClient::connect_tls(s.mllp, None).await.expect("a TLS handshake");
    assert_eq!(ack_code(&c.send(&ref_i12("T1", "R-T1")).await), "AA");
    // Plain MLLP to a TLS listener: no answer, nothing stored.
    let mut plain = MllpClient::connect(s.mllp).await;
    assert_eq!(plain.try_send(&ref_i12("T2", "R-T2")).await, None);
    assert_eq!(numbers(&s, &admin).await, ["R-T1"]);
    let (status, metrics) = s.call(&admin, "GET", "/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"refloop_mllp_tls_refused_total{reason="handshake"} 1"#), "{metrics}");
    let log = s.stop();
    assert!(log.contains("MLLP TLS handshake failed"), "{log}");

    // Mutual TLS: a sender without a certificate, or with one from another CA, is refused.
    let s = Serve::start(&db.url, &tls.vars(true), &[]);
    for identity in [None, Some("stranger")] {
        let refused = match MllpClient::connect_tls(s.mllp, identity).await {
            Err(_) => true,
            Ok(mut c) => c.try_send(&ref_i12("T3", "R-T3")).await.is_none(),
        };
        assert!(refused, "a sender presenting {identity:?} was answered");
    }
    let mut c = MllpClient::connect_tls(s.mllp, Some("client")).await.expect("a mutual TLS handshake");
    assert_eq!(ack_code(&c.send(&ref_i12("T4", "R-T4")).await), "AA");
    assert_eq!(numbers(&s, &admin).await, ["R-T1", "R-T4"]);
    s.stop();

    // A sender bound to its certificate's subject: the test client's certificate is heard
    // as the sender whose tls_subject it carries, and refused (AR 207) for one that names
    // another.
    for (subject, code) in [("CN=test interface engine", "AA"), ("CN=another engine", "AR")] {
        let senders = format!(
            "[{{name = \"epic\", msh3 = \"EPIC\", msh4 = \"NORTH\", cidrs = [\"127.0.0.1/32\"], tls_subject = \"{subject}\"}}]"
        );
        let mut env = tls.vars(true);
        env.push(("REFLOOP_HL7_ALLOW_ANY_SENDER", "false"));
        env.push(("REFLOOP_HL7_SENDERS", &senders));
        let s = Serve::start(&db.url, &env, &[]);
        let mut c = MllpClient::connect_tls(s.mllp, Some("client")).await.expect("a mutual TLS handshake");
        let ack = c.send(&ref_i12(&format!("T5{code}"), &format!("R-T5{code}"))).await;
        assert_eq!(ack_code(&ack), code, "{subject}");
        let log = s.stop();
        if code == "AR" {
            assert!(ack.contains("|207") || ack.contains("^207"), "{ack}");
            assert!(log.contains("(CN=test interface engine)"), "the refusal names the certificate: {log}");
        }
    }
    let (ok, _, err) = run(
        &["check-config"],
        &[("REFLOOP_HL7_SENDERS", "[{name = \"e\", msh3 = \"E\", cidrs = [\"10.0.0.0/8\"], tls_subject = \"CN=e\"}]")],
    );
    assert!(!ok && err.contains("tls_subject: needs mutual TLS"), "{err}");
}

#[test]
fn tls_settings_that_cannot_work_stop_serve_with_the_reason() {
    let cert = tls_file("server.pem");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tls.db").display());
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("REFLOOP_HL7_TLS_CERT", &cert)], "set both"),
        (&[("REFLOOP_HL7_TLS_CLIENT_CA", &cert)], "hl7.tls_client_ca"),
        (
            &[("REFLOOP_HL7_TLS_CERT", &cert), ("REFLOOP_HL7_TLS_KEY", "/nonexistent/server.key")],
            "/nonexistent/server.key",
        ),
    ];
    for (env, reason) in cases {
        let (ok, _, err) = run(&["serve", "--database", &db, "--http", "127.0.0.1:0", "--mllp", "127.0.0.1:0"], env);
        assert!(!ok && err.contains(reason), "{env:?}: {err}");
    }
}

/// Runs `scripts/mllp_peer.py` (python-hl7's MLLP client; Python's OpenSSL for TLS) against
/// `addr` with `args`; returns (exit code, stdout). `./scripts/test` installs the peer.
fn python_peer(addr: std::net::SocketAddr, message: &str, args: &[&str]) -> (i32, String) {
    let (root, python) = (refloop_testkit::peers::root(), refloop_testkit::peers::python());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.hl7");
    std::fs::write(&file, message).unwrap();
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/mllp_peer.py"))
        .args([addr.ip().to_string(), addr.port().to_string(), file.display().to_string()])
        .args(args)
        .output()
        .expect("run the Python MLLP peer");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_hl7_over_openssl_sends_with_and_without_a_client_certificate() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let tls = TlsEnv::new();
    let ca = tls.ca.as_str();
    let s = Serve::start(&db.url, &tls.vars(false), &[]);
    let (code, out) = python_peer(s.mllp, &ref_i12("Y1", "R-Y1"), &["--ca", ca]);
    assert_eq!((code, out.as_str()), (0, "AA\tY1"));
    s.stop();

    let s = Serve::start(&db.url, &tls.vars(true), &[]);
    let (code, _) = python_peer(s.mllp, &ref_i12("Y2", "R-Y2"), &["--ca", ca]);
    assert_eq!(code, 2, "a sender without a certificate is refused");
    let (client_cert, client_key) = (tls_file("client.pem"), tls_file("client.key"));
    let (code, out) =
        python_peer(s.mllp, &ref_i12("Y3", "R-Y3"), &["--ca", ca, "--cert", &client_cert, "--key", &client_key]);
    assert_eq!((code, out.as_str()), (0, "AA\tY3"));
    assert_eq!(numbers(&s, &admin).await, ["R-Y1", "R-Y3"]);
    s.stop();
}

/// Only listed senders are heard: a message from an unlisted system, from a network not on
/// its entry, or over HTTP with another token gets AR "unknown sender" (ERR code 207) and
/// nothing of it is kept; each refusal is counted and logged with where it came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_known_senders_are_heard() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let (ok, epic, err) =
        run(&["token", "create", "--role", "integration", "--name", "epic", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let (ok, lab, err) =
        run(&["token", "create", "--role", "integration", "--name", "lab", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[hl7]\nallow_any_sender = false\n\
         [[hl7.senders]]\nname = \"epic\"\nmsh3 = \"EPIC\"\nmsh4 = \"NORTH\"\ncidrs = [\"127.0.0.0/8\"]\n\
         [[hl7.senders]]\nname = \"lab\"\nmsh3 = \"LABSYS\"\ncidrs = [\"192.0.2.0/24\"]\n",
    )
    .unwrap();
    let s =
        Serve::start(&db.url, &[("REFLOOP_HL7_ALLOW_ANY_SENDER", "false")], &["--config", config.to_str().unwrap()]);
    let mut c = MllpClient::connect(s.mllp).await;
    assert_eq!(ack_code(&c.send(&ref_i12("S1", "R-S1")).await), "AA", "a listed sender from its network");
    let stranger = ref_i12("S2", "R-S2").replace("EPIC|NORTH", "ANYHOST|NORTH");
    let lab_message = ref_i12("S3", "R-S3").replace("EPIC|NORTH", "LABSYS|NORTH");
    for (message, what) in [(&stranger, "an unlisted system"), (&lab_message, "a listed system from another network")] {
        let ack = c.send(message).await;
        assert_eq!(ack_code(&ack), "AR", "{what}: {ack}");
        assert!(ack.contains("unknown sender") && ack.contains("|207"), "{what}: {ack}");
    }
    // Over HTTP the sender is the token: the lab's token cannot post EPIC's messages.
    let post = |token: String, body: String| {
        let url = format!("{}/hl7v2", s.base);
        async move {
            let resp = reqwest::Client::new().post(url).bearer_auth(token.trim()).body(body).send().await.unwrap();
            resp.text().await.unwrap()
        }
    };
    assert_eq!(ack_code(&post(epic.clone(), ref_i12("H1", "R-H1")).await), "AA");
    let refused = post(lab.clone(), ref_i12("H2", "R-H2")).await;
    assert!(ack_code(&refused) == "AR" && refused.contains("unknown sender"), "{refused}");

    let kept = s.source_ids(&admin).await;
    let mut kept: Vec<&str> = kept.iter().map(String::as_str).collect();
    kept.sort();
    assert_eq!(kept, ["R-H1", "R-S1"], "nothing of a refused message is kept");
    let (_, inbox) = s.call(&admin, "GET", "/api/v1/inbox?limit=50", None).await;
    assert_eq!(inbox["items"].as_array().map(Vec::len), Some(2), "{inbox}");
    let (_, metrics) = s.call(&admin, "GET", "/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("refloop_hl7_unknown_sender_total{transport=\"mllp\"} 2"), "{metrics}");
    assert!(metrics.contains("refloop_hl7_unknown_sender_total{transport=\"http\"} 1"), "{metrics}");
    let log = s.stop();
    assert!(log.contains("unknown sender") && log.contains("127.0.0.1") && log.contains("ANYHOST"), "{log}");
}
