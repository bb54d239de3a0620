//! The closure report over HTTP and its figures: closed-loop rate, funnel, leakage by stage
//! and reason, days at stage, unscheduled catch rate, split by a dimension.

use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(the_closure_report_counts_what_closed_and_where_the_rest_leaked);

fn order(patient: &str, specialty: &str) -> Value {
    json!({"patient_id": patient, "referring_provider": "dr-adams", "specialty": specialty, "urgency": "routine",
        "patient": {"phone": "+15555550160", "sms_consent": true}})
}

async fn the_closure_report_counts_what_closed_and_where_the_rest_leaked(b: Backend) {
    let t = TestApp::spawn(b).await;
    let closed = t.create_referral_id(order("p-a", "cardiology")).await;
    let booked = t.create_referral_id(order("p-b", "cardiology")).await;
    let late = t.create_referral_id(order("p-c", "dermatology")).await;
    let declined = t.create_referral_id(order("p-d", "dermatology")).await;
    t.create_referral_id(order("p-a", "cardiology")).await; // a duplicate: not counted
    t.advance("1h").await; // the SMS goes out (log connector): all notified
    t.event(&closed, json!({"type": "scheduled", "appointment_at": "2026-03-04T15:00:00Z"})).await;
    t.event(&booked, json!({"type": "scheduled", "appointment_at": "2026-03-20T15:00:00Z"})).await;
    t.event(&declined, json!({"type": "closed-incomplete", "reason": "patient declined"})).await;
    t.advance("2d").await;
    t.event(&closed, json!({"type": "attended"})).await;
    t.advance("6d").await; // day 8: the late one was escalated …
    t.event(&late, json!({"type": "scheduled", "appointment_at": "2026-03-25T15:00:00Z"})).await; // … and caught
    t.event(&closed, json!({"type": "note-received"})).await;

    let r = t.get("/api/v1/reports/closure?from=2026-03-01&to=2026-04-01").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let b = &r.body;
    assert_eq!(
        (b["referrals"].as_u64(), b["closed_loop"].as_u64(), b["closed_loop_rate"].as_f64()),
        (Some(4), Some(1), Some(0.25))
    );
    assert_eq!(b["funnel"], json!({"patient-notified": 4, "scheduled": 3, "attended": 1, "note-received": 1}));
    assert_eq!(b["leakage_by_stage"], json!({"not attended": 2, "not scheduled": 1}));
    assert_eq!(b["leakage_by_reason"], json!({"closed: patient declined": 1, "still open": 2}));
    assert_eq!(b["days"]["order-to-note"]["median_days"].as_f64(), Some(8.0));
    assert_eq!(b["days"]["scheduled-to-attended"]["count"].as_u64(), Some(1));
    assert_eq!((b["escalated_unscheduled"].as_u64(), b["caught_after_escalation"].as_u64()), (Some(1), Some(1)));
    assert_eq!(b["unscheduled_catch_rate"].as_f64(), Some(1.0));

    let split = t.get("/api/v1/reports/closure?from=2026-03-01&to=2026-04-01&by=specialty").await.body;
    assert_eq!(split["by"]["cardiology"]["closed_loop_rate"].as_f64(), Some(0.5));
    assert_eq!(split["by"]["dermatology"]["closed_loop_rate"].as_f64(), Some(0.0));
    let empty = t.get("/api/v1/reports/closure?from=2025-01-01&to=2025-02-01").await.body;
    assert_eq!((empty["referrals"].as_u64(), &empty["closed_loop_rate"]), (Some(0), &Value::Null));
    let metrics =
        t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.admin).send().await.unwrap().text().await.unwrap();
    for line in [
        "refloop_referrals{state=\"note-received\"} 1",
        "refloop_referrals{state=\"scheduled\"} 2",
        "refloop_referrals{state=\"closed-incomplete\"} 1",
        "refloop_outbox_backlog 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains("refloop_tasks_overdue"), "{metrics}");
    let bad = t.get("/api/v1/reports/closure?by=colour").await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (422, Some("by")));
}
