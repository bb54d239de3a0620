//! CMS50 over the 17 official MADiE test Bundles: the measure facts are taken from each
//! Bundle's resources (never its MeasureReport), and the computed initial population,
//! denominator and numerator must equal the MeasureReport's counts.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use refloop_domain::cms50::{Fact, Period, measure};
use serde_json::Value;

fn count(report: &Value, population: &str) -> usize {
    report["group"][0]["population"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == population)
        .and_then(|p| p["count"].as_u64())
        .unwrap_or(0) as usize
}

#[test]
fn every_official_test_case_gives_the_expected_counts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cms50");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 17);
    let period = Period::year(2026, &TimeZone::UTC).unwrap();
    for f in files {
        let bundle: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let mut patients: BTreeMap<String, Vec<Fact>> = BTreeMap::new();
        let mut expected = None;
        for e in bundle["entry"].as_array().unwrap() {
            let r = &e["resource"];
            if r["resourceType"] == "MeasureReport" {
                expected = Some(r.clone());
            } else if let Some((_, patient, fact)) = refloop_fhir::cms50::fact_of(r, &TimeZone::UTC) {
                patients.entry(patient).or_default().push(fact);
            }
        }
        let expected = expected.expect("a MeasureReport");
        let got = measure(patients.iter().map(|(p, f)| (p.as_str(), f.as_slice())), &period);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            (got.practice.initial_population, got.practice.denominator, got.practice.numerator),
            (count(&expected, "initial-population"), count(&expected, "denominator"), count(&expected, "numerator")),
            "{name}"
        );
    }
}
