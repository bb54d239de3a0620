//! Stage 4 — the consult note: requested from the specialist by fax (number from the
//! directory) on day 30 after the visit, escalated to the physician on day 60; a stale
//! directory entry is not used and asks for verification.

use refloop_testkit::{Backend, FakeFax, FakeSmtp, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    the_note_is_requested_by_fax_then_escalated,
    a_stale_directory_entry_is_verified_first,
    direct_is_preferred_when_the_directory_has_an_address,
    a_specialist_who_cannot_receive_electronically_is_an_interoperability_gap,
    an_urgent_referral_requests_its_note_on_day_14_and_escalates_on_day_30,
    a_fax_whose_answer_was_lost_is_looked_up_and_not_sent_again,
    a_fax_refused_with_a_server_error_is_looked_up_then_sent_once,
    an_unanswered_note_request_climbs_the_ladder_fhir_direct_fax_then_a_person,
    a_note_stops_the_ladder,
);

fn order(patient: &str, specialist: &str) -> Value {
    json!({"patient_id": patient, "referring_provider": "dr-adams", "specialty": "cardiology", "urgency": "routine",
        "network": "out-of-network", "specialist": specialist,
        "patient": {"name": "Pat Example", "phone": "+15555550140", "sms_consent": false}})
}

fn kinds(tasks: &[Value]) -> Vec<String> {
    tasks.iter().map(|t| t["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn seen(t: &TestApp, id: &str) {
    t.event(id, json!({"type": "scheduled", "appointment_at": "2026-03-03T15:00:00Z"})).await;
    t.event(id, json!({"type": "attended", "at": "2026-03-03T15:30:00Z"})).await;
}

async fn the_note_is_requested_by_fax_then_escalated(b: Backend) {
    let fax = FakeFax::start().await;
    let t = TestApp::builder(b).fax(&fax).spawn().await;
    t.save_specialist(
        "sp-1",
        json!({"name": "Dr Heart", "specialties": ["cardiology"], "network": "out-of-network",
            "fax": "+15555550177", "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let id = t.create_referral_id(order("p-note", "Dr Heart")).await;
    seen(&t, &id).await;
    t.advance("29d").await;
    assert!(fax.sent().is_empty(), "not before day 30");
    t.advance("3d").await;
    let sent = fax.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "+15555550177");
    for part in [id.as_str(), "Pat Example", "p-note", "2026-03-02", "2026-03-03", "North Clinic"] {
        assert!(sent[0].html.contains(part), "the letter names {part}: {}", sent[0].html);
    }
    assert!(!kinds(&t.tasks_of(&id).await).contains(&"physician-escalation".to_owned()));
    t.advance("30d").await;
    assert!(kinds(&t.tasks_of(&id).await).contains(&"physician-escalation".to_owned()), "day 60");
    assert_eq!(fax.sent().len(), 1, "one request");
}

async fn a_stale_directory_entry_is_verified_first(b: Backend) {
    let fax = FakeFax::start().await;
    let t = TestApp::builder(b).fax(&fax).spawn().await;
    let put = |id: &str, verified: &str| {
        t.http
            .put(format!("{}/api/v1/specialists/{id}", t.base))
            .bearer_auth(&t.admin)
            .json(&json!({"name": "Dr Old", "specialties": ["cardiology"], "fax": "+15555550178", "last_verified": verified}))
            .send()
    };
    assert_eq!(put("sp-old", "2025-10-01T00:00:00Z").await.unwrap().status().as_u16(), 200);
    let stale = t.get("/api/v1/specialists?stale=true").await.body;
    assert_eq!((stale["items"][0]["id"].as_str(), stale["items"][0]["stale"].as_bool()), (Some("sp-old"), Some(true)));
    let bad = t
        .http
        .put(format!("{}/api/v1/specialists/sp-bad", t.base))
        .bearer_auth(&t.admin)
        .json(&json!({"name": "X", "specialties": ["cardiology"], "fax": "555-0100"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);

    let id = t.create_referral_id(order("p-stale", "Dr Old")).await;
    seen(&t, &id).await;
    t.advance("32d").await;
    assert!(fax.sent().is_empty(), "a stale number is not used");
    let outbox = t.outbox_of(&id).await;
    let request = outbox.iter().find(|m| m["channel"] == "note-request").unwrap();
    assert!(request["last_error"].as_str().unwrap().starts_with("verify specialist sp-old"), "{request}");
    let tasks = t.tasks_of(&id).await;
    let verify = tasks.iter().find(|t| t["kind"] == "verify-specialist").unwrap();

    // Staff confirm the number, update the directory and complete the task: the request goes out.
    assert_eq!(put("sp-old", "2026-04-01T00:00:00Z").await.unwrap().status().as_u16(), 200);
    let done = t.post(&format!("/api/v1/tasks/{}/complete", verify["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(done.status, 200, "{}", done.body);
    t.advance("1m").await;
    let sent = fax.sent();
    assert_eq!(sent.len(), 1, "sent once after verification");
    assert_eq!(sent[0].to, "+15555550178");
    assert!(sent[0].html.contains(id.as_str()));
    let outbox = t.outbox_of(&id).await;
    let rounds: Vec<_> = outbox.iter().filter(|m| m["channel"] == "note-request").map(|m| &m["status"]).collect();
    assert_eq!(rounds.len(), 2, "the failed request and the new one: {outbox:?}");
    t.advance("1d").await;
    assert_eq!(fax.sent().len(), 1, "never twice");
}

async fn direct_is_preferred_when_the_directory_has_an_address(b: Backend) {
    let fax = FakeFax::start().await;
    let smtp = FakeSmtp::start().await;
    let t = TestApp::builder(b).fax(&fax).direct(&smtp).spawn().await;
    t.save_specialist(
        "sp-d",
        json!({"name": "Dr Direct", "specialties": ["cardiology"], "fax": "+15555550179",
            "direct_address": "dr.direct@direct.heart-clinic.example", "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let id = t.create_referral_id(order("p-direct", "Dr Direct")).await;
    seen(&t, &id).await;
    t.advance("32d").await;
    assert!(fax.sent().is_empty(), "Direct first");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["dr.direct@direct.heart-clinic.example"]);
    assert_eq!(mails[0].from, "referrals@direct.north-clinic.example");
    assert!(
        mails[0].data.contains("Subject: Request for consult note") && mails[0].data.contains(&id),
        "{}",
        mails[0].data
    );
    let outbox = t.outbox_of(&id).await;
    let item = outbox.iter().find(|m| m["channel"] == "note-request").unwrap();
    assert_eq!(item["status"], "sent");
    // A resend (after an answer that never came) is the same message to the recipient.
    // It names the referral too, so the specialist's reply (In-Reply-To) can be matched.
    let message_id = format!("Message-ID: <{}.{id}@direct.north-clinic.example>", item["id"].as_str().unwrap());
    assert!(mails[0].data.contains(&message_id), "{}", mails[0].data);
}

/// A fax directory entry and a referral seen on day 1, its note request due on day 31.
async fn fax_request(t: &TestApp, patient: &str) -> String {
    t.save_specialist(
        "sp-f",
        json!({"name": "Dr Fax", "specialties": ["cardiology"], "fax": "+15555550181",
            "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let id = t.create_referral_id(order(patient, "Dr Fax")).await;
    seen(t, &id).await;
    id
}

fn note_request(outbox: &[Value]) -> Value {
    outbox.iter().find(|m| m["channel"] == "note-request").cloned().expect("a note request")
}

async fn a_fax_whose_answer_was_lost_is_looked_up_and_not_sent_again(b: Backend) {
    let fax = FakeFax::start().await;
    let t = TestApp::builder(b).fax(&fax).spawn().await;
    let id = fax_request(&t, "p-lost").await;
    fax.lose_next_answers(1);
    // The clock stops at each due instant: the 500 leaves the item unconfirmed, and after its
    // backoff the provider is asked before anything is sent again.
    t.advance("32d").await;
    let item = note_request(&t.outbox_of(&id).await);
    assert!(fax.lookups() >= 1, "the provider was asked");
    assert_eq!(fax.sent().len(), 1, "not faxed twice");
    assert_eq!(fax.sent()[0].tags.get("refloop_message").map(String::as_str), item["id"].as_str(), "tagged");
    assert_eq!((item["status"].as_str(), item["attempts"].as_u64()), (Some("sent"), Some(2)), "{item}");
    assert!(!kinds(&t.tasks_of(&id).await).contains(&"confirm-delivery".to_owned()));
}

async fn a_fax_refused_with_a_server_error_is_looked_up_then_sent_once(b: Backend) {
    let fax = FakeFax::start().await;
    let t = TestApp::builder(b).fax(&fax).spawn().await;
    let id = fax_request(&t, "p-refused").await;
    fax.refuse_next(1);
    t.advance("32d").await;
    assert!(fax.lookups() >= 1, "the provider was asked first");
    assert_eq!(fax.sent().len(), 1, "then faxed once");
    let item = note_request(&t.outbox_of(&id).await);
    assert_eq!((item["status"].as_str(), item["attempts"].as_u64()), (Some("sent"), Some(2)), "{item}");
}

async fn a_specialist_who_cannot_receive_electronically_is_an_interoperability_gap(b: Backend) {
    let fax = FakeFax::start().await;
    let t = TestApp::builder(b).fax(&fax).spawn().await;
    t.save_specialist(
        "sp-paper",
        json!({"name": "Dr Paper", "specialties": ["cardiology"], "phone": "+15555550180",
            "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let id = t.create_referral_id(order("p-paper", "Dr Paper")).await;
    seen(&t, &id).await;
    t.advance("32d").await;
    assert!(fax.sent().is_empty());
    let r = t.referral(&id).await;
    let failed = r["events"].as_array().unwrap().iter().find(|e| e["type"] == "delivery-failed").unwrap();
    assert!(failed["detail"]["error"].as_str().unwrap().starts_with("interoperability gap"), "{failed}");
    let tasks = t.tasks_of(&id).await;
    assert!(kinds(&tasks).contains(&"records-request".to_owned()), "{tasks:?} {}", r["events"]);
}

async fn an_urgent_referral_requests_its_note_on_day_14_and_escalates_on_day_30(b: Backend) {
    let fax = FakeFax::start().await;
    let t = TestApp::builder(b).fax(&fax).spawn().await;
    t.save_specialist(
        "sp-u",
        json!({"name": "Dr Urgent", "specialties": ["cardiology"], "fax": "+15555550181",
            "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let mut urgent = order("p-urgent", "Dr Urgent");
    urgent["urgency"] = json!("urgent");
    let id = t.create_referral_id(urgent).await;
    seen(&t, &id).await;
    t.advance("14d").await;
    assert!(fax.sent().is_empty(), "not before day 14 after the visit");
    t.advance("2d").await;
    assert_eq!(fax.sent().len(), 1, "urgent: requested on day 14");
    assert!(!kinds(&t.tasks_of(&id).await).contains(&"physician-escalation".to_owned()));
    t.advance("16d").await;
    assert!(kinds(&t.tasks_of(&id).await).contains(&"physician-escalation".to_owned()), "urgent: day 30");
}

/// The note-request ladder: the specialist's FHIR endpoint first (a CDex-style Task), then —
/// each time a request goes unanswered for `[workflow] note_ladder_wait` (7 days) — Direct,
/// fax, and at last a person (a records-request task); each rung is on the timeline; a note
/// that comes stops the climb.
async fn an_unanswered_note_request_climbs_the_ladder_fhir_direct_fax_then_a_person(b: Backend) {
    let fax = FakeFax::start().await;
    let smtp = FakeSmtp::start().await;
    let endpoint = refloop_testkit::FakeEhr::start_open().await;
    let t = TestApp::builder(b).fax(&fax).direct(&smtp).spawn().await;
    t.save_specialist(
        "sp-l",
        json!({"name": "Dr Ladder", "specialties": ["cardiology"], "fax": "+15555550183",
            "direct_address": "dr.ladder@direct.heart-clinic.example", "fhir_base": endpoint.base,
            "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let id = t.create_referral_id(order("p-ladder", "Dr Ladder")).await;
    seen(&t, &id).await;
    let asked = || (endpoint.tasks().len(), smtp.mails().len(), fax.sent().len());
    t.advance("32d").await;
    assert_eq!(asked(), (1, 0, 0), "the FHIR endpoint first");
    let task = &endpoint.tasks()[0];
    assert_eq!(task["code"]["coding"][0]["code"], "data-request-code");
    assert_eq!(task["input"][0]["valueCodeableConcept"]["coding"][0]["code"], "11488-4");
    assert_eq!(task["basedOn"][0]["identifier"]["value"], id.as_str());
    let mut checked = task.clone();
    checked.as_object_mut().unwrap().remove("id");
    refloop_testkit::peers::validate_fhir(&[checked]);
    t.advance("6d").await;
    assert_eq!(asked(), (1, 0, 0), "not before the wait");
    t.advance("2d").await;
    assert_eq!(asked(), (1, 1, 0), "unanswered: by Direct");
    t.advance("7d").await;
    assert_eq!(asked(), (1, 1, 1), "unanswered again: by fax");
    assert!(!kinds(&t.tasks_of(&id).await).contains(&"records-request".to_owned()));
    t.advance("7d").await;
    assert_eq!(asked(), (1, 1, 1), "no way left");
    let tasks = t.tasks_of(&id).await;
    assert!(kinds(&tasks).contains(&"records-request".to_owned()), "a person asks: {tasks:?}");
    let r = t.referral(&id).await;
    let rungs: Vec<u64> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "note-request-unanswered")
        .map(|e| e["detail"]["rung"].as_u64().unwrap())
        .collect();
    assert_eq!(rungs, [2, 3, 4], "each rung on the timeline");
    t.advance("30d").await;
    assert_eq!(asked(), (1, 1, 1), "the ladder ends with the person");
}

/// A note that comes stops the climb: here the specialist answers our FHIR Task by writing a
/// DocumentReference to refloop's FHIR endpoint, naming our referral as the Task did.
async fn a_note_stops_the_ladder(b: Backend) {
    let fax = FakeFax::start().await;
    let smtp = FakeSmtp::start().await;
    let endpoint = refloop_testkit::FakeEhr::start_open().await;
    let t = TestApp::builder(b).fax(&fax).direct(&smtp).spawn().await;
    t.save_specialist(
        "sp-s",
        json!({"name": "Dr Stop", "specialties": ["cardiology"], "fax": "+15555550184",
            "direct_address": "dr.stop@direct.heart-clinic.example", "fhir_base": endpoint.base,
            "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let id = t.create_referral_id(order("p-stop", "Dr Stop")).await;
    seen(&t, &id).await;
    t.advance("32d").await;
    let task = endpoint.tasks().remove(0);
    let answer = json!({"resourceType": "DocumentReference", "status": "current", "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": "Patient/p-stop"}, "date": "2026-04-03T15:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain", "data": "Q29uc3VsdCBub3Rl"}}],
        "context": {"related": [task["basedOn"][0].clone()]}});
    let r = t.fhir("POST", "/fhir/DocumentReference", Some(answer), &[]).await;
    assert!(r.status < 300, "{:?}", r.body);
    assert_eq!(t.referral(&id).await["state"], "note-received");
    t.advance("30d").await;
    assert_eq!((smtp.mails().len(), fax.sent().len()), (0, 0), "answered: no Direct, no fax");
}
