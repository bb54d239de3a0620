//! Finding a referral: by partial patient name (any word's start, case and accents ignored),
//! by MRN, by source id, by referral id prefix; the patient as a person in the JSON for roles
//! that may read patient data, never for an integration.

use refloop_app::Role;
use refloop_testkit::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    a_referral_is_found_by_name_mrn_source_id_and_id_prefix,
    patients_are_people_for_staff_and_nothing_for_integrations,
    the_list_sorts_counts_and_pages,
);

fn order(patient: &str, name: &str, source: &str) -> Value {
    json!({"patient_id": patient, "referring_provider": "dr-adams", "referring_provider_name": "Dr Ann Adams",
        "specialty": "cardiology", "source_ids": [source],
        "patient": {"name": name, "phone": "+15555550123", "birth_date": "1961-04-09", "language": "Spanish"}})
}

async fn ids(t: &TestApp, query: &str) -> Vec<String> {
    let r = t.get(&format!("/api/v1/referrals?{query}")).await;
    assert_eq!(r.status, 200, "{query}: {:?}", r.body);
    r.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

async fn a_referral_is_found_by_name_mrn_source_id_and_id_prefix(b: Backend) {
    let t = TestApp::spawn(b).await;
    let garcia = t.create_referral_id(order("MRN-1001", "José García", "placer-77")).await;
    let garces = t.create_referral_id(order("MRN-1002", "Ana Garcés", "ServiceRequest/sr-9")).await;
    let other = t.create_referral_id(order("MRN-1003", "Tom Baker", "demo:5")).await;
    // Partial name, any case, accents folded either way.
    assert_eq!(ids(&t, "q=garcia").await, [garcia.as_str()]);
    assert_eq!(ids(&t, "q=GARCÍA").await, [garcia.as_str()]);
    assert_eq!(ids(&t, "q=jos").await, [garcia.as_str()]);
    assert_eq!(ids(&t, "q=jose%20gar").await, [garcia.as_str()]);
    let mut both = ids(&t, "q=garc").await;
    both.sort();
    let mut want = vec![garcia.clone(), garces.clone()];
    want.sort();
    assert_eq!(both, want, "more than one match: a list");
    assert!(ids(&t, "q=arcia").await.is_empty(), "a prefix of a word, not any part");
    // MRN (the patient id), source ids, id prefix (ours and as FHIR serves it).
    assert_eq!(ids(&t, "q=MRN-1003").await, [other.as_str()]);
    assert_eq!(ids(&t, "q=demo:5").await, [other.as_str()]);
    assert_eq!(ids(&t, "q=placer-77").await, [garcia.as_str()]);
    assert_eq!(ids(&t, "q=ServiceRequest/sr-9").await, [garces.as_str()]);
    assert_eq!(ids(&t, &format!("q={}", &other[..other.len() - 2])).await, [other.as_str()]);
    assert_eq!(ids(&t, "q=ref_").await.len(), 3, "every id starts so");
    assert_eq!(ids(&t, &format!("q={}", other.replacen('_', "-", 1))).await, [other.as_str()]);
    // LIKE's wildcards are plain text.
    assert!(ids(&t, "q=%25").await.is_empty());
    assert!(ids(&t, "q=ref%5F%25").await.len() <= 3);
    assert!(ids(&t, "q=nobody").await.is_empty());
}

async fn patients_are_people_for_staff_and_nothing_for_integrations(b: Backend) {
    let t = TestApp::spawn(b).await;
    let id = t.create_referral_id(order("MRN-2001", "Zoë Quinn", "placer-1")).await;
    let r = t.referral(&id).await;
    assert_eq!(
        r["patient"],
        json!({"name": "Zoë Quinn", "birth_date": "1961-04-09", "phone": "+15555550123", "phone_text": "+15555550123", "language": "Spanish"})
    );
    assert_eq!(r["referring_provider_name"], "Dr Ann Adams");
    let list = t.get("/api/v1/referrals?q=zoe").await.body;
    assert_eq!(list["items"][0]["patient"]["name"], "Zoë Quinn");
    // An integration writes referrals and reads none back (least privilege): no lists, no
    // referral, no raw messages; a viewer reads referrals but not raw messages.
    let integration = t.token(Role::Integration).await;
    for path in [
        format!("/api/v1/referrals/{id}"),
        "/api/v1/referrals".to_owned(),
        "/api/v1/inbox".to_owned(),
        "/api/v1/dead-letters".to_owned(),
        "/fhir/ServiceRequest".to_owned(),
    ] {
        let seen = t.get_as(&integration, &path).await;
        assert_eq!(seen.status, 403, "{path}: {:?}", seen.body);
        assert!(!seen.body.to_string().contains("Zo"), "{path}: {:?}", seen.body);
    }
    assert_eq!(t.get_as(&integration, "/fhir/metadata").await.status, 200);
    let viewer = t.token(Role::Viewer).await;
    assert_eq!(t.get_as(&viewer, &format!("/api/v1/referrals/{id}")).await.status, 200);
    assert_eq!(t.get_as(&viewer, "/api/v1/inbox").await.status, 403, "viewers see no raw messages");
    // A bad date of birth is refused and changes nothing.
    let mut bad = order("MRN-2002", "Bad Date", "placer-2");
    bad["patient"]["birth_date"] = json!("1961-13-40");
    let r = t.post("/api/v1/referrals", bad).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some("patient.birth_date")), "{:?}", r.body);
    assert_eq!(ids(&t, "q=MRN-2002").await.len(), 0);
    // Every read of patient data is audited, with the patient's id.
    let audit = t.app.store().audit_log(50).await.unwrap();
    assert!(audit.iter().any(|a| a.resource_type == "patient" && a.resource_id.contains("MRN-2001")));
}

async fn the_list_sorts_counts_and_pages(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mut made = Vec::new();
    for (i, name) in ["Carla Diaz", "Abel Ruiz", "Bea Stone"].iter().enumerate() {
        made.push(t.create_referral_id(order(&format!("MRN-30{i}"), name, &format!("s-{i}"))).await);
        t.advance("1h").await;
    }
    let names = |body: &Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|i| i["patient"]["name"].as_str().unwrap().to_owned()).collect()
    };
    let by_patient = t.get("/api/v1/referrals?sort=patient&limit=2").await.body;
    assert_eq!(names(&by_patient), ["Abel Ruiz", "Bea Stone"]);
    assert_eq!(by_patient["total"], 3);
    let cursor = by_patient["next_cursor"].as_str().unwrap().to_owned();
    let rest = t.get(&format!("/api/v1/referrals?sort=patient&limit=2&cursor={cursor}")).await.body;
    assert_eq!(names(&rest), ["Carla Diaz"]);
    assert!(rest["next_cursor"].is_null());
    let oldest = t.get("/api/v1/referrals?sort=ordered-asc").await.body;
    assert_eq!(names(&oldest), ["Carla Diaz", "Abel Ruiz", "Bea Stone"]);
    let bad = t.get("/api/v1/referrals?sort=shoe-size").await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (422, Some("sort")));
    assert_eq!(made.len(), 3);
}
