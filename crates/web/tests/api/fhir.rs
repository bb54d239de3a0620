//! FHIR R4 over HTTP: a referral's whole life from FHIR resources, Bundles that are all or
//! nothing, resends, refusals as OperationOutcomes, and the read-back.

use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    a_referral_closes_its_loop_from_fhir_resources,
    a_revoked_service_request_cancels_the_referral,
    a_transaction_bundle_is_all_or_nothing,
    a_refused_transaction_entry_names_nothing_that_was_not_kept,
    a_resend_is_answered_without_being_applied_twice,
    bad_fhir_gets_an_operation_outcome_and_changes_nothing,
    a_resource_for_an_unknown_referral_waits_as_a_dead_letter,
    what_fhir_serves_validates_as_r4,
    admins_search_the_audit_log_as_audit_events,
);

fn service_request(id: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "103696004"}]}],
        "identifier": [{"system": "urn:oid:1.2.3", "value": format!("PLAC-{id}")}],
        "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Practitioner/dr1"},
        "performerType": {"coding": [{"code": "cardiology"}]}, "authoredOn": "2026-03-02T14:00:00.000Z"
    })
}

fn appointment(id: &str, sr: &str, status: &str, start: &str) -> Value {
    json!({"resourceType": "Appointment", "id": id, "status": status, "start": start,
        "basedOn": [{"reference": format!("ServiceRequest/{sr}")}],
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]})
}

async fn referrals(t: &TestApp) -> Vec<Value> {
    t.get("/api/v1/referrals").await.body["items"].as_array().cloned().unwrap_or_default()
}

async fn only_referral(t: &TestApp) -> Value {
    let all = referrals(t).await;
    assert_eq!(all.len(), 1, "{all:?}");
    t.referral(all[0]["id"].as_str().unwrap()).await
}

async fn a_referral_closes_its_loop_from_fhir_resources(b: Backend) {
    let t = TestApp::spawn(b).await;
    let r = t.fhir("PUT", "/fhir/ServiceRequest/sr-1", Some(service_request("sr-1")), &[]).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    let location = r.body["_location"].as_str().unwrap().to_owned();
    let referral = only_referral(&t).await;
    assert_eq!(location, format!("ServiceRequest/{}", referral["id"].as_str().unwrap().replacen('_', "-", 1)));
    assert_eq!(
        (referral["state"].as_str(), referral["specialty"].as_str(), referral["patient_id"].as_str()),
        (Some("ordered"), Some("cardiology"), Some("p1"))
    );
    assert_eq!(referral["source_ids"], json!(["ServiceRequest/sr-1", "PLAC-sr-1"]));

    let booked = t
        .fhir("PUT", "/fhir/Appointment/a1", Some(appointment("a1", "sr-1", "booked", "2026-03-10T19:00:00.000Z")), &[])
        .await;
    assert_eq!(booked.status, 200, "{:?}", booked.body);
    let r = only_referral(&t).await;
    assert_eq!(
        (r["state"].as_str(), r["appointment_at"].as_str()),
        (Some("scheduled"), Some("2026-03-10T19:00:00.000Z"))
    );

    let noshow = t
        .fhir("PUT", "/fhir/Appointment/a1", Some(appointment("a1", "sr-1", "noshow", "2026-03-10T19:00:00.000Z")), &[])
        .await;
    assert_eq!(noshow.status, 200, "{:?}", noshow.body);
    let r = only_referral(&t).await;
    assert_eq!(
        (r["state"].as_str(), r["no_shows"].as_u64()),
        (Some("patient-notified"), Some(1)),
        "scheduling reopens"
    );

    // The EHR points at our id, read back from the Location.
    let rebook = appointment("a2", &location["ServiceRequest/".len()..], "booked", "2026-03-17T19:00:00.000Z");
    assert_eq!(t.fhir("PUT", "/fhir/Appointment/a2", Some(rebook), &[]).await.status, 200);
    assert_eq!(only_referral(&t).await["state"], "scheduled");
    let encounter = json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "basedOn": [{"reference": "ServiceRequest/sr-1"}], "period": {"start": "2026-03-17T19:00:00.000Z"}});
    assert_eq!(t.fhir("PUT", "/fhir/Encounter/e1", Some(encounter), &[]).await.status, 200);
    assert_eq!(only_referral(&t).await["state"], "attended");
    let note = json!({"resourceType": "DocumentReference", "status": "current", "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": "Patient/p1"}, "date": "2026-03-20T10:00:00.000Z",
        "context": {"related": [{"reference": "ServiceRequest/sr-1"}]},
        "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}]});
    assert_eq!(t.fhir("POST", "/fhir/DocumentReference", Some(note), &[]).await.status, 200);
    let r = only_referral(&t).await;
    assert_eq!(r["state"], "note-received");
    let sources: Vec<&str> = r["events"].as_array().unwrap().iter().filter_map(|e| e["source"].as_str()).collect();
    assert!(sources.iter().any(|s| s.contains("fhir/inb_")), "{sources:?}");

    let sr = t.fhir("GET", &format!("/fhir/{location}"), None, &[]).await;
    assert_eq!(
        (sr.status, sr.body["status"].as_str(), sr.body["priority"].as_str()),
        (200, Some("completed"), Some("routine"))
    );
    let task_id = format!("trk-{}", &location["ServiceRequest/".len()..]);
    let task = t.fhir("GET", &format!("/fhir/Task/{task_id}"), None, &[]).await;
    assert_eq!(task.status, 200, "{:?}", task.body);
    assert_eq!(task.body["businessStatus"]["coding"][0]["code"], "7.0");
    assert_eq!(
        (task.body["status"].as_str(), task.body["basedOn"][0]["reference"].as_str()),
        (Some("completed"), Some(location.as_str()))
    );
    assert_eq!(task.body["executionPeriod"]["end"], "2026-03-20T10:00:00Z");
    let search = t.fhir("GET", &format!("/fhir/Task?based-on={location}"), None, &[]).await;
    assert_eq!(
        (search.body["type"].as_str(), search.body["entry"][0]["resource"]["id"].as_str()),
        (Some("searchset"), Some(task_id.as_str()))
    );
}

async fn a_revoked_service_request_cancels_the_referral(b: Backend) {
    let t = TestApp::spawn(b).await;
    assert_eq!(t.fhir("PUT", "/fhir/ServiceRequest/sr-9", Some(service_request("sr-9")), &[]).await.status, 201);
    let mut revoked = service_request("sr-9");
    revoked["status"] = json!("revoked");
    let r = t.fhir("PUT", "/fhir/ServiceRequest/sr-9", Some(revoked), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(only_referral(&t).await["state"], "cancelled");
}

fn transaction(appointment_class_ok: bool) -> Value {
    let mut encounter = json!({"resourceType": "Encounter", "status": "finished",
        "basedOn": [{"reference": "urn:uuid:8b9e2c1a-0000-4000-8000-000000000002"}]});
    if appointment_class_ok {
        encounter["class"] = json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"});
    }
    let mut sr = service_request("x");
    sr.as_object_mut().unwrap().remove("id");
    sr["subject"] = json!({"reference": "urn:uuid:8b9e2c1a-0000-4000-8000-000000000001"});
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:8b9e2c1a-0000-4000-8000-000000000003", "resource": encounter,
         "request": {"method": "POST", "url": "Encounter"}},
        {"fullUrl": "urn:uuid:8b9e2c1a-0000-4000-8000-000000000002", "resource": sr,
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"fullUrl": "urn:uuid:8b9e2c1a-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "id": "p7", "telecom": [{"system": "sms", "value": "+15555550123"}]},
         "request": {"method": "PUT", "url": "Patient/p7"}},
    ]})
}

async fn a_refused_transaction_entry_names_nothing_that_was_not_kept(b: Backend) {
    let t = TestApp::spawn(b).await;
    // The Appointment names a referral that does not exist: alone it would wait as a dead
    // letter, but in a transaction everything is rolled back, that row too.
    let mut bundle = transaction(true);
    bundle["entry"].as_array_mut().unwrap().push(json!({
        "resource": appointment("ap9", "nowhere", "booked", "2026-03-10T14:00:00Z"),
        "request": {"method": "POST", "url": "Appointment"}}));
    let r = t.fhir("POST", "/fhir", Some(bundle), &[]).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let text = r.body.to_string();
    assert!(text.contains("nothing was kept"), "{text}");
    for id in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("inb_")) {
        assert_eq!(t.get(&format!("/api/v1/inbox/{id}")).await.status, 200, "the answer names {id}, which must exist");
    }
    assert_eq!(t.get("/api/v1/inbox").await.body["items"].as_array().map(Vec::len), Some(0), "nothing stored");
    assert!(referrals(&t).await.is_empty(), "nothing applied");
}

async fn a_transaction_bundle_is_all_or_nothing(b: Backend) {
    let t = TestApp::spawn(b).await;
    let r = t.fhir("POST", "/fhir", Some(transaction(false)), &[]).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["issue"][0]["expression"], json!(["Bundle.entry[0].resource.class"]));
    assert!(referrals(&t).await.is_empty(), "nothing applied");
    assert_eq!(t.get("/api/v1/inbox").await.body["items"].as_array().map(Vec::len), Some(0), "nothing stored");

    let r = t.fhir("POST", "/fhir", Some(transaction(true)), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["type"], "transaction-response");
    let statuses: Vec<&str> =
        r.body["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["200 OK", "201 Created", "200 OK"], "in the request's order");
    let referral = only_referral(&t).await;
    assert_eq!(
        (referral["state"].as_str(), referral["patient_id"].as_str()),
        (Some("attended"), Some("p7")),
        "urn:uuid references resolved"
    );
}

async fn a_resend_is_answered_without_being_applied_twice(b: Backend) {
    let t = TestApp::spawn(b).await;
    let first = t.fhir("PUT", "/fhir/ServiceRequest/sr-2", Some(service_request("sr-2")), &[]).await;
    let again = t.fhir("PUT", "/fhir/ServiceRequest/sr-2", Some(service_request("sr-2")), &[]).await;
    assert_eq!((first.status, again.status), (201, 200));
    assert!(again.body["issue"][0]["diagnostics"].as_str().unwrap().contains("not applied again"), "{:?}", again.body);
    assert_eq!(again.body["_location"], first.body["_location"]);
    let mut sr = service_request("ignored");
    sr.as_object_mut().unwrap().remove("id");
    let conditional = t
        .fhir("POST", "/fhir/ServiceRequest", Some(sr), &[("if-none-exist", "identifier=urn:oid:1.2.3|PLAC-sr-2")])
        .await;
    assert_eq!((conditional.status, &conditional.body["_location"]), (200, &first.body["_location"]));
    assert_eq!(referrals(&t).await.len(), 1);
    let r = only_referral(&t).await;
    assert_eq!(r["events"].as_array().unwrap().iter().filter(|e| e["type"] == "ordered").count(), 1);
}

async fn bad_fhir_gets_an_operation_outcome_and_changes_nothing(b: Backend) {
    let t = TestApp::spawn(b).await;
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        ("POST", "/fhir/ServiceRequest", None, 415, "not-supported"),
        ("PUT", "/fhir/ServiceRequest/a", Some(json!({"resourceType": "Appointment", "id": "a"})), 400, "invalid"),
        ("PUT", "/fhir/ServiceRequest/a", Some(service_request("b")), 400, "invalid"),
        ("POST", "/fhir/Coverage", Some(json!({"resourceType": "Coverage"})), 404, "not-supported"),
        ("POST", "/fhir", Some(json!({"resourceType": "Bundle", "type": "collection"})), 400, "invalid"),
        ("GET", "/fhir/ServiceRequest/ref-nothere", None, 404, "not-found"),
    ];
    for (method, path, body, status, code) in cases {
        let r = t.fhir(method, path, body.clone(), &[]).await;
        assert_eq!(
            (r.status, r.body["resourceType"].as_str(), r.body["issue"][0]["code"].as_str()),
            (status, Some("OperationOutcome"), Some(code)),
            "{method} {path} {body:?}: {:?}",
            r.body
        );
    }
    let raw = t.post_raw("/fhir/ServiceRequest", "application/fhir+json", b"{not json".to_vec()).await;
    assert_eq!((raw.status, raw.body["issue"][0]["code"].as_str()), (400, Some("invalid")));
    let mut bad = service_request("sr-3");
    bad["status"] = json!(12);
    let r = t.fhir("PUT", "/fhir/ServiceRequest/sr-3", Some(bad), &[]).await;
    assert_eq!((r.status, &r.body["issue"][0]["expression"]), (400, &json!(["ServiceRequest.status"])));
    let no_token = reqwest::Client::new().get(format!("{}/fhir/ServiceRequest/ref-x", t.base)).send().await.unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(no_token.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");
    let metadata = reqwest::Client::new().get(format!("{}/fhir/metadata", t.base)).send().await.unwrap();
    let cs: Value = metadata.json().await.unwrap();
    assert_eq!((cs["resourceType"].as_str(), cs["fhirVersion"].as_str()), (Some("CapabilityStatement"), Some("4.0.1")));
    assert!(referrals(&t).await.is_empty());
    assert_eq!(t.get("/api/v1/inbox").await.body["items"].as_array().map(Vec::len), Some(0));
}

async fn a_resource_for_an_unknown_referral_waits_as_a_dead_letter(b: Backend) {
    let t = TestApp::spawn(b).await;
    let early = appointment("a5", "sr-5", "booked", "2026-03-10T19:00:00.000Z");
    let mut early = early;
    early["participant"] = json!([{"actor": {"reference": "Location/1"}}]);
    let r = t.fhir("PUT", "/fhir/Appointment/a5", Some(early), &[]).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let dead = t.get("/api/v1/dead-letters").await.body;
    let id = dead["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(r.body["issue"][0]["diagnostics"].as_str().unwrap().contains(&id));
    assert_eq!(t.fhir("PUT", "/fhir/ServiceRequest/sr-5", Some(service_request("sr-5")), &[]).await.status, 201);
    let retried = t.post(&format!("/api/v1/inbox/{id}/retry"), json!({})).await;
    assert_eq!((retried.status, retried.body["status"].as_str()), (200, Some("applied")), "{:?}", retried.body);
    assert_eq!(only_referral(&t).await["state"], "scheduled");
}

fn validate_with_fhir_resources(resources: &[Value]) {
    refloop_testkit::peers::validate_fhir(resources);
}

async fn what_fhir_serves_validates_as_r4(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut served = Vec::new();
    let created = t.fhir("PUT", "/fhir/ServiceRequest/sr-v", Some(service_request("sr-v")), &[]).await;
    let location = created.body["_location"].as_str().unwrap().to_owned();
    let mut outcome = created.body.clone();
    outcome.as_object_mut().unwrap().remove("_location");
    served.push(outcome);
    // A week without an appointment opens staff tasks.
    t.advance("8d").await;
    served.push(t.fhir("GET", &format!("/fhir/{location}"), None, &[]).await.body);
    let search = t.fhir("GET", &format!("/fhir/Task?based-on={location}"), None, &[]).await.body;
    let kinds: Vec<&str> =
        search["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert!(kinds.len() >= 2 && kinds[0].starts_with("trk-") && kinds[1].starts_with("tsk-"), "{kinds:?}");
    for e in search["entry"].as_array().unwrap() {
        served.push(e["resource"].clone());
    }
    served.push(search.clone());
    served.push(t.fhir("GET", "/fhir/metadata", None, &[]).await.body);
    served.push(t.fhir("POST", "/fhir", Some(transaction(true)), &[]).await.body);
    served.push(t.fhir("POST", "/fhir", Some(transaction(false)), &[]).await.body);
    let mut batch = transaction(true);
    batch["type"] = json!("batch");
    served.push(t.fhir("POST", "/fhir", Some(batch), &[]).await.body);
    validate_with_fhir_resources(&served);
}

/// `GET /fhir/AuditEvent?patient=&date=`: admins see who read a patient's referral (the read
/// and the list that named it), as R4 AuditEvents that validate; a coordinator may not search;
/// a period before anything was recorded is empty; a bad date is a 400.
async fn admins_search_the_audit_log_as_audit_events(b: Backend) {
    let t = TestApp::spawn(b).await;
    assert_eq!(t.fhir("PUT", "/fhir/ServiceRequest/sr-a", Some(service_request("sr-a")), &[]).await.status, 201);
    let id = referrals(&t).await[0]["id"].as_str().unwrap().to_owned();
    let coordinator = t.token(refloop_app::Role::Coordinator).await;
    assert_eq!(t.get_as(&coordinator, &format!("/api/v1/referrals/{id}")).await.status, 200);
    assert_eq!(t.get_as(&coordinator, "/api/v1/referrals").await.status, 200);
    let other = t.fhir("PUT", "/fhir/ServiceRequest/sr-b", Some(json!({"subject": {"reference": "Patient/p2"}, "id": "sr-b", "resourceType": "ServiceRequest", "status": "active", "intent": "order", "requester": {"reference": "Practitioner/dr1"}, "performerType": {"coding": [{"code": "cardiology"}]}, "authoredOn": "2026-03-02T14:00:00.000Z"})), &[]).await;
    assert_eq!(other.status, 201, "{:?}", other.body);

    // Audit rows carry the wall clock's time; a day either side keeps midnight out of it.
    let today = refloop_app::Clock::now(&refloop_app::SystemClock).to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let (from, to) = (today.yesterday().unwrap(), today.tomorrow().unwrap());
    let found =
        t.fhir("GET", &format!("/fhir/AuditEvent?patient=Patient/p1&date=ge{from}&date=le{to}"), None, &[]).await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    let events: Vec<Value> = found.body["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
    let wanted = format!("ServiceRequest/{}", id.replacen('_', "-", 1));
    let by_coordinator: Vec<&str> = events
        .iter()
        .filter(|e| e["agent"][0]["who"]["identifier"]["value"] == "coordinator:test-coordinator")
        .filter(|e| e["entity"].as_array().unwrap().iter().any(|x| x["what"]["reference"] == wanted.as_str()))
        .map(|e| e["subtype"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(by_coordinator, ["list", "read"], "newest first: {events:?}");
    assert!(
        events.iter().all(|e| e["entity"].as_array().unwrap().iter().all(|x| x["what"]["reference"] != "Patient/p2")),
        "only rows that name this patient"
    );
    let mut served = events.clone();
    served.push(found.body.clone());
    validate_with_fhir_resources(&served);

    let none = t.fhir("GET", "/fhir/AuditEvent?patient=p1&date=lt2001-01-01", None, &[]).await;
    assert_eq!((none.status, none.body["total"].as_u64()), (200, Some(0)));
    let bad = t.fhir("GET", "/fhir/AuditEvent?date=yesterday", None, &[]).await;
    assert_eq!((bad.status, bad.body["resourceType"].as_str()), (400, Some("OperationOutcome")));
    let refused = t.get_as(&coordinator, "/fhir/AuditEvent?patient=p1").await;
    assert_eq!(refused.status, 403);
}
