//! Timer firings per second with 100,000 open referrals.
//!
//! `cargo bench -p refloop-cli --bench timers` runs it on a fresh SQLite file; with
//! `BENCH_POSTGRES_URL` set it runs on a fresh schema of that PostgreSQL database too.
//! `BENCH_REFERRALS` changes the count. Each firing is the whole write path: lock the
//! referral, decide, update the projection, append events, re-arm timers, open a task,
//! enqueue two messages and write an audit row, in transactions of up to 200 firings.

mod common;

use std::{sync::Arc, time::Instant};

use jiff::{SignedDuration, Timestamp};
use refloop_app::{Actor, App, ManualClock, NewReferral, PatientInput};
use refloop_connectors::LogOnly;
use refloop_domain::{Network, Origin, PatientId, Policy, ProviderId, Specialty, Urgency};
use refloop_store::SqlStore;

const SPECIALTIES: &[&str] = &["cardiology", "dermatology", "orthopedics", "neurology", "gastroenterology"];

async fn run(label: &str, url: &str, n: usize) {
    let store = SqlStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let t0: Timestamp = "2026-03-02T15:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let app = App::new(Arc::new(store), clock.clone(), Policy::default(), Arc::new(LogOnly));
    let actor = Actor::system("bench");

    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| NewReferral {
                patient_id: PatientId::parse(&format!("p{i}")).unwrap(),
                patient: Some(PatientInput { sms_consent: Some(false), ..PatientInput::default() }),
                referring_provider: ProviderId::parse(&format!("dr-{}", i % 12)).unwrap(),
                referring_provider_name: None,
                specialty: Some(Specialty::parse(SPECIALTIES[i % SPECIALTIES.len()]).unwrap()),
                specialist: None,
                urgency: Urgency::Routine,
                origin: Origin::PhysicianOrder,
                network: Network::OutOfNetwork,
                reason: None,
                ordered_at: Some(t0 - SignedDuration::from_secs((i % 3600) as i64)),
                source_ids: vec![],
                historical: false,
            })
            .collect();
        app.create_referrals(&actor, batch).await.expect("create referrals");
    }
    let loaded = started.elapsed();

    clock.set(t0 + SignedDuration::from_hours(24 * 7));
    let started = Instant::now();
    let report = app.fire_due().await.expect("fire due timers");
    let elapsed = started.elapsed();
    assert_eq!(report.timers_fired as usize, n, "every day-7 timer fired once");
    println!(
        "{label:<10} {n} open referrals (loaded in {:.1} s): {} timer firings in {:.2} s = {:.0} firings/s",
        loaded.as_secs_f64(),
        report.timers_fired,
        elapsed.as_secs_f64(),
        report.timers_fired as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test harness probes
    }
    let n: usize = std::env::var("BENCH_REFERRALS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    common::on_each_backend(|label, url| async move { run(label, &url, n).await }).await;
}
