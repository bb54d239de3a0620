//! The independent peers from PyPI that `scripts/test` installs in `target/fhir-venv`: the
//! FHIR R4 validator (`fhir.resources` 6.4.0) and python-hl7.

use std::path::PathBuf;

use serde_json::Value;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's Python (`TEST_FHIR_PYTHON`, else `target/fhir-venv/bin/python`).
pub fn python() -> PathBuf {
    let python = std::env::var("TEST_FHIR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/fhir-venv/bin/python"));
    assert!(python.exists(), "the Python test peers are missing at {}: run ./scripts/test", python.display());
    python
}

/// Runs `scripts/validate_fhir.py` (FHIR R4 4.0.1, `fhir.resources`) over `resources`; fails
/// the test with the validator's report unless every one is valid.
pub fn validate_fhir(resources: &[Value]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files: Vec<_> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let path = dir.path().join(format!("{i}-{}.json", r["resourceType"].as_str().unwrap_or("resource")));
            std::fs::write(&path, r.to_string()).expect("write a resource");
            path
        })
        .collect();
    let out = std::process::Command::new(python())
        .arg(root().join("scripts/validate_fhir.py"))
        .args(&files)
        .output()
        .expect("run the validator");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report.lines().filter(|l| l.starts_with("valid")).count(), resources.len(), "{report}");
}

/// Runs `scripts/validate_hl7.py` (hl7apy, strict) over `messages` (ER7 text); fails the test
/// with the validator's report unless every one is valid, and returns the structures it read
/// (`OMG_O19`, …).
pub fn validate_hl7(messages: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let path = dir.path().join(format!("{i}.hl7"));
            std::fs::write(&path, m).expect("write a message");
            path
        })
        .collect();
    let out = std::process::Command::new(python())
        .arg(root().join("scripts/validate_hl7.py"))
        .args(&files)
        .output()
        .expect("run the validator");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    report
        .lines()
        .filter_map(|l| l.strip_prefix("valid "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect()
}
