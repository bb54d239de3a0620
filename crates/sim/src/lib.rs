//! The practice simulator. A seeded practice (providers, specialties, specialists in and out
//! of network, patients with phones, consent and time zones) orders referrals; each referral's
//! patient and specialist carry a fate drawn once from the seed: whether each stage leaks,
//! whether staff working by hand recover it, whether the workflow would. The real engine runs
//! on a manual clock, day by day, twice on the same fates: a baseline where the workflow never
//! acts (every provider outside the pilot) and a run with the workflow. The simulated people
//! answer what the engine actually does — a delivered SMS, a staff task, a note request — so
//! the difference between the runs is the workflow's.

mod bands;
mod demo;
mod params;
mod people;
pub mod rng;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use jiff::{SignedDuration, Timestamp};
use refloop_app::{
    Actor, App, AppError, Connector, DeliveryOutcome, ManualClock, NewReferral, OutboxItem, PatientInput, Store,
    TaskFilter, TaskStatus,
};
use refloop_domain::{
    Channel, Input, Network, Origin, PatientId, Policy, ProviderId, Purpose, ReferralId, Specialty, StageWindows,
    State, TaskKind, Urgency, Window,
};
use serde::Serialize;

pub use bands::{BANDS, Band, Check, check};
pub use demo::{DEMO_PREFIX, DemoPractice, demo_directory};
pub use params::{Assumption, Params, StageParams};
use people::Run;
pub use rng::Rng;

/// The first day of orders. Fixed, so a seed always gives the same output.
pub const START: &str = "2026-01-05T00:00:00Z";

/// Each referral's source id starts with this (the demo uses its own prefix).
pub const SOURCE_PREFIX: &str = "sim:";

/// One stage of a referral's fate.
#[derive(Clone, Copy, Debug)]
struct Stage {
    /// The stage does not happen on its own.
    leaks: bool,
    /// Staff working by hand find the leak and chase it (the baseline) …
    chased: bool,
    /// … and the chase works.
    by_hand: bool,
    /// The workflow's prompt recovers the leak when nothing else would.
    recovered: bool,
}

impl Stage {
    fn draw(rng: &mut Rng, p: &StageParams, chase: f64, success: f64) -> Stage {
        let leaks = rng.chance(p.leak);
        let chased = rng.chance(chase);
        let works = rng.chance(success);
        let recovered = rng.chance(p.recovered_by_workflow);
        Stage { leaks, chased, by_hand: chased && works, recovered }
    }

    /// Whether it happens once the workflow (or a worklist call) prompts it: the people a
    /// chase by hand would move answer a worklist call too.
    fn workflow(&self) -> bool {
        !self.leaks || self.by_hand || self.recovered
    }
}

/// A referral, its patient, and what they will do.
#[derive(Clone, Debug)]
struct Fate {
    ordered_at: Timestamp,
    provider: String,
    specialty: String,
    specialist: String,
    network: Network,
    urgent: bool,
    phone: String,
    consent: bool,
    time_zone: &'static str,
    notify: Stage,
    schedule: Stage,
    attend: Stage,
    note: Stage,
    days_to_notify: f64,
    days_to_schedule: f64,
    days_to_visit: f64,
    days_to_note: f64,
    days_to_respond: f64,
    days_to_find_by_hand: f64,
    days_to_file_by_hand: f64,
    /// With the booking-link what-if: a texted patient who would not have booked books from
    /// the link (their specialist has a booking page).
    link_books: bool,
    /// With the languages what-if: a texted limited-English patient who would not have booked
    /// books once the texts are in their language.
    language_books: bool,
}

impl Fate {
    /// The workflow texts this patient (consent and a valid number).
    fn texted(&self) -> bool {
        self.consent && self.phone.starts_with('+')
    }
}

const TIME_ZONES: [(&str, f64); 4] =
    [("America/New_York", 0.45), ("America/Chicago", 0.3), ("America/Denver", 0.1), ("America/Los_Angeles", 0.15)];

fn days(d: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(d * 86_400.0)
}

/// The practice's referrals over `days`, in order, with their fates.
fn draw_fates(p: &Params, start: Timestamp) -> Vec<Fate> {
    let mut rng = Rng::new(p.seed);
    let per_day = f64::from(p.referrals_per_month) * 12.0 / 365.0;
    let weights: Vec<f64> = p.specialties.iter().map(|(_, w)| *w).collect();
    let tz_weights: Vec<f64> = TIME_ZONES.iter().map(|(_, w)| *w).collect();
    let mut fates = Vec::new();
    let mut owed = 0.0;
    // The what-ifs draw from their own stream, so the fates above are the same with them on.
    let mut what_if = Rng::new(refloop_domain::fnv1a(p.seed ^ 0x0b00_c1ed_1a06, b"what-if".iter().copied()));
    for day in 0..p.days {
        owed += per_day;
        let today = owed.floor();
        owed -= today;
        // Orders fall between 08:00 and 17:00 UTC-ish office hours of the practice's day.
        let mut times: Vec<f64> = (0..today as u32).map(|_| 8.0 + rng.unit() * 9.0).collect();
        times.sort_by(f64::total_cmp);
        for hour in times {
            let specialty = &p.specialties[rng.pick(&weights)].0;
            let specialist_n = rng.below(u64::from(p.specialists_per_specialty.max(1)));
            fates.push(Fate {
                ordered_at: start + days(f64::from(day)) + SignedDuration::from_secs_f64(hour * 3600.0),
                provider: format!("dr-{:02}", rng.below(u64::from(p.providers.max(1))) + 1),
                specialty: specialty.clone(),
                specialist: format!("Dr {} {}", capitalised(specialty), (b'A' + specialist_n as u8) as char),
                network: if specialist_network(p, specialty, specialist_n) {
                    Network::InNetwork
                } else {
                    Network::OutOfNetwork
                },
                urgent: rng.chance(p.urgent_share),
                phone: if rng.chance(p.valid_phone_share) {
                    format!("+1555{:07}", rng.below(10_000_000))
                } else {
                    "555-01".to_owned()
                },
                consent: rng.chance(p.sms_consent_share),
                time_zone: TIME_ZONES[rng.pick(&tz_weights)].0,
                notify: Stage::draw(&mut rng, &p.not_notified, p.manual_chase, p.manual_chase_success),
                schedule: Stage::draw(&mut rng, &p.never_schedules, p.manual_chase, p.manual_chase_success),
                attend: Stage::draw(&mut rng, &p.no_show, p.manual_chase, p.manual_chase_success),
                note: Stage::draw(&mut rng, &p.no_note, p.manual_chase, p.manual_chase_success),
                days_to_notify: rng.exp(p.mean_days_to_notify_by_hand).min(14.0),
                days_to_schedule: rng.exp(p.mean_days_notified_to_scheduled).min(30.0),
                days_to_visit: 1.0 + rng.exp(p.mean_days_scheduled_to_visit - 1.0).min(45.0),
                days_to_note: rng.exp(p.mean_days_visit_to_note).min(60.0),
                days_to_respond: 0.5 + rng.exp(p.mean_days_to_respond_to_workflow - 0.5).min(14.0),
                days_to_find_by_hand: rng.exp(p.mean_days_to_find_by_hand).min(60.0),
                days_to_file_by_hand: rng.exp(p.mean_days_to_file_by_hand).min(90.0),
                link_books: {
                    let (page, books) =
                        (booking_page(p, specialty, specialist_n), what_if.chance(p.booking_link_books));
                    p.booking_links && page && books
                },
                language_books: {
                    let (lep, books) = (what_if.chance(p.limited_english_share), what_if.chance(p.language_books));
                    p.languages && lep && books
                },
            });
        }
    }
    fates
}

/// Whether a specialist is in network: a fixed draw per specialist from the seed.
fn specialist_network(p: &Params, specialty: &str, n: u64) -> bool {
    let h = refloop_domain::fnv1a(p.seed ^ 0x51_7cc1_b727_220a, specialty.bytes().chain(n.to_le_bytes()));
    Rng::new(h).chance(p.in_network_share)
}

/// Whether a specialist has a booking page: a fixed draw per specialist from the seed.
fn booking_page(p: &Params, specialty: &str, n: u64) -> bool {
    let h = refloop_domain::fnv1a(p.seed ^ 0x0b00_c1ed_0000, specialty.bytes().chain(n.to_le_bytes()));
    Rng::new(h).chance(p.booking_page_share)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// What one run gives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// Tracked referrals ordered in the simulated days.
    pub referrals: usize,
    pub closed_loop: usize,
    /// Note received ÷ tracked, 0–1.
    pub closed_loop_rate: Option<f64>,
    pub median_days_to_note: Option<f64>,
    /// The seed article's "average days to consult note".
    pub mean_days_to_note: Option<f64>,
    pub leakage_by_stage: BTreeMap<&'static str, usize>,
    pub leakage_by_reason: BTreeMap<String, usize>,
    /// Referrals with no appointment when their first scheduling window ran out …
    pub unscheduled_at_window: usize,
    /// … and of those, how many someone followed up (staff by hand, or a worklist task): the
    /// seed article's "unscheduled-referral catch rate" is their share.
    pub followed_up_unscheduled: usize,
    pub unscheduled_catch_rate: Option<f64>,
    /// The closure report's figure: of the referrals escalated while unscheduled, the share
    /// scheduled afterwards (none in the baseline, where nothing escalates).
    pub scheduled_after_escalation_rate: Option<f64>,
    /// Messages the workflow sent (SMS, chat, EHR tasks, note requests…).
    pub messages_sent: u64,
    /// Staff tasks the workflow opened, and by kind.
    pub tasks_opened: u64,
    pub tasks_by_kind: BTreeMap<&'static str, u64>,
    /// Leaks staff chased by hand (the baseline).
    pub chases_by_hand: u64,
    /// Staff time chasing referrals: chases by hand and worklist tasks at their minutes
    /// (assumptions), per week of orders.
    pub staff_hours_per_week: f64,
    /// The what-ifs: patients who booked from the link in their text, and after texts in
    /// their language (workflow run; 0 when off).
    pub booked_from_link: u64,
    pub booked_in_language: u64,
}

/// Both runs and the assumptions behind them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub parameters: BTreeMap<&'static str, serde_json::Value>,
    pub baseline: RunResult,
    pub workflow: RunResult,
    /// The period the figures cover: referrals ordered in `[from, to)`.
    pub from: Timestamp,
    pub to: Timestamp,
    /// Each figure of the seed article's before/after table against its band.
    pub checks: Vec<Check>,
}

/// Runs the baseline and the workflow on the same practice and fates. The workflow run goes
/// into `workflow_database` when given (a fresh SQLite file or PostgreSQL database), else a
/// scratch file; `progress(done, total)` is called once per simulated day.
pub async fn simulate(
    p: &Params,
    workflow_database: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Outcome, AppError> {
    if p.specialties.is_empty() || p.referrals_per_month == 0 || p.days == 0 {
        return Err(AppError::invalid("parameters", "at least one specialty, one referral a month and one day"));
    }
    let start: Timestamp = START.parse().map_err(|_| AppError::Internal("bad start".into()))?;
    let fates = draw_fates(p, start);
    let total = 2 * u64::from(p.days + p.follow_days);
    let dir = tempfile::tempdir().map_err(|e| AppError::Internal(format!("a scratch directory: {e}")))?;
    let scratch = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let workflow_db = workflow_database.map_or_else(|| scratch("workflow.db"), str::to_owned);
    // The two runs share nothing but the fates: they run side by side.
    let fates = Arc::new(fates);
    let done = [Arc::new(std::sync::atomic::AtomicU64::new(0)), Arc::new(std::sync::atomic::AtomicU64::new(0))];
    let spawn = |url: String, workflow: bool, done: &Arc<std::sync::atomic::AtomicU64>| {
        tokio::spawn(run(p.clone(), fates.clone(), start, url, workflow, done.clone()))
    };
    let mut baseline = spawn(scratch("baseline.db"), false, &done[0]);
    let mut workflow = spawn(workflow_db, true, &done[1]);
    let joined = |r: Result<Result<RunResult, AppError>, tokio::task::JoinError>| {
        r.map_err(|e| AppError::Internal(format!("a simulation run stopped: {e}")))?
    };
    let (mut b, mut w) = (None, None);
    let mut every = tokio::time::interval(std::time::Duration::from_millis(200));
    while b.is_none() || w.is_none() {
        tokio::select! {
            r = &mut baseline, if b.is_none() => b = Some(joined(r)?),
            r = &mut workflow, if w.is_none() => w = Some(joined(r)?),
            _ = every.tick() => {}
        }
        progress(done.iter().map(|d| d.load(std::sync::atomic::Ordering::Relaxed)).sum(), total);
    }
    let (baseline, workflow) = (b.expect("finished"), w.expect("finished"));
    Ok(Outcome {
        parameters: p.assumptions().into_iter().map(|a| (a.name, a.value)).collect(),
        checks: check(&baseline, &workflow),
        baseline,
        workflow,
        from: start,
        to: start + days(f64::from(p.days)),
    })
}

/// The simulated connectors: every channel answers at once; an SMS to a patient the fate says
/// cannot be reached bounces. Each delivery is logged for the people to answer. `serve --demo`
/// sends the demo practice's messages here (its channels are `simulated`, never the log).
#[derive(Default)]
pub struct SimConnector {
    reachable: Mutex<HashMap<ReferralId, bool>>,
    log: Mutex<Vec<(ReferralId, Channel, Purpose)>>,
    sent: Mutex<u64>,
}

#[async_trait::async_trait]
impl Connector for SimConnector {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        let bounce = item.channel == Channel::Sms
            && item.purpose == Purpose::PatientNotification
            && !self.reachable.lock().expect("lock").get(&item.referral_id).copied().unwrap_or(true);
        if bounce {
            return DeliveryOutcome::Permanent { error: "undelivered (simulated)".into() };
        }
        *self.sent.lock().expect("lock") += 1;
        let mut log = self.log.lock().expect("lock");
        // Bounded: a demo started again on its own data has no people reading the log.
        if log.len() < 100_000 {
            log.push((item.referral_id.clone(), item.channel, item.purpose));
        }
        DeliveryOutcome::Delivered
    }

    fn mode(&self, _channel: Channel) -> refloop_app::ChannelMode {
        refloop_app::ChannelMode::Simulated
    }
}

async fn run(
    p: Params,
    fates: Arc<Vec<Fate>>,
    start: Timestamp,
    url: String,
    workflow: bool,
    days_done: Arc<std::sync::atomic::AtomicU64>,
) -> Result<RunResult, AppError> {
    let url = url.as_str();
    let store = if url.starts_with("sqlite:") {
        refloop_store::SqlStore::connect_scratch(url).await?
    } else {
        refloop_store::SqlStore::connect(url).await?
    };
    store.migrate().await?;
    let store: Arc<dyn Store> = Arc::new(store);
    let one = refloop_app::ReferralFilter { limit: 1, ..Default::default() };
    if !store.referrals(&one).await?.items.is_empty() {
        return Err(AppError::Conflict("the simulation needs an empty database".into()));
    }
    let clock = Arc::new(ManualClock::new(start));
    let mut policy = Policy { portal_messages: p.portal_messages, ..Policy::default() };
    if !workflow {
        // Every provider outside the pilot: referrals are tracked, the workflow never acts.
        policy.pilot_providers = vec![ProviderId::parse("sim-no-pilot").map_err(AppError::from)?];
    }
    let connector = Arc::new(SimConnector::default());
    let app = App::new(store, clock.clone(), policy, connector.clone());
    let mut r = Run::new(app, fates.to_vec(), workflow, SOURCE_PREFIX);
    let p = &p;
    for day in 0..p.days + p.follow_days {
        let end = start + days(f64::from(day) + 1.0) - SignedDuration::from_secs(1);
        clock.set(end);
        r.step(end, &connector).await?;
        days_done.store(u64::from(day) + 1, std::sync::atomic::Ordering::Relaxed);
    }
    let to = start + days(f64::from(p.days));
    let report = r.app.closure_report(start, to, None).await?.total;
    let sent = *connector.sent.lock().expect("lock");
    let (unscheduled, followed) = r.unscheduled_catch();
    Ok(RunResult {
        referrals: report.referrals,
        closed_loop: report.closed_loop,
        closed_loop_rate: report.closed_loop_rate,
        median_days_to_note: report.days.get("order-to-note").and_then(|d| d.median_days),
        mean_days_to_note: report.days.get("order-to-note").and_then(|d| d.mean_days),
        leakage_by_stage: report.leakage_by_stage,
        leakage_by_reason: report.leakage_by_reason,
        unscheduled_at_window: unscheduled,
        followed_up_unscheduled: followed,
        unscheduled_catch_rate: (unscheduled > 0).then(|| followed as f64 / unscheduled as f64),
        scheduled_after_escalation_rate: report.unscheduled_catch_rate,
        messages_sent: sent,
        tasks_opened: r.tasks_by_kind.values().sum(),
        tasks_by_kind: r.tasks_by_kind.clone(),
        chases_by_hand: r.chases_by_hand,
        staff_hours_per_week: r.staff_hours_per_week(p),
        booked_from_link: r.booked_from_link,
        booked_in_language: r.booked_in_language,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The languages what-if with every patient limited-English: the texts in their language
    /// bring bookings, the baseline is the same practice, and the workflow closes more loops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn texts_in_the_patients_language_bring_bookings_when_the_what_if_is_on() {
        let small = Params { referrals_per_month: 90, days: 20, providers: 4, seed: 11, ..Params::default() };
        let on = Params { languages: true, limited_english_share: 1.0, ..small.clone() };
        let quiet = |_: u64, _: u64| {};
        let (off, on) = (simulate(&small, None, &quiet).await.unwrap(), simulate(&on, None, &quiet).await.unwrap());
        assert_eq!(off.baseline, on.baseline, "the baseline sends no texts");
        assert_eq!(off.workflow.booked_in_language, 0);
        assert!(on.workflow.booked_in_language > 0, "{:?}", on.workflow);
        assert_eq!(on.workflow.booked_from_link, 0, "only the what-if asked for");
        assert!(
            on.workflow.closed_loop >= off.workflow.closed_loop,
            "{} < {}",
            on.workflow.closed_loop,
            off.workflow.closed_loop
        );
    }
}
