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

    fn key(self, r: &Referral, tz: &TimeZone) -> String {
        let date = || tz.to_datetime(r.ordered_at).date();
        match self {
            GroupBy::Week => {
                let d = date();
                let back = i64::from(d.weekday().to_monday_zero_offset());
                d.checked_sub(jiff::Span::new().days(back)).unwrap_or(d).to_string()
            }
            GroupBy::Month => date().strftime("%Y-%m").to_string(),
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

impl Durations {
    fn of(mut days: Vec<f64>) -> Self {
        if days.is_empty() {
            return Self::default();
        }
        days.sort_by(f64::total_cmp);
        let at = |p: f64| days[((days.len() - 1) as f64 * p).round() as usize];
        let round = |d: f64| (d * 10.0).round() / 10.0;
        Self {
            count: days.len(),
            median_days: Some(round(at(0.5))),
            p90_days: Some(round(at(0.9))),
            mean_days: Some(round(days.iter().sum::<f64>() / days.len() as f64)),
        }
    }
}

/// The figures for one group of referrals.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Closure {
    /// Tracked referrals ordered in the period.
    pub referrals: usize,
    /// How many reached each milestone (in any order).
    pub funnel: BTreeMap<&'static str, usize>,
    pub closed_loop: usize,
    /// closed_loop / referrals (0–1); `None` without referrals.
    pub closed_loop_rate: Option<f64>,
    /// Where the open or abandoned ones stopped: not notified, not scheduled, not attended,
    /// no note.
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
        (State::ClosedIncomplete, Some(why)) => format!("closed: {why}"),
        (State::ClosedIncomplete, None) => "closed without a reason".to_owned(),
        _ if r.no_shows > 0 => "open after a no-show".to_owned(),
        _ => "still open".to_owned(),
    };
    Some((stage, reason))
}

/// The figures for `referrals` (tracked ones only are counted).
pub fn closure(referrals: &[&Referral]) -> Closure {
    let tracked: Vec<&&Referral> = referrals.iter().filter(|r| r.is_tracked()).collect();
    let mut c = Closure { referrals: tracked.len(), ..Closure::default() };
    let mut spans: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for r in &tracked {
        let m = &r.milestones;
        let reached = [m.patient_notified, m.scheduled, m.attended, m.note_received];
        for ((name, _), at) in STAGES.iter().zip(reached) {
            if at.is_some() {
                *c.funnel.entry(name).or_default() += 1;
            }
        }
        for (name, span) in spans_of(r) {
            spans.entry(name).or_default().extend(span);
        }
        match leak_of(r) {
            None => c.closed_loop += 1,
            Some((stage, reason)) => {
                *c.leakage_by_stage.entry(stage).or_default() += 1;
                *c.leakage_by_reason.entry(reason).or_default() += 1;
            }
        }
        if let Some(escalated) = r.progress.scheduling_escalated_for {
            c.escalated_unscheduled += 1;
            if r.milestones.scheduled.is_some_and(|s| s > escalated) || r.state.rank() > State::PatientNotified.rank() {
                c.caught_after_escalation += 1;
            }
        }
    }
    c.closed_loop_rate = ratio(c.closed_loop, c.referrals);
    c.unscheduled_catch_rate = ratio(c.caught_after_escalation, c.escalated_unscheduled);
    c.days = spans.into_iter().map(|(k, v)| (k, Durations::of(v))).collect();
    c
}

/// The figures per group of `by` (dates in `tz`).
pub fn split(referrals: &[&Referral], by: GroupBy, tz: &TimeZone) -> BTreeMap<String, Closure> {
    let mut groups: BTreeMap<String, Vec<&Referral>> = BTreeMap::new();
    for r in referrals {
        groups.entry(by.key(r, tz)).or_default().push(r);
    }
    groups.into_iter().map(|(k, v)| (k, closure(&v))).collect()
}

impl App {
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
        let all = self.store.referrals_ordered_between(from, to).await?;
        let refs: Vec<&Referral> = all.iter().collect();
        let by = by.map(|g| split(&refs, g, &self.policy().time_zone));
        Ok(ClosureReport { from, to, generated_at: self.now(), total: closure(&refs), by })
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
        Ok(Cms50Report {
            measure: "CMS50FHIR 0.4.000 (MIPS 374) Closing the Referral Loop: Receipt of Specialist Report",
            year,
            period_start: period.start,
            period_end: period.end,
            generated_at: self.now(),
            result,
        })
    }
}
