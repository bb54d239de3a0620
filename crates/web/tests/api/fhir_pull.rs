//! Pull mode against a fake EHR FHIR server on loopback (SMART Backend Services auth):
//! a referral comes in without any push, the cursor is durable, EHR errors are retried,
//! and a Subscription notification brings the named resource at once.

use refloop_fhir::EhrAuth;
use refloop_testkit::{Backend, CLIENT_ID, FakeEhr, SMART_PRIVATE_KEY, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    a_referral_arrives_by_polling_the_ehr,
    a_subscription_notification_fetches_the_resource,
    on_day_14_the_ehr_is_searched_for_the_note,
);

fn fixture(name: &str) -> Value {
    let path = format!("{}/../fhir/tests/fixtures/fhir-r4-core-examples/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn app_pulling_from(ehr: &FakeEhr, b: Backend) -> TestApp {
    let auth = EhrAuth::smart(CLIENT_ID, &ehr.token_url, SMART_PRIVATE_KEY, "system/*.read").unwrap();
    TestApp::builder(b)
        .pull_from(&ehr.base, auth, &["ServiceRequest", "Appointment", "Encounter", "DocumentReference"])
        .spawn()
        .await
}

async fn referrals(t: &TestApp) -> Vec<Value> {
    t.get("/api/v1/referrals").await.body["items"].as_array().cloned().unwrap_or_default()
}

async fn a_referral_arrives_by_polling_the_ehr(b: Backend) {
    let ehr = FakeEhr::start().await;
    ehr.put(fixture("ServiceRequest-myringotomy.json"), "2026-03-01T10:00:00Z");
    ehr.put(fixture("Appointment-example.json"), "2026-03-01T11:00:00Z");
    ehr.put(fixture("Encounter-f201.json"), "2026-03-01T09:00:00Z");
    ehr.put(fixture("DocumentReference-example.json"), "2026-03-01T09:30:00Z");
    let t = app_pulling_from(&ehr, b).await;
    let poller = t.poller.clone().unwrap();

    ehr.fail_next(1);
    assert!(poller.poll_once().await.is_err(), "a 503 is an error to back off from");
    assert!(referrals(&t).await.is_empty());

    let report = poller.poll_once().await.unwrap();
    assert_eq!((report.resources, report.applied), (4, 4), "{report:?}");
    let all = referrals(&t).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let r = t.referral(all[0]["id"].as_str().unwrap()).await;
    assert_eq!((r["state"].as_str(), r["specialty"].as_str()), (Some("scheduled"), Some("otolaryngology")));
    assert_eq!(ehr.tokens_issued(), 1, "one SMART access token, reused");

    let store = t.app.store();
    assert_eq!(store.cursor("fhir-pull:ServiceRequest").await.unwrap().as_deref(), Some("2026-03-01T10:00:00Z"));
    assert_eq!(store.cursor("fhir-pull:Appointment").await.unwrap().as_deref(), Some("2026-03-01T11:00:00Z"));

    // A new poller (as after a restart) starts from the stored cursor; nothing is applied twice.
    let again = poller.poll_once().await.unwrap();
    assert_eq!((again.resources, again.applied), (0, 0));
    let searches = ehr.searches();
    assert!(
        searches.iter().any(|s| s.starts_with("ServiceRequest?") && s.contains("_lastUpdated=gt2026-03-01T10:00:00Z")),
        "{searches:?}"
    );
    assert!(searches.iter().all(|s| s.contains("_count=2") && s.contains("_sort=_lastUpdated")), "{searches:?}");
    assert_eq!(referrals(&t).await.len(), 1);
}

async fn a_subscription_notification_fetches_the_resource(b: Backend) {
    let ehr = FakeEhr::start().await;
    ehr.put(fixture("ServiceRequest-myringotomy.json"), "2026-03-01T10:00:00Z");
    let t = app_pulling_from(&ehr, b).await;
    t.poller.clone().unwrap().poll_once().await.unwrap();
    let visit = json!({"resourceType": "Encounter", "id": "enc-9", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "basedOn": [{"reference": "ServiceRequest/myringotomy"}], "period": {"start": "2026-03-02T09:00:00Z"}});
    ehr.put(visit, "2026-03-02T10:00:00Z");
    // An R4 backport notification: a SubscriptionStatus, then the changed resource by id only.
    let notification = json!({"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification"}},
        {"fullUrl": format!("{}/Encounter/enc-9", ehr.base)}]});
    let r = t.fhir("POST", "/webhooks/fhir", Some(notification), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["issue"][0]["diagnostics"].as_str().unwrap().contains("applied 1"), "{:?}", r.body);
    let all = referrals(&t).await;
    assert_eq!(t.referral(all[0]["id"].as_str().unwrap()).await["state"], "attended");
    let no_token = reqwest::Client::new().post(format!("{}/webhooks/fhir", t.base)).body("{}").send().await.unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
}

async fn on_day_14_the_ehr_is_searched_for_the_note(b: Backend) {
    let ehr = FakeEhr::start().await;
    let t = app_pulling_from(&ehr, b).await;
    let sr = json!({"resourceType": "ServiceRequest", "id": "sr-look", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p-look"}, "requester": {"reference": "Practitioner/d1"},
        "performerType": {"text": "cardiology"}, "authoredOn": "2026-03-02T15:00:00Z"});
    let created = t.fhir("PUT", "/fhir/ServiceRequest/sr-look", Some(sr), &[]).await;
    let id = created.body["_location"].as_str().unwrap()["ServiceRequest/".len()..].replacen('-', "_", 1);
    t.event(&id, json!({"type": "scheduled", "appointment_at": "2026-03-03T15:00:00Z"})).await;
    t.event(&id, json!({"type": "attended", "at": "2026-03-03T15:30:00Z"})).await;
    ehr.put(
        json!({"resourceType": "DocumentReference", "id": "note-1", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
            "subject": {"reference": "Patient/p-look"}, "date": "2026-03-10T10:00:00Z",
            "context": {"related": [{"reference": "ServiceRequest/sr-look"}]},
            "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}]}),
        "2026-03-10T10:00:00Z",
    );
    t.advance("13d").await;
    assert_eq!(t.referral(&id).await["state"], "attended", "not looked for before day 14");
    t.advance("3d").await;
    let r = t.referral(&id).await;
    assert_eq!(r["state"], "note-received", "found by the day-14 search");
    assert!(ehr.searches().iter().any(|s| s.contains("related=ServiceRequest/sr-look")), "{:?}", ehr.searches());
}
