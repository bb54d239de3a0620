//! Stage 2 — no appointment after the scheduling window: a worklist task, a chat message
//! with ids only, and a FHIR Task written back to the EHR; through the production adapters
//! against fakes on loopback.

use refloop_testkit::{Backend, FakeChat, FakeEhr, TestApp};
use serde_json::json;

on_both_backends!(
    no_appointment_after_the_window_escalates_to_the_front_desk_chat_and_ehr,
    a_patient_without_sms_consent_gets_a_portal_message,
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
