//! `refloop audit verify` and `refloop audit export`: the chain holds over what a real
//! `serve` recorded, a row changed behind refloop's back (with the sqlite3 shell) is named, and
//! the export validates as FHIR R4 AuditEvents with the independent validator.

use refloop_testkit::{Backend, TestDb};
use serde_json::{Value, json};

use crate::process::{Serve, prepared, run};

/// Records some audit rows through a served API: a referral made and read, and a list.
async fn some_audited_work(db: &TestDb) -> String {
    let admin = prepared(&db.url);
    let s = Serve::start(&db.url, &[], &[]);
    let body = json!({"patient_id": "p-audit", "referring_provider": "dr-a", "specialty": "cardiology"});
    let (status, made) = s.call(&admin, "POST", "/api/v1/referrals", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(s.call(&admin, "GET", &format!("/api/v1/referrals/{id}"), None).await.0, 200);
    assert_eq!(s.call(&admin, "GET", "/api/v1/referrals", None).await.0, 200);
    s.stop();
    id
}

fn verify(db: &TestDb) -> (bool, String, String) {
    run(&["audit", "verify", "--database", &db.url], &[])
}

fn sqlite3(file: &str, sql: &str) -> std::process::Output {
    std::process::Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (scripts/test installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_then_names_the_row_changed_with_sqlite3() {
    let db = TestDb::new(Backend::Sqlite).await;
    some_audited_work(&db).await;
    let (ok, out, err) = verify(&db);
    assert!(ok, "{err}");
    let checked: u32 = out.split("intact: ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(checked >= 4, "token create, referral create, read, list: {out}");

    let file = db.url.trim_start_matches("sqlite://").to_owned();
    for sql in ["UPDATE audit_log SET actor = 'admin:mallory' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 2"] {
        let out = sqlite3(&file, sql);
        assert!(!out.status.success(), "{sql} got through the guard");
        assert!(String::from_utf8_lossy(&out.stderr).contains("append-only"));
    }
    assert!(verify(&db).0, "refused changes leave the chain whole");

    // Someone with the file lifts the guard and changes a row: verify names it.
    let out =
        sqlite3(&file, "DROP TRIGGER audit_no_update; UPDATE audit_log SET actor = 'admin:mallory' WHERE seq = 2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, _, err) = verify(&db);
    assert!(!ok);
    assert!(err.contains("broken at row 2 (chain position 2): its contents changed after it was sealed"), "{err}");
    assert!(err.contains("1 rows before it hold"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_a_deleted_row_on_postgres_too() {
    let db = TestDb::new(Backend::Postgres).await;
    some_audited_work(&db).await;
    assert!(verify(&db).0);
    let store = db.store().await;
    assert!(store.execute_raw("DELETE FROM audit_log WHERE seq = 3").await.is_err(), "the guard refuses");
    store.execute_raw("ALTER TABLE audit_log DISABLE TRIGGER audit_no_delete").await.unwrap();
    store.execute_raw("DELETE FROM audit_log WHERE chain_pos = 3").await.unwrap();
    let (ok, _, err) = verify(&db);
    assert!(!ok);
    assert!(err.contains("(chain position 4): a row before it is missing"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_export_is_fhir_r4_audit_events_that_validate() {
    let db = TestDb::new(Backend::Sqlite).await;
    let referral = some_audited_work(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("audit.ndjson");
    // Audit rows carry the wall clock's time; a day either side keeps midnight out of it.
    let today = refloop_app::Clock::now(&refloop_app::SystemClock).to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let (from, to) = (today.yesterday().unwrap().to_string(), today.tomorrow().unwrap().to_string());
    let (ok, _, err) = run(
        &[
            "audit",
            "export",
            "--database",
            &db.url,
            "--from",
            &from,
            "--to",
            &to,
            "--output",
            out_file.to_str().unwrap(),
        ],
        &[("REFLOOP_PRACTICE_TIME_ZONE", "UTC")],
    );
    assert!(ok, "{err}");
    let events: Vec<Value> =
        std::fs::read_to_string(&out_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.len() >= 4, "{events:?}");
    let wanted = format!("ServiceRequest/{}", referral.replacen('_', "-", 1));
    let read = events
        .iter()
        .find(|e| e["subtype"][0]["code"] == "read" && e["entity"][0]["what"]["reference"] == wanted.as_str())
        .expect("the read of the referral");
    assert_eq!((read["action"].as_str(), read["type"]["code"].as_str()), (Some("R"), Some("110110")));
    assert_eq!(read["agent"][0]["network"]["address"], "127.0.0.1");
    refloop_testkit::peers::validate_fhir(&events);

    // Nothing before the period: an empty file, and the export itself is audited.
    let (ok, _, err) = run(
        &["audit", "export", "--database", &db.url, "--to", "2001-01-01", "--output", out_file.to_str().unwrap()],
        &[],
    );
    assert!(ok && err.contains("0 audit events written"), "{err}");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "");
    let (ok, _, err) = run(&["audit", "export", "--database", &db.url, "--from", "last tuesday"], &[]);
    assert!(!ok && err.contains("--from: a date"), "{err}");
}
