//! `check-config`, `migrate`, `token create` and `serve --demo`.

use refloop_testkit::{Backend, TestDb};

use crate::process::{Serve, add_user, run, token};

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let (ok, out, err) = run(
        &["check-config", "--database", "postgres://app:s3cret-pw@127.0.0.1:9/refloop"],
        &[("REFLOOP_WORKFLOW_ROUTINE_SCHEDULING", "5d")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("postgres://app:***@127.0.0.1:9/refloop"), "{out}");
    assert!(!out.contains("s3cret-pw"));
    assert!(out.contains("scheduling = \"5d\""), "{out}");
    assert!(out.contains("mfa_required = [\"admin\"]"), "admins sign in with a second factor by default: {out}");
    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_AUTH_MFA_REQUIRED", "[\"integration\"]")]);
    assert!(!ok && err.contains("auth.mfa_required"), "{err}");
    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_AUTH_OIDC_ISSUER", "http://idp.example")]);
    assert!(!ok && err.contains("auth.oidc.issuer: https://"), "{err}");
    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_AUTH_OIDC_ISSUER", "https://idp.example")]);
    assert!(!ok && err.contains("auth.oidc.client_id"), "{err}");
    assert!(out.contains("#   sms           off    (the workflow falls back to staff tasks)"), "{out}");
    assert!(out.contains("# warning: hl7.senders: none listed, so every HL7 message is refused"), "{out}");
    let (ok, out, _) = run(&["check-config"], &[("REFLOOP_HL7_ALLOW_ANY_SENDER", "true")]);
    assert!(ok && out.contains("# warning: hl7.allow_any_sender = true"), "{out}");
    // The new channels' settings: secrets hidden, misconfigurations named.
    let (ok, out, err) = run(
        &["check-config"],
        &[("REFLOOP_DIRECT_REFERRALS_360X", "true"), ("REFLOOP_FAX_WEBHOOK_SECRET", "short-s3cret")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("# warning: direct.referrals_360x = true but direct.connector"), "{out}");
    assert!(out.contains("# warning: fax.webhook_secret: shorter than 16"), "{out}");
    assert!(!out.contains("short-s3cret") && out.contains("webhook_secret = \"(hidden)\""), "{out}");
    // The calendar: the hours, the next closed days from "today" and how each window reads.
    let at = [
        ("REFLOOP_CLOCK_MODE", "manual"),
        ("REFLOOP_CLOCK_START", "2026-10-08T16:00:00Z"),
        ("REFLOOP_WORKFLOW_ROUTINE_SCHEDULING", "5bd"),
        ("REFLOOP_PRACTICE_HOLIDAYS", "2026-10-30"),
    ];
    let (ok, out, err) = run(&["check-config"], &at);
    assert!(ok, "{err}");
    assert!(out.contains("# business hours: Mon–Fri 08:00–17:00 (America/New_York)"), "{out}");
    assert!(
        out.contains("# next holidays: 2026-10-12 Columbus Day, 2026-10-30 practice holiday, 2026-11-11 Veterans Day"),
        "{out}"
    );
    assert!(out.contains("# routine windows: notify 24 hours · scheduling 5 business days"), "{out}");
    assert!(out.contains("# urgent windows: notify 2 hours · scheduling 3 calendar days"), "{out}");
    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_PRACTICE_BUSINESS_HOURS", "9 to 5")]);
    assert!(!ok && err.contains("practice.business_hours"), "{err}");
    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_WORKFLOW_NOTE_LADDER_WAIT", "1h")]);
    assert!(!ok && err.contains("workflow.note_ladder_wait"), "{err}");
    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_RETENTION_DOCUMENTS", "7d")]);
    assert!(!ok && err.contains("retention.documents"), "{err}");
    let (ok, _, err) = run(
        &["check-config"],
        &[("REFLOOP_HL7_SENDERS", "[{name = \"epic\", msh3 = \"EPIC\", cidrs = [\"10.1.0.0/33\"]}]")],
    );
    assert!(!ok && err.contains("hl7.senders[0].cidrs"), "{err}");
    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_CLOCK_MODE", "sundial")]);
    assert!(!ok);
    assert!(err.contains("clock.mode"), "{err}");

    let twilio = [
        ("REFLOOP_SMS_MODE", "twilio"),
        ("REFLOOP_SMS_API_BASE", "http://127.0.0.1:9"),
        ("REFLOOP_SMS_ACCOUNT_SID", "AC1"),
        ("REFLOOP_SMS_AUTH_TOKEN", "tw-s3cret"),
        ("REFLOOP_SMS_FROM", "+15555550999"),
    ];
    let (ok, out, err) = run(&["check-config"], &twilio);
    assert!(ok, "{err}");
    assert!(out.contains("api_base = \"http://127.0.0.1:9\"") && !out.contains("tw-s3cret"), "{out}");
    assert!(out.contains("#   sms           live   last activity unknown"), "{out}");
    assert!(out.contains("#   note-request  off    (the workflow falls back to staff tasks)"), "{out}");
    assert!(!std::path::Path::new("refloop.db").exists(), "check-config creates no database");
    let (ok, _, err) = run(&["check-config"], &twilio[..4]);
    assert!(!ok && err.contains("sms.from"), "{err}");
    let (ok, _, err) =
        run(&["check-config"], &[("REFLOOP_EHR_BASE_URL", "https://ehr.example/fhir"), ("REFLOOP_EHR_AUTH", "smart")]);
    assert!(!ok && err.contains("client_id"), "{err}");
}

#[test]
fn every_verb_has_help() {
    let (ok, out, _) = run(&["--help"], &[]);
    assert!(ok);
    for verb in [
        "serve",
        "migrate",
        "check-config",
        "token",
        "user",
        "import",
        "export",
        "report",
        "simulate",
        "dead-letters",
        "audit",
    ] {
        assert!(out.contains(verb), "{verb} missing from --help");
        let (ok, _, err) = run(&[verb, "--help"], &[]);
        assert!(ok, "{verb} --help: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_added_with_a_password_from_stdin_listed_and_disabled() {
    let db = TestDb::new(Backend::Sqlite).await;
    let add = |name: &str, role: &str, password: &str| add_user(&db.url, name, role, password);
    let (ok, out, err) = add("alice", "coordinator", "a long enough secret");
    assert!(ok && out.contains("user alice saved with role coordinator"), "{out}{err}");
    let (ok, _, err) = add("bob", "coordinator", "short");
    assert!(!ok && err.contains("password") && !err.contains("short"), "{err}");
    let (ok, _, err) = add("carol", "integration", "a long enough secret");
    assert!(!ok && err.contains("--role"), "{err}");
    let (ok, out, _) = run(&["user", "disable", "alice", "--database", &db.url], &[]);
    assert!(ok && out.contains("alice disabled"), "{out}");
    let (ok, out, _) = run(&["user", "list", "--database", &db.url], &[]);
    assert!(ok && out.contains("alice\tcoordinator\tdisabled\tpassword only") && !out.contains("argon2"), "{out}");
    let store = db.store().await;
    refloop_app::store::AuthStore::set_totp(store.as_ref(), "alice", Some("JBSWY3DPEHPK3PXP"), None, Some(1))
        .await
        .unwrap();
    let (_, out, _) = run(&["user", "list", "--database", &db.url], &[]);
    assert!(out.contains("alice\tcoordinator\tdisabled\ttwo-step"), "{out}");
    let (ok, out, err) = run(&["user", "reset-mfa", "alice", "--database", &db.url], &[]);
    assert!(ok && out.contains("second factor removed"), "{out}{err}");
    let (_, out, _) = run(&["user", "list", "--database", &db.url], &[]);
    assert!(out.contains("alice\tcoordinator\tdisabled\tpassword only"), "{out}");
    let (ok, _, err) = run(&["user", "reset-mfa", "nobody", "--database", &db.url], &[]);
    assert!(!ok && err.contains("user nobody not found"), "{err}");
    let alice = refloop_app::store::AuthStore::user(store.as_ref(), "alice").await.unwrap().unwrap();
    assert!(alice.password_hash.starts_with("$argon2id$") && !alice.password_hash.contains("secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_printed_once_and_stored_hashed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = run(&["migrate", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let t = token(&db.url, "viewer");
    assert!(t.starts_with("rfl_") && t.len() > 40, "{t}");
    let store = db.store().await;
    let hashed = refloop_app::hash_token(&t);
    let record = refloop_app::store::AuthStore::token_by_hash(store.as_ref(), &hashed).await.unwrap().unwrap();
    assert_eq!(record.role, refloop_app::Role::Viewer);
    let raw_rows = store.execute_raw(&format!("UPDATE api_tokens SET name = name WHERE hash = '{t}'")).await.unwrap();
    assert_eq!(raw_rows, 0, "the token itself is not stored");
    let (ok, _, err) = run(&["token", "create", "--role", "superuser", "--name", "x", "--database", &db.url], &[]);
    assert!(!ok && err.contains("--role"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seeds_a_fresh_database_and_never_one_with_real_data() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let s = Serve::start(&db.url, &[], &["--demo"]);
    let (status, list) = s.call(&admin, "GET", "/api/v1/referrals?limit=200", None).await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 200);
    assert!(items.iter().all(|r| r["source_ids"][0].as_str().unwrap().starts_with("demo:")));
    let states: std::collections::HashSet<&str> = items.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert!(states.len() >= 4, "the demo shows referrals at several stages: {states:?}");
    // The simulated practice's last 90 days: a populated dashboard, and work left for people.
    let (_, report) = s.call(&admin, "GET", "/api/v1/reports/closure", None).await;
    assert!(report["referrals"].as_u64().unwrap() > 1500, "{report}");
    assert!(report["closed_loop"].as_u64().unwrap() > 500, "{report}");
    let (_, tasks) = s.call(&admin, "GET", "/api/v1/tasks?status=open", None).await;
    assert!(!tasks["items"].as_array().unwrap().is_empty());
    // The demo's messages go to the simulator's people, never to the log (which reaches no one).
    let (_, channels) = s.call(&admin, "GET", "/api/v1/channels", None).await;
    let modes: Vec<&str> = channels["items"].as_array().unwrap().iter().map(|c| c["mode"].as_str().unwrap()).collect();
    assert!(modes.iter().all(|m| *m == "simulated"), "{channels}");
    // Its specialists are in the directory, a few of them stale.
    let (_, directory) = s.call(&admin, "GET", "/api/v1/specialists", None).await;
    let entries = directory["items"].as_array().unwrap();
    assert!(entries.len() >= 10, "{directory}");
    assert!(entries.iter().any(|e| e["stale"] == true) && entries.iter().any(|e| e["stale"] == false));
    s.stop();
    // Started again on its own demo data: kept as it is.
    let again = Serve::start(&db.url, &[], &["--demo"]);
    assert!(again.signs_in("demo", "refloop-demo").await, "the demo sign-in works while --demo runs");
    let log = again.stop();
    assert!(log.contains("demo data already present"), "{log}");
    // Served without --demo, the demo sign-in no longer works; with --demo again, it does.
    let plain = Serve::start(&db.url, &[], &[]);
    assert!(!plain.signs_in("demo", "refloop-demo").await, "the demo sign-in is off without --demo");
    assert!(plain.stop().contains("the demo sign-in is disabled"));
    let again = Serve::start(&db.url, &[], &["--demo"]);
    assert!(again.signs_in("demo", "refloop-demo").await);
    again.stop();

    let real = TestDb::new(Backend::Sqlite).await;
    let admin = token(&real.url, "admin");
    let s = Serve::start(&real.url, &[], &[]);
    let body = serde_json::json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"});
    assert_eq!(s.call(&admin, "POST", "/api/v1/referrals", Some(body)).await.0, 201);
    s.stop();
    let (ok, _, err) = run(&["serve", "--demo", "--database", &real.url, "--http", "127.0.0.1:0"], &[]);
    assert!(!ok);
    assert!(err.contains("refusing to seed demo data"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specialist_directory_imports_from_csv_and_reports_bad_rows() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = run(&["migrate", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("specialists.csv");
    std::fs::write(
        &csv,
        "id,name,specialties,network,phone,fax,direct_address,last_verified\n\
         sp-1,Dr Heart,cardiology,out-of-network,+15555550101,+15555550177,heart@direct.example.org,2026-01-15\n\
         sp-2,Dr Skin,dermatology;allergy,in-network,,,,\n\
         sp-3,Dr Bad,cardiology,out-of-network,+15555550101,555-0177,,2026-01-15\n\
         sp-4,,cardiology,unknown,,,,\n",
    )
    .unwrap();
    let (ok, out, err) = run(&["import", "specialists", "--database", &db.url, csv.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("2 rows refused"), "{err}");
    assert!(out.contains("2 specialists saved, 2 rows refused"), "{out}");
    let name = csv.display();
    assert!(out.contains(&format!("refused: {name}: line 4: fax")), "{out}");
    assert!(out.contains(&format!("refused: {name}: line 5: name")) && !out.contains("555-0177"), "{out}");
    let store = db.store().await;
    let all = refloop_app::store::DirectoryStore::specialists(store.as_ref(), None).await.unwrap();
    assert_eq!(all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["sp-1", "sp-2"]);
    assert_eq!(all[1].specialties.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closure_report_prints_as_text_and_json() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = run(&["migrate", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sr.ndjson");
    std::fs::write(
        &file,
        r#"{"resourceType":"ServiceRequest","id":"r1","status":"active","intent":"order","subject":{"reference":"Patient/x1"},"performerType":{"text":"cardiology"},"requester":{"reference":"Practitioner/d1"},"authoredOn":"2026-03-01"}"#,
    )
    .unwrap();
    let (ok, _, err) = run(&["import", "fhir", "--database", &db.url, file.to_str().unwrap()], &[]);
    assert!(ok, "{err}");
    let (ok, out, err) =
        run(&["report", "closure", "--database", &db.url, "--from", "2026-02-01", "--to", "2026-04-01", "--json"], &[]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["referrals"].as_u64(), report["closed_loop"].as_u64()), (Some(1), Some(0)));
    let (ok, out, _) = run(
        &[
            "report",
            "closure",
            "--database",
            &db.url,
            "--from",
            "2026-02-01",
            "--to",
            "2026-04-01",
            "--by",
            "specialty",
        ],
        &[],
    );
    assert!(ok && out.contains("cardiology") && out.contains("0.0%"), "{out}");
    let (ok, _, err) = run(&["report", "closure", "--database", &db.url, "--by", "colour"], &[]);
    assert!(!ok && err.contains("--by"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrals_export_as_csv_and_json_with_milestones_and_leaks() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = run(&["migrate", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.ndjson");
    let sr = |id: &str, patient: &str| {
        format!(
            r#"{{"resourceType":"ServiceRequest","id":"{id}","status":"active","intent":"order","subject":{{"reference":"Patient/{patient}"}},"performerType":{{"text":"cardiology"}},"requester":{{"reference":"Practitioner/d1"}},"authoredOn":"2026-03-01T10:00:00.000Z"}}"#
        )
    };
    let appt = r#"{"resourceType":"Appointment","id":"a1","status":"booked","start":"2026-03-09T15:00:00.000Z","basedOn":[{"reference":"ServiceRequest/e1"}],"participant":[{"actor":{"reference":"Patient/x1"}}],"meta":{"lastUpdated":"2026-03-03T12:00:00.000Z"}}"#;
    std::fs::write(&file, format!("{}\n{}\n{appt}\n", sr("e1", "x1"), sr("e2", "-x2"))).unwrap();
    let (ok, _, err) = run(&["import", "fhir", "--database", &db.url, file.to_str().unwrap()], &[]);
    assert!(ok, "{err}");

    let csv_path = dir.path().join("out.csv");
    let (ok, _, err) = run(
        &["export", "referrals", "--database", &db.url, "--format", "csv", "--output", csv_path.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{err}");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "referral_id");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let booked = rows.iter().find(|r| !r[col("scheduled_at")].is_empty()).unwrap();
    assert_eq!(&booked[col("appointment_at")], "2026-03-09T15:00:00.000Z");
    assert_eq!(&booked[col("leak_stage")], "not attended");
    assert_eq!(&booked[col("days_notified_to_scheduled")], "2.08");
    // A cell a spreadsheet would run as a formula is written as text; JSON keeps it as it is.
    let other = rows.iter().find(|r| r[col("scheduled_at")].is_empty()).unwrap();
    assert_eq!(&other[col("patient_id")], "'-x2");

    let (ok, out, err) = run(&["export", "referrals", "--database", &db.url, "--format", "json"], &[]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["tracked"], true);
    assert!(rows[0]["note_received_at"].is_null());
    assert!(rows.as_array().unwrap().iter().any(|r| r["patient_id"] == "-x2"), "{rows}");
    assert!(
        rows.as_array().unwrap().iter().all(|r| r["in_progress"] == false),
        "months later, every window has run out"
    );
    // Exported while the booked one waits for its visit: it is in progress.
    let before_visit = [("REFLOOP_CLOCK_MODE", "manual"), ("REFLOOP_CLOCK_START", "2026-03-05T00:00:00Z")];
    let (ok, out, err) = run(&["export", "referrals", "--database", &db.url, "--format", "json"], &before_visit);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let booked = rows.as_array().unwrap().iter().find(|r| !r["scheduled_at"].is_null()).unwrap();
    assert_eq!(
        (booked["in_progress"].as_bool(), booked["ordered_date_local"].as_str()),
        (Some(true), Some("2026-03-01"))
    );
    let (ok, _, err) = run(&["export", "referrals", "--database", &db.url, "--format", "xlsx"], &[]);
    assert!(!ok && err.contains("--format"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_csv_imports_history_that_reports_count_and_the_workflow_leaves_alone() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = run(&["migrate", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("last-quarter.csv");
    // Hand-computed: 7 rows kept (one cancelled, so 6 tracked), 1 closed loop; leaks:
    // no note (b2), not attended (b3), not scheduled (b4, b7 closed), not notified (b5).
    std::fs::write(
        &file,
        "referral_id,patient_id,referring_provider,specialty,ordered_at,patient_notified_at,scheduled_at,appointment_at,attended_at,note_received_at,cancelled_at,closed_at,close_reason\n\
         b1,p1,dr-adams,cardiology,2026-01-02,2026-01-03,2026-01-05,2026-01-12T15:00:00Z,2026-01-12,2026-01-20,,,\n\
         b2,p2,dr-adams,cardiology,2026-01-02,2026-01-03,2026-01-05,2026-01-12T15:00:00Z,2026-01-12,,,,\n\
         b3,p3,dr-adams,dermatology,2026-01-09,2026-01-10,2026-01-15,2026-01-30T15:00:00Z,,,,,\n\
         b4,p4,dr-baker,dermatology,2026-02-02,2026-02-03,,,,,,,\n\
         ,p5,dr-baker,neurology,2026-02-10,,,,,,,,\n\
         b6,p6,dr-baker,neurology,2026-02-11,,,,,,2026-02-12,,entered in error\n\
         b7,p7,dr-baker,neurology,2026-03-01,2026-03-02,,,,,,2026-03-20,patient declined\n\
         b8,p8,dr-baker,neurology,yesterday,,,,,,,,\n\
         b9,,dr-baker,neurology,2026-03-01,,,,,,,,\n\
         b10,p10,dr-baker,neurology,2026-03-01,,,,,,,2026-03-20,\n\
         b11,p11,dr-baker\n",
    )
    .unwrap();
    let args = ["import", "csv", "--database", &db.url, file.to_str().unwrap()];
    let (ok, out, err) = run(&args, &[]);
    assert!(!ok && err.contains("4 rows refused"), "a refused row fails the import: {err}");
    assert!(out.contains("7 referrals imported as history, 0 already present, 4 rows refused"), "{out}");
    let name = file.display();
    for expected in [
        format!("refused: {name}: line 9: ordered_at"),
        format!("refused: {name}: line 10: patient_id"),
        format!("refused: {name}: line 11: close_reason"),
        format!("refused: {name}: line 12: row: wrong number of columns"),
    ] {
        assert!(out.contains(&expected), "{expected} in {out}");
    }
    assert!(!out.contains("yesterday"), "a refusal names the field, never the value: {out}");
    let (_, out, _) = run(&args, &[]);
    assert!(out.contains("0 referrals imported as history, 7 already present"), "importing again adds nothing: {out}");

    let (ok, out, err) =
        run(&["report", "closure", "--database", &db.url, "--from", "2026-01-01", "--to", "2026-04-01", "--json"], &[]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["referrals"].as_u64(), r["closed_loop"].as_u64(), r["closed_loop_rate"].as_f64()),
        (Some(6), Some(1), Some(0.1667))
    );
    assert_eq!(
        r["funnel"],
        serde_json::json!({"patient-notified": 5, "scheduled": 3, "attended": 2, "note-received": 1})
    );
    assert_eq!(
        r["leakage_by_stage"],
        serde_json::json!({"no note": 1, "not attended": 1, "not scheduled": 2, "not notified": 1})
    );
    // Open ones say their stage and how long they are overdue (months, by the wall clock).
    assert_eq!(
        r["leakage_by_reason"],
        serde_json::json!({"closed: patient declined": 1, "still open, no note, over 6 weeks overdue": 1,
            "still open, not attended, over 6 weeks overdue": 1, "still open, not notified, over 6 weeks overdue": 1,
            "still open, not scheduled, over 6 weeks overdue": 1})
    );
    assert_eq!(r["days"]["order-to-note"]["median_days"], 18.0);

    // The same figures from the projections (by month) as from the report rows; and report
    // rows missing (as in a database from before they existed) are written at start.
    let report = |by: Option<&str>| {
        let mut args =
            vec!["report", "closure", "--database", &db.url, "--from", "2026-01-01", "--to", "2026-04-01", "--json"];
        args.extend(by.iter().flat_map(|b| ["--by", *b]));
        let (ok, out, err) = run(&args, &[]);
        assert!(ok, "{err}");
        let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_object_mut().unwrap().remove("generated_at");
        v
    };
    let by_month = report(Some("month"));
    assert_eq!(by_month["by"]["2026-01"]["referrals"], 3);
    let mut without_groups = by_month.clone();
    without_groups.as_object_mut().unwrap().remove("by");
    assert_eq!(without_groups, report(None));
    let store = db.store().await;
    // As a database from before the report rows: the data migration writes them, once.
    assert_eq!(store.execute_raw("DELETE FROM referral_stats").await.unwrap(), 7);
    assert_eq!(store.execute_raw("DELETE FROM data_migrations").await.unwrap(), 1);
    assert_eq!(report(None), without_groups, "every command migrates first, which writes them again");

    // History is never acted on: no timers, no tasks, no messages.
    let store = db.store().await;
    assert_eq!(refloop_app::store::OutboxStore::next_due(store.as_ref()).await.unwrap(), None);
    let tasks = refloop_app::store::TaskStore::tasks(
        store.as_ref(),
        &refloop_app::TaskFilter { limit: 100, ..Default::default() },
    )
    .await
    .unwrap();
    assert!(tasks.is_empty(), "{tasks:?}");
    let outbox = refloop_app::store::OutboxStore::outbox(
        store.as_ref(),
        &refloop_app::OutboxFilter { limit: 100, ..Default::default() },
    )
    .await
    .unwrap();
    assert!(outbox.is_empty());
}

/// Tokens expire, are listed with their last use, and can be revoked: a revoked or expired
/// token gets 401 (and the refusal is audited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_revoked_and_expire() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = token(&db.url, "admin");
    let (ok, short, err) = run(
        &["token", "create", "--role", "viewer", "--name", "dashboard", "--expires-in", "30d", "--database", &db.url],
        &[],
    );
    assert!(ok, "{err}");
    let short = short.trim().to_owned();
    let viewer = token(&db.url, "viewer");
    let s = Serve::start(&db.url, &[], &[]);
    for t in [&admin, &short, &viewer] {
        assert_eq!(s.call(t, "GET", "/api/v1/referrals", None).await.0, 200);
    }
    let (ok, list, err) = run(&["token", "list", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    assert!(list.contains("\tdashboard\tviewer\t") && list.contains("\tlive"), "{list}");
    assert!(!list.contains(&short) && !list.contains("rfl_"), "no token is ever shown: {list}");
    let last_used = list.lines().find(|l| l.contains("dashboard")).unwrap().split('\t').nth(5).unwrap().to_owned();
    assert_ne!(last_used, "-", "its use is recorded: {list}");

    let (ok, out, err) = run(&["token", "revoke", "dashboard", "--database", &db.url], &[]);
    assert!(ok && out.starts_with("revoked tok_"), "{out}{err}");
    assert_eq!(s.call(&short, "GET", "/api/v1/referrals", None).await.0, 401, "revoked: refused at once");
    assert_eq!(s.call(&admin, "GET", "/api/v1/referrals", None).await.0, 200);
    let (ok, _, err) = run(&["token", "revoke", "dashboard", "--database", &db.url], &[]);
    assert!(!ok && err.contains("no live token"), "{err}");
    s.stop();

    // A year on (the tokens' default lifetime), every token is refused.
    let later = Serve::start(&db.url, &[("REFLOOP_CLOCK_START", "2031-01-01T00:00:00Z")], &[]);
    assert_eq!(later.call(&admin, "GET", "/api/v1/referrals", None).await.0, 401, "expired");
    let log = later.stop();
    assert!(log.contains("API token refused") && log.contains("expired"), "{log}");
    let (_, list, _) = run(&["token", "list", "--database", &db.url], &[]);
    assert!(list.lines().any(|l| l.contains("dashboard") && l.ends_with("revoked")), "{list}");
}

/// Each failed sign-in in a row is answered later; the fifth locks the account (the right
/// password no longer works) until an admin unlocks it; too many failures from one address,
/// or too many bad API tokens, get 429 with Retry-After. Every step is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_lock_the_account_until_unlocked_and_floods_get_429() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = add_user(&db.url, "casey", "coordinator", "correct horse battery");
    assert!(ok, "{err}");
    let admin = token(&db.url, "admin");
    let env = [("REFLOOP_AUTH_SIGNINS_PER_ADDRESS", "8"), ("REFLOOP_AUTH_TOKENS_PER_ADDRESS", "5")];
    let s = Serve::start(&db.url, &env, &[]);
    for _ in 0..5 {
        assert_eq!(s.sign_in("casey", "wrong password!").await, 401);
    }
    assert_eq!(s.sign_in("casey", "correct horse battery").await, 401, "locked: the right password fails too");
    let (ok, out, err) = run(&["user", "unlock", "casey", "--database", &db.url], &[]);
    assert!(ok && out.contains("casey unlocked"), "{out}{err}");
    assert_eq!(s.sign_in("casey", "correct horse battery").await, 303, "unlocked by an admin");
    // Six failures from this address so far; two more and it must wait.
    for _ in 0..2 {
        assert_eq!(s.sign_in("nobody", "wrong password!").await, 401);
    }
    assert_eq!(s.sign_in("casey", "correct horse battery").await, 429, "too many failures from this address");

    // Bad API tokens: the sixth in a minute gets 429 with Retry-After, and so does a good one.
    for _ in 0..5 {
        assert_eq!(s.call("rfl_not-a-token", "GET", "/api/v1/referrals", None).await.0, 401);
    }
    let flood = reqwest::Client::new()
        .get(format!("{}/api/v1/referrals", s.base))
        .bearer_auth("rfl_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(flood.status().as_u16(), 429);
    assert!(flood.headers().get("retry-after").is_some());
    assert_eq!(s.call(&admin, "GET", "/api/v1/referrals", None).await.0, 429, "the address waits");
    s.stop();
    let store = db.store().await;
    let audit = refloop_app::store::AuditStore::audit_log(store.as_ref(), 100).await.unwrap();
    for action in ["login-failed", "lockout", "login-locked", "unlock", "login"] {
        assert!(audit.iter().any(|a| a.action == action && a.resource_id == "casey"), "{action}: {audit:?}");
    }
    assert!(audit.iter().any(|a| a.action == "login-failed" && a.remote.as_deref() == Some("127.0.0.1")));
}

/// The manual clock (an admin moves time for every referral) starts on an empty or demo
/// database; on one with real referrals only with `--allow-manual-clock`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_clock_refuses_a_database_of_real_referrals_unless_allowed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let admin = crate::process::prepared(&db.url);
    let s = Serve::start(&db.url, &[], &[]);
    let body = serde_json::json!({"patient_id": "p-real", "referring_provider": "dr-a", "specialty": "cardiology"});
    assert_eq!(s.call(&admin, "POST", "/api/v1/referrals", Some(body)).await.0, 201);
    s.stop();
    let manual = [("REFLOOP_CLOCK_MODE", "manual"), ("REFLOOP_HL7_ALLOW_ANY_SENDER", "true")];
    let (ok, _, err) =
        run(&["serve", "--database", &db.url, "--http", "127.0.0.1:0", "--mllp", "127.0.0.1:0"], &manual);
    assert!(!ok && err.contains("--allow-manual-clock"), "{err}");
    // With the flag it starts (the helper passes it).
    Serve::start(&db.url, &[], &[]).stop();
}

/// Commands that read a database refuse a SQLite file that is not there (instead of creating
/// an empty one and reporting zeros); `migrate --check` says what is pending; `--version`
/// names the revision and schema; an unknown `REFLOOP_` variable stops every command.
#[test]
fn a_missing_database_pending_migrations_and_unknown_variables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elsewhere.db");
    let url = format!("sqlite://{}", path.display());
    for args in [
        vec!["report", "closure"],
        vec!["export", "referrals"],
        vec!["dead-letters", "list"],
        vec!["token", "list"],
        vec!["user", "list"],
        vec!["audit", "verify"],
        vec!["migrate", "--check"],
    ] {
        let mut args = args.clone();
        args.extend(["--database", &url]);
        let (ok, _, err) = run(&args, &[]);
        assert!(!ok, "{args:?} succeeded on a missing database");
        assert!(
            err.contains(&format!("no database at {}; pass --database or run refloop migrate", path.display())),
            "{err}"
        );
        assert!(!path.exists(), "{args:?} created the file");
    }

    // Made at an old schema: pending until migrated.
    let (ok, _, err) = run(&["migrate", "--database", &url], &[]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["migrate", "--check", "--database", &url], &[]);
    assert!(ok && out.contains("up to date"), "{out}{err}");
    let conn = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg("DELETE FROM _sqlx_migrations WHERE version = 26; DROP TABLE data_migrations;")
        .status()
        .unwrap();
    assert!(conn.success());
    let (ok, out, err) = run(&["migrate", "--check", "--database", &url], &[]);
    assert!(!ok && out.contains("pending: 0026 data migrations") && err.contains("migrations pending"), "{out}{err}");
    assert!(out.contains("pending data migration: report rows"), "{out}");
    let (ok, _, _) = run(&["migrate", "--database", &url], &[]);
    assert!(ok && run(&["migrate", "--check", "--database", &url], &[]).0);

    let (ok, out, _) = run(&["--version"], &[]);
    let schema = format!("schema {})", refloop_store::schema_version());
    assert!(ok && out.starts_with("refloop ") && out.contains("(git ") && out.contains(&schema), "{out}");

    let (ok, _, err) = run(&["check-config"], &[("REFLOOP_WORKFLOW_ROUTINE_SCHEDULNG", "5d")]);
    assert!(!ok && err.contains("REFLOOP_WORKFLOW_ROUTINE_SCHEDULNG names no setting"), "{err}");
    let (ok, _, err) = run(&["report", "closure", "--database", &url], &[("REFLOOP_DATABSE_URL", "x")]);
    assert!(!ok && err.contains("REFLOOP_DATABSE_URL"), "{err}");
}
