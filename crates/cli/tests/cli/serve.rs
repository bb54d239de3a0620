//! `refloop serve`: restarts lose nothing, several processes share PostgreSQL, logs hold
//! no patient data.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use refloop_testkit::{Backend, FakeTwilio, TestDb};
use serde_json::{Value, json};

use crate::process::{Serve, pairs, prepared, texting_env, token};

fn order(patient: &str) -> Value {
    json!({"patient_id": patient, "referring_provider": "dr-a", "specialty": "cardiology"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_serve_loses_nothing() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let first = Serve::start(&db.url, &[], &[]);
    let (status, created) = first.call(&admin, "POST", "/api/v1/referrals", Some(order("p-restart"))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    first.advance(&admin, "2d").await;
    // The database and its WAL are the owner's alone.
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600), "{file}");
    }
    first.stop();

    let second = Serve::start(&db.url, &[], &[]);
    let (status, r) = second.call(&admin, "GET", &format!("/api/v1/referrals/{id}"), None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["state"], "ordered");
    assert_eq!(second.task_kinds(&admin, &id).await, ["notify-patient"], "the call task survived");
    // The day-7 timer armed before the restart still fires (the new clock starts again at the
    // configured start, so 8 days reach it).
    let fired = second.advance(&admin, "8d").await;
    assert_eq!(fired["timers_fired"], 1);
    let kinds = second.task_kinds(&admin, &id).await;
    assert!(kinds.contains(&"schedule-follow-up".to_owned()), "{kinds:?}");
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_postgres_fire_each_due_timer_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let admin = prepared(&db.url);
    let a = Serve::start(&db.url, &[], &[]);
    let b = Serve::start(&db.url, &[], &[]);
    const N: usize = 60;
    let mut ids = Vec::new();
    for i in 0..N {
        let body = json!({"patient_id": format!("p{i}"), "referring_provider": "dr-a", "specialty": "cardiology",
            "patient": {"phone": "+15555550100", "sms_consent": true}});
        let (status, r) = a.call(&admin, "POST", "/api/v1/referrals", Some(body)).await;
        assert_eq!(status, 201, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    // Each process has its own manual clock: run stage 1 first on both, then move both over
    // day 7 at the same moment, to just past it, so that neither clock runs far ahead of the
    // other's sends (its lease would look expired to the other's reaper), then on to day 8.
    // SMS is off ([sms] mode = "log"): nothing is texted, each patient gets a call task instead.
    for s in [&a, &b] {
        assert_eq!(s.advance(&admin, "1h").await["messages_attempted"], 0);
    }
    let (ra, rb) = tokio::join!(a.advance(&admin, "6d23h1m"), b.advance(&admin, "6d23h1m"));
    let (la, lb) = tokio::join!(a.advance(&admin, "23h"), b.advance(&admin, "23h"));
    let total = |key: &str| [&ra, &rb, &la, &lb].iter().map(|r| r[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(total("timers_fired"), N as u64, "each timer fired once across both processes: {ra} {rb} {la} {lb}");
    let sent = total("messages_attempted");
    assert_eq!(sent, 2 * N as u64, "a chat message and an EHR task per referral, each tried once: {ra} {rb}");
    for id in &ids {
        let (_, r) = b.call(&admin, "GET", &format!("/api/v1/referrals/{id}"), None).await;
        let escalations = r["events"].as_array().unwrap().iter().filter(|e| e["type"] == "escalated").count();
        assert_eq!(escalations, 1, "{id}");
        assert_eq!(b.task_kinds(&admin, id).await, ["notify-patient", "schedule-follow-up"], "{id}");
    }
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_data_never_reaches_the_logs() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let s = Serve::start(&db.url, &[("RUST_LOG", "trace")], &[]);
    let markers = ["Zebulon Markerpatient", "+15555550199", "MARKER-DIAGNOSIS", "Pacific/Chatham"];
    let body = json!({
        "patient_id": "mrn-777",
        "patient": {"name": markers[0], "phone": markers[1], "sms_consent": true, "time_zone": markers[3]},
        "referring_provider": "dr-a", "specialty": "cardiology", "reason": markers[2],
    });
    let (status, r) = s.call(&admin, "POST", "/api/v1/referrals", Some(body)).await;
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    s.advance(&admin, "9d").await;
    s.call(&admin, "GET", &format!("/api/v1/referrals/{id}"), None).await;
    s.call(&admin, "GET", "/api/v1/referrals", None).await;
    s.call(
        &admin,
        "POST",
        &format!("/api/v1/referrals/{id}/events"),
        Some(json!({"type": "closed-incomplete", "reason": markers[2]})),
    )
    .await;
    // Bad input that carries patient data: the error names the field, never the value.
    let (status, err) = s
        .call(
            &admin,
            "POST",
            "/api/v1/referrals",
            Some(json!({"patient_id": "x", "referring_provider": "dr-a", "patient": {"sms_consent": markers[0]}})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(!err.to_string().contains(markers[0]), "{err}");
    let log = s.stop();
    assert!(log.contains(&id), "the log names the referral by id");
    for m in markers {
        assert!(!log.contains(m), "the log contains patient data {m:?}");
    }
}

/// `[log] format = "json"`: one object per line; a request's lines carry its id, which the
/// answer names (the caller's own id when it sent a plain one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_the_answer_names() {
    let db = TestDb::new(Backend::Sqlite).await;
    crate::process::migrated(&db.url);
    let s = Serve::start(&db.url, &[("REFLOOP_LOG_FORMAT", "json")], &[]);
    let http = reqwest::Client::new();
    let get = |id: Option<&'static str>| {
        let mut req = http.get(format!("{}/api/v1/referrals", s.base)).bearer_auth("not-a-token");
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let resp = get(Some("lb-7f3a-0001")).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-request-id"], "lb-7f3a-0001", "the caller's id is kept");
    let made = get(None).await.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(made.starts_with("req_"), "{made}");
    let odd = get(Some("<script>")).await.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(odd.starts_with("req_"), "an id that is not a plain token is replaced: {odd}");
    assert!(s.until_logged(&made).await);
    let log = s.stop();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let rejected = |id: &str| {
        lines.iter().any(|l| {
            l["fields"]["message"] == "rejected an unknown bearer token"
                && l["span"]["request_id"] == id
                && l["span"]["path"] == "/api/v1/referrals"
        })
    };
    assert!(rejected("lb-7f3a-0001") && rejected(&made), "{log}");
    assert!(lines.iter().any(|l| l["level"] == "INFO" && l["timestamp"].is_string()), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_the_sends_under_way_gives_back_the_rest_and_a_second_sigterm_exits_at_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let fake = FakeTwilio::start().await;
    fake.answer_all_late(Some(Duration::from_secs(2)));
    let env = texting_env(
        &fake,
        &[
            ("REFLOOP_WORKERS_OUTBOX_BATCH", "100"),
            ("REFLOOP_WORKERS_SHUTDOWN_GRACE", "60s"),
            ("REFLOOP_WORKERS_OUTBOX_LEASE", "3s"),
        ],
    );
    // Orders taken on a manual clock (its workers run only when it is moved): 30 texts due.
    let manual = Serve::start(&db.url, &pairs(&fake.env()), &[]);
    let n = 30;
    for i in 0..n {
        let body = json!({"patient_id": format!("p{i}"), "referring_provider": "dr-a", "specialty": "cardiology",
            "patient": {"phone": format!("+1555557{i:04}"), "sms_consent": true}});
        let (status, r) = manual.call(&admin, "POST", "/api/v1/referrals", Some(body)).await;
        assert_eq!(status, 201, "{r}");
    }
    manual.stop();
    let env = pairs(&env);
    let until_requests = |want: usize| {
        let fake = fake.clone();
        async move {
            for _ in 0..600 {
                if fake.requests() >= want {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };

    // SIGTERM with eight texts at the provider: those finish, the rest are given back.
    let first = Serve::start(&db.url, &env, &[]);
    assert!(until_requests(8).await, "the texts go out");
    first.terminate();
    let (clean, log) = first.exited_within(Duration::from_secs(30)).await.expect("serve exits after SIGTERM");
    assert!(clean, "a clean exit:\n{log}");
    assert!(log.contains("items not yet attempted are given back"), "{log}");
    let sent = fake.sent().len();
    assert!((8..n).contains(&sent), "the sends under way finished, no new ones began: {sent}");
    let look = Serve::start(&db.url, &[], &[]);
    let statuses: Vec<String> =
        look.outbox(&admin).await.iter().map(|i| i["status"].as_str().unwrap_or_default().to_owned()).collect();
    look.stop();
    assert_eq!(
        statuses.iter().filter(|s| *s == "sent" || *s == "accepted").count(),
        sent,
        "each send under way recorded: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| *s == "pending").count(), n - sent, "the rest given back: {statuses:?}");

    // A second SIGTERM exits at once, sends under way or not (the grace is a minute).
    fake.answer_all_late(Some(Duration::from_secs(120)));
    let second = Serve::start(&db.url, &env, &[]);
    assert!(until_requests(sent + 1).await, "the texts go out again");
    second.terminate();
    assert!(
        second.until_logged("finishing the sends under way").await,
        "the first SIGTERM is taken:\n{}",
        second.log()
    );
    second.terminate();
    let (_, log) = second.exited_within(Duration::from_secs(30)).await.expect("a second SIGTERM exits at once");
    assert!(log.contains("second SIGTERM: exiting now"), "{log}");

    // What the cut-off sends left is settled after a restart: looked up, never texted twice.
    fake.answer_all_late(None);
    let third = Serve::start(&db.url, &env, &[]);
    third.until_outbox_settled(&admin).await;
    let mut numbers: Vec<String> = fake.sent().into_iter().map(|s| s.to).collect();
    numbers.sort();
    let texted = numbers.len();
    numbers.dedup();
    assert_eq!((texted, numbers.len()), (n, n), "every patient texted once");
    third.stop();
}

/// Keeps `n` CPU cores busy until dropped.
struct CpuLoad(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl CpuLoad {
    fn start(n: usize) -> CpuLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                })
            })
            .collect();
        CpuLoad(stop, threads)
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

/// The two-process timer case 50 times over, with the CPU busy: every clock advance answers
/// 200 (no conflict reaches the caller), every timer fires once, and the database never had
/// to break a deadlock (the writers take their locks in one order, ARCHITECTURE.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_fire_timers_fifty_times_under_cpu_load_without_a_conflict() {
    let db = TestDb::new(Backend::Postgres).await;
    let admin = prepared(&db.url);
    // Small batches, so both processes send (and record) the messages of the same referrals.
    let env = [("REFLOOP_WORKERS_OUTBOX_BATCH", "3")];
    let (a, b) = (Serve::start(&db.url, &env, &[]), Serve::start(&db.url, &env, &[]));
    let _load = CpuLoad::start(2);
    const ROUNDS: usize = 50;
    const N: usize = 8;
    for round in 0..ROUNDS {
        let mut ids = Vec::new();
        for i in 0..N {
            let body = json!({"patient_id": format!("p{round}-{i}"), "referring_provider": "dr-a", "specialty": "cardiology",
                "patient": {"phone": "+15555550100", "sms_consent": true}});
            let (status, r) = a.call(&admin, "POST", "/api/v1/referrals", Some(body)).await;
            assert_eq!(status, 201, "{r}");
            ids.push(r["id"].as_str().unwrap().to_owned());
        }
        // Both clocks together over day 7 (each referral escalates once), then past day 8.
        let mut fired = 0;
        for by in ["1h", "6d23h1m", "1d"] {
            let body = || Some(json!({ "by": by }));
            let ((sa, ra), (sb, rb)) = tokio::join!(
                a.call(&admin, "POST", "/api/v1/clock/advance", body()),
                b.call(&admin, "POST", "/api/v1/clock/advance", body())
            );
            assert_eq!((sa, sb), (200, 200), "round {round}: a clock advance met a conflict: {ra} {rb}");
            fired += ra["timers_fired"].as_u64().unwrap() + rb["timers_fired"].as_u64().unwrap();
        }
        assert!(fired >= N as u64, "round {round}: the day-7 timers fired ({fired})");
        for id in &ids {
            let (_, r) = b.call(&admin, "GET", &format!("/api/v1/referrals/{id}"), None).await;
            let escalations = r["events"].as_array().unwrap().iter().filter(|e| e["type"] == "escalated").count();
            assert_eq!(escalations, 1, "round {round}: {id}");
        }
    }
    let logs = a.stop() + &b.stop();
    let clashes = logs.lines().filter(|l| l.contains("clashed with another")).count();
    assert_eq!(clashes, 0, "the database broke off no transaction to end a deadlock:\n{logs}");
}

/// An order for `i` with placer id `R-{i}` and control id `control`: sent again with a new
/// control id it updates the same referral (and its patient).
fn placer_order(i: usize, control: &str) -> String {
    format!(
        "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000||REF^I12|{control}|P|2.5.1\r\
         RF1|P|R|CAR||O|R-{i}^EPIC|20260302\rPRD|RP|ADAMS^ANN|||||NPI123\r\
         PID|1||MRN-{i}^^^NORTH^MR||DOE^JO||19700101|F|||||^PRN^PH^^^555^5550{i:03}\r"
    )
}

/// Inbound updates (patient, then referral locks) on one process while both fire timers and
/// record outcomes (referral locks; the patient only read) on the same referrals: the lock
/// order leaves no cycle, so PostgreSQL never has to break a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbound_updates_beside_due_work_on_two_processes_never_deadlock() {
    let db = TestDb::new(Backend::Postgres).await;
    let admin = prepared(&db.url);
    let env = [("RUST_LOG", "info,refloop_hl7=debug"), ("REFLOOP_WORKERS_OUTBOX_BATCH", "3")];
    let (a, b) = (Serve::start(&db.url, &env, &[]), Serve::start(&db.url, &env, &[]));
    const N: usize = 40;
    const ROUNDS: usize = 4;
    let mut feed = refloop_testkit::MllpClient::connect(a.mllp).await;
    for i in 0..N {
        let ack = feed.send(&placer_order(i, &format!("NEW{i}"))).await;
        assert_eq!(refloop_testkit::ack_code(&ack), "AA", "{ack}");
    }
    for round in 0..ROUNDS {
        let updates = async {
            let mut clients = Vec::new();
            for _ in 0..4 {
                clients.push(refloop_testkit::MllpClient::connect(a.mllp).await);
            }
            let sends = clients.into_iter().enumerate().map(|(c, mut client)| async move {
                for i in (c..N).step_by(4) {
                    let ack = client.send(&placer_order(i, &format!("UPD{round}-{i}"))).await;
                    assert_eq!(refloop_testkit::ack_code(&ack), "AA", "{ack}");
                }
            });
            futures_util::future::join_all(sends).await;
        };
        let by = if round == 0 { "7d1h" } else { "1d" };
        let body = || Some(json!({ "by": by }));
        let (_, (sa, ra), (sb, rb)) = tokio::join!(
            updates,
            a.call(&admin, "POST", "/api/v1/clock/advance", body()),
            b.call(&admin, "POST", "/api/v1/clock/advance", body())
        );
        assert_eq!((sa, sb), (200, 200), "round {round}: {ra} {rb}");
    }
    let logs = a.stop() + &b.stop();
    let deadlocks = logs.lines().filter(|l| l.contains("deadlock")).count();
    assert_eq!(deadlocks, 0, "PostgreSQL broke deadlocks:\n{logs}");
}

/// Under systemd (`Type=notify`): `READY=1` once serve listens, `STOPPING=1` at SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let db = TestDb::new(Backend::Sqlite).await;
    crate::process::migrated(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let s = Serve::start(&db.url, &[("NOTIFY_SOCKET", path.to_str().unwrap())], &[]);
    let socket = std::sync::Arc::new(socket);
    let next = |socket: std::sync::Arc<std::os::unix::net::UnixDatagram>| async move {
        tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 256];
            let n = socket.recv(&mut buf).expect("a notification from serve");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .await
        .unwrap()
    };
    assert_eq!(next(socket.clone()).await.trim(), "READY=1");
    assert_eq!(s.ready().await, 200, "ready means it answers");
    s.terminate();
    assert_eq!(next(socket.clone()).await.trim(), "STOPPING=1");
    assert!(s.exited_within(std::time::Duration::from_secs(60)).await.is_some_and(|(ok, _)| ok));
}
