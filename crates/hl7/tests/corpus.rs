//! Every file of the conformance corpus (copied into `fixtures/`, see its SOURCES.md):
//! what the parser reads from it, or how it refuses it.

use refloop_hl7::{AckCode, ParseError, build_ack, parse, split_batch};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn one(path: &str) -> refloop_hl7::Message {
    let bytes = fixture(path);
    let msgs = split_batch(&bytes);
    assert_eq!(msgs.len(), 1, "{path} holds one message");
    parse(&msgs[0]).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_fixture_parses_or_is_refused_and_none_panics() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for source in std::fs::read_dir(&dir).unwrap() {
        let source = source.unwrap().path();
        if !source.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&source).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            for msg in split_batch(&bytes) {
                let ack = match parse(&msg) {
                    Ok(m) => build_ack(Ok(&m), AckCode::AA, None, "T1", "20260302"),
                    Err(_) => build_ack(Err(&msg), AckCode::AR, None, "T1", "20260302"),
                };
                assert!(parse(ack.as_bytes()).is_ok(), "every ACK we build parses");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 27);
}

#[test]
fn ref_i12_v28_referral() {
    let m = one("ms-fhir-converter/REF-I12-01.hl7");
    assert_eq!(
        (m.message_type(), m.trigger(), m.version(), m.control_id()),
        (Some("REF"), Some("I12"), Some("2.8"), Some("MSG00112"))
    );
    let rf1 = m.segment("RF1").unwrap();
    assert_eq!(
        (rf1.get(1, 1), rf1.get(2, 1), rf1.get(3, 1), rf1.get(6, 1), rf1.get(6, 2)),
        (Some("P"), Some("R"), Some("Med"), Some("226839"), Some("EPIC"))
    );
    let roles: Vec<&str> = m.all("PRD").filter_map(|p| p.get(1, 1)).collect();
    assert_eq!(roles, ["RP", "RT"]);
    let pid = m.segment("PID").unwrap();
    assert_eq!((pid.get(3, 1), pid.repetitions(3)), (Some("PATID1234"), 2));
}

#[test]
fn siu_v28_appointment_start_in_tq1_and_ais() {
    let m = one("ms-fhir-converter/SIU-S12-01.hl7");
    let sch = m.segment("SCH").unwrap();
    assert_eq!(sch.get(25, 1), Some("Booked"));
    assert!(m.segment("TQ1").unwrap().get(7, 1).is_some());
    assert!(m.segment("AIS").unwrap().get(4, 1).is_some());
    for (file, trigger) in [("SIU-S13-01", "S13"), ("SIU-S14-01", "S14"), ("SIU-S15-01", "S15"), ("SIU-S26-01", "S26")]
    {
        assert_eq!(one(&format!("ms-fhir-converter/{file}.hl7")).trigger(), Some(trigger));
    }
}

#[test]
fn corepoint_siu_v23_keeps_its_start_only_in_sch_11() {
    let m = one("node-hl7-complete/siu-example.hl7");
    let sch = m.segment("SCH").unwrap();
    assert_eq!(sch.get(11, 4), Some("200803061000"), "trailing space trimmed");
    assert_eq!(sch.get(25, 1), Some("ARRIVED"));
    assert!(m.segment("TQ1").is_none());
}

#[test]
fn mirth_batch_holds_three_messages_for_one_appointment() {
    let msgs = split_batch(&fixture("mirth-connect/batch01.hl7"));
    let parsed: Vec<_> = msgs.iter().map(|b| parse(b).unwrap()).collect();
    let triggers: Vec<_> = parsed.iter().map(|m| m.trigger().unwrap()).collect();
    assert_eq!(triggers, ["S12", "S14", "S15"]);
    assert!(parsed.iter().all(|m| m.segment("SCH").unwrap().get(2, 1) == Some("2196178")));
    assert_eq!(parsed[0].segment("SCH").unwrap().get(11, 4), Some("20110617084500"));
    assert_eq!(parsed[0].segment("AIL").unwrap().get(6, 1), Some("20110614084500"), "the sources disagree");
}

#[test]
fn mdm_documents_and_oru_reports() {
    let m = one("ms-fhir-converter/MDM-T02-01.hl7");
    let txa = m.segment("TXA").unwrap();
    assert_eq!((txa.get(2, 1), txa.get(17, 1)), (Some("DI"), Some("AU")));
    assert!(txa.get(12, 1).is_some());
    let m = one("ms-fhir-converter/MDM-T02-03.hl7");
    assert_eq!((m.version(), m.segment("TXA").unwrap().get(2, 1)), (Some("2.3"), Some("DS")));
    let oru = one("cdc-trusted-intermediary/002_CA_ORU_R01.hl7");
    assert_eq!(oru.trigger(), Some("R01"));
    let units: Vec<&str> = oru.all("OBX").filter_map(|o| o.get(6, 1)).collect();
    assert!(units.contains(&"µmol/L"), "UTF-8 kept: {units:?}");
    let text: Vec<&str> = oru.all("OBX").filter_map(|o| o.get(5, 1)).collect();
    assert!(text.iter().any(|t| t.contains('\n')), "\\.br\\ became a line break");
    let cerner = one("node-hl7-complete/cerner_en.hl7");
    assert_eq!((cerner.message_type(), cerner.version()), (Some("ORU"), Some("2.5.1")));
}

#[test]
fn orders_from_epic_and_oracle() {
    let epic = one("cdc-trusted-intermediary/001_Epic_ORM_O01.hl7");
    let orc = epic.segment("ORC").unwrap();
    assert_eq!((orc.get(1, 1), orc.get(16, 1)), (Some("CA"), Some("NS")));
    let oracle = one("cdc-trusted-intermediary/001_Oracle_ORM_O01.hl7");
    assert_eq!(oracle.msh().get(18, 1), Some("8859/1"));
    assert_eq!(oracle.msh().get(3, 1), None, "empty MSH-3");
    assert!(
        oracle
            .all("ORC")
            .chain(oracle.all("OBR"))
            .chain(oracle.all("PID"))
            .any(|s| (1..=s.len()).any(|f| s.is_null(f))),
        "explicit nulls seen"
    );
    let omg = one("ms-fhir-converter/OMG-O19-01.hl7");
    assert_eq!((omg.message_type(), omg.trigger()), (Some("OMG"), Some("O19")), "a leading BOM is skipped");
    assert_eq!(one("ms-fhir-converter/ORM-O01-01.hl7").version(), Some("2.6"));
    let wrapped = one("node-hl7-complete/orm-example.hl7");
    assert_eq!(
        wrapped.segments.iter().filter(|s| s.id == "OBR").count(),
        1,
        "a wrapped phone number stays in its segment"
    );
}

#[test]
fn visits_and_admissions() {
    for (file, trigger) in [("ADT-A04-01", "A04"), ("ADT-A03-01", "A03"), ("ADT01-23", "A01")] {
        let m = one(&format!("ms-fhir-converter/{file}.hl7"));
        assert_eq!(m.trigger(), Some(trigger), "{file}");
        assert!(m.segment("PV1").is_some());
    }
    let pid = one("ms-fhir-converter/ADT01-23.hl7");
    assert!(pid.segments.iter().all(|s| !s.id.ends_with(' ')));
}

#[test]
fn malformed_pastes_parse_to_what_they_hold() {
    // Segments joined by spaces on one line: only the MSH is recognisable.
    let adt = one("node-hl7-complete/adt-example.hl7");
    assert_eq!(adt.segments.len(), 1);
    assert!(adt.segment("PID").is_none());
    let mdm = one("node-hl7-complete/mdm-example.hl7");
    assert_eq!(mdm.trigger(), Some("T04"));
}

#[test]
fn a_broken_msh_2_is_refused() {
    for file in ["linuxforhealth-hl7v2-fhir/sample_unix.hl7", "linuxforhealth-hl7v2-fhir/sample_win.hl7"] {
        let bytes = fixture(file);
        assert_eq!(parse(&bytes), Err(ParseError::BadDelimiters), "{file}");
    }
}

#[test]
fn an_ack_is_recognised_as_one() {
    let m = one("cdc-trusted-intermediary/001_Natus_ACK.hl7");
    assert_eq!((m.message_type(), m.trigger()), (Some("ACK"), None));
    assert_eq!(m.segment("MSA").unwrap().get(1, 1), Some("AA"));
}
