//! The practice simulator. A seeded practice (providers, specialties, specialists in and out
//! of network, patients with phones, consent and time zones) orders referrals; each referral's
//! patient and specialist carry a fate drawn once from the seed: whether each stage leaks,
//! whether staff working by hand recover it, whether the workflow would. The real engine runs
//! on a manual clock, day by day, twice on the same fates: a baseline where the workflow never
//! acts (every provider outside the pilot) and a run with the workflow. The simulated people
//! answer what the engine actually does — a delivered SMS, a staff task, a note request — so
//! the difference between the runs is the workflow's.

mod bands;
mod params;
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
    State, TaskKind, Urgency, WindowSet,
};
use serde::Serialize;

pub use bands::{BANDS, Band, Check, check};
pub use params::{Assumption, Params, StageParams};
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

/// The simulated practice's specialist directory: every specialist its referrals name, with
/// made-up contact data (555 numbers, `.example` Direct addresses); every seventh entry was
/// last verified four months ago, so the directory shows stale ones too.
pub fn demo_directory(p: &Params, now: Timestamp) -> Vec<refloop_app::Specialist> {
    let mut out = Vec::new();
    for (specialty, _) in &p.specialties {
        let Ok(code) = Specialty::parse(specialty) else { continue };
        for n in 0..u64::from(p.specialists_per_specialty.max(1)) {
            let i = out.len() as i64;
            let letter = (b'A' + n as u8) as char;
            let in_network = specialist_network(p, specialty, n);
            let verified = now - SignedDuration::from_hours(24 * if i % 7 == 3 { 120 } else { 3 + i % 40 });
            out.push(refloop_app::Specialist {
                id: format!("demo-{specialty}-{}", letter.to_ascii_lowercase()),
                name: format!("Dr {} {letter}", capitalised(specialty)),
                specialties: vec![code.clone()],
                network: if in_network { Network::InNetwork } else { Network::OutOfNetwork },
                phone: Some(format!("+1555555{:04}", 1000 + i)),
                fax: Some(format!("+1555556{:04}", 1000 + i)),
                direct_address: (i % 2 == 0)
                    .then(|| format!("{specialty}.{}@direct.specialists.example", letter.to_ascii_lowercase())),
                accepts_360x: i % 4 == 0,
                booking_url: (i % 3 == 0)
                    .then(|| format!("https://book.specialists.example/{specialty}-{}", letter.to_ascii_lowercase())),
                last_verified: verified,
                updated_at: now,
            });
        }
    }
    out
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

/// What the simulated people do next, at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Notified,
    Scheduled,
    Visit,
    Note,
}

/// Where one referral stands for the simulated people.
#[derive(Clone, Debug, Default)]
struct Track {
    id: Option<ReferralId>,
    notified: bool,
    scheduled: bool,
    no_show: bool,
    visits: u32,
    noted: bool,
    /// When the specialist sent the note (it waits to be filed or found).
    note_sent: Option<Timestamp>,
    /// When the pending booking and the pending note come (a prompt may bring them forward).
    schedule_at: Option<Timestamp>,
    note_at: Option<Timestamp>,
    first_scheduled: Option<Timestamp>,
    /// Someone chased it while it had no appointment: staff by hand, or a worklist task.
    followed_up: bool,
}

struct Run {
    app: App,
    fates: Vec<Fate>,
    tracks: Vec<Track>,
    windows: WindowSet,
    by_id: HashMap<ReferralId, usize>,
    queue: BTreeMap<(Timestamp, u64), (usize, Next)>,
    seq: u64,
    workflow: bool,
    actor: Actor,
    tasks_by_kind: BTreeMap<&'static str, u64>,
    chases_by_hand: u64,
    seen_tasks: std::collections::HashSet<String>,
    /// Tasks opened after this are answered but left open, for people to work (the demo).
    keep_tasks_after: Option<Timestamp>,
    source_prefix: &'static str,
    next_order: usize,
}

impl Run {
    fn new(app: App, fates: Vec<Fate>, windows: WindowSet, workflow: bool, source_prefix: &'static str) -> Self {
        Run {
            app,
            tracks: vec![Track::default(); fates.len()],
            fates,
            windows,
            by_id: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            workflow,
            actor: Actor::system("simulator"),
            tasks_by_kind: BTreeMap::new(),
            chases_by_hand: 0,
            seen_tasks: Default::default(),
            keep_tasks_after: None,
            source_prefix,
            next_order: 0,
        }
    }

    fn at(&mut self, t: Timestamp, i: usize, next: Next) {
        self.seq += 1;
        self.queue.insert((t, self.seq), (i, next));
    }

    fn windows(&self, i: usize) -> &StageWindows {
        self.windows.for_urgency(if self.fates[i].urgent { Urgency::Urgent } else { Urgency::Routine })
    }

    /// The patient books at `t`, unless a booking is already coming sooner.
    fn book(&mut self, i: usize, t: Timestamp) {
        if self.tracks[i].schedule_at.is_none_or(|at| t < at) {
            self.tracks[i].schedule_at = Some(t);
            self.at(t, i, Next::Scheduled);
        }
    }

    /// The specialist sends the note at `t`, unless it is already coming sooner (or came).
    fn send_note(&mut self, i: usize, t: Timestamp) {
        let track = &mut self.tracks[i];
        if !track.noted && track.note_at.is_none_or(|at| t < at) {
            track.note_at = Some(t);
            self.at(t, i, Next::Note);
        }
    }

    /// Without the workflow, staff working by hand find a leak some days after its window ran
    /// out (`due`) and chase it when the fate says they do: when it works, the stage happens then.
    fn chase_by_hand(&mut self, i: usize, stage: Stage, due: Timestamp) -> Option<Timestamp> {
        if self.workflow || !stage.chased {
            return None;
        }
        self.chases_by_hand += 1;
        stage.by_hand.then(|| due + days(self.fates[i].days_to_find_by_hand))
    }

    /// The patient was reached at `t`: they book on their own if their fate says so, else staff
    /// working by hand may find them unbooked later.
    fn notified(&mut self, i: usize, t: Timestamp) {
        if std::mem::replace(&mut self.tracks[i].notified, true) {
            return;
        }
        let f = &self.fates[i];
        let (schedule, ordered_at, own) = (f.schedule, f.ordered_at, t + days(f.days_to_schedule));
        if !schedule.leaks {
            self.book(i, own);
            return;
        }
        let due = t.max(ordered_at + self.windows(i).scheduling.to_signed());
        self.tracks[i].followed_up |= !self.workflow && schedule.chased;
        if let Some(t) = self.chase_by_hand(i, schedule, due) {
            self.book(i, t);
        }
    }

    /// Enters every order placed by `now`, together, and starts the people's side.
    async fn enter_orders(&mut self, now: Timestamp, connector: &SimConnector) -> Result<(), AppError> {
        let first = self.next_order;
        while self.next_order < self.fates.len() && self.fates[self.next_order].ordered_at <= now {
            self.next_order += 1;
        }
        if self.next_order == first {
            return Ok(());
        }
        let reqs = (first..self.next_order).map(|i| new_referral(&self.fates[i], i, self.source_prefix)).collect();
        let created = self.app.create_referrals(&self.actor, reqs).await?;
        for (k, referral) in created.into_iter().enumerate() {
            let i = first + k;
            self.by_id.insert(referral.id.clone(), i);
            if let Ok(mut m) = connector.reachable.lock() {
                m.insert(referral.id.clone(), self.fates[i].notify.workflow());
            }
            self.tracks[i].id = Some(referral.id);
            if self.workflow {
                continue;
            }
            // Without the workflow, the front desk tells the patient (a printed sheet, a call)
            // unless the fate says it does not; staff may find the gap later.
            let f = &self.fates[i];
            let (notify, ordered_at, own) = (f.notify, f.ordered_at, f.ordered_at + days(f.days_to_notify));
            if !notify.leaks {
                self.at(own, i, Next::Notified);
            } else {
                self.tracks[i].followed_up |= notify.chased;
                let due = ordered_at + self.windows(i).notify.to_signed();
                if let Some(t) = self.chase_by_hand(i, notify, due) {
                    self.at(t, i, Next::Notified);
                }
            }
        }
        Ok(())
    }

    /// One simulated day ending at `end`: orders come in, the workflow acts (timers, messages)
    /// and the people answer, until all is quiet.
    async fn step(&mut self, end: Timestamp, connector: &SimConnector) -> Result<(), AppError> {
        self.enter_orders(end, connector).await?;
        for _ in 0..20 {
            self.apply_due(end).await?;
            self.app.run_due().await?;
            let log = std::mem::take(&mut *connector.log.lock().expect("lock"));
            self.answer(end, log).await?;
            // The people answer on later days; another pass only if something is due today.
            if self.queue.first_key_value().is_none_or(|((t, _), _)| *t > end) {
                break;
            }
        }
        Ok(())
    }

    /// Applies what the people do up to `now`, in time order, in one transaction.
    async fn apply_due(&mut self, now: Timestamp) -> Result<(), AppError> {
        let mut inputs = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((t, _), (i, next)) = entry.remove_entry();
            let f = &self.fates[i];
            let milestone = |state, appointment_at, channel: Option<&str>| Input::Milestone {
                state,
                at: t,
                appointment_at,
                channel: channel.map(str::to_owned),
            };
            match next {
                Next::Notified if !self.tracks[i].notified => {
                    inputs.push((i, milestone(State::PatientNotified, None, Some("phone"))));
                    self.notified(i, t);
                }
                Next::Notified => {}
                // A booking brought forward by a prompt leaves its later twin behind.
                Next::Scheduled if self.tracks[i].schedule_at == Some(t) => {
                    let visit = t + days(f.days_to_visit);
                    let track = &mut self.tracks[i];
                    track.schedule_at = None;
                    track.scheduled = true;
                    track.first_scheduled.get_or_insert(t);
                    inputs.push((i, milestone(State::Scheduled, Some(visit), None)));
                    self.at(visit, i, Next::Visit);
                }
                Next::Scheduled => {}
                Next::Visit => {
                    self.tracks[i].visits += 1;
                    // A second visit is one that was rebooked after a no-show.
                    if !f.attend.leaks || self.tracks[i].visits > 1 {
                        inputs.push((i, milestone(State::Attended, None, None)));
                        let (note, sent) = (f.note, t + days(f.days_to_note));
                        if !note.leaks {
                            // Sent, then filed into the chart by hand unless refloop finds it first.
                            self.tracks[i].note_sent = Some(sent);
                            self.send_note(i, sent + days(f.days_to_file_by_hand));
                        } else if let Some(at) =
                            self.chase_by_hand(i, note, t + self.windows(i).note_request.to_signed())
                        {
                            self.send_note(i, at);
                        }
                    } else {
                        self.tracks[i].no_show = true;
                        self.tracks[i].scheduled = false;
                        inputs.push((i, Input::NoShow { at: t }));
                        let attend = f.attend;
                        if let Some(at) = self.chase_by_hand(i, attend, t + self.windows(i).scheduling.to_signed()) {
                            self.book(i, at);
                        }
                    }
                }
                Next::Note if self.tracks[i].note_at == Some(t) => {
                    self.tracks[i].note_at = None;
                    self.tracks[i].noted = true;
                    inputs.push((i, milestone(State::NoteReceived, None, None)));
                }
                Next::Note => {}
            }
        }
        let inputs: Vec<(ReferralId, Input)> =
            inputs.into_iter().filter_map(|(i, input)| Some((self.tracks[i].id.clone()?, input))).collect();
        if !inputs.is_empty() {
            // A referral may have moved past what a late event reports; the engine says so and
            // the simulation goes on.
            self.app.record_all(&self.actor, inputs).await?;
        }
        Ok(())
    }

    /// The people answer what the workflow did: delivered messages and new staff tasks. A
    /// prompt brings forward what would have come later anyway.
    async fn answer(&mut self, now: Timestamp, log: Vec<(ReferralId, Channel, Purpose)>) -> Result<(), AppError> {
        for (id, channel, purpose) in log {
            let Some(&i) = self.by_id.get(&id) else { continue };
            match (channel, purpose) {
                (Channel::Sms | Channel::Portal, Purpose::PatientNotification) => self.notified(i, now),
                (Channel::NoteRequest, _) => self.note_chased(i, now),
                // refloop looks in the EHR's document inbox: a note that came back is found.
                (Channel::EhrQuery, Purpose::NoteLookup) if self.tracks[i].note_sent.is_some_and(|s| s <= now) => {
                    self.send_note(i, now)
                }
                _ => {}
            }
        }
        let open = TaskFilter { status: Some(TaskStatus::Open), limit: 100_000, ..TaskFilter::default() };
        for task in self.app.tasks(&open).await? {
            if !self.seen_tasks.insert(task.id.clone()) {
                continue;
            }
            *self.tasks_by_kind.entry(task.kind.as_str()).or_default() += 1;
            if let Some(&i) = self.by_id.get(&task.referral_id) {
                let f = &self.fates[i];
                let respond = now + days(f.days_to_respond);
                let chasing =
                    matches!(task.kind, TaskKind::NotifyPatient | TaskKind::FixContact | TaskKind::ScheduleFollowUp);
                if chasing && self.tracks[i].first_scheduled.is_none() {
                    self.tracks[i].followed_up = true;
                }
                match task.kind {
                    // Staff call the patient; those the workflow would reach are reached.
                    TaskKind::NotifyPatient | TaskKind::FixContact
                        if !self.tracks[i].notified && f.notify.workflow() =>
                    {
                        self.at(now + days(1.0), i, Next::Notified)
                    }
                    TaskKind::ScheduleFollowUp if self.tracks[i].notified && !self.tracks[i].scheduled => {
                        let books = if self.tracks[i].no_show { f.attend.workflow() } else { f.schedule.workflow() };
                        if books {
                            self.book(i, respond);
                        }
                    }
                    TaskKind::NoteReview => self.note_chased(i, now),
                    _ => {}
                }
            }
            // Staff close every task they picked up, whatever came of it.
            if self.keep_tasks_after.is_none_or(|t| task.created_at <= t) {
                self.app.complete_task(&self.actor, &task.id, Some("simulated")).await?;
            }
        }
        Ok(())
    }

    /// The note was asked for: one already sent is found at once; a specialist the workflow
    /// would move sends it within days.
    fn note_chased(&mut self, i: usize, now: Timestamp) {
        let f = &self.fates[i];
        if self.tracks[i].note_sent.is_some_and(|s| s <= now) {
            self.send_note(i, now);
        } else if f.note.workflow() {
            let t = now + days(f.days_to_respond);
            self.send_note(i, t);
        }
    }

    /// The seed article's catch: referrals with no appointment when their first scheduling
    /// window ran out, and those someone followed up.
    fn unscheduled_catch(&self) -> (usize, usize) {
        let mut unscheduled = 0;
        let mut followed = 0;
        for (i, (f, t)) in self.fates.iter().zip(&self.tracks).enumerate() {
            if t.id.is_none() {
                continue;
            }
            let due = f.ordered_at + self.windows(i).scheduling.to_signed();
            if t.first_scheduled.is_none_or(|s| s > due) {
                unscheduled += 1;
                followed += usize::from(t.followed_up);
            }
        }
        (unscheduled, followed)
    }

    /// Staff hours per week of orders: chases by hand and worklist tasks at their minutes.
    fn staff_hours_per_week(&self, p: &Params) -> f64 {
        let tasks: f64 = self
            .tasks_by_kind
            .iter()
            .map(|(kind, n)| {
                let minutes = p.task_minutes.iter().find(|(k, _)| k.as_str() == *kind).map_or(0.0, |(_, m)| *m);
                minutes * *n as f64
            })
            .sum();
        let minutes = tasks + p.minutes_per_chase_by_hand * self.chases_by_hand as f64;
        minutes / 60.0 / (f64::from(p.days) / 7.0)
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
    let windows = policy.windows.clone();
    let connector = Arc::new(SimConnector::default());
    let app = App::new(store, clock.clone(), policy, connector.clone());
    let mut r = Run::new(app, fates.to_vec(), windows, workflow, SOURCE_PREFIX);
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
    })
}

/// Made-up names for the simulated people (some with accents, as real patient lists have).
const GIVEN: &[&str] = &[
    "Ana", "Ben", "Chloé", "David", "Elena", "Farah", "George", "Hana", "Ivan", "Joy", "Kofi", "Lucía", "Mei", "Noah",
    "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tomás", "Uma", "Victor", "Wen", "Yusuf", "Zoë",
];
const FAMILY: &[&str] = &[
    "Adams", "Baker", "Castillo", "Dubois", "Evans", "Fischer", "García", "Haddad", "Ito", "Jensen", "Kowalski",
    "López", "Müller", "Nguyen", "Okafor", "Patel", "Quintero", "Rossi", "Schmidt", "Tanaka", "Umar", "Varga", "Walsh",
    "Yilmaz", "Zhang",
];
const PROVIDER_NAMES: &[&str] = &[
    "Dr Anne Carter",
    "Dr Luis Ortega",
    "Dr Priya Shah",
    "Dr Tom Becker",
    "Dr Grace Kim",
    "Dr Omar Aziz",
    "Dr Helen Moore",
    "Dr Raj Menon",
    "Dr Sara Lind",
    "Dr Paul Novak",
    "Dr Irene Costa",
    "Dr Ken Watanabe",
];

/// The simulated patient `i` as a person: a name, a date of birth, and a preferred language for some.
fn sim_patient(i: usize, prefix: &str) -> (String, String, Option<String>) {
    let name = if prefix == SOURCE_PREFIX {
        format!("Sim Patient {i}")
    } else {
        format!("{} {}", GIVEN[i % GIVEN.len()], FAMILY[(i / GIVEN.len() + i * 7) % FAMILY.len()])
    };
    let birth = format!("{}-{:02}-{:02}", 1935 + i % 70, 1 + i % 12, 1 + (i / 12) % 28);
    let language = match i % 9 {
        0 => Some("Spanish".to_owned()),
        4 => Some("Vietnamese".to_owned()),
        _ => None,
    };
    (name, birth, language)
}

fn new_referral(f: &Fate, i: usize, prefix: &str) -> NewReferral {
    let (name, birth_date, language) = sim_patient(i, prefix);
    let provider_name = f
        .provider
        .strip_prefix("dr-")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| PROVIDER_NAMES[(n + PROVIDER_NAMES.len() - 1) % PROVIDER_NAMES.len()].to_owned());
    NewReferral {
        patient_id: PatientId::parse(&format!("sim-p{i:06}")).expect("a valid id"),
        patient: Some(PatientInput {
            name: Some(name),
            birth_date: Some(birth_date),
            language,
            phone: Some(f.phone.clone()),
            sms_consent: Some(f.consent),
            time_zone: Some(f.time_zone.to_owned()),
        }),
        referring_provider: ProviderId::parse(&f.provider).expect("a valid id"),
        referring_provider_name: provider_name,
        specialty: Specialty::parse(&f.specialty).ok(),
        specialist: Some(f.specialist.clone()),
        urgency: if f.urgent { Urgency::Urgent } else { Urgency::Routine },
        origin: Origin::PhysicianOrder,
        network: f.network,
        reason: None,
        ordered_at: Some(f.ordered_at),
        source_ids: vec![format!("{prefix}{i}")],
        historical: false,
    }
}

/// Each demo referral's source id starts with this: a database holding others is not seeded.
pub const DEMO_PREFIX: &str = "demo:";

/// A simulated practice living in a real database (`serve --demo`): its last `days` of
/// referrals entered through the engine on a manual clock, the workflow acting and the people
/// answering; then [`DemoPractice::tick`] keeps new orders and the people's answers coming in
/// real time. Tasks of the last three days are left open for people to work.
pub struct DemoPractice {
    run: Run,
    clock: Arc<ManualClock>,
    connector: Arc<SimConnector>,
}

impl DemoPractice {
    /// Seeds `store` (which must hold no referrals) with the practice's days up to `now`; the
    /// practice's people answer what goes out through `connector` (give the service the same one).
    pub async fn seed(
        store: Arc<dyn Store>,
        policy: Policy,
        p: &Params,
        now: Timestamp,
        connector: Arc<SimConnector>,
    ) -> Result<Self, AppError> {
        let one = refloop_app::ReferralFilter { limit: 1, ..Default::default() };
        if !store.referrals(&one).await?.items.is_empty() {
            return Err(AppError::Conflict("demo data goes only into an empty database".into()));
        }
        let today = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(86_400))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let start = today - days(f64::from(p.days));
        // A year of orders ahead, for the live part.
        let ahead = Params { days: p.days + 365, ..p.clone() };
        let clock = Arc::new(ManualClock::new(start));
        for entry in demo_directory(p, now) {
            store.upsert_specialist(&entry).await?;
        }
        let windows = policy.windows.clone();
        let app = App::new(store, clock.clone(), policy, connector.clone());
        let mut run = Run::new(app, draw_fates(&ahead, start), windows, true, DEMO_PREFIX);
        run.keep_tasks_after = Some(now - days(3.0));
        for day in 0..=p.days {
            let end = (start + days(f64::from(day) + 1.0) - SignedDuration::from_secs(1)).min(now);
            clock.set(end);
            run.step(end, &connector).await?;
        }
        Ok(DemoPractice { run, clock, connector })
    }

    /// New orders and the people's answers up to `now` (the service's own workers act on them).
    pub async fn tick(&mut self, now: Timestamp) -> Result<(), AppError> {
        self.clock.set(now);
        self.run.enter_orders(now, &self.connector).await?;
        self.run.apply_due(now).await?;
        // What the service's workers sent since the last tick, answered by the people.
        let log = std::mem::take(&mut *self.connector.log.lock().expect("lock"));
        self.run.answer(now, log).await
    }

    /// Referrals entered so far.
    pub fn referrals(&self) -> usize {
        self.run.next_order
    }
}
