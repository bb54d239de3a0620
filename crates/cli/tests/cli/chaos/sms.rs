//! Patient SMS under faults, against the fake Twilio-compatible API on loopback: `serve`
//! processes on one PostgreSQL killed in the middle of delivery, a provider slower than the
//! outbox lease, and one that answers after the client's timeout. Counted at the fake: no
//! patient texted twice, and no referral left with neither its text nor a staff task.

use std::{collections::BTreeMap, time::Duration};

use refloop_testkit::{Backend, FakeTwilio, TestDb};
use serde_json::json;

use super::{report, scaled};
use crate::process::{Serve, pairs, prepared, texting_env, token};

fn phone(i: usize) -> String {
    format!("+1555556{i:04}")
}

/// A process that texts through `fake` on the system clock, with short leases and small
/// batches (so that several processes share the work).
fn env(fake: &FakeTwilio, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = texting_env(fake, &[("REFLOOP_WORKERS_OUTBOX_LEASE", "3s"), ("REFLOOP_WORKERS_OUTBOX_BATCH", "5")]);
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

fn start(db: &TestDb, env: &[(String, String)]) -> Serve {
    Serve::start(&db.url, &pairs(env), &[])
}

async fn order(s: &Serve, admin: &str, i: usize) -> String {
    let body = json!({"patient_id": format!("p{i}"), "referring_provider": "dr-a", "specialty": "cardiology",
        "patient": {"phone": phone(i), "sms_consent": true}});
    let (status, r) = s.call(admin, "POST", "/api/v1/referrals", Some(body)).await;
    assert_eq!(status, 201, "{r}");
    r["id"].as_str().unwrap().to_owned()
}

/// Texts per patient number at the fake.
fn texts_per_number(fake: &FakeTwilio) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for sms in fake.sent() {
        *count.entry(sms.to).or_default() += 1;
    }
    count
}

/// (texted twice, left with neither a text nor a task): the numbers texted more than once, and
/// the referrals whose patient got no text and who have no open staff task.
async fn tally(s: &Serve, admin: &str, fake: &FakeTwilio, ids: &[String]) -> (Vec<String>, Vec<String>) {
    let count = texts_per_number(fake);
    let twice = count.iter().filter(|(_, n)| **n > 1).map(|(to, _)| to.clone()).collect();
    let mut neither = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if !count.contains_key(&phone(i)) && s.task_kinds(admin, id).await.is_empty() {
            neither.push(id.clone());
        }
    }
    (twice, neither)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_two_killed_mid_delivery_text_no_patient_twice_and_leave_none_without_text_or_task() {
    let db = TestDb::new(Backend::Postgres).await;
    let admin = prepared(&db.url);
    let fake = FakeTwilio::start().await;
    // Each send takes a while, so the killed processes have texts in flight.
    fake.answer_all_late(Some(Duration::from_millis(400)));
    let env = env(&fake, &[]);
    let a = start(&db, &env);
    let (mut b, mut c) = (start(&db, &env), start(&db, &env));
    let (n, rounds) = (scaled(60, 300), scaled(1, 4));
    let mut ids = Vec::new();
    let mut kills = 0;
    for round in 0..rounds {
        let first = ids.len();
        for i in first..first + n {
            ids.push(order(&a, &admin, i).await);
        }
        // Kill two of the three once a third of this round's texts have reached the provider.
        let goal = first + n / 3;
        for _ in 0..600 {
            if fake.requests() >= goal {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(fake.requests() >= goal, "round {round}: the texts go out");
        b.kill();
        c.kill();
        kills += 2;
        b = start(&db, &env);
        c = start(&db, &env);
        a.until_outbox_settled(&admin).await;
    }
    let items = a.until_outbox_settled(&admin).await;
    let (twice, neither) = tally(&a, &admin, &fake, &ids).await;
    report("3 processes, 2 killed mid-delivery (SMS)", "postgres", kills, ids.len(), neither.len(), twice.len());
    assert!(twice.is_empty(), "texted twice: {twice:?}");
    assert!(neither.is_empty(), "neither a text nor a staff task: {neither:?}");
    let settled: Vec<&str> = items.iter().map(|i| i["status"].as_str().unwrap_or_default()).collect();
    assert!(settled.iter().all(|s| ["accepted", "sent", "unknown"].contains(s)), "{settled:?}");
    let logs: String = [a, b, c].into_iter().map(Serve::stop).collect();
    assert!(logs.contains("outbox leases ran out"), "the killed processes' claims were taken over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_slower_than_the_lease_texts_each_patient_once_and_marks_no_healthy_send_unknown() {
    let db = TestDb::new(Backend::Postgres).await;
    let admin = prepared(&db.url);
    let fake = FakeTwilio::start().await;
    // Every answer comes after four seconds, longer than the three-second lease (and shorter
    // than the client's timeout): the senders' heartbeats keep their leases.
    fake.answer_all_late(Some(Duration::from_secs(4)));
    let env = env(&fake, &[("REFLOOP_SMS_TIMEOUT", "20s")]);
    let (a, b) = (start(&db, &env), start(&db, &env));
    let n = scaled(20, 100);
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(order(&a, &admin, i).await);
    }
    let items = b.until_outbox_settled(&admin).await;
    let (twice, neither) = tally(&a, &admin, &fake, &ids).await;
    report("provider slower than the lease, 2 processes (SMS)", "postgres", 0, ids.len(), neither.len(), twice.len());
    assert!(twice.is_empty(), "texted twice: {twice:?}");
    let statuses: Vec<&str> = items.iter().map(|i| i["status"].as_str().unwrap_or_default()).collect();
    assert!(statuses.iter().all(|s| *s == "accepted" || *s == "sent"), "healthy sends only: {statuses:?}");
    for id in &ids {
        assert!(a.task_kinds(&admin, id).await.is_empty(), "no staff task for a text that went out: {id}");
    }
    assert_eq!(texts_per_number(&fake).len(), n, "every patient texted");
    assert_eq!(fake.lookups(), 0, "no healthy send was taken over by the other process and looked up");
    let logs = a.stop() + &b.stop();
    assert!(!logs.contains("outbox leases ran out"), "the senders' heartbeats kept their leases:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_answering_after_the_timeout_is_asked_before_any_resend() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let fake = FakeTwilio::start().await;
    let n = scaled(12, 60);
    // Half the texts are answered after the client's one-second timeout.
    fake.answer_late(&vec![Duration::from_secs(2); n / 2]);
    let mut env = fake.env();
    env.push(("REFLOOP_SMS_TIMEOUT".into(), "1s".into()));
    let s = Serve::start(&db.url, &pairs(&env), &[]);
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(order(&s, &admin, i).await);
    }
    // The manual clock: sends happen as it moves; the unanswered ones are looked up after
    // their backoff, found, and not sent again.
    s.advance(&admin, "1m").await;
    let unconfirmed = s.outbox(&admin).await.iter().filter(|i| i["status"] == "unconfirmed").count();
    assert!(unconfirmed > 0, "a text answered after the timeout is unconfirmed, not retried blindly");
    s.advance(&admin, "2h").await;
    let items = s.outbox(&admin).await;
    let (twice, neither) = tally(&s, &admin, &fake, &ids).await;
    report(
        "provider answers after the client's timeout (SMS)",
        "sqlite",
        unconfirmed,
        ids.len(),
        neither.len(),
        twice.len(),
    );
    assert!(twice.is_empty(), "texted twice: {twice:?}");
    assert!(fake.lookups() > 0, "the provider was asked");
    let statuses: Vec<&str> = items.iter().map(|i| i["status"].as_str().unwrap_or_default()).collect();
    assert!(statuses.iter().all(|s| *s == "accepted" || *s == "sent"), "{statuses:?}");
    s.stop();
}
