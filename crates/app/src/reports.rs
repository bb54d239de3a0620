//! The closure report (SPEC §4): closed-loop rate, funnel, leakage by stage and reason,
//! time at each stage, and the unscheduled catch rate — for the tracked referrals ordered
//! in a period, overall and split by one dimension. Computed from the referral
//! projections (each carries its milestone times), never from the event log.

use std::collections::BTreeMap;

use jiff::{Timestamp, tz::TimeZone};
use refloop_domain::{Referral, State};
use serde::Serialize;

use crate::{AppError, service::App};

/// What to split the report by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Specialty,
    Provider,
    Specialist,
    Network,
    Urgency,
    /// The week of the order (key: its Monday, in the practice's time zone).
    Week,
    /// The month of the order (key: `YYYY-MM`, in the practice's time zone).
    Month,
}

impl GroupBy {
    /// The accepted names, for error messages and help.
    pub const NAMES: &'static str = "specialty, provider, specialist, network, urgency, week or month";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "specialty" => GroupBy::Specialty,
            "provider" => GroupBy::Provider,
            "specialist" => GroupBy::Specialist,
            "network" => GroupBy::Network,
            "urgency" => GroupBy::Urgency,
            "week" => GroupBy::Week,
            "month" => GroupBy::Month,
            _ => return None,
        })
    }

    /// The report column this groups by, when the database can group by it.
    pub fn column(self) -> Option<&'static str> {
        match self {
            GroupBy::Specialty => Some("specialty"),
            GroupBy::Provider => Some("provider"),
            GroupBy::Specialist => Some("specialist"),
            GroupBy::Network => Some("network"),
            GroupBy::Urgency => Some("urgency"),
            GroupBy::Week | GroupBy::Month => None,
        }
    }

    /// The week (its Monday) or month (`YYYY-MM`) of a date; the week for other groupings.
    fn calendar_key(self, d: jiff::civil::Date) -> String {
        if self == GroupBy::Month {
            return d.strftime("%Y-%m").to_string();
        }
        let back = i64::from(d.weekday().to_monday_zero_offset());
        d.checked_sub(jiff::Span::new().days(back)).unwrap_or(d).to_string()
    }

    fn key(self, r: &Referral, tz: &TimeZone) -> String {
        match self {
            GroupBy::Week | GroupBy::Month => self.calendar_key(tz.to_datetime(r.ordered_at).date()),
            GroupBy::Specialty => r.specialty.as_ref().map_or("(needs coding)", |s| s.as_str()).to_owned(),
            GroupBy::Provider => r.referring_provider.as_str().to_owned(),
            GroupBy::Specialist => r.specialist.clone().unwrap_or_else(|| "(unknown)".into()),
            GroupBy::Network => r.network.as_str().to_owned(),
            GroupBy::Urgency => r.urgency.as_str().to_owned(),
        }
    }
}

/// Days between two milestones: median, p90 and mean over the referrals that reached both.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub median_days: Option<f64>,
    pub p90_days: Option<f64>,
    pub mean_days: Option<f64>,
}

/// The figures for one group of referrals.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Closure {
    /// Tracked referrals ordered in the period.
    pub referrals: usize,
    /// How many reached each milestone (in any order).
    pub funnel: BTreeMap<&'static str, usize>,
    pub closed_loop: usize,
    /// closed_loop / referrals (0–1) over all of them, those still in progress included;
    /// `None` without referrals.
    pub closed_loop_rate: Option<f64>,
    /// Open referrals whose current stage's window has not run out: not leaked (yet).
    pub in_progress: usize,
    /// … by the stage they are in (the names of `leakage_by_stage`).
    pub in_progress_by_stage: BTreeMap<&'static str, usize>,
    /// Referrals whose whole path has had time to finish (ordered at least `[reports]
    /// mature_after` ago) …
    pub mature_referrals: usize,
    /// … how many of them closed the loop, and their share: the rate to judge the practice by.
    pub mature_closed_loop: usize,
    pub mature_closed_loop_rate: Option<f64>,
    /// Where the leaked ones stopped (their window ran out, or they were closed or cancelled):
    /// not notified, not scheduled, not attended, no note.
    pub leakage_by_stage: BTreeMap<&'static str, usize>,
    /// Why: still open, closed incomplete (with the staff's reason), no-show on the way.
    pub leakage_by_reason: BTreeMap<String, usize>,
    /// Days from one milestone to the next, and from order to note.
    pub days: BTreeMap<&'static str, Durations>,
    /// Referrals whose scheduling was escalated (no appointment after the window) …
    pub escalated_unscheduled: usize,
    /// … and of those, how many were scheduled afterwards; the catch rate is their share.
    pub caught_after_escalation: usize,
    pub unscheduled_catch_rate: Option<f64>,
}

/// The closure report for `[from, to)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClosureReport {
    pub from: Timestamp,
    pub to: Timestamp,
    pub generated_at: Timestamp,
    #[serde(flatten)]
    pub total: Closure,
    /// Present when split: the figures per group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<BTreeMap<String, Closure>>,
    /// The days at each stage come from a one-in-four sample (the dashboard, beyond
    /// [`SAMPLE_ABOVE`] referrals); the counts, rates and leakage are always exact.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sampled: bool,
}

const STAGES: [(&str, State); 4] = [
    ("patient-notified", State::PatientNotified),
    ("scheduled", State::Scheduled),
    ("attended", State::Attended),
    ("note-received", State::NoteReceived),
];

fn days(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b >= a).then(|| (b - a).as_secs_f64() / 86_400.0)
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| ((n as f64 / d as f64) * 10_000.0).round() / 10_000.0)
}

/// Days from each milestone to the next, and from order to note (`None` when a milestone is
/// missing).
pub fn spans_of(r: &Referral) -> [(&'static str, Option<f64>); 5] {
    let m = &r.milestones;
    let ordered = Some(r.ordered_at);
    [
        ("ordered-to-notified", days(ordered, m.patient_notified)),
        ("notified-to-scheduled", days(m.patient_notified.or(ordered), m.scheduled)),
        ("scheduled-to-attended", days(m.scheduled, m.attended)),
        ("attended-to-note", days(m.attended, m.note_received)),
        ("order-to-note", days(ordered, m.note_received)),
    ]
}

/// Where and why a referral leaked: `None` once its loop closed.
pub fn leak_of(r: &Referral) -> Option<(&'static str, String)> {
    let m = &r.milestones;
    if r.state == State::NoteReceived {
        return None;
    }
    let stage = match r.state {
        State::Ordered => "not notified",
        State::PatientNotified => "not scheduled",
        State::Scheduled => "not attended",
        _ if m.attended.is_some() => "no note",
        _ if m.scheduled.is_some() => "not attended",
        _ if m.patient_notified.is_some() => "not scheduled",
        _ => "not notified",
    };
    let reason = match (r.state, &r.close_reason) {
        (State::Cancelled, _) => "cancelled".to_owned(),
        // Grouped by the listed reason (the detail stays on the referral and in exports).
        (State::ClosedIncomplete, Some(why)) => format!("closed: {}", refloop_domain::close_category(why)),
        (State::ClosedIncomplete, None) => "closed without a reason".to_owned(),
        _ if r.no_shows > 0 => "open after a no-show".to_owned(),
        _ => "still open".to_owned(),
    };
    Some((stage, reason))
}

/// What the reports need of one referral, kept beside its projection (`referral_stats`) so
/// the dashboard aggregates narrow rows in the database instead of reading documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralStats {
    pub tracked: bool,
    /// Bit 0 patient-notified, 1 scheduled, 2 attended, 3 note-received.
    pub reached: u8,
    /// Where and why it leaked; `None` once the loop closed.
    pub leak: Option<(&'static str, String)>,
    /// Escalated while unscheduled, and scheduled afterwards.
    pub escalated: bool,
    pub caught: bool,
    /// Minutes of each span of [`SPANS`], when both ends were reached.
    pub minutes: [Option<i64>; 5],
}

/// The spans the reports time, in the order of [`ReferralStats::minutes`].
pub const SPANS: [&str; 5] =
    ["ordered-to-notified", "notified-to-scheduled", "scheduled-to-attended", "attended-to-note", "order-to-note"];

const LEAK_STAGES: [&str; 4] = ["not notified", "not scheduled", "not attended", "no note"];

impl ReferralStats {
    /// Reach (bits 0–3), escalated (4), caught (5), leak stage (bits 6–8: 0 closed loop,
    /// else 1 + its index in the leak stages) and leak reason (bits 9–11: 0 none, 1 + its index
    /// in the standard reasons, 5 the staff's own words) in one number, so the database groups by one
    /// small integer instead of several columns.
    pub fn code(&self) -> i16 {
        let stage = self.leak.as_ref().and_then(|(s, _)| LEAK_STAGES.iter().position(|x| x == s)).map_or(0, |i| i + 1);
        let reason = self
            .leak
            .as_ref()
            .map_or(0, |(_, r)| LEAK_REASONS.iter().position(|x| x == r).map_or(LEAK_REASONS.len() + 1, |i| i + 1));
        i16::from(self.reached)
            | i16::from(self.escalated) << 4
            | i16::from(self.caught) << 5
            | (stage as i16) << 6
            | (reason as i16) << 9
    }

    /// The leak reason to store beside the code: only a staff member's own words (the
    /// standard reasons are in the code, so the database groups by fewer strings).
    pub fn stored_reason(&self) -> Option<String> {
        self.leak.as_ref().map(|(_, r)| r).filter(|r| !LEAK_REASONS.contains(&r.as_str())).cloned()
    }
}

/// The leak reasons [`leak_of`] gives other than a staff member's closing words.
const LEAK_REASONS: [&str; 4] = ["still open", "open after a no-show", "cancelled", "closed without a reason"];

impl RollupRow {
    /// A rollup row from its stored code and leak reason.
    pub fn from_code(key: String, code: i16, leak_reason: Option<String>, n: u64) -> Self {
        let stage = usize::try_from((code >> 6) & 0x07).unwrap_or(0);
        RollupRow {
            key,
            reached: (code & 0x0f) as u8,
            leak_stage: stage.checked_sub(1).and_then(|i| LEAK_STAGES.get(i)).map(|s| (*s).to_owned()),
            leak_reason: usize::try_from(code >> 9)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| LEAK_REASONS.get(i))
                .map(|s| (*s).to_owned())
                .or(leak_reason),
            escalated: code & 0x10 != 0,
            caught: code & 0x20 != 0,
            in_progress: false,
            mature: false,
            overdue: 0,
            n,
        }
    }
}

pub fn stats_of(r: &Referral) -> ReferralStats {
    let m = &r.milestones;
    let reached = [m.patient_notified, m.scheduled, m.attended, m.note_received]
        .iter()
        .enumerate()
        .fold(0u8, |acc, (i, t)| if t.is_some() { acc | (1 << i) } else { acc });
    let escalated = r.progress.scheduling_escalated_for;
    let caught = escalated.is_some_and(|e| {
        r.milestones.scheduled.is_some_and(|s| s > e) || r.state.rank() > State::PatientNotified.rank()
    });
    let spans = spans_of(r);
    ReferralStats {
        tracked: r.is_tracked(),
        reached,
        leak: leak_of(r),
        escalated: escalated.is_some(),
        caught,
        minutes: std::array::from_fn(|i| spans[i].1.map(|d| (d * 1440.0).floor() as i64)),
    }
}

/// Tracked referrals with the same group key, funnel reach, leak and escalation: how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupRow {
    pub key: String,
    pub reached: u8,
    pub leak_stage: Option<String>,
    pub leak_reason: Option<String>,
    pub escalated: bool,
    pub caught: bool,
    /// Open and inside its current stage's window at the report's moment.
    pub in_progress: bool,
    /// Ordered long enough ago for its whole path to have finished.
    pub mature: bool,
    /// Open and past its stage's window: for how long (1 + its index in [`OVERDUE`]), else 0.
    pub overdue: u8,
    pub n: u64,
}

/// How long an open referral has been past its stage's window, in the reports' buckets …
pub const OVERDUE: [&str; 3] = ["up to 2 weeks", "2–6 weeks", "over 6 weeks"];
/// … split at these days.
pub const OVERDUE_EDGES_DAYS: [i64; 2] = [14, 42];

/// The [`OVERDUE`] bucket (1-based) of a stage due at `due`, seen at `now`; 0 while not due.
pub fn overdue_bucket(due: Timestamp, now: Timestamp) -> u8 {
    if due > now {
        return 0;
    }
    let late = now.duration_since(due);
    let edge = OVERDUE_EDGES_DAYS.iter().position(|d| late < jiff::SignedDuration::from_hours(24 * d));
    edge.map_or(OVERDUE.len(), |i| i + 1) as u8
}

/// The reason a leak is reported under: an open referral's says its stage and how long it
/// has been overdue ("still open, not scheduled, 2–6 weeks overdue").
fn reported_reason(stage: &str, reason: Option<&str>, overdue: u8) -> String {
    let reason = reason.unwrap_or_default();
    let open = reason == LEAK_REASONS[0] || reason == LEAK_REASONS[1];
    match OVERDUE.get(usize::from(overdue).wrapping_sub(1)) {
        Some(label) if open => format!("{reason}, {stage}, {label} overdue"),
        _ => reason.to_owned(),
    }
}

/// Tracked referrals with the same group key whose span `span` (index into [`SPANS`]) took
/// `tenths` tenths of a day: how many, and their exact total in minutes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRow {
    pub key: String,
    pub span: u8,
    pub tenths: i64,
    pub n: u64,
    pub minutes: i64,
}

/// Tenths of a day, rounded, from minutes.
pub fn tenths(minutes: i64) -> i64 {
    (minutes * 10 + 720).div_euclid(1440)
}

impl Durations {
    /// From a histogram of `(tenths of a day, count, total minutes)`.
    fn from_histogram(mut h: Vec<(i64, u64, i64)>) -> Self {
        let count: u64 = h.iter().map(|x| x.1).sum();
        if count == 0 {
            return Self::default();
        }
        h.sort_by_key(|x| x.0);
        let at = |p: f64| {
            let index = ((count - 1) as f64 * p).round() as u64;
            let mut seen = 0;
            for (t, n, _) in &h {
                seen += n;
                if seen > index {
                    return *t as f64 / 10.0;
                }
            }
            h.last().map_or(0.0, |x| x.0 as f64 / 10.0)
        };
        let total: i64 = h.iter().map(|x| x.2).sum();
        Self {
            count: count as usize,
            median_days: Some(at(0.5)),
            p90_days: Some(at(0.9)),
            mean_days: Some((total as f64 / count as f64 / 1440.0 * 10.0).round() / 10.0),
        }
    }
}

/// The figures for one group's rollup rows.
pub fn fold(rows: &[&RollupRow], spans: &[&SpanRow]) -> Closure {
    let mut c = Closure::default();
    for r in rows {
        let n = r.n as usize;
        c.referrals += n;
        for (i, (name, _)) in STAGES.iter().enumerate() {
            if r.reached & (1 << i) != 0 {
                *c.funnel.entry(name).or_default() += n;
            }
        }
        match (&r.leak_stage, &r.leak_reason) {
            (Some(stage), _) if r.in_progress => {
                let stage = LEAK_STAGES.iter().find(|s| *s == stage).copied().unwrap_or("unknown");
                c.in_progress += n;
                *c.in_progress_by_stage.entry(stage).or_default() += n;
            }
            (Some(stage), reason) => {
                let stage = LEAK_STAGES.iter().find(|s| *s == stage).copied().unwrap_or("unknown");
                *c.leakage_by_stage.entry(stage).or_default() += n;
                *c.leakage_by_reason.entry(reported_reason(stage, reason.as_deref(), r.overdue)).or_default() += n;
            }
            (None, _) => c.closed_loop += n,
        }
        if r.mature {
            c.mature_referrals += n;
            if r.leak_stage.is_none() {
                c.mature_closed_loop += n;
            }
        }
        if r.escalated {
            c.escalated_unscheduled += n;
            if r.caught {
                c.caught_after_escalation += n;
            }
        }
    }
    c.closed_loop_rate = ratio(c.closed_loop, c.referrals);
    c.mature_closed_loop_rate = ratio(c.mature_closed_loop, c.mature_referrals);
    c.unscheduled_catch_rate = ratio(c.caught_after_escalation, c.escalated_unscheduled);
    for (i, name) in SPANS.iter().enumerate() {
        let h: Vec<(i64, u64, i64)> =
            spans.iter().filter(|s| usize::from(s.span) == i).map(|s| (s.tenths, s.n, s.minutes)).collect();
        if !h.is_empty() {
            c.days.insert(name, Durations::from_histogram(h));
        }
    }
    c
}

/// When the reports look: `now`, and the order time before which a referral's whole path
/// has had time to finish.
#[derive(Clone, Copy, Debug)]
pub struct Maturity<'a> {
    pub now: Timestamp,
    pub mature_before: Timestamp,
    pub policy: &'a refloop_domain::Policy,
}

impl Maturity<'_> {
    /// Open and inside its current stage's window.
    pub fn in_progress(&self, r: &Referral) -> bool {
        self.standing(r).0
    }

    /// In progress, and (past its stage's window) the [`OVERDUE`] bucket, else 0: from one
    /// reading of the stage's deadline.
    pub fn standing(&self, r: &Referral) -> (bool, u8) {
        let due = refloop_domain::stage_deadline(r, self.policy);
        (due.is_some_and(|d| d > self.now), due.map_or(0, |d| overdue_bucket(d, self.now)))
    }
}

/// The rollup rows of `referrals` (tracked ones only), each under the key `key(r)`.
pub fn rollup_of<'a>(
    referrals: impl IntoIterator<Item = &'a Referral>,
    key: impl Fn(&Referral) -> String,
    m: &Maturity<'_>,
) -> (Vec<RollupRow>, Vec<SpanRow>) {
    #[allow(clippy::type_complexity)]
    let mut rows: BTreeMap<(String, i16, Option<String>, bool, bool, u8), u64> = BTreeMap::new();
    let mut spans: BTreeMap<(String, u8, i64), (u64, i64)> = BTreeMap::new();
    for r in referrals {
        let s = stats_of(r);
        if !s.tracked {
            continue;
        }
        let k = key(r);
        for (i, m) in s.minutes.iter().enumerate() {
            if let Some(m) = m {
                let e = spans.entry((k.clone(), i as u8, tenths(*m))).or_default();
                e.0 += 1;
                e.1 += m;
            }
        }
        let code = s.code();
        let ((in_progress, overdue), mature) = (m.standing(r), r.ordered_at < m.mature_before);
        *rows.entry((k, code, s.stored_reason(), in_progress, mature, overdue)).or_default() += 1;
    }
    let rows = rows
        .into_iter()
        .map(|((key, code, reason, in_progress, mature, overdue), n)| RollupRow {
            in_progress,
            mature,
            overdue,
            ..RollupRow::from_code(key, code, reason, n)
        })
        .collect();
    let spans = spans
        .into_iter()
        .map(|((key, span, tenths), (n, minutes))| SpanRow { key, span, tenths, n, minutes })
        .collect();
    (rows, spans)
}

/// The figures per key of a rollup, and over all of it.
pub fn fold_groups(rows: &[RollupRow], spans: &[SpanRow]) -> (Closure, BTreeMap<String, Closure>) {
    let mut groups: BTreeMap<&str, (Vec<&RollupRow>, Vec<&SpanRow>)> = BTreeMap::new();
    for r in rows {
        groups.entry(r.key.as_str()).or_default().0.push(r);
    }
    for s in spans {
        groups.entry(s.key.as_str()).or_default().1.push(s);
    }
    let total = fold(&rows.iter().collect::<Vec<_>>(), &spans.iter().collect::<Vec<_>>());
    // A group is one with referrals (spans taken over all groups carry the key "").
    let by = groups
        .into_iter()
        .filter(|(_, (r, _))| !r.is_empty())
        .map(|(k, (r, s))| (k.to_owned(), fold(&r, &s)))
        .collect();
    (total, by)
}

/// The figures for `referrals` (tracked ones only are counted).
pub fn closure(referrals: &[&Referral], m: &Maturity<'_>) -> Closure {
    let (rows, spans) = rollup_of(referrals.iter().copied(), |_| String::new(), m);
    fold_groups(&rows, &spans).0
}

/// Referrals in a period beyond which the dashboard's days at each stage are sampled.
pub const SAMPLE_ABOVE: u64 = 50_000;

/// The figures per group of `by` (dates in `tz`).
pub fn split(referrals: &[&Referral], by: GroupBy, tz: &TimeZone, m: &Maturity<'_>) -> BTreeMap<String, Closure> {
    let (rows, spans) = rollup_of(referrals.iter().copied(), |r| by.key(r, tz), m);
    fold_groups(&rows, &spans).1
}

impl App {
    /// The reports' moment: now on the app's clock, and the maturity cut-off.
    pub fn maturity(&self) -> Maturity<'_> {
        let now = self.now();
        Maturity { now, mature_before: now - self.policy.mature_after.to_signed(), policy: &self.policy }
    }

    /// The closure report for referrals ordered in `[from, to)`, optionally split.
    pub async fn closure_report(
        &self,
        from: Timestamp,
        to: Timestamp,
        by: Option<GroupBy>,
    ) -> Result<ClosureReport, AppError> {
        if to <= from {
            return Err(AppError::invalid("to", "must be after from"));
        }
        let (total, by) = match by.map(|g| (g, g.column())) {
            // Calendar groups depend on the practice's time zone: from the projections.
            Some((g, None)) => {
                let all = self.store.referrals_ordered_between(from, to).await?;
                let refs: Vec<&Referral> = all.iter().collect();
                let m = self.maturity();
                (closure(&refs, &m), Some(split(&refs, g, &self.policy().time_zone, &m)))
            }
            other => {
                let column = other.and_then(|(_, c)| c);
                let m = self.maturity();
                let (rows, spans) = self
                    .store
                    .closure_rollup(from, to, column, &[0, 1, 2, 3, 4], false, (m.now, m.mature_before))
                    .await?;
                let (total, groups) = fold_groups(&rows, &spans);
                (total, column.map(|_| groups))
            }
        };
        Ok(ClosureReport { from, to, generated_at: self.now(), total, by, sampled: false })
    }
}

impl App {
    /// The dashboard's view of the closure report: the same totals, and per group the figures
    /// without the time at each stage except from order to note (which is what the page shows),
    /// so the database sorts less.
    pub async fn closure_overview(
        &self,
        from: Timestamp,
        to: Timestamp,
        by: GroupBy,
        tracked: Option<u64>,
    ) -> Result<ClosureReport, AppError> {
        let Some(column) = by.column() else { return self.closure_report(from, to, Some(by)).await };
        if to <= from {
            return Err(AppError::invalid("to", "must be after from"));
        }
        let order_to_note = SPANS.iter().position(|s| *s == "order-to-note").unwrap_or(4) as u8;
        // Beyond this many referrals the days at each stage come from a fixed one-in-four sample
        // (counted here unless the caller already knows how many the period holds).
        let tracked = match tracked {
            Some(n) => n,
            None => self.store.closure_trend(&[from, to]).await?.iter().map(|(n, _)| n).sum(),
        };
        let sampled = tracked > SAMPLE_ABOVE;
        let m = self.maturity();
        let (rows, mut spans) = self
            .store
            .closure_rollup(from, to, Some(column), &[order_to_note], sampled, (m.now, m.mature_before))
            .await?;
        if sampled {
            for s in &mut spans {
                s.n *= 4;
                s.minutes *= 4;
            }
        }
        let (total, groups) = fold_groups(&rows, &spans);
        Ok(ClosureReport { from, to, generated_at: self.now(), total, by: Some(groups), sampled })
    }

    /// Tracked referrals and closed loops per week or month of order (practice time zone), for
    /// the trend: `(key, referrals, closed, mature)`, oldest first.
    pub async fn closure_trend(
        &self,
        from: Timestamp,
        to: Timestamp,
        by: GroupBy,
    ) -> Result<Vec<(String, u64, u64, bool)>, AppError> {
        // The period cut at each local week (or month) start: one range count per piece,
        // which the database answers from the order-time index without sorting.
        let tz = &self.policy().time_zone;
        let mut starts = vec![from];
        let mut date = tz.to_datetime(from).date();
        loop {
            let next = match by {
                GroupBy::Month => date.first_of_month().checked_add(jiff::Span::new().months(1)),
                _ => date.checked_add(jiff::Span::new().days(7 - i64::from(date.weekday().to_monday_zero_offset()))),
            };
            let Ok(next) = next else { break };
            let Ok(at) = next.to_zoned_datetime(tz.clone()).map(|z| z.timestamp()) else { break };
            if at >= to {
                break;
            }
            starts.push(at);
            date = next;
        }
        let mut bounds = starts.clone();
        bounds.push(to);
        let counts = self.store.closure_trend(&bounds).await?;
        // A piece is mature once every referral in it could have finished its path.
        let mature_before = self.maturity().mature_before;
        Ok(starts
            .iter()
            .zip(bounds.iter().skip(1))
            .zip(counts)
            .map(|((start, end), (n, closed))| {
                (by.calendar_key(tz.to_datetime(*start).date()), n, closed, *end <= mature_before)
            })
            .collect())
    }
}

/// The CMS50 report for a measurement year (SPEC §4): the practice's and each referring
/// provider's initial population, denominator, numerator and rate, with the patients behind
/// each figure. Computed from the measure facts the EHR sent (FHIR Encounter, Procedure,
/// ServiceRequest, Task).
#[derive(Clone, Debug, Serialize)]
pub struct Cms50Report {
    pub measure: &'static str,
    pub year: i16,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub generated_at: Timestamp,
    #[serde(flatten)]
    pub result: refloop_domain::cms50::Cms50,
    /// When the practice's figures are zero: why, from what the EHR sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub why_zero: Vec<String>,
}

impl App {
    pub async fn cms50_report(&self, year: i16) -> Result<Cms50Report, AppError> {
        let tz = &self.policy().time_zone;
        let period = (2000..=2100)
            .contains(&year)
            .then(|| refloop_domain::cms50::Period::year(year, tz))
            .flatten()
            .ok_or_else(|| AppError::invalid("year", "a year such as 2026"))?;
        let facts = self.store.measure_facts().await?;
        let mut by_patient: BTreeMap<&str, Vec<refloop_domain::cms50::Fact>> = BTreeMap::new();
        for (patient, fact) in &facts {
            by_patient.entry(patient.as_str()).or_default().push(fact.clone());
        }
        let result = refloop_domain::cms50::measure(by_patient.iter().map(|(p, f)| (*p, f.as_slice())), &period);
        let why_zero =
            refloop_domain::cms50::zero_reasons(by_patient.iter().map(|(p, f)| (*p, f.as_slice())), &period, &result);
        Ok(Cms50Report {
            measure: "CMS50FHIR 0.4.000 (MIPS 374) Closing the Referral Loop: Receipt of Specialist Report",
            year,
            period_start: period.start,
            period_end: period.end,
            generated_at: self.now(),
            result,
            why_zero,
        })
    }
}
