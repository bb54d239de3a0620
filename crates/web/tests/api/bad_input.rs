//! Bad input gets a clear error naming the field, and changes nothing.

use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

async fn count(t: &TestApp) -> usize {
    t.get("/api/v1/referrals?limit=200").await.body["items"].as_array().unwrap().len()
}

fn valid() -> Value {
    json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"})
}

async fn invalid_referrals_are_refused_with_the_field_named(b: Backend) {
    let t = TestApp::spawn(b).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"referring_provider": "dr-a"}), "patient_id"),
        (json!({"patient_id": "p1", "referring_provider": "dr-a", "urgency": "soonish"}), "urgency"),
        (json!({"patient_id": "p1", "referring_provider": "dr-a", "origin": "walk-in"}), "origin"),
        (json!({"patient_id": "p1", "referring_provider": "dr-a", "network": "maybe"}), "network"),
        (json!({"patient_id": "p1", "referring_provider": "dr-a", "colour": "blue"}), "colour"),
        (json!({"patient_id": "p1", "referring_provider": "dr-a", "ordered_at": "yesterday"}), "ordered_at"),
        (json!({"patient_id": "p1", "referring_provider": "dr-a", "ordered_at": "2027-01-01T00:00:00Z"}), "ordered_at"),
        (json!({"patient_id": "", "referring_provider": "dr-a"}), "patient_id"),
        (json!({"patient_id": 7, "referring_provider": "dr-a"}), "patient_id"),
        (json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "card iology"}), "specialty"),
        (
            json!({"patient_id": "p1", "referring_provider": "dr-a", "patient": {"smsconsent": true}}),
            "patient.smsconsent",
        ),
        (
            json!({"patient_id": "p1", "referring_provider": "dr-a", "patient": {"time_zone": "Mars/Base"}}),
            "patient.time_zone",
        ),
    ];
    for (body, field) in cases {
        let r = t.post("/api/v1/referrals", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{body}: {:?}", r.body);
    }
    assert_eq!(count(&t).await, 0, "nothing was stored");
}

async fn malformed_oversized_and_mistyped_bodies_change_nothing(b: Backend) {
    let t = TestApp::spawn(b).await;
    let r = t.post_raw("/api/v1/referrals", "application/json", b"{\"patient_id\": ".to_vec()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "invalid_json");
    let r = t.post_raw("/api/v1/referrals", "text/plain", serde_json::to_vec(&valid()).unwrap()).await;
    assert_eq!(r.status, 415);
    assert_eq!(oversized_status(&t).await, 413);
    assert_eq!(count(&t).await, 0);
}

/// Announces a 2 MiB body and reads the answer before sending it: the limit is enforced
/// on the declared length, and the test does not race the server closing the connection.
async fn oversized_status(t: &TestApp) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = t.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/referrals HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        t.admin,
        2 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn bad_staff_events_are_refused_and_change_nothing(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t.create_referral_id(valid()).await;
    let before = t.referral(&id).await;
    let path = format!("/api/v1/referrals/{id}/events");
    for (body, status, field) in [
        (json!({"type": "teleported"}), 422, Some("type")),
        (json!({"type": "scheduled", "appointment_at": "next week"}), 422, Some("appointment_at")),
        (json!({"type": "closed-incomplete"}), 422, Some("reason")),
        (json!({"type": "scheduled", "when": "now"}), 422, Some("when")),
    ] {
        let r = t.post(&path, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["field"].as_str(), field, "{body}");
    }
    let r = t.post("/api/v1/referrals/ref_doesnotexist/events", json!({"type": "scheduled"})).await;
    assert_eq!(r.status, 404);
    let after = t.referral(&id).await;
    assert_eq!(before["version"], after["version"]);
    assert_eq!(before["events"], after["events"]);
}

async fn the_clock_cannot_be_driven_when_it_is_the_system_clock(b: Backend) {
    let t = TestApp::builder(b).system_clock().spawn().await;
    let r = t.post("/api/v1/clock/advance", json!({"by": "7d"})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["code"], "clock_not_manual");
    assert_eq!(t.get("/api/v1/clock").await.body["mode"], "system");
    let manual = TestApp::spawn(b).await;
    let r = manual.post("/api/v1/clock/advance", json!({"by": "a while"})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["field"], "by");
}

on_both_backends!(
    invalid_referrals_are_refused_with_the_field_named,
    malformed_oversized_and_mistyped_bodies_change_nothing,
    bad_staff_events_are_refused_and_change_nothing,
    the_clock_cannot_be_driven_when_it_is_the_system_clock,
    fields_beyond_their_limits_are_refused_and_change_nothing,
);

/// Each field has a documented limit: 100,000 source ids (a 1 MB body) or a 2,001-character
/// reason get 422 naming the field, and nothing is stored.
async fn fields_beyond_their_limits_are_refused_and_change_nothing(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut many = valid();
    many["source_ids"] = json!((0..100_000).map(|i| format!("s{i}")).collect::<Vec<_>>());
    let r = t.post("/api/v1/referrals", many).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some("source_ids")), "{:?}", r.body);
    for (field, value, max) in [
        ("reason", "r".repeat(2001), 2000),
        ("specialist", "s".repeat(201), 200),
        ("referring_provider_name", "n".repeat(201), 200),
    ] {
        let mut body = valid();
        body[field] = json!(value);
        let r = t.post("/api/v1/referrals", body).await;
        assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some(field)), "{:?}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains(&max.to_string()));
    }
    let mut long_name = valid();
    long_name["patient"] = json!({"name": "x".repeat(201)});
    let r = t.post("/api/v1/referrals", long_name).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some("patient.name")), "{:?}", r.body);
    assert_eq!(count(&t).await, 0, "nothing was stored");
    let id = t.create_referral_id(valid()).await;
    let r = t
        .post(
            &format!("/api/v1/referrals/{id}/events"),
            json!({"type": "closed-incomplete", "reason": "r".repeat(2001)}),
        )
        .await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some("reason")), "{:?}", r.body);
}
