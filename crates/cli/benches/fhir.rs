//! FHIR ingest: transaction Bundles of 100 new referrals (each a Patient and a
//! ServiceRequest), applied all-or-nothing with durable commits, on SQLite and (with
//! `BENCH_POSTGRES_URL`) PostgreSQL.
//!
//! `cargo bench -p refloop-cli --bench fhir`. `BENCH_BUNDLES` sets the count (40). Each
//! bundle goes through the same path as `POST /fhir` (JSON parsing, validation, mapping,
//! inbox, referral, events, timers, outbox), without the HTTP hop.

mod common;

use std::{sync::Arc, time::Instant};

use jiff::Timestamp;
use refloop_app::{App, ManualClock};
use refloop_connectors::LogOnly;
use refloop_domain::Policy;
use refloop_fhir::{FhirConfig, FhirIngest};
use refloop_hl7::MapConfig;
use refloop_store::SqlStore;
use serde_json::{Value, json};

const PER_BUNDLE: usize = 100;

fn bundle(b: usize) -> Vec<u8> {
    let mut entry: Vec<Value> = Vec::with_capacity(PER_BUNDLE * 2);
    for i in 0..PER_BUNDLE {
        let patient = format!("pt-{b}-{i}");
        entry.push(json!({"resource": {"resourceType": "Patient", "id": patient,
            "telecom": [{"system": "sms", "value": "+15555550123"}]},
            "request": {"method": "PUT", "url": format!("Patient/{patient}")}}));
        let sr = format!("sr-{b}-{i}");
        let specialty = ["cardiology", "dermatology", "neurology"][i % 3];
        entry.push(json!({"resource": {"resourceType": "ServiceRequest", "id": sr, "status": "active",
            "intent": "order", "priority": if i % 5 == 0 { "urgent" } else { "routine" },
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "103696004"}]}],
            "subject": {"reference": format!("Patient/{patient}")},
            "requester": {"reference": format!("Practitioner/dr{}", i % 12)},
            "performerType": {"coding": [{"code": specialty}]},
            "identifier": [{"system": "urn:oid:1.2.3", "value": format!("PLAC-{b}-{i}")}],
            "authoredOn": "2026-03-02T14:00:00Z"},
            "request": {"method": "PUT", "url": format!("ServiceRequest/{sr}")}}));
    }
    serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "transaction", "entry": entry})).unwrap()
}

async fn run(label: &str, url: &str, bundles: usize) {
    let store = SqlStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let t0: Timestamp = "2026-03-02T15:00:00Z".parse().unwrap();
    let app = App::new(Arc::new(store), Arc::new(ManualClock::new(t0)), Policy::default(), Arc::new(LogOnly));
    let map = MapConfig::with_defaults(jiff::tz::TimeZone::UTC);
    let ingest = FhirIngest::new(app, FhirConfig { time_zone: map.time_zone, specialty_map: map.specialty_map });
    let bodies: Vec<Vec<u8>> = (0..bundles).map(bundle).collect();
    let mut latencies = Vec::with_capacity(bundles);
    let started = Instant::now();
    for body in &bodies {
        let t = Instant::now();
        let reply = ingest.bundle(body, &refloop_app::Via::file()).await.expect("the bundle applies");
        assert_eq!(reply.applied, PER_BUNDLE * 2, "every resource applied");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let resources = bundles * PER_BUNDLE * 2;
    println!(
        "{label:<9} {bundles} transaction bundles of {PER_BUNDLE} referrals ({resources} resources) in {elapsed:.2} s = {:.0} resources/s ({:.0} referrals/s); per bundle p50 {:.1} ms, p99 {:.1} ms",
        resources as f64 / elapsed,
        (bundles * PER_BUNDLE) as f64 / elapsed,
        latencies[latencies.len() / 2],
        latencies[((latencies.len() - 1) as f64 * 0.99) as usize],
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("BENCH_BUNDLES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    common::on_each_backend(|label, url| async move { run(label, &url, n).await }).await;
}
