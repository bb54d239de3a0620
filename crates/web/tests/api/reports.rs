//! The closure report over HTTP and its figures: closed-loop rate, funnel, leakage by stage
//! and reason, days at stage, unscheduled catch rate, split by a dimension.

use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    the_closure_report_counts_what_closed_and_where_the_rest_leaked,
    cms50_counts_each_provider_from_fhir_facts,
    a_referral_is_in_progress_until_its_window_runs_out_then_leaked,
);

/// Maturity at the window's edge: one hour before the day-7 scheduling window runs out the
/// referral is in progress (not a leak); one hour after, it has leaked at "not scheduled", and
/// the reason says for how long. The mature rate counts it only once it was ordered
/// `[workflow] mature_after` (90 days) ago.
async fn a_referral_is_in_progress_until_its_window_runs_out_then_leaked(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t.create_referral_id(order("p-mat", "cardiology")).await;
    t.event(&id, json!({"type": "patient-notified"})).await;
    t.advance("6d23h").await;
    let r = t.get("/api/v1/reports/closure").await.body;
    assert_eq!((r["referrals"].as_u64(), r["in_progress"].as_u64()), (Some(1), Some(1)), "{r}");
    assert_eq!(r["in_progress_by_stage"], json!({"not scheduled": 1}));
    assert_eq!(r["leakage_by_stage"], json!({}), "not a leak while its window runs");
    assert_eq!((r["mature_referrals"].as_u64(), r["mature_closed_loop_rate"].as_f64()), (Some(0), None));

    t.advance("2h").await;
    let r = t.get("/api/v1/reports/closure").await.body;
    assert_eq!(r["in_progress"].as_u64(), Some(0), "{r}");
    assert_eq!(r["leakage_by_stage"], json!({"not scheduled": 1}));
    // The reason names the stage and how long it is overdue, in buckets split at 2 and 6 weeks.
    assert_eq!(r["leakage_by_reason"], json!({"still open, not scheduled, up to 2 weeks overdue": 1}));
    let period = "/api/v1/reports/closure?from=2026-03-01&to=2026-06-30";
    t.advance("13d22h").await;
    let r = t.get(period).await.body;
    assert_eq!(r["leakage_by_reason"], json!({"still open, not scheduled, up to 2 weeks overdue": 1}), "13d23h");
    t.advance("1h").await;
    let r = t.get(period).await.body;
    assert_eq!(r["leakage_by_reason"], json!({"still open, not scheduled, 2–6 weeks overdue": 1}), "14 days");

    // Once ordered 90 days ago it counts in the mature rate (a leak: 0 of 1).
    t.advance("68d1h").await;
    let r = t.get(period).await.body;
    assert_eq!((r["referrals"].as_u64(), r["mature_referrals"].as_u64()), (Some(1), Some(0)), "89 days: not yet");
    assert_eq!(r["leakage_by_reason"], json!({"still open, not scheduled, over 6 weeks overdue": 1}));
    t.advance("1d1h").await;
    let r = t.get(period).await.body;
    assert_eq!((r["mature_referrals"].as_u64(), r["mature_closed_loop_rate"].as_f64()), (Some(1), Some(0.0)), "{r}");
}

fn order(patient: &str, specialty: &str) -> Value {
    json!({"patient_id": patient, "referring_provider": "dr-adams", "specialty": specialty, "urgency": "routine",
        "patient": {"phone": "+15555550160", "sms_consent": true}})
}

async fn the_closure_report_counts_what_closed_and_where_the_rest_leaked(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let closed = t.create_referral_id(order("p-a", "cardiology")).await;
    let booked = t.create_referral_id(order("p-b", "cardiology")).await;
    let late = t.create_referral_id(order("p-c", "dermatology")).await;
    let declined = t.create_referral_id(order("p-d", "dermatology")).await;
    t.create_referral_id(order("p-a", "cardiology")).await; // a duplicate: not counted
    t.advance("1h").await; // the SMS goes out …
    assert_eq!(t.deliver_sms().await, 4, "one per tracked referral"); // … and is delivered: all notified
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
    // The two waiting for their visits are within their windows: in progress, not leaks.
    assert_eq!((b["in_progress"].as_u64(), &b["in_progress_by_stage"]), (Some(2), &json!({"not attended": 2})));
    assert_eq!(b["leakage_by_stage"], json!({"not scheduled": 1}));
    assert_eq!(b["leakage_by_reason"], json!({"closed: patient declined": 1}));
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

/// One patient's CMS50 facts as a FHIR transaction: an office visit, a referral by `doctor`,
/// and (when `report_at`) a completed consult-note task based on it.
fn cms50_bundle(patient: &str, doctor: &str, report_at: Option<&str>) -> Value {
    let subject = json!({"reference": format!("Patient/{patient}")});
    let mut entries = vec![
        json!({"resource": {"resourceType": "Encounter", "id": format!("enc-{patient}"), "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}],
            "subject": subject, "period": {"start": "2026-02-02T15:00:00Z", "end": "2026-02-02T15:20:00Z"}},
            "request": {"method": "PUT", "url": format!("Encounter/enc-{patient}")}}),
        json!({"resource": {"resourceType": "ServiceRequest", "id": format!("sr-{patient}"), "status": "active",
            "intent": "order", "subject": subject, "authoredOn": "2026-02-02T15:30:00Z",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "103696004"}]},
            "performerType": {"text": "cardiology"},
            "requester": {"reference": format!("Practitioner/{doctor}")}},
            "request": {"method": "PUT", "url": format!("ServiceRequest/sr-{patient}")}}),
    ];
    if let Some(at) = report_at {
        entries.push(
            json!({"resource": {"resourceType": "Task", "id": format!("task-{patient}"), "status": "completed",
            "intent": "order", "for": subject, "basedOn": [{"reference": format!("ServiceRequest/sr-{patient}")}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
            "executionPeriod": {"start": at, "end": at}},
            "request": {"method": "PUT", "url": format!("Task/task-{patient}")}}),
        );
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

async fn cms50_counts_each_provider_from_fhir_facts(b: Backend) {
    let t = TestApp::spawn(b).await;
    for (patient, doctor, report) in [
        ("c1", "dr-adams", Some("2026-02-20T10:00:00Z")),
        ("c2", "dr-adams", None),
        ("c3", "dr-baker", Some("2026-02-25T10:00:00Z")),
    ] {
        let r = t.fhir("POST", "/fhir", Some(cms50_bundle(patient, doctor, report)), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let report = t.get("/api/v1/reports/cms50?year=2026").await;
    assert_eq!(report.status, 200, "{}", report.body);
    let p = &report.body["practice"];
    assert_eq!(
        (p["initial_population"].as_u64(), p["denominator"].as_u64(), p["numerator"].as_u64()),
        (Some(3), Some(3), Some(2))
    );
    assert_eq!(p["rate"].as_f64(), Some(0.6667));
    let adams = &report.body["providers"]["Practitioner/dr-adams"];
    assert_eq!(
        (adams["denominator"].as_u64(), adams["numerator"].as_u64(), adams["rate"].as_f64()),
        (Some(2), Some(1), Some(0.5))
    );
    assert_eq!(adams["patients"]["numerator"], json!(["Patient/c1"]));
    assert_eq!(report.body["providers"]["Practitioner/dr-baker"]["rate"].as_f64(), Some(1.0));

    // The report for the task again: resent, it is replaced, not counted twice.
    t.fhir("POST", "/fhir", Some(cms50_bundle("c1", "dr-adams", Some("2026-02-20T10:00:00Z"))), &[]).await;
    assert_eq!(t.get("/api/v1/reports/cms50?year=2026").await.body["practice"]["numerator"], 2);
    assert_eq!(t.get("/api/v1/reports/cms50?year=2025").await.body["practice"]["denominator"], 0);
    assert_eq!(t.get("/api/v1/reports/cms50?year=soon").await.status, 422);
    assert_eq!(t.get("/api/v1/reports/cms50").await.status, 422);
}
