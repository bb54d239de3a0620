//! A milestone means it happened: a channel that only logs (`[sms] mode = "log"`, chat,
//! fax or Direct left on "log", no EHR write-back) never delivers. Nothing it "sends" moves a
//! referral to `patient-notified`; stage 1 takes the path of a patient without SMS consent,
//! and a message that reached no one says so and opens the task a failure would.

use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    with_sms_off_a_new_referral_gets_a_phone_task_and_is_never_notified,
    with_the_ehr_off_no_portal_message_stands_in_for_the_patient,
    with_sms_off_the_attendance_question_is_a_phone_call,
    a_chat_escalation_on_an_off_channel_is_not_sent_and_the_front_desk_task_stands,
    a_note_request_on_an_off_channel_is_not_sent_and_a_person_takes_over,
    the_channel_modes_and_their_last_activity_are_shown,
);

fn order(patient: &str) -> Value {
    json!({
        "patient_id": patient,
        "patient": {"name": "Pat Example", "phone": "+15555550123", "sms_consent": true, "time_zone": "America/New_York"},
        "referring_provider": "dr-adams",
        "specialty": "cardiology",
        "network": "out-of-network",
    })
}

fn kinds(tasks: &[Value]) -> Vec<String> {
    tasks.iter().map(|t| t["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

fn event_types(referral: &Value) -> Vec<String> {
    referral["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

async fn with_sms_off_a_new_referral_gets_a_phone_task_and_is_never_notified(b: Backend) {
    // TestApp's channels are all on the log unless made live: SMS is off.
    let t = TestApp::spawn(b).await;
    let r = t.create_referral(order("p-off")).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(kinds(&t.tasks_of(id).await), ["notify-patient"], "the same path as no SMS consent");
    assert!(t.outbox_of(id).await.is_empty(), "nothing is queued for a channel that only logs");
    t.advance("3d").await;
    let r = t.referral(id).await;
    assert_eq!(r["state"], "ordered");
    assert_eq!(r["milestones"].get("patient-notified"), None);
    let types = event_types(&r);
    assert!(!types.iter().any(|e| e == "message-delivered" || e == "patient-notified"), "{types:?}");
    // The same order with SMS live is texted, and only the carrier's report reaches the patient.
    let live = TestApp::builder(b).live().spawn().await;
    let id = live.create_referral_id(order("p-live")).await;
    assert!(live.tasks_of(&id).await.is_empty());
    live.advance("1m").await;
    assert_eq!(live.referral(&id).await["state"], "ordered");
    assert_eq!(live.deliver_sms().await, 1);
    assert_eq!(live.referral(&id).await["state"], "patient-notified");
}

async fn with_the_ehr_off_no_portal_message_stands_in_for_the_patient(b: Backend) {
    let policy = refloop_domain::Policy { portal_messages: true, ..refloop_domain::Policy::default() };
    let t = TestApp::builder(b).policy(policy).spawn().await;
    let mut body = order("p-portal");
    body["patient"]["sms_consent"] = json!(false);
    let id = t.create_referral_id(body).await;
    assert_eq!(kinds(&t.tasks_of(&id).await), ["notify-patient"]);
    assert!(t.outbox_of(&id).await.is_empty(), "no portal message without EHR write-back");
    t.advance("2d").await;
    assert_eq!(t.referral(&id).await["state"], "ordered");
}

async fn with_sms_off_the_attendance_question_is_a_phone_call(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t.create_referral_id(order("p-attend")).await;
    t.event(&id, json!({"type": "scheduled", "appointment_at": "2026-03-05T15:00:00.000Z"})).await;
    t.advance("4d").await;
    let tasks = kinds(&t.tasks_of(&id).await);
    assert!(tasks.contains(&"attendance-call".to_owned()), "{tasks:?}");
    assert!(t.outbox_of(&id).await.iter().all(|m| m["channel"] != "sms"));
    assert_eq!(t.referral(&id).await["state"], "scheduled", "no one answered a question never asked");
}

async fn a_chat_escalation_on_an_off_channel_is_not_sent_and_the_front_desk_task_stands(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t.create_referral_id(order("p-chat")).await;
    t.advance("7d").await;
    let outbox = t.outbox_of(&id).await;
    let chat = outbox.iter().find(|m| m["channel"] == "chat").expect("a chat escalation");
    assert_eq!(chat["status"], "not-sent");
    assert_eq!(chat["last_error"], "not sent (channel off)");
    assert!(chat["sent_at"].is_null());
    let ehr = outbox.iter().find(|m| m["channel"] == "ehr-task").expect("an EHR task");
    assert_eq!(ehr["status"], "not-sent");
    let r = t.referral(&id).await;
    let not_sent: Vec<&Value> =
        r["events"].as_array().unwrap().iter().filter(|e| e["type"] == "message-not-sent").collect();
    assert_eq!(not_sent.len(), 2, "{not_sent:?}");
    assert!(!event_types(&r).contains(&"message-delivered".to_owned()));
    assert_eq!(kinds(&t.tasks_of(&id).await), ["notify-patient", "schedule-follow-up"]);
    // Live chat gets the same escalation through the fake's webhook.
    let live = TestApp::builder(b).live().spawn().await;
    let id = live.create_referral_id(order("p-chat-live")).await;
    live.advance("1m").await;
    live.deliver_sms().await;
    live.advance("7d").await;
    assert_eq!(live.chat.as_ref().unwrap().texts().len(), 1);
    let chat = live.outbox_of(&id).await.into_iter().find(|m| m["channel"] == "chat").unwrap();
    assert_eq!(chat["status"], "sent");
}

async fn a_note_request_on_an_off_channel_is_not_sent_and_a_person_takes_over(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t.create_referral_id(order("p-note")).await;
    t.event(&id, json!({"type": "attended", "at": "2026-03-02T15:00:00.000Z"})).await;
    t.advance("30d").await;
    let request = t.outbox_of(&id).await.into_iter().find(|m| m["channel"] == "note-request").expect("a request");
    assert_eq!(request["status"], "not-sent");
    let tasks = kinds(&t.tasks_of(&id).await);
    assert!(tasks.contains(&"delivery-failed".to_owned()), "a person requests the note by hand: {tasks:?}");
    assert!(event_types(&t.referral(&id).await).contains(&"message-not-sent".to_owned()));
}

async fn the_channel_modes_and_their_last_activity_are_shown(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    let id = t.create_referral_id(order("p-modes")).await;
    t.advance("1m").await;
    t.deliver_sms().await;
    t.advance("7d").await;
    let r = t.get("/api/v1/channels").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let by_name =
        |name: &str| r.body["items"].as_array().unwrap().iter().find(|c| c["channel"] == name).cloned().expect(name);
    let sms = by_name("sms");
    assert_eq!(sms["mode"], "live");
    assert_eq!(sms["last_success"], "2026-03-02T15:01:00.000Z");
    assert!(sms["last_failure"].is_null());
    assert_eq!(by_name("chat")["mode"], "live");
    assert_eq!(by_name("note-request")["mode"], "off");
    assert!(by_name("note-request")["last_success"].is_null());
    let ehr = by_name("ehr-task");
    assert_eq!(ehr["mode"], "off");
    assert_eq!((sms["needed"].as_bool(), ehr["needed"].as_bool()), (Some(true), Some(false)));
    assert!(by_name("note-request")["needed"].as_bool().unwrap(), "stage 4 falls to requests by hand");
    assert_eq!(t.referral(&id).await["state"], "patient-notified");
}
