//! Whatever arrives, reading it never panics: arbitrary JSON, and the corpus examples with
//! any element replaced by any JSON value.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use refloop_fhir::{FhirConfig, map_resource};
use serde_json::{Value, json};

fn cfg() -> FhirConfig {
    FhirConfig { time_zone: TimeZone::UTC, specialty_map: BTreeMap::new() }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "active",
            "order",
            "booked",
            "2026-03-01",
            "2026-13-45T99:00:00Z",
            "Patient/x",
            "ref-"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["reference", "coding", "code", "system", "status", "start", "id", "value"]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn corpus() -> Vec<Value> {
    let dir = format!("{}/tests/fixtures/fhir-r4-core-examples", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f.unwrap().path()).unwrap()).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = map_resource(&v, &cfg(), "2026-03-01T00:00:00Z".parse().unwrap());
        }
    }

    #[test]
    fn any_element_replaced_never_panics(which in 0usize..13, key in 0usize..40, value in json_value()) {
        let mut resources = corpus();
        let n = resources.len();
        let r = &mut resources[which % n];
        let keys: Vec<String> = r.as_object().unwrap().keys().filter(|k| *k != "resourceType").cloned().collect();
        let k = keys[key % keys.len()].clone();
        r[k.as_str()] = value;
        let _ = map_resource(r, &cfg(), "2026-03-01T00:00:00Z".parse().unwrap());
    }
}
