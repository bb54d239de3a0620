//! `refloop import fhir` against the real binary: the CMS50 test Bundles, the CMS50 measure
//! and value sets, the R4 message Bundle, and NDJSON import without error; a resend of a file
//! applies nothing twice; a file with a bad resource says which.

use refloop_testkit::{Backend, TestDb};

use crate::process::run;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fhir/tests/fixtures")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_bundles_and_ndjson_import() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (ok, _, err) = run(&["migrate", "--database", &db.url], &[]);
    assert!(ok, "{err}");
    let mut files: Vec<String> =
        std::fs::read_dir(fixtures().join("cms50")).unwrap().map(|f| f.unwrap().path().display().to_string()).collect();
    files.sort();
    assert_eq!(files.len(), 17);
    for extra in [
        "Measure-CMS50FHIRCRLReceiptofSpecialistReport.json",
        "valuesets-CMS50FHIRCRLReceiptofSpecialistReport-bundle.json",
        "fhir-r4-core-examples/Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json",
    ] {
        files.push(fixtures().join(extra).display().to_string());
    }
    let mut args = vec!["import", "fhir", "--database", &db.url];
    args.extend(files.iter().map(String::as_str));
    let (ok, out, err) = run(&args, &[]);
    assert!(ok, "{out}{err}");
    // 131 in the test Bundles, the Measure, 14 value sets, 3 in the message Bundle.
    assert!(out.contains("149 resources from 20 files: 149 applied"), "{out}");
    let (ok, out, _) = run(&args, &[]);
    assert!(ok && out.contains("149 applied"), "a resend is answered as before: {out}");

    // CMS50 over the imported test patients. 11 of the 17 cases are in the denominator and 4
    // in the numerator, but two NUMERPass cases ("1stAnd2nd…", "1stOf2…") refer to the same
    // subject, Patient/8f9f3df4…, so in one database they are one patient: 10 and 3. (Each
    // case on its own is checked in crates/fhir/tests/cms50.rs.) The measurement
    // period is the calendar year in the practice's time zone; the official cases were
    // evaluated in UTC, and their boundary cases are minutes from midnight.
    let utc = [("REFLOOP_PRACTICE_TIME_ZONE", "UTC")];
    let (ok, out, err) = run(&["report", "cms50", "--year", "2026", "--json", "--database", &db.url], &utc);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let practice = &report["practice"];
    assert_eq!((practice["initial_population"].as_u64(), practice["denominator"].as_u64()), (Some(10), Some(10)));
    assert_eq!((practice["numerator"].as_u64(), practice["rate"].as_f64()), (Some(3), Some(0.3)));
    assert_eq!(practice["patients"]["numerator"].as_array().unwrap().len(), 3);
    assert!(practice["patients"]["numerator"][0].as_str().unwrap().starts_with("Patient/"));
    assert_eq!(report["providers"]["(unattributed)"]["denominator"], 10, "the test referrals name no requester");
    let (ok, out, _) = run(&["report", "cms50", "--year", "2025", "--database", &db.url], &utc);
    assert!(ok && out.contains("practice") && out.contains("—"), "no one in 2025: {out}");

    let dir = tempfile::tempdir().unwrap();
    let ndjson = dir.path().join("ServiceRequest.ndjson");
    let line = |id: &str| {
        format!(
            r#"{{"resourceType":"ServiceRequest","id":"{id}","status":"active","intent":"order","subject":{{"reference":"Patient/nd1"}},"performerType":{{"text":"dermatology"}},"requester":{{"reference":"Practitioner/d9"}},"authoredOn":"2026-03-01"}}"#
        )
    };
    std::fs::write(&ndjson, format!("{}\n{}\n\n", line("nd-1"), line("nd-2"))).unwrap();
    let (ok, out, err) = run(&["import", "fhir", "--database", &db.url, ndjson.to_str().unwrap()], &[]);
    assert!(ok && out.contains("2 resources from 1 files: 2 applied"), "{out}{err}");

    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, format!("{}\n{}\n", line("nd-3"), line("nd-4").replace("\"active\"", "\"open\""))).unwrap();
    let (ok, out, err) = run(&["import", "fhir", "--database", &db.url, bad.to_str().unwrap()], &[]);
    assert!(!ok && out.contains("1 applied, 1 refused") && err.contains("1 resources refused"), "{out}{err}");
    let refused = format!("refused: {}: line 2: 4", bad.display());
    assert!(out.contains(&refused) && out.contains("ServiceRequest.status"), "the line and the element: {out}");
}
