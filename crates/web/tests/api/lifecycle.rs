//! A referral from order to note, and the workflow's escalations on the way.

use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

fn order(patient: &str, urgency: &str) -> Value {
    json!({
        "patient_id": patient,
        "patient": {"name": "Pat Example", "phone": "+15555550123", "sms_consent": true, "time_zone": "America/New_York"},
        "referring_provider": "dr-adams",
        "specialty": "cardiology",
        "urgency": urgency,
        "network": "out-of-network",
        "reason": "R07.9",
    })
}

/// The stage-1 SMS goes out and the carrier reports it delivered: the patient is reached.
async fn reached(t: &TestApp) {
    t.advance("1m").await;
    assert_eq!(t.deliver_sms().await, 1, "one stage-1 SMS");
}

fn kinds(tasks: &[Value]) -> Vec<String> {
    tasks.iter().map(|t| t["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

fn event_types(referral: &Value) -> Vec<String> {
    referral["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

async fn a_referral_walks_through_all_five_states(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let r = t.create_referral(order("p-walk", "routine")).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["state"], "ordered");
    assert_eq!(r["milestones"]["ordered"], "2026-03-02T15:00:00.000Z");

    // The stage-1 SMS goes out (to the fake provider) and its delivery notifies the patient.
    t.advance("1h").await;
    assert_eq!(t.referral(id).await["state"], "ordered", "accepted by the provider is not delivered");
    assert_eq!(t.deliver_sms().await, 1);
    let r = t.referral(id).await;
    assert_eq!(r["state"], "patient-notified");
    let sent = t.outbox_of(id).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["channel"], "sms");
    assert_eq!(sent[0]["status"], "sent");

    t.advance("2d").await;
    t.event(id, json!({"type": "scheduled", "appointment_at": "2026-03-12T14:00:00.000Z"})).await;
    t.advance("8d").await;
    t.event(id, json!({"type": "attended", "at": "2026-03-12T14:30:00.000Z"})).await;
    t.advance("20d").await;
    let r = t.event(id, json!({"type": "note-received"})).await;
    assert_eq!(r["state"], "note-received");

    let r = t.referral(id).await;
    let m = &r["milestones"];
    assert_eq!(m["ordered"], "2026-03-02T15:00:00.000Z");
    assert_eq!(m["patient-notified"], "2026-03-02T16:00:00.000Z", "when the carrier reported it delivered");
    assert_eq!(m["scheduled"], "2026-03-04T16:00:00.000Z");
    assert_eq!(m["attended"], "2026-03-12T14:30:00.000Z");
    assert_eq!(m["note-received"], "2026-04-01T16:00:00.000Z");
    assert_eq!(r["appointment_at"], "2026-03-12T14:00:00.000Z");
    assert_eq!(r["overdue"], false);
    let types = event_types(&r);
    for expected in ["ordered", "message-queued", "patient-notified", "scheduled", "attended", "note-received"] {
        assert!(types.contains(&expected.to_owned()), "{expected} missing from {types:?}");
    }
    // The loop is closed: nothing is left to do and nothing fires later.
    let after = t.advance("120d").await;
    assert_eq!(after["timers_fired"], 0);
    assert!(t.tasks_of(id).await.is_empty());
}

async fn a_routine_referral_escalates_on_day_7_not_before(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-routine", "routine")).await;
    reached(&t).await;
    t.advance("6d23h").await;
    assert!(kinds(&t.tasks_of(&id).await).is_empty(), "no task before day 7");
    t.advance("1h").await;
    let tasks = t.tasks_of(&id).await;
    assert_eq!(kinds(&tasks), ["schedule-follow-up"]);
    assert_eq!(tasks[0]["created_at"], "2026-03-09T15:00:00.000Z");
    let channels: Vec<Value> = t.outbox_of(&id).await.iter().map(|m| m["channel"].clone()).collect();
    assert!(channels.contains(&json!("chat")) && channels.contains(&json!("ehr-task")), "{channels:?}");
}

async fn an_urgent_referral_escalates_on_day_3(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-urgent", "urgent")).await;
    reached(&t).await;
    t.advance("2d23h").await;
    assert!(t.tasks_of(&id).await.is_empty());
    t.advance("1h").await;
    let tasks = t.tasks_of(&id).await;
    assert_eq!(kinds(&tasks), ["schedule-follow-up"]);
    assert_eq!(tasks[0]["created_at"], "2026-03-05T15:00:00.000Z");
}

async fn a_referral_scheduled_on_day_6_gets_no_day_7_escalation(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-stale", "routine")).await;
    reached(&t).await;
    t.advance("6d").await;
    t.event(&id, json!({"type": "scheduled", "appointment_at": "2026-03-20T14:00:00.000Z"})).await;
    let report = t.advance("2d").await;
    assert_eq!(report["timers_fired"], 0);
    assert!(t.tasks_of(&id).await.is_empty());
    let r = t.referral(&id).await;
    assert!(!event_types(&r).contains(&"escalated".to_owned()));
    assert!(t.outbox_of(&id).await.iter().all(|m| m["channel"] == "sms"));
}

async fn a_duplicate_order_within_14_days_is_linked_and_opens_nothing(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let first = t.create_referral(order("p-dup", "routine")).await;
    reached(&t).await;
    t.advance("3d").await;
    let second = t.create_referral(order("p-dup", "routine")).await;
    assert_eq!(second["duplicate_of"], first["id"]);
    assert_eq!(second["tracked"], false);
    let dup = second["id"].as_str().unwrap();
    t.advance("30d").await;
    assert!(t.tasks_of(dup).await.is_empty());
    assert!(t.outbox_of(dup).await.is_empty());
    assert_eq!(t.referral(dup).await["state"], "ordered");
    // The original still escalates on its own day 7.
    assert_eq!(kinds(&t.tasks_of(first["id"].as_str().unwrap()).await), ["schedule-follow-up"]);
    // Fifteen days on, the same order is a new referral.
    let third = t.create_referral(order("p-dup", "routine")).await;
    assert_eq!(third["duplicate_of"], Value::Null);
}

async fn a_self_referral_is_stored_but_never_acted_on(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let mut body = order("p-self", "urgent");
    body["origin"] = json!("self-referral");
    let r = t.create_referral(body).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["origin"], "self-referral");
    assert_eq!(r["tracked"], false);
    t.advance("90d").await;
    assert!(t.tasks_of(id).await.is_empty());
    assert!(t.outbox_of(id).await.is_empty());
    assert_eq!(t.referral(id).await["state"], "ordered");
}

async fn a_no_show_returns_to_scheduling_and_escalates_again(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-noshow", "routine")).await;
    reached(&t).await;
    t.advance("2d").await;
    t.event(&id, json!({"type": "scheduled", "appointment_at": "2026-03-06T14:00:00.000Z"})).await;
    t.advance("3d").await;
    let r = t.event(&id, json!({"type": "no-show"})).await;
    assert_eq!(r["state"], "patient-notified");
    assert_eq!(r["no_shows"], 1);
    assert_eq!(r["milestones"]["scheduled"], "2026-03-04T15:01:00.000Z", "the first scheduling keeps its time");
    t.advance("6d").await;
    assert!(!kinds(&t.tasks_of(&id).await).contains(&"schedule-follow-up".to_owned()));
    t.advance("1d").await;
    assert_eq!(kinds(&t.tasks_of(&id).await), ["schedule-follow-up"]);
}

async fn a_note_before_the_appointment_still_closes_the_loop(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-ooo", "routine")).await;
    t.event(&id, json!({"type": "note-received", "at": "2026-03-20T10:00:00.000Z"})).await;
    let r = t
        .event(
            &id,
            json!({"type": "scheduled", "at": "2026-03-05T10:00:00.000Z", "appointment_at": "2026-03-18T10:00:00.000Z"}),
        )
        .await;
    assert_eq!(r["state"], "note-received");
    assert_eq!(r["milestones"]["scheduled"], "2026-03-05T10:00:00.000Z");
    assert_eq!(r["milestones"]["note-received"], "2026-03-20T10:00:00.000Z");
}

async fn no_note_after_the_visit_requests_it_then_escalates_to_the_physician(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-note", "routine")).await;
    t.event(&id, json!({"type": "attended", "at": "2026-03-02T15:00:00.000Z"})).await;
    t.advance("29d").await;
    assert!(!t.outbox_of(&id).await.iter().any(|m| m["channel"] == "note-request"));
    t.advance("1d").await;
    assert!(t.outbox_of(&id).await.iter().any(|m| m["channel"] == "note-request"));
    t.advance("30d").await;
    assert!(kinds(&t.tasks_of(&id).await).contains(&"physician-escalation".to_owned()));
}

async fn a_patient_without_sms_consent_gets_a_phone_task_instead(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let mut body = order("p-nosms", "routine");
    body["patient"]["sms_consent"] = json!(false);
    let id = t.create_referral_id(body).await;
    assert_eq!(kinds(&t.tasks_of(&id).await), ["notify-patient"]);
    assert!(t.outbox_of(&id).await.is_empty());
    let mut bad = order("p-badphone", "routine");
    bad["patient"]["phone"] = json!("555-0123");
    let id = t.create_referral_id(bad).await;
    assert_eq!(kinds(&t.tasks_of(&id).await), ["fix-contact"]);
    assert!(t.outbox_of(&id).await.is_empty(), "an invalid number never reaches the SMS channel");
}

async fn sms_waits_for_the_end_of_quiet_hours(b: Backend) {
    // 21:00 in New York.
    let t = TestApp::builder(b).live().start("2026-03-03T02:00:00.000Z").spawn().await;
    let id = t.create_referral_id(order("p-night", "routine")).await;
    let pending = t.outbox_of(&id).await;
    assert_eq!(pending[0]["status"], "pending");
    assert_eq!(pending[0]["next_attempt_at"], "2026-03-03T13:00:00.000Z");
    t.advance("10h").await;
    assert_eq!(t.outbox_of(&id).await[0]["status"], "pending");
    t.advance("1h").await;
    assert_eq!(t.outbox_of(&id).await[0]["status"], "accepted");
    assert_eq!(t.twilio.as_ref().unwrap().sent().len(), 1);
}

async fn an_order_without_a_specialty_waits_for_coding(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let mut body = order("p-code", "routine");
    body.as_object_mut().unwrap().remove("specialty");
    let r = t.create_referral(body).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["needs_coding"], true);
    t.advance("8d").await;
    assert!(t.outbox_of(id).await.is_empty());
    assert!(t.tasks_of(id).await.is_empty());
    let r = t.event(id, json!({"type": "order-updated", "specialty": "neurology"})).await;
    assert_eq!(r["needs_coding"], false);
    // Coded on day 8: the patient is reached, and the order's day-7 window has passed, so it
    // escalates at once.
    reached(&t).await;
    t.advance("1m").await;
    assert_eq!(t.outbox_of(id).await.len(), 3);
}

async fn providers_outside_the_pilot_are_tracked_silently(b: Backend) {
    let policy = refloop_domain::Policy {
        pilot_providers: vec![refloop_domain::ProviderId::parse("dr-pilot").unwrap()],
        ..refloop_domain::Policy::default()
    };
    let t = TestApp::builder(b).live().policy(policy).spawn().await;
    let shadow = t.create_referral(order("p-shadow", "routine")).await;
    assert_eq!(shadow["shadow"], true);
    assert_eq!(shadow["tracked"], true);
    let mut pilot = order("p-pilot", "routine");
    pilot["referring_provider"] = json!("dr-pilot");
    let pilot = t.create_referral(pilot).await;
    reached(&t).await;
    t.advance("8d").await;
    assert!(t.tasks_of(shadow["id"].as_str().unwrap()).await.is_empty());
    assert!(t.outbox_of(shadow["id"].as_str().unwrap()).await.is_empty());
    assert_eq!(kinds(&t.tasks_of(pilot["id"].as_str().unwrap()).await), ["schedule-follow-up"]);
}

async fn a_closed_referral_stays_closed(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-close", "routine")).await;
    let r = t.event(&id, json!({"type": "closed-incomplete", "reason": "patient declined"})).await;
    assert_eq!(r["state"], "closed-incomplete");
    assert_eq!(r["close_reason"], "patient declined");
    let report = t.advance("90d").await;
    assert_eq!(report["timers_fired"], 0);
    let again =
        t.post(&format!("/api/v1/referrals/{id}/events"), json!({"type": "closed-incomplete", "reason": "x"})).await;
    assert_eq!(again.status, 409);
    let late = t.event(&id, json!({"type": "scheduled"})).await;
    assert_eq!(late["state"], "closed-incomplete");
    // Reasons come from the documented list; other words are kept as "other: …", and the
    // report groups by the listed reason.
    let other = t.create_referral_id(order("p-other", "routine")).await;
    let r = t.event(&other, json!({"type": "closed-incomplete", "reason": "No longer needed"})).await;
    assert_eq!(r["close_reason"], "other: No longer needed");
    let why = t.get("/api/v1/reports/closure?from=2026-01-01&to=2026-12-31").await.body["leakage_by_reason"].clone();
    assert_eq!(why, json!({"closed: other": 1, "closed: patient declined": 1}));
}

on_both_backends!(
    a_referral_walks_through_all_five_states,
    a_routine_referral_escalates_on_day_7_not_before,
    an_urgent_referral_escalates_on_day_3,
    a_referral_scheduled_on_day_6_gets_no_day_7_escalation,
    a_duplicate_order_within_14_days_is_linked_and_opens_nothing,
    a_self_referral_is_stored_but_never_acted_on,
    a_no_show_returns_to_scheduling_and_escalates_again,
    a_note_before_the_appointment_still_closes_the_loop,
    no_note_after_the_visit_requests_it_then_escalates_to_the_physician,
    a_patient_without_sms_consent_gets_a_phone_task_instead,
    sms_waits_for_the_end_of_quiet_hours,
    an_order_without_a_specialty_waits_for_coding,
    providers_outside_the_pilot_are_tracked_silently,
    a_closed_referral_stays_closed,
);
