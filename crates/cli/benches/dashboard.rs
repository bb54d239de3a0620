//! The dashboard at scale: p50/p95 latency of its queries (the closure report for the last
//! quarter, split by specialty) and of the whole page over HTTP, with 1,000,000 referrals.
//!
//! `cargo bench -p refloop-cli --bench dashboard` runs it on a fresh SQLite file; with
//! `BENCH_POSTGRES_URL` set, on a fresh PostgreSQL schema too. `BENCH_REFERRALS` changes the
//! count (default 1,000,000) and `BENCH_RUNS` the samples (default 30). The generator spreads
//! the referrals over two years ending today, in order of arrival, at every stage of the loop
//! (leak shares as in the seed article), and writes them through the store's own insert path
//! in large transactions. `BENCH_SQLITE_FILE` / `BENCH_POSTGRES_SCHEMA` keep the data for the
//! next run.

mod common;

use std::{sync::Arc, time::Instant};

use jiff::{SignedDuration, Timestamp};
use refloop_app::{App, GroupBy, ManualClock, Role};
use refloop_connectors::LogOnly;
use refloop_domain::{
    Milestones, Network, Origin, PatientId, Policy, Progress, ProviderId, Referral, ReferralId, Specialty, State,
    Urgency,
};
use refloop_sim::Rng;
use refloop_store::SqlStore;

const SPECIALTIES: &[&str] = &[
    "cardiology",
    "dermatology",
    "orthopedics",
    "neurology",
    "gastroenterology",
    "endocrinology",
    "ophthalmology",
    "urology",
];

fn days(d: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(d * 86_400.0)
}

/// One referral, `i` of `n`, ordered in the two years before `now`, as far along as its age allows.
fn referral(i: u64, n: u64, now: Timestamp, rng: &mut Rng) -> Referral {
    // Orders arrive in time order, as they do from an EHR, a few minutes of jitter apart.
    let span = 730 * 86_400;
    let age = span - (i as i64 * span / n.max(1) as i64) + rng.below(600) as i64;
    let ordered = now - SignedDuration::from_secs(age.max(1));
    let mut m = Milestones { ordered: Some(ordered), ..Milestones::default() };
    let mut state = State::Ordered;
    let mut at = ordered;
    let mut step = |p: f64, d: f64, rng: &mut Rng| -> Option<Timestamp> {
        let next = at + days(d * (0.5 + rng.below(100) as f64 / 100.0));
        (rng.chance(p) && next < now).then(|| {
            at = next;
            next
        })
    };
    m.patient_notified = step(0.88, 1.0, rng);
    if m.patient_notified.is_some() {
        state = State::PatientNotified;
        m.scheduled = step(0.75, 6.0, rng);
    }
    let mut appointment = None;
    if m.scheduled.is_some() {
        state = State::Scheduled;
        appointment = m.scheduled.map(|s| s + days(14.0));
        m.attended = step(0.87, 14.0, rng);
    }
    if m.attended.is_some() {
        state = State::Attended;
        m.note_received = step(0.7, 12.0, rng);
    }
    if m.note_received.is_some() {
        state = State::NoteReceived;
    }
    let mut close_reason = None;
    if state.is_open() && rng.chance(0.05) {
        state = State::ClosedIncomplete;
        close_reason = Some("patient declined".to_owned());
        m.closed_incomplete = Some(at + days(30.0)).filter(|t| *t < now);
    } else if state == State::Ordered && rng.chance(0.03) {
        state = State::Cancelled;
        m.cancelled = Some(ordered + days(1.0)).filter(|t| *t < now);
    }
    let escalated = m.scheduled.is_none_or(|s| s > ordered + days(7.0)) && ordered + days(7.0) < now;
    Referral {
        id: ReferralId::parse(&format!("ref-bench-{i:08}")).unwrap(),
        version: 1,
        state,
        patient_id: PatientId::parse(&format!("p{i}")).unwrap(),
        referring_provider: ProviderId::parse(&format!("dr-{:02}", rng.below(40))).unwrap(),
        specialty: Some(Specialty::parse(SPECIALTIES[rng.below(SPECIALTIES.len() as u64) as usize]).unwrap()),
        specialist: Some(format!("Specialist {:02}", rng.below(60))),
        urgency: if rng.chance(0.15) { Urgency::Urgent } else { Urgency::Routine },
        origin: Origin::PhysicianOrder,
        network: if rng.chance(0.4) { Network::InNetwork } else { Network::OutOfNetwork },
        reason: None,
        source_ids: vec![],
        ordered_at: ordered,
        milestones: m,
        appointment_at: appointment,
        duplicate_of: None,
        shadow: false,
        close_reason,
        no_shows: 0,
        last_no_show_at: None,
        awaiting_since: None,
        progress: Progress { scheduling_escalated_for: escalated.then_some(ordered), ..Progress::default() },
    }
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.95))
}

async fn run(label: &str, url: &str, n: u64, runs: usize) {
    let store = SqlStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let now: Timestamp = "2026-11-27T15:00:00Z".parse().unwrap();
    let store = Arc::new(store);
    let started = Instant::now();
    let mut rng = Rng::new(7);
    // A file kept from an earlier run (BENCH_SQLITE_FILE) is used as it is.
    let one = refloop_app::ReferralFilter { limit: 1, ..Default::default() };
    let existing = refloop_app::store::ReferralStore::referrals(store.as_ref(), &one).await.expect("read");
    let mut i = if existing.items.is_empty() { 0 } else { n };
    while i < n {
        let mut tx = refloop_app::store::Store::begin(store.as_ref()).await.expect("begin");
        for _ in 0..20_000.min(n - i) {
            tx.insert_referral(&referral(i, n, now, &mut rng), None, now).await.expect("insert");
            i += 1;
        }
        tx.commit().await.expect("commit");
    }
    let loaded = started.elapsed();

    let clock = Arc::new(ManualClock::new(now));
    let app = App::new(store.clone(), clock, Policy::default(), Arc::new(LogOnly));
    let from = now - SignedDuration::from_hours(90 * 24);
    let mut query_ms = Vec::new();
    let mut quarter = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let report = app.closure_overview(from, now, GroupBy::Specialty, None).await.expect("report");
        query_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        quarter = report.total.referrals;
    }

    // The page, over HTTP, signed in.
    let tz = app.policy().time_zone.clone();
    let state = refloop_web::AppState {
        app: app.clone(),
        hl7: refloop_hl7::Ingest::new(app.clone(), refloop_hl7::MapConfig::with_defaults(tz.clone())),
        fhir: refloop_fhir::FhirIngest::new(
            app.clone(),
            refloop_fhir::FhirConfig { time_zone: tz, specialty_map: Default::default() },
        ),
        poller: None,
        sms: None,
        fax: None,
        metrics: None,
        ui: refloop_web::UiInfo::default(),
        oidc: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(refloop_web::serve(state, listener, std::future::pending()));
    app.save_user("bench", Role::Viewer, "bench password").await.unwrap();
    let session = app.login("bench", "bench password", None).await.unwrap().unwrap();
    let http = reqwest::Client::new();
    let mut page_ms = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let resp = http
            .get(format!("{base}/"))
            .header("cookie", format!("refloop_session={}", session.token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        page_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(html.contains("closed-loop-rate"));
    }
    let (q50, q95) = percentiles(query_ms);
    let (p50, p95) = percentiles(page_ms);
    println!(
        "{label:<10} {n} referrals (loaded in {:.0} s), {quarter} in the last quarter: \
         closure query p50 {q50:.0} ms p95 {q95:.0} ms; dashboard page p50 {p50:.0} ms p95 {p95:.0} ms ({runs} runs)",
        loaded.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: u64 = std::env::var("BENCH_REFERRALS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    common::on_each_backend(|label, url| async move { run(label, &url, n, runs).await }).await;
}
