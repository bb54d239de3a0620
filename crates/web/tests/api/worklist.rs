//! The worklist: tasks opened by the workflow, claimed and completed by staff.

use refloop_testkit::{Backend, TestApp};
use serde_json::json;

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
    assert_eq!(task["due_at"], "2026-03-03T15:00:00Z");
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
    assert_eq!(done.body["items"][0]["completed_at"], "2026-03-04T15:00:00Z");
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

on_both_backends!(staff_claim_and_complete_escalation_tasks, reaching_the_patient_closes_the_call_task);
