//! The worklist: tasks opened by the workflow, claimed and completed by staff.

use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

async fn staff_claim_and_complete_escalation_tasks(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t
        .create_referral_id(json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"}))
        .await;
    let tasks = t.tasks_of(&id).await;
    assert_eq!(tasks.len(), 1, "no consent on file: a call task");
    let task = &tasks[0];
    assert_eq!(task["kind"], "notify-patient");
    assert_eq!(task["status"], "open");
    assert_eq!(task["due_at"], "2026-03-03T15:00:00.000Z");
    let tid = task["id"].as_str().unwrap();

    let open = t.get("/api/v1/tasks?status=open").await;
    assert_eq!(open.body["items"].as_array().unwrap().len(), 1);

    let r = t.post(&format!("/api/v1/tasks/{tid}/claim"), json!({"assignee": "casey"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "claimed");
    assert_eq!(r.body["assignee"], "casey");
    assert_eq!(t.post(&format!("/api/v1/tasks/{tid}/claim"), json!({})).await.status, 409);
    let mine = t.get("/api/v1/tasks?assignee=casey").await;
    assert_eq!(mine.body["items"][0]["id"], tid);

    t.advance("2d").await;
    assert_eq!(t.get("/api/v1/tasks?status=claimed").await.body["items"][0]["overdue"], true);
    let r = t.http.post(format!("{}/api/v1/tasks/{tid}/complete", t.base)).bearer_auth(&t.admin).send().await.unwrap();
    assert_eq!(r.status(), 200, "an empty body is fine");
    let done = t.get(&format!("/api/v1/tasks?status=done&referral_id={id}")).await;
    assert_eq!(done.body["items"][0]["completed_at"], "2026-03-04T15:00:00.000Z");
    assert_eq!(t.post(&format!("/api/v1/tasks/{tid}/complete"), json!({})).await.status, 409);
    assert_eq!(t.post("/api/v1/tasks/tsk_missing/claim", json!({})).await.status, 404);
}

async fn reaching_the_patient_closes_the_call_task(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t
        .create_referral_id(json!({"patient_id": "p1", "referring_provider": "dr-a", "specialty": "cardiology"}))
        .await;
    t.event(&id, json!({"type": "patient-notified", "channel": "phone"})).await;
    let tasks = t.tasks_of(&id).await;
    assert_eq!(tasks[0]["status"], "done");
    assert_eq!(tasks[0]["outcome"], "resolved: referral is patient-notified");
}

/// A referral whose patient gets a call task (SMS off here) and that task's id.
async fn call_task(t: &TestApp, patient: &str) -> (String, String) {
    let id = t
        .create_referral_id(json!({"patient_id": patient, "referring_provider": "dr-a", "specialty": "cardiology",
            "patient": {"name": "Pat Caller", "phone": "+15555550142", "sms_consent": false}}))
        .await;
    let tasks = t.tasks_of(&id).await;
    assert_eq!(tasks[0]["kind"], "notify-patient");
    (id, tasks[0]["id"].as_str().unwrap().to_owned())
}

async fn report(t: &TestApp, task: &str, body: Value) -> refloop_testkit::Reply {
    t.post(&format!("/api/v1/tasks/{task}/complete"), body).await
}

async fn a_call_outcome_is_a_milestone_through_the_one_write_path(b: Backend) {
    let t = TestApp::spawn(b).await;
    let (id, task) = call_task(&t, "p-sched").await;
    let listed = t.get(&format!("/api/v1/tasks?referral_id={id}")).await.body;
    assert_eq!(
        listed["items"][0]["outcomes"],
        json!(["scheduled", "will-book", "declined", "voicemail", "no-answer", "wrong-number"])
    );
    let r = report(&t, &task, json!({"outcome": "scheduled"})).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some("appointment_at")), "a date is needed");
    assert_eq!(t.referral(&id).await["state"], "ordered", "a refused outcome changes nothing");
    let r = report(
        &t,
        &task,
        json!({"outcome": "scheduled", "appointment_at": "2026-03-20T14:00:00.000Z", "note": "booked with Dr Lee"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!((r.body["status"].as_str(), r.body["outcome"].as_str()), (Some("done"), Some("scheduled")));
    let referral = t.referral(&id).await;
    assert_eq!(referral["state"], "scheduled");
    assert_eq!(referral["appointment_at"], "2026-03-20T14:00:00.000Z");
    assert_eq!(referral["task_history"][0]["action"], "completed");
    assert_eq!(referral["task_history"][0]["note"], "booked with Dr Lee");
    // Declined closes the referral with the reason.
    let (id, task) = call_task(&t, "p-decl").await;
    assert_eq!(report(&t, &task, json!({"outcome": "declined", "reason": "cost"})).await.status, 200);
    let r = t.referral(&id).await;
    assert_eq!(
        (r["state"].as_str(), r["close_reason"].as_str()),
        (Some("closed-incomplete"), Some("patient declined: cost"))
    );
    assert_eq!(report(&t, &task, json!({"outcome": "declined", "reason": "x"})).await.status, 409, "done is done");
    let bad = report(&t, &call_task(&t, "p-bad").await.1, json!({"outcome": "attended"})).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (422, Some("outcome")), "not an outcome of a call");
}

async fn no_answer_brings_the_call_back_the_next_business_morning(b: Backend) {
    // Friday 2026-03-06 15:00 in New York.
    let policy = refloop_domain::Policy {
        time_zone: jiff::tz::TimeZone::get("America/New_York").unwrap(),
        ..refloop_domain::Policy::default()
    };
    let t = TestApp::builder(b).policy(policy).start("2026-03-06T20:00:00.000Z").spawn().await;
    let (id, task) = call_task(&t, "p-retry").await;
    t.post(&format!("/api/v1/tasks/{task}/claim"), json!({})).await;
    let r = report(&t, &task, json!({"outcome": "no-answer"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["status"].as_str(), r.body["attempts"].as_u64(), r.body["due_at"].as_str(), &r.body["assignee"]),
        (Some("open"), Some(1), Some("2026-03-09T13:00:00.000Z"), &Value::Null),
        "back in the pool on Monday 09:00"
    );
    let r = report(&t, &task, json!({"outcome": "voicemail"})).await;
    assert_eq!(r.body["attempts"], 2);
    assert_eq!(t.referral(&id).await["state"], "ordered", "a voicemail reaches no one");
    let history: Vec<String> = t.referral(&id).await["task_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}:{}", h["action"].as_str().unwrap(), h["outcome"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(history, ["claimed:", "retry:no-answer", "retry:voicemail"]);
}

async fn a_wrong_number_opens_fix_contact_and_a_fixed_number_texts_once(b: Backend) {
    let t = TestApp::builder(b).live().spawn().await;
    // A wrong number on a call: a fix-contact task.
    let (id, call) = call_task(&t, "p-wrong").await;
    assert_eq!(report(&t, &call, json!({"outcome": "wrong-number"})).await.status, 200);
    let kinds: Vec<Value> =
        t.tasks_of(&id).await.iter().filter(|x| x["status"] == "open").map(|x| x["kind"].clone()).collect();
    assert_eq!(kinds, [json!("fix-contact")]);
    assert!(crate::event_types(&t.referral(&id).await).contains(&"contact-failed".to_owned()));
    // A number that cannot be texted: fixing it sends stage 1 again, once.
    let id = t
        .create_referral_id(json!({"patient_id": "p-fix", "referring_provider": "dr-a", "specialty": "cardiology",
            "patient": {"phone": "555-0123", "sms_consent": true}}))
        .await;
    let fix = t.tasks_of(&id).await[0].clone();
    assert_eq!(fix["kind"], "fix-contact");
    assert_eq!(fix["outcomes"], json!(["phone-fixed", "done"]));
    let fix = fix["id"].as_str().unwrap().to_owned();
    let r = report(&t, &fix, json!({"outcome": "phone-fixed", "phone": "555-0199"})).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some("phone")));
    assert!(t.outbox_of(&id).await.is_empty());
    let r = report(&t, &fix, json!({"outcome": "phone-fixed", "phone": "+1 555 555 0177"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.advance("1m").await;
    let sent = t.twilio.as_ref().unwrap().sent();
    assert_eq!(sent.iter().filter(|m| m.to == "+15555550177").count(), 1, "exactly one text to the fixed number");
    assert_eq!(t.referral(&id).await["patient"]["phone"], "+15555550177");
    t.advance("2d").await;
    assert_eq!(t.twilio.as_ref().unwrap().sent().len(), sent.len(), "never again");
    assert!(t.tasks_of(&id).await.iter().all(|x| x["kind"] != "fix-contact" || x["status"] == "done"));
}

async fn claim_next_takes_the_longest_due_and_reassigning_needs_a_person(b: Backend) {
    let t = TestApp::spawn(b).await;
    let (_, first) = call_task(&t, "p-a").await;
    t.advance("1h").await;
    let (_, second) = call_task(&t, "p-b").await;
    let r = t.post("/api/v1/tasks/claim-next", json!({})).await;
    assert_eq!((r.status, r.body["id"].as_str()), (200, Some(first.as_str())), "{:?}", r.body);
    assert_eq!(t.post("/api/v1/tasks/claim-next", json!({})).await.body["id"], second.as_str());
    assert_eq!(t.post("/api/v1/tasks/claim-next", json!({})).await.status, 404, "nothing open");
    t.app.save_user("dana", refloop_app::Role::Coordinator, "a long enough secret").await.unwrap();
    let r = t.post(&format!("/api/v1/tasks/{first}/claim"), json!({"assignee": "x"})).await;
    assert_eq!(r.status, 409, "claimed already");
    let moved = t.app.reassign_task(&refloop_app::Actor::system("t"), &first, "dana").await.unwrap();
    assert_eq!(moved.assignee.as_deref(), Some("dana"));
    t.app.set_user_disabled("dana", true).await.unwrap();
    assert!(t.app.reassign_task(&refloop_app::Actor::system("t"), &second, "dana").await.is_err(), "disabled");
    assert!(t.app.reassign_task(&refloop_app::Actor::system("t"), &second, "ghost").await.is_err(), "unknown");
}

on_both_backends!(
    staff_claim_and_complete_escalation_tasks,
    reaching_the_patient_closes_the_call_task,
    a_call_outcome_is_a_milestone_through_the_one_write_path,
    no_answer_brings_the_call_back_the_next_business_morning,
    a_wrong_number_opens_fix_contact_and_a_fixed_number_texts_once,
    claim_next_takes_the_longest_due_and_reassigning_needs_a_person,
);
