//! What each corpus message means for a referral (see fixtures/SOURCES.md), or which
//! ACK refuses it.

use jiff::{Timestamp, tz::TimeZone};
use refloop_domain::{Input, State, Urgency};
use refloop_hl7::{AckCode, ErrorCode, MapConfig, MapError, Mapped, check_header, map, parse, split_batch};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn mapped_all(path: &str) -> Vec<Result<Mapped, MapError>> {
    let bytes = std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let cfg = MapConfig::with_defaults(TimeZone::UTC);
    split_batch(&bytes)
        .iter()
        .map(|raw| {
            let m = parse(raw).unwrap_or_else(|e| panic!("{path}: {e}"));
            check_header(&m).and_then(|()| map(&m, &cfg, ts("2026-01-01T00:00:00Z")))
        })
        .collect()
}

fn mapped(path: &str) -> Result<Mapped, MapError> {
    let mut all = mapped_all(path);
    assert_eq!(all.len(), 1, "{path}");
    all.remove(0)
}

fn event(path: &str) -> (refloop_hl7::Target, Input) {
    match mapped(path) {
        Ok(Mapped::Event { target, input }) => (target, input),
        other => panic!("{path}: expected an event, got {other:?}"),
    }
}

fn refused(path: &str) -> MapError {
    mapped(path).expect_err(path)
}

#[test]
fn a_ref_i12_is_a_new_referral_keyed_by_rf1_6() {
    for file in ["REF-I12-01", "REF-I12-02"] {
        let Ok(Mapped::Order(order)) = mapped(&format!("ms-fhir-converter/{file}.hl7")) else { panic!("{file}") };
        assert_eq!(order.source_ids, ["226839"]);
        assert_eq!(order.patient_id.as_str(), "PATID1234");
        assert_eq!(order.referring_provider.as_str(), "PLN1001", "PRD with role RP");
        assert_eq!(order.specialist.as_deref(), Some("PAUL McWILLIAMS"), "PRD with role RT");
        assert_eq!(order.urgency, Urgency::Routine, "RF1-2 R");
        assert_eq!(order.ordered_at, Some(ts("2022-01-25T00:00:00Z")), "RF1-7");
        assert_eq!(order.reason.as_deref(), Some("K63.3"), "DG1-3");
        assert_eq!(order.specialty, None, "RF1-3 'Med' is no specialty: needs coding");
        assert_eq!(order.referring_provider_name.as_deref(), Some("DR ROBERT POWELL"), "PRD-2 of the RP");
        let patient = order.patient.as_ref().unwrap();
        assert_eq!(patient.name.as_deref(), Some("ADAM EVERYMAN"));
        assert_eq!(patient.birth_date.as_deref(), Some("1961-06-15"), "PID-7");
        assert_eq!(patient.language.as_deref(), Some("ENGLISH"), "PID-15 text");
    }
}

#[test]
fn a_ref_i14_cancels_by_referral_number() {
    let (target, input) = event("ms-fhir-converter/REF-I14-01.hl7");
    assert_eq!(target.keys, ["226839", "11001"], "RF1-6 then RF1-11");
    assert!(matches!(input, Input::Cancel { at, .. } if at == ts("2022-01-25T16:20:00Z")));
}

#[test]
fn orders_new_cancelled_for_no_show_and_unknown_controls() {
    let Ok(Mapped::Order(order)) = mapped("ms-fhir-converter/ORM-O01-01.hl7") else { panic!("ORM NW") };
    assert_eq!((order.source_ids[0].as_str(), order.referring_provider.as_str()), ("1101", "3850"), "ORC-2, ORC-12");
    assert_eq!(order.referring_provider_name.as_deref(), Some("JONES A ORDPROVIDER"), "ORC-12: given, middle, family");
    let Ok(Mapped::Order(order)) = mapped("node-hl7-complete/orm-example.hl7") else { panic!("wrapped ORM") };
    assert_eq!(order.source_ids, ["987654"]);
    let (target, input) = event("cdc-trusted-intermediary/001_Epic_ORM_O01.hl7");
    assert_eq!(target.keys, ["968906415"]);
    assert!(matches!(input, Input::NoShow { .. }), "ORC-1 CA with ORC-16 NS is a no-show");
    let e = refused("cdc-trusted-intermediary/001_Oracle_ORM_O01.hl7");
    assert_eq!(
        (e.code, e.error.code, e.error.segment, e.error.field),
        (AckCode::AE, ErrorCode::TableValueNotFound, Some("ORC"), Some(1))
    );
    assert!(matches!(mapped("ms-fhir-converter/OMG-O19-01.hl7"), Ok(Mapped::Ignore(_))), "ORC-1 SC: a status only");
}

#[test]
fn appointments_book_reschedule_cancel_and_no_show() {
    let (target, input) = event("ms-fhir-converter/SIU-S12-01.hl7");
    assert_eq!(target.specialty.as_ref().map(|s| s.as_str()), Some("gastroenterology"), "AIP-4 Gastroenterologist");
    assert!(target.fallback_allowed);
    assert_eq!(
        input,
        Input::Milestone {
            state: State::Scheduled,
            at: ts("2021-09-14T09:05:00Z"),
            appointment_at: Some(ts("2021-09-24T07:15:00Z")),
            channel: Some("hl7v2".into())
        },
        "TQ1-7 wins"
    );
    assert!(matches!(event("ms-fhir-converter/SIU-S13-01.hl7").1, Input::Milestone { state: State::Scheduled, .. }));
    assert!(
        matches!(event("ms-fhir-converter/SIU-S14-01.hl7").1, Input::Milestone { state: State::Scheduled, .. }),
        "SCH-25 Booked"
    );
    assert!(matches!(event("ms-fhir-converter/SIU-S15-01.hl7").1, Input::AppointmentCancelled { .. }));
    assert!(matches!(event("ms-fhir-converter/SIU-S26-01.hl7").1, Input::NoShow { .. }));
    let (_, arrived) = event("node-hl7-complete/siu-example.hl7");
    assert!(matches!(arrived, Input::Milestone { state: State::Attended, .. }), "SCH-25 ARRIVED: {arrived:?}");
}

#[test]
fn the_mirth_batch_books_from_ail_6_then_reschedules_then_cancels() {
    let all: Vec<Input> = mapped_all("mirth-connect/batch01.hl7")
        .into_iter()
        .map(|m| match m {
            Ok(Mapped::Event { input, .. }) => input,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        matches!(all[0], Input::Milestone { state: State::Scheduled, appointment_at: Some(a), .. } if a == ts("2011-06-14T08:45:00Z")),
        "AIL-6 precedes the legacy SCH-11.4: {:?}",
        all[0]
    );
    assert!(matches!(all[1], Input::Milestone { state: State::Scheduled, .. }));
    assert!(matches!(all[2], Input::AppointmentCancelled { .. }));
}

#[test]
fn visits_mark_attendance_at_the_visit_time() {
    let (target, input) = event("ms-fhir-converter/ADT-A04-01.hl7");
    assert_eq!(target.patient.as_ref().map(|p| p.as_str()), Some("PATID1234"));
    assert!(
        matches!(input, Input::Milestone { state: State::Attended, at, .. } if at == ts("2015-02-08T10:24:19Z")),
        "{input:?}"
    );
    assert!(matches!(event("ms-fhir-converter/ADT-A03-01.hl7").1, Input::Milestone { state: State::Attended, .. }));
    for file in ["ms-fhir-converter/ADT01-23.hl7", "node-hl7-complete/adt-example.hl7"] {
        let e = refused(file);
        assert_eq!((e.code, e.error.code), (AckCode::AR, ErrorCode::UnsupportedEvent), "{file}: ADT^A01 is not taken");
    }
}

#[test]
fn documents_and_reports_close_the_loop_only_when_final() {
    let (target, input) = event("ms-fhir-converter/MDM-T02-01.hl7");
    assert_eq!(target.keys, ["00012345"], "TXA-14 / ORC-2 placer number");
    assert!(matches!(input, Input::Milestone { state: State::NoteReceived, .. }));
    assert!(matches!(mapped("ms-fhir-converter/MDM-T02-03.hl7"), Ok(Mapped::Ignore(_))), "TXA-17 IP: not final");
    assert!(
        matches!(event("node-hl7-complete/mdm-example.hl7").1, Input::Milestone { state: State::NoteReceived, .. }),
        "T04, LA"
    );
    for file in ["cdc-trusted-intermediary/002_CA_ORU_R01.hl7", "node-hl7-complete/cerner_en.hl7"] {
        assert!(matches!(mapped(file), Ok(Mapped::Ignore(_))), "{file}: a lab result, not a consult report");
    }
}

#[test]
fn a_consult_report_oru_is_a_note_even_without_a_referral_number() {
    let cfg = MapConfig::with_defaults(TimeZone::UTC);
    let m = parse(b"MSH|^~\\&|LAB|SPEC|RL|PCP|202603101200||ORU^R01|X1|P|2.5.1\rPID|1||MRN9^^^H^MR\rOBR|1|||11488-4^Consult note^LN|||||||||||||||||||||F\rOBX|1|TX|11488-4^Consult note^LN||Seen today.||||||F\r").unwrap();
    let Ok(Mapped::Event { target, input }) = map(&m, &cfg, ts("2026-03-10T12:00:00Z")) else { panic!() };
    assert!(target.fallback_allowed && target.keys.is_empty());
    assert!(matches!(input, Input::Milestone { state: State::NoteReceived, .. }));
}

#[test]
fn headers_with_unsupported_versions_or_no_control_id_are_refused() {
    for (msh, code, err) in [
        ("MSH|^~\\&|A|B|C|D|2026||REF^I12|1|P|3.0", AckCode::AR, ErrorCode::UnsupportedVersion),
        ("MSH|^~\\&|A|B|C|D|2026||REF^I12|1|X|2.5", AckCode::AR, ErrorCode::UnsupportedProcessingId),
        ("MSH|^~\\&|A|B|C|D|2026||REF^I12||P|2.5", AckCode::AE, ErrorCode::RequiredFieldMissing),
    ] {
        let m = parse(format!("{msh}\r").as_bytes()).unwrap();
        let e = check_header(&m).unwrap_err();
        assert_eq!((e.code, e.error.code), (code, err), "{msh}");
    }
    let m = parse(b"MSH|^~\\&|A|B|C|D|2026||REF^I12|1|P|2.5\rRF1|P\rPID|1||M1\r").unwrap();
    let e = map(&m, &MapConfig::with_defaults(TimeZone::UTC), ts("2026-01-01T00:00:00Z")).unwrap_err();
    assert_eq!((e.code, e.error.segment, e.error.field), (AckCode::AE, Some("RF1"), Some(6)));
}

#[test]
fn the_specialist_accepts_or_declines() {
    let cfg = MapConfig::with_defaults(TimeZone::UTC);
    let now = ts("2026-03-10T12:00:00Z");
    let rri = |status: &str| {
        let raw = format!(
            "MSH|^~\\&|SPEC|X|RL|PCP|202603101200||RRI^I12|R1|P|2.5\rRF1|{status}|R|CAR||O|R-1^EPIC\rPID|1||M1\r"
        );
        map(&parse(raw.as_bytes()).unwrap(), &cfg, now)
    };
    assert!(matches!(rri("A"), Ok(Mapped::Event { input: Input::SpecialistResponded { accepted: true, .. }, .. })));
    assert!(matches!(rri("R"), Ok(Mapped::Event { input: Input::SpecialistResponded { accepted: false, .. }, .. })));
    assert!(matches!(rri("P"), Ok(Mapped::Ignore(_))));
    let osu = |control: &str| {
        let raw =
            format!("MSH|^~\\&|SPEC|X|RL|PCP|202603101200||OSU^O51|O1|P|2.5\rPID|1||M1\rORC|{control}|O-1^EPIC\r");
        map(&parse(raw.as_bytes()).unwrap(), &cfg, now)
    };
    let Ok(Mapped::Event { target, input }) = osu("OK") else { panic!("OSU OK") };
    assert_eq!(
        (target.keys, input),
        (vec!["O-1".to_owned()], Input::SpecialistResponded { at: ts("2026-03-10T12:00:00Z"), accepted: true })
    );
    assert!(matches!(osu("UA"), Ok(Mapped::Event { input: Input::SpecialistResponded { accepted: false, .. }, .. })));
}

#[test]
fn urgency_comes_from_rf1_2_tq1_9_or_obr_27() {
    let cfg = MapConfig::with_defaults(TimeZone::UTC);
    let now = ts("2026-03-10T12:00:00Z");
    let order = |segments: &str| -> Urgency {
        let raw = format!(
            "MSH|^~\\&|EHR|X|RL|PCP|202603101200||ORM^O01|O1|P|2.3\rPID|1||M1\rORC|NW|O-1||||||||||DR1\r{segments}"
        );
        match map(&parse(raw.as_bytes()).unwrap(), &cfg, now) {
            Ok(Mapped::Order(o)) => o.urgency,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(order("TQ1|1||||||||S\r"), Urgency::Stat);
    assert_eq!(order("OBR|1|O-1||X^Consult|||||||||||||||||||||||^^^^^A\r"), Urgency::Asap);
    assert_eq!(order("OBR|1|O-1||X^Consult\r"), Urgency::Routine);
}
