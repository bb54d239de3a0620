//! Running refloop in production: backups under load, restores, the alert rules and the
//! metrics they read, `doctor`.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use refloop_testkit::{Backend, MllpClient, TestDb, ack_code};

use crate::{
    chaos::{lost_and_twice, ref_i12},
    process::{Serve, prepared, run},
};

/// Sends numbered orders on one connection until told to stop, noting each acknowledged one.
async fn feed(mllp: SocketAddr, prefix: String, acked: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let mut client = MllpClient::connect(mllp).await;
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let control = format!("{prefix}N{n}");
        let ack = client.send(&ref_i12(&control, 0)).await;
        assert_eq!(ack_code(&ack), "AA", "{ack}");
        acked.lock().unwrap().push(control);
    }
}

async fn refloop(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])).await.unwrap()
}

/// `backup` copies the database while `serve` takes an MLLP feed: the copy passes SQLite's
/// check and holds every message acknowledged before the backup began; `restore` refuses the
/// database `serve` has open and puts the copy in place of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_an_mllp_feed_holds_every_message_acknowledged_before_it_began() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = prepared(&db.url);
    let serve = Serve::start(&db.url, &[], &[]);
    let (acked, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
    let feeders: Vec<_> =
        (0..4).map(|c| tokio::spawn(feed(serve.mllp, format!("B{c}"), acked.clone(), stop.clone()))).collect();
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("refloop-backup.db").display().to_string();
    let (ok, out, err) = refloop(vec!["backup".into(), copy.clone(), "--database".into(), db.url.clone()]).await;
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for f in feeders {
        f.await.unwrap();
    }
    assert!(ok, "{out}{err}");
    assert!(out.contains("integrity ok") && out.contains("backup OK"), "{out}");
    assert!(out.contains(&format!("{copy}: ")) && out.contains(" bytes"), "{out}");
    let referrals: usize = out.split("referrals ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(referrals >= before.len(), "{out}");
    println!("{} acknowledged before the backup, {during} while it ran", before.len());
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copy).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the copy holds patient data: its owner only");

    let (ok, _, err) = refloop(vec!["backup".into(), copy.clone(), "--database".into(), db.url.clone()]).await;
    assert!(!ok && err.contains("exists"), "a backup never overwrites a file: {err}");
    let (ok, _, err) = refloop(vec!["restore".into(), copy.clone(), "--database".into(), db.url.clone()]).await;
    assert!(!ok && err.contains("is in use: stop refloop"), "{err}");
    serve.stop();

    // Restored over another (stopped) database: that one is kept aside.
    let target = dir.path().join("restored.db");
    let url = format!("sqlite://{}", target.display());
    crate::process::migrated(&url);
    let (ok, out, err) = refloop(vec!["restore".into(), copy.clone(), "--database".into(), url.clone()]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("kept as {}.before-restore", target.display())), "{out}");
    let restored = Serve::start(&url, &[], &[]);
    let kept = restored.source_ids(&admin).await;
    let (lost, twice) = lost_and_twice(&kept, &before);
    assert!(lost.is_empty() && twice.is_empty(), "lost {lost:?}, twice {twice:?}");
    restored.stop();
}

/// `backup` of a PostgreSQL database says how to do it instead, and does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_points_to_pg_dump() {
    let db = TestDb::new(Backend::Postgres).await;
    crate::process::migrated(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.db").display().to_string();
    let (ok, _, err) = run(&["backup", &file, "--database", &db.url], &[]);
    assert!(!ok && err.contains("pg_dump --format=custom") && err.contains("pg_restore"), "{err}");
    assert!(!std::path::Path::new(&file).exists());
}

/// Settings to change: `REFLOOP_…` name and value.
type Changes = Vec<(&'static str, String)>;

/// `doctor` against every part on loopback: all good, then each part broken in turn fails
/// alone, naming the fix; nothing is sent and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_every_configured_part_and_names_the_one_that_is_broken() {
    use refloop_testkit::{Dovecot, FakeEhr, FakeFax, FakeSmtp, FakeTwilio};
    let db = TestDb::new(Backend::Sqlite).await;
    crate::process::migrated(&db.url);
    let (twilio, fax, smtp, ehr, mail) = (
        FakeTwilio::start().await,
        FakeFax::start().await,
        FakeSmtp::start().await,
        FakeEhr::start().await,
        Dovecot::start().await,
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("smart.pem");
    std::fs::write(&key, refloop_testkit::SMART_PRIVATE_KEY).unwrap();
    let mut env: Vec<(String, String)> = twilio.env();
    let own = |k: &str, v: String| (k.to_owned(), v);
    env.extend([
        own("REFLOOP_FAX_CONNECTOR", "http".into()),
        own("REFLOOP_FAX_API_BASE", fax.base.clone()),
        own("REFLOOP_FAX_API_KEY", refloop_testkit::FAX_KEY.into()),
        own("REFLOOP_FAX_API_SECRET", refloop_testkit::FAX_SECRET.into()),
        own("REFLOOP_DIRECT_CONNECTOR", "smtp".into()),
        own("REFLOOP_DIRECT_RELAY_HOST", "127.0.0.1".into()),
        own("REFLOOP_DIRECT_RELAY_PORT", smtp.port.to_string()),
        own("REFLOOP_DIRECT_TLS", "none".into()),
        own("REFLOOP_DIRECT_FROM", "referrals@direct.clinic.example".into()),
        own("REFLOOP_EHR_BASE_URL", ehr.base.clone()),
        own("REFLOOP_EHR_AUTH", "smart".into()),
        own("REFLOOP_EHR_CLIENT_ID", refloop_testkit::CLIENT_ID.into()),
        own("REFLOOP_EHR_TOKEN_URL", ehr.token_url.clone()),
        own("REFLOOP_EHR_PRIVATE_KEY_FILE", key.display().to_string()),
        own("REFLOOP_DIRECT_IMAP_URL", mail.tls_url()),
        own("REFLOOP_DIRECT_IMAP_CA", refloop_testkit::tls::file("ca.pem").display().to_string()),
        own("REFLOOP_DIRECT_IMAP_USER", mail.user.clone()),
        own("REFLOOP_DIRECT_IMAP_PASSWORD", mail.password.clone()),
        own("REFLOOP_SERVER_HTTP", "127.0.0.1:0".into()),
        own("REFLOOP_SERVER_MLLP", "127.0.0.1:0".into()),
    ]);
    // `doctor` with these settings changed.
    let doctor = |url: String, changes: Changes| {
        let mut env = env.clone();
        for (k, v) in changes {
            env.retain(|(name, _)| name != k);
            env.push((k.to_owned(), v));
        }
        async move {
            tokio::task::spawn_blocking(move || {
                let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                run(&["doctor", "--database", &url], &pairs)
            })
            .await
            .unwrap()
        }
    };
    let (ok, out, err) = doctor(db.url.clone(), vec![]).await;
    assert!(ok, "{out}{err}");
    for part in
        ["database", "disk", "clock", "sms", "direct-relay", "fax", "ehr", "direct-mailbox", "http-port", "mllp-port"]
    {
        assert!(out.lines().any(|l| l.starts_with("OK    ") && l[6..].starts_with(part)), "{part} OK in:\n{out}");
    }
    assert!(
        out.contains("FHIR 4.0.1") && out.contains("SMART token issued") && out.contains("all checks passed"),
        "{out}"
    );
    assert_eq!((twilio.sent().len(), fax.sent().len(), smtp.mails().len()), (0, 0, 0), "doctor sends nothing");

    // A port taken by another program.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let missing = dir.path().join("nowhere.db");
    let missing_url = format!("sqlite://{}", missing.display());
    let cases: Vec<(&str, Changes, &str)> = vec![
        ("sms", vec![("REFLOOP_SMS_AUTH_TOKEN", "wrong".into())], "credentials were refused (401"),
        ("fax", vec![("REFLOOP_FAX_API_SECRET", "wrong".into())], "check [fax] api_base, api_key and api_secret"),
        ("direct-relay", vec![("REFLOOP_DIRECT_RELAY_PORT", dead.clone())], "check [direct] relay_host"),
        ("ehr", vec![("REFLOOP_EHR_CLIENT_ID", "someone-else".into())], "check [ehr] client_id"),
        ("ehr", vec![("REFLOOP_EHR_BASE_URL", format!("http://127.0.0.1:{dead}/fhir"))], "check [ehr] base_url"),
        ("direct-mailbox", vec![("REFLOOP_DIRECT_IMAP_PASSWORD", "wrong".into())], "imap_password"),
        ("http-port", vec![("REFLOOP_SERVER_HTTP", taken.clone())], "another program listens there"),
        ("database", vec![], "no database at"),
    ];
    for (part, changes, says) in cases {
        let url = if part == "database" { missing_url.clone() } else { db.url.clone() };
        let (ok, out, err) = doctor(url, changes).await;
        assert!(!ok && err.contains("checks failed"), "{part}: {out}{err}");
        let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
        assert_eq!(failed.len(), 1, "only {part} fails: {out}");
        assert!(failed[0][6..].starts_with(part) && failed[0].contains(says) && failed[0].contains("fix: "), "{out}");
        assert!(!out.contains("wrong"), "no secret is printed: {out}");
    }
    assert!(!missing.exists(), "doctor creates no database");
    drop(squatter);
}

/// Every `refloop_…` metric a text names (the alert rules, the Grafana dashboard).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("refloop_") {
        let name: String =
            text[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        names.insert(name);
    }
    names
}

/// The shipped alert rules pass `promtool check rules` (Debian's prometheus package), and
/// every metric they and the Grafana dashboard read is one a running `serve` exposes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_pass_promtool_and_read_only_metrics_serve_exposes() {
    use refloop_testkit::{Dovecot, FakeTwilio};
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let rules = deploy.join("prometheus/alerts.yml");
    let promtool = std::env::var("TEST_PROMTOOL")
        .unwrap_or_else(|_| deploy.join("../target/prometheus/usr/bin/promtool").display().to_string());
    let out = std::process::Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap_or_else(|e| panic!("promtool ({promtool}; scripts/test installs it): {e}"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("SUCCESS: 9 rules found"), "{said}");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy.join("grafana/refloop.json")).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.iter().all(|p| p["targets"][0]["expr"].is_string()), "every panel queries");
    let wanted: BTreeSet<String> = metric_names(&std::fs::read_to_string(&rules).unwrap())
        .union(&metric_names(&dashboard.to_string()))
        .cloned()
        .collect();

    // A serve that has texted a patient, read its mailbox and taken HL7 and FHIR.
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = prepared(&db.url);
    let (twilio, mail) = (FakeTwilio::start().await, Dovecot::start().await);
    let mut env = twilio.env();
    for (k, v) in [
        ("REFLOOP_WORKFLOW_QUIET_HOURS_START", "00:00".to_owned()),
        ("REFLOOP_WORKFLOW_QUIET_HOURS_END", "00:00".to_owned()),
        ("REFLOOP_DIRECT_IMAP_URL", mail.tls_url()),
        ("REFLOOP_DIRECT_IMAP_CA", refloop_testkit::tls::file("ca.pem").display().to_string()),
        ("REFLOOP_DIRECT_IMAP_USER", mail.user.clone()),
        ("REFLOOP_DIRECT_IMAP_PASSWORD", mail.password.clone()),
    ] {
        env.push((k.to_owned(), v));
    }
    let s = Serve::start(&db.url, &crate::process::pairs(&env), &[]);
    let order = serde_json::json!({"patient_id": "mrn-1", "referring_provider": "dr-a", "specialty": "cardiology",
        "patient": {"phone": "+15555550123", "sms_consent": true}});
    assert_eq!(s.call(&admin, "POST", "/api/v1/referrals", Some(order)).await.0, 201);
    s.advance(&admin, "1h").await;
    s.until_outbox_settled(&admin).await;
    assert_eq!(twilio.sent().len(), 1);
    let mut mllp = MllpClient::connect(s.mllp).await;
    assert_eq!(ack_code(&mllp.send(&ref_i12("M1", 0)).await), "AA");
    let patient = serde_json::json!({"resourceType": "Patient", "id": "pt-1"});
    s.call(&admin, "POST", "/fhir/Patient", Some(patient)).await;
    let mut scraped = String::new();
    for _ in 0..600 {
        scraped = s.call(&admin, "GET", "/metrics", None).await.1.as_str().unwrap_or_default().to_owned();
        if scraped.contains(r#"refloop_last_success_timestamp_seconds{part="direct-mailbox"}"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exposed = metric_names(&scraped);
    let missing: Vec<&String> = wanted.iter().filter(|m| !exposed.contains(*m)).collect();
    assert!(missing.is_empty(), "read by the rules or dashboard but not exposed: {missing:?}\n{scraped}");
    assert!(scraped.contains(r#"refloop_channel_last_success_timestamp_seconds{channel="sms"}"#), "{scraped}");
    assert!(scraped.contains(r#"refloop_inbox_waiting{status="dead"} 0"#), "{scraped}");
    s.stop();
}
