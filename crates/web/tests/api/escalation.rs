//! Stage 2 — no appointment after the scheduling window: a worklist task, a chat message
//! with ids only, and a FHIR Task written back to the EHR; through the production adapters
//! against fakes on loopback.

use refloop_testkit::{Backend, FakeChat, FakeEhr, TestApp};
use serde_json::json;

on_both_backends!(
    no_appointment_after_the_window_escalates_to_the_front_desk_chat_and_ehr,
    a_patient_without_sms_consent_gets_a_portal_message,
    a_five_business_day_window_skips_the_weekend_and_a_monday_holiday,
);

async fn no_appointment_after_the_window_escalates_to_the_front_desk_chat_and_ehr(b: Backend) {
    let chat = FakeChat::start().await;
    let ehr = FakeEhr::start().await;
    let t = TestApp::builder(b).chat(&chat).ehr_write_back(&ehr).spawn().await;
    let sr = |id: &str, priority: &str| {
        json!({"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order", "priority": priority,
            "subject": {"reference": format!("Patient/p-{id}")}, "requester": {"reference": "Practitioner/dr1"},
            "performerType": {"text": "cardiology"}, "authoredOn": "2026-03-02T15:00:00Z"})
    };
    let routine = t.fhir("PUT", "/fhir/ServiceRequest/sr-r", Some(sr("sr-r", "routine")), &[]).await;
    let urgent = t.fhir("PUT", "/fhir/ServiceRequest/sr-u", Some(sr("sr-u", "urgent")), &[]).await;
    let id_of = |r: &refloop_testkit::Reply| {
        r.body["_location"].as_str().unwrap()["ServiceRequest/".len()..].replacen('-', "_", 1)
    };
    let (routine, urgent) = (id_of(&routine), id_of(&urgent));

    t.advance("2d").await;
    assert!(chat.texts().is_empty() && ehr.tasks().is_empty(), "nothing before the window");
    t.advance("1d").await;
    let texts = chat.texts();
    assert_eq!(texts.len(), 1, "the urgent referral on day 3: {texts:?}");
    assert!(texts[0].contains(&urgent) && texts[0].contains("https://refloop.example/referrals/"), "{}", texts[0]);
    assert!(!texts[0].contains("p-sr"), "ids of referrals only, no patient: {}", texts[0]);
    let tasks = ehr.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["basedOn"][0]["reference"], "ServiceRequest/sr-u");
    assert_eq!((tasks[0]["status"].as_str(), tasks[0]["priority"].as_str()), (Some("requested"), Some("urgent")));
    let kinds: Vec<String> = t.tasks_of(&urgent).await.iter().map(|k| k["kind"].as_str().unwrap().to_owned()).collect();
    assert!(kinds.contains(&"schedule-follow-up".to_owned()), "{kinds:?}");

    t.advance("4d").await;
    assert_eq!(chat.texts().len(), 2, "the routine referral on day 7");
    assert!(chat.texts()[1].contains(&routine));
    assert_eq!(ehr.tasks().len(), 2);
    assert_eq!(ehr.tasks()[1]["basedOn"][0]["reference"], "ServiceRequest/sr-r");
    let sent: Vec<String> = t
        .outbox_of(&routine)
        .await
        .iter()
        .map(|m| format!("{}:{}", m["channel"].as_str().unwrap(), m["status"].as_str().unwrap()))
        .collect();
    assert!(sent.contains(&"chat:sent".to_owned()) && sent.contains(&"ehr-task:sent".to_owned()), "{sent:?}");
}

async fn a_patient_without_sms_consent_gets_a_portal_message(b: Backend) {
    let ehr = FakeEhr::start().await;
    let policy = refloop_domain::Policy { portal_messages: true, ..refloop_domain::Policy::default() };
    let t = TestApp::builder(b).ehr_write_back(&ehr).policy(policy).spawn().await;
    let id = t
        .create_referral_id(
            json!({"patient_id": "p-portal", "referring_provider": "dr-adams", "specialty": "dermatology",
            "patient": {"name": "Pat Example", "phone": "+15555550150", "sms_consent": false}}),
        )
        .await;
    t.advance("1m").await;
    let sent = ehr.communications();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["subject"]["reference"], "Patient/p-portal");
    let text = sent[0]["payload"][0]["contentString"].as_str().unwrap();
    assert!(text.contains("referred you to dermatology"), "{text}");
    let r = t.referral(&id).await;
    assert_eq!(r["state"], "patient-notified", "the portal reached the patient");
    let kinds: Vec<String> = t.tasks_of(&id).await.iter().map(|k| k["kind"].as_str().unwrap().to_owned()).collect();
    assert!(!kinds.contains(&"notify-patient".to_owned()), "no phone call needed: {kinds:?}");
}

/// A routine referral ordered on Thursday 8 October 2026 at 18:00 in New York, before Columbus
/// Day (Monday 12 October), with `scheduling = "5bd"`: the escalation comes on Friday 16 October
/// (Fri 9, Tue 13, Wed 14, Thu 15, Fri 16), and every task falls due inside business hours.
async fn a_five_business_day_window_skips_the_weekend_and_a_monday_holiday(b: Backend) {
    use refloop_domain::{Policy, StageWindows, Window, WindowSet};
    let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let routine = StageWindows { scheduling: Window::BusinessDays(5), ..StageWindows::routine() };
    let policy =
        Policy { time_zone: ny, windows: WindowSet { routine, urgent: StageWindows::urgent() }, ..Policy::default() };
    let t = TestApp::builder(b).policy(policy).start("2026-10-08T22:00:00Z").spawn().await;
    let id = t
        .create_referral_id(json!({"patient_id": "p-bd", "referring_provider": "dr-adams", "specialty": "cardiology",
            "patient": {"name": "Pat Example", "phone": "+15555550151", "sms_consent": false}}))
        .await;
    let due = |tasks: &[serde_json::Value], kind: &str| {
        tasks.iter().find(|k| k["kind"] == kind).map(|k| k["due_at"].as_str().unwrap().to_owned())
    };
    // The call to tell the patient is meant for Friday 18:00, after closing; Monday is a
    // holiday, so it is due on Tuesday at 08:00 New York (12:00Z).
    let tasks = t.tasks_of(&id).await;
    assert_eq!(due(&tasks, "notify-patient").as_deref(), Some("2026-10-13T12:00:00.000Z"), "{tasks:?}");
    t.event(&id, json!({"type": "patient-notified", "channel": "phone"})).await;

    // Seven calendar days on (Thursday 15 October) a "7d" window would have escalated; "5bd" has not.
    t.advance("7d").await;
    assert_eq!(due(&t.tasks_of(&id).await, "schedule-follow-up"), None, "not before the fifth business day");
    let r = t.referral(&id).await;
    assert_eq!(r["stage_due_at"], "2026-10-16T22:00:00.000Z", "{r}");
    t.advance("1d").await;
    // Friday 16 October 18:00: escalated; the front desk's task is meant for a day later
    // (Saturday) and so is due at Monday 19 October's opening.
    let tasks = t.tasks_of(&id).await;
    assert_eq!(due(&tasks, "schedule-follow-up").as_deref(), Some("2026-10-19T12:00:00.000Z"), "{tasks:?}");
}
