//! Every JSON resource of the conformance corpus (copied into `fixtures/`, see SOURCES.md)
//! is read: each one either maps to what it means for referrals (ids, times and codes
//! asserted) or is set aside with the reason, and none is refused as invalid FHIR.

use std::collections::BTreeMap;

use jiff::{Timestamp, tz::TimeZone};
use refloop_app::{ContactUpdate, Mapped};
use refloop_domain::{Input, Specialty, State, Urgency};
use refloop_fhir::{FhirConfig, map_resource};
use serde_json::{Value, json};

fn cfg() -> FhirConfig {
    let mut specialty_map = BTreeMap::new();
    for (name, s) in [("ent", "otolaryngology"), ("cardiology", "cardiology")] {
        specialty_map.insert(name.to_owned(), Specialty::parse(s).unwrap());
    }
    FhirConfig { time_zone: TimeZone::UTC, specialty_map }
}

fn now() -> Timestamp {
    "2026-11-01T12:00:00Z".parse().unwrap()
}

fn fixture(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn mapped(path: &str) -> Mapped {
    map_resource(&fixture(path), &cfg(), now()).unwrap_or_else(|e| panic!("{path}: {e}")).mapped
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn the_r4_referral_example_is_an_order_with_its_keys_specialty_and_time() {
    let Mapped::Order(o) = mapped("fhir-r4-core-examples/ServiceRequest-myringotomy.json") else { panic!("an order") };
    assert_eq!(o.patient_id.as_str(), "77662", "absolute references resolve to the id");
    assert_eq!(o.referring_provider.as_str(), "77272");
    assert_eq!(o.specialty.as_ref().map(Specialty::as_str), Some("otolaryngology"), "performerType 'ent' via the map");
    assert_eq!(o.specialist.as_deref(), Some("Dr Dave"));
    assert_eq!(o.urgency, Urgency::Routine);
    assert_eq!(o.ordered_at, Some(ts("2014-02-14T00:00:00Z")), "a date is midnight in the practice zone");
    assert_eq!(o.source_ids, vec!["ServiceRequest/myringotomy".to_owned(), "ret4421".to_owned()]);
}

#[test]
fn sdoh_service_requests_are_not_specialist_referrals() {
    for file in ["us-core/servicerequest-rehab.json", "us-core/servicerequest-foodpantry-referral.json"] {
        assert!(matches!(mapped(file), Mapped::Ignore(why) if why.starts_with("not a referral")), "{file}");
    }
}

#[test]
fn appointments_schedule_or_wait() {
    let Mapped::Event { target, input } = mapped("fhir-r4-core-examples/Appointment-example.json") else { panic!() };
    assert_eq!(target.keys, vec!["ServiceRequest/myringotomy".to_owned()]);
    assert_eq!(target.patient.as_ref().map(|p| p.as_str()), Some("example"));
    assert!(target.fallback_allowed);
    assert!(matches!(
        input,
        Input::Milestone { state: State::Scheduled, appointment_at: Some(at), .. } if at == ts("2013-12-10T09:00:00Z")
    ));
    assert!(matches!(mapped("fhir-r4-core-examples/Appointment-examplereq.json"), Mapped::Ignore(_)), "proposed");
}

#[test]
fn an_encounter_without_based_on_is_not_a_referral_visit() {
    assert!(matches!(mapped("fhir-r4-core-examples/Encounter-f201.json"), Mapped::Ignore(_)));
}

#[test]
fn documents_count_as_the_consult_note_only_with_a_consult_report_code() {
    // Outpatient note 34108-1 and CCD 34133-9 are not in the CMS50 Consultant Report set.
    assert!(matches!(mapped("fhir-r4-core-examples/DocumentReference-example.json"), Mapped::Ignore(_)));
    assert!(matches!(mapped("us-core/documentreference-episode-summary.json"), Mapped::Ignore(_)));
    // The R4 Composition example is a final 11488-4 consult note: matched by patient.
    let Mapped::Event { target, input } = mapped("fhir-r4-core-examples/Composition-example.json") else { panic!() };
    assert_eq!((target.keys.len(), target.patient.as_ref().map(|p| p.as_str())), (0, Some("xcda")));
    assert!(
        matches!(input, Input::Milestone { state: State::NoteReceived, at, .. } if at == ts("2012-01-04T09:10:14Z"))
    );
}

#[test]
fn lab_tasks_without_bser_codes_are_set_aside() {
    for file in ["Task-example1.json", "Task-example2.json", "Task-example6.json"] {
        assert!(matches!(mapped(&format!("fhir-r4-core-examples/{file}")), Mapped::Ignore(_)), "{file}");
    }
}

#[test]
fn patients_update_contact_and_consents_only_when_about_sms() {
    let Mapped::Contact(ContactUpdate { patient_id, phone, sms_consent, .. }) =
        mapped("fhir-r4-core-examples/Patient-example.json")
    else {
        panic!()
    };
    assert_eq!((patient_id.as_str(), phone.as_deref(), sms_consent), ("example", Some("(03) 3410 5613"), None));
    let Mapped::Contact(c) = mapped("fhir-r4-core-examples/Patient-example.json") else { panic!() };
    assert_eq!((c.name.as_deref(), c.birth_date.as_deref()), (Some("Peter James Chalmers"), Some("1974-12-25")));
    let spanish = json!({"resourceType": "Patient", "id": "p2", "birthDate": "1980",
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}},
                          {"language": {"coding": [{"code": "es", "display": "Spanish"}]}, "preferred": true}]});
    let Mapped::Contact(c) = map_resource(&spanish, &cfg(), now()).unwrap().mapped else { panic!() };
    assert_eq!(
        (c.language.as_deref(), c.birth_date),
        (Some("Spanish"), None),
        "the preferred one; a year alone is no date"
    );
    let bad = json!({"resourceType": "Patient", "id": "p3", "birthDate": "1980-02-31"});
    assert_eq!(
        map_resource(&bad, &cfg(), now()).unwrap_err().issues[0].expression.as_deref(),
        Some("Patient.birthDate")
    );
    assert!(matches!(mapped("fhir-r4-core-examples/Consent-consent-example-basic.json"), Mapped::Ignore(_)), "privacy");
    let sms = json!({"resourceType": "Consent", "status": "active", "scope": {"text": "treatment"},
        "category": [{"text": "SMS reminders"}], "patient": {"reference": "Patient/p1"}, "provision": {"type": "deny"}});
    assert!(matches!(
        map_resource(&sms, &cfg(), now()).unwrap().mapped,
        Mapped::Contact(ContactUpdate { sms_consent: Some(false), .. })
    ));
}

#[test]
fn practitioners_give_referring_providers_their_names() {
    let bundle = fixture("cms50/CMS50FHIR-v0.4.000-DENOMPass-EncAndReferralDuringPeriods.json");
    let practitioner = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Practitioner")
        .unwrap();
    let Mapped::Provider { id, name } = map_resource(practitioner, &cfg(), now()).unwrap().mapped else { panic!() };
    assert_eq!((id.as_str(), name.as_str()), ("49c133b3-4c80-4e1d-89ca-666cb5bd03ab", "Dr Evil"));
    let role = json!({"resourceType": "PractitionerRole", "id": "pr1",
        "practitioner": {"reference": "Practitioner/x", "display": "Dr Ann Adams"}});
    assert!(
        matches!(map_resource(&role, &cfg(), now()).unwrap().mapped, Mapped::Provider { name, .. } if name == "Dr Ann Adams")
    );
    let nameless = json!({"resourceType": "Practitioner", "id": "p9"});
    assert!(matches!(map_resource(&nameless, &cfg(), now()).unwrap().mapped, Mapped::Ignore(_)));
}

#[test]
fn types_we_do_not_read_are_refused_on_their_own() {
    let e = map_resource(&fixture("fhir-r4-core-examples/Communication-example.json"), &cfg(), now()).unwrap_err();
    assert_eq!((e.status, e.issues[0].code), (404, "not-supported"));
}

#[test]
fn every_cms50_resource_is_read_without_error() {
    let dir = format!("{}/tests/fixtures/cms50", env!("CARGO_MANIFEST_DIR"));
    let mut counts = BTreeMap::<String, usize>::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let bundle: Value = serde_json::from_str(&std::fs::read_to_string(file.unwrap().path()).unwrap()).unwrap();
        for entry in bundle["entry"].as_array().unwrap() {
            let r = &entry["resource"];
            let kind = r["resourceType"].as_str().unwrap().to_owned();
            match map_resource(r, &cfg(), now()) {
                Ok(m) => *counts.entry(format!("{kind} {}", label(&m.mapped))).or_default() += 1,
                Err(e) => {
                    assert!(e.status == 404 && matches!(kind.as_str(), "Coverage" | "MeasureReport"), "{kind}: {e}")
                }
            }
        }
    }
    // 19 referral orders (15 active orders, 4 not), consult-report tasks linked by basedOn.
    assert_eq!(counts.get("ServiceRequest order"), Some(&15), "{counts:?}");
    assert_eq!(counts.get("ServiceRequest ignore"), Some(&4), "{counts:?}");
    assert_eq!(counts.get("Task event"), Some(&7), "{counts:?}");
    assert_eq!(counts.get("Patient contact"), Some(&17), "{counts:?}");
}

fn label(m: &Mapped) -> &'static str {
    match m {
        Mapped::Order(_) => "order",
        Mapped::Event { .. } => "event",
        Mapped::Contact(_) => "contact",
        Mapped::Provider { .. } => "provider",
        Mapped::Ignore(_) => "ignore",
    }
}

#[test]
fn bser_business_status_wins_over_a_contradicting_status_with_a_warning() {
    let task = json!({"resourceType": "Task", "status": "requested", "intent": "order",
        "businessStatus": {"coding": [{"system": "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS", "code": "7.0"}]},
        "focus": {"reference": "ServiceRequest/sr1"}, "lastModified": "2026-10-01T10:00:00Z"});
    let m = map_resource(&task, &cfg(), now()).unwrap();
    assert!(matches!(m.mapped, Mapped::Event { input: Input::Milestone { state: State::NoteReceived, .. }, .. }));
    assert_eq!(m.warnings.len(), 1);
    assert_eq!(m.warnings[0].expression.as_deref(), Some("Task.status"));
    let scheduled = json!({"resourceType": "Task", "status": "in-progress", "intent": "order",
        "businessStatus": {"coding": [{"system": "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS", "code": "5.1.2"}]},
        "basedOn": [{"reference": "ServiceRequest/sr1"}]});
    let m = map_resource(&scheduled, &cfg(), now()).unwrap();
    assert!(matches!(m.mapped, Mapped::Event { input: Input::NoShow { .. }, .. }) && m.warnings.is_empty());
}

#[test]
fn invalid_resources_name_the_offending_element() {
    let cases = [
        (
            json!({"resourceType": "ServiceRequest", "intent": "order", "subject": {"reference": "Patient/p"}}),
            "ServiceRequest.status",
            "required",
        ),
        (
            json!({"resourceType": "ServiceRequest", "status": "open", "intent": "order", "subject": {"reference": "Patient/p"}}),
            "ServiceRequest.status",
            "code-invalid",
        ),
        (
            json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"}, "authoredOn": 20260101}),
            "ServiceRequest.authoredOn",
            "structure",
        ),
        (
            json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"}, "identifier": [{"value": 7}]}),
            "ServiceRequest.identifier[0].value",
            "structure",
        ),
        (
            json!({"resourceType": "Appointment", "status": "booked", "participant": [{}], "start": "tomorrow"}),
            "Appointment.start",
            "value",
        ),
        (json!({"resourceType": "Encounter", "status": "finished"}), "Encounter.class", "required"),
        (
            json!({"resourceType": "Task", "status": "completed", "intent": "order", "basedOn": [{"reference": "ServiceRequest/x"}],
            "businessStatus": {"coding": [{"system": "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS", "code": "9.9"}]}}),
            "Task.businessStatus",
            "code-invalid",
        ),
    ];
    for (resource, expression, code) in cases {
        let e = map_resource(&resource, &cfg(), now()).unwrap_err();
        assert_eq!(e.status, 400, "{resource}");
        assert_eq!((e.issues[0].expression.as_deref(), e.issues[0].code), (Some(expression), code), "{resource}");
    }
}

#[test]
fn urgency_comes_from_priority() {
    let sr = |p: &str| {
        json!({"resourceType": "ServiceRequest", "id": "s", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"}, "priority": p, "performerType": {"text": "Cardiology"},
        "requester": {"reference": "Practitioner/d1"}})
    };
    for (p, u) in
        [("routine", Urgency::Routine), ("urgent", Urgency::Urgent), ("asap", Urgency::Asap), ("stat", Urgency::Stat)]
    {
        let Mapped::Order(o) = map_resource(&sr(p), &cfg(), now()).unwrap().mapped else { panic!() };
        assert_eq!((o.urgency, o.specialty.as_ref().map(Specialty::as_str)), (u, Some("cardiology")));
    }
}

#[test]
fn a_wrong_type_is_named_without_quoting_the_value() {
    let sr = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p", "display": {"secret": "Jane Doe"}}});
    let e = map_resource(&sr, &cfg(), now()).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("Jane") && text.contains("expected a string"), "{text}");
    assert_eq!(e.issues[0].expression.as_deref(), Some("ServiceRequest.subject.display"));
}
