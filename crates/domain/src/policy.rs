//! The workflow policy of SPEC §2 as data: windows per urgency (optionally per specialty),
//! the dedupe window, quiet hours and the pilot list.

use jiff::{Timestamp, civil::Time, tz::TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{
    calendar::{BusinessCalendar, Window},
    duration::Duration,
    ids::ProviderId,
    kinds::Channel,
    referral::{Specialty, Urgency},
};

/// The windows of the four stages, measured from the stage's starting point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageWindows {
    /// Stage 1: the patient must be reached within this time of the order.
    pub notify: Window,
    /// Stage 2: no appointment this long after the order (or a no-show) → escalate.
    pub scheduling: Window,
    /// Stage 3: ask "did you attend?" this long after the appointment.
    pub attendance_check: Window,
    /// Stage 3: no answer this long after asking → staff phone task.
    pub attendance_reply: Window,
    /// Stage 4: start looking for the note this long after the visit.
    pub note_look: Window,
    /// Stage 4: no note by then → request it from the specialist.
    pub note_request: Window,
    /// Stage 4: still no note → escalate to the referring physician.
    pub note_escalate: Window,
}

impl StageWindows {
    /// Each window with the name people know it by, in the order of the stages.
    pub fn named(&self) -> [(&'static str, Window); 7] {
        [
            ("notify", self.notify),
            ("scheduling", self.scheduling),
            ("attendance check", self.attendance_check),
            ("attendance reply", self.attendance_reply),
            ("note look", self.note_look),
            ("note request", self.note_request),
            ("note escalation", self.note_escalate),
        ]
    }

    pub fn routine() -> Self {
        Self {
            notify: Window::hours(24),
            scheduling: Window::days(7),
            attendance_check: Window::days(1),
            attendance_reply: Window::hours(48),
            note_look: Window::days(14),
            note_request: Window::days(30),
            note_escalate: Window::days(60),
        }
    }

    pub fn urgent() -> Self {
        Self {
            notify: Window::hours(2),
            scheduling: Window::days(3),
            attendance_check: Window::days(1),
            attendance_reply: Window::hours(48),
            note_look: Window::days(7),
            note_request: Window::days(14),
            note_escalate: Window::days(30),
        }
    }
}

/// Windows for routine referrals and for urgent ones (urgent, asap and stat).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSet {
    pub routine: StageWindows,
    pub urgent: StageWindows,
}

impl Default for WindowSet {
    fn default() -> Self {
        Self { routine: StageWindows::routine(), urgent: StageWindows::urgent() }
    }
}

impl WindowSet {
    pub fn for_urgency(&self, urgency: Urgency) -> &StageWindows {
        match urgency {
            Urgency::Routine => &self.routine,
            Urgency::Urgent | Urgency::Asap | Urgency::Stat => &self.urgent,
        }
    }
}

/// Local hours in which no SMS is sent; a send that falls inside is deferred to `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

impl Default for QuietHours {
    fn default() -> Self {
        Self { start: Time::constant(20, 0, 0, 0), end: Time::constant(8, 0, 0, 0) }
    }
}

impl QuietHours {
    fn is_quiet(&self, t: Time) -> bool {
        if self.start <= self.end { self.start <= t && t < self.end } else { t >= self.start || t < self.end }
    }

    /// The first instant at or after `at` that is outside quiet hours in `tz`.
    pub fn next_allowed(&self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let local = at.to_zoned_datetime(tz.clone());
        let t = local.time();
        if !self.is_quiet(t) {
            return at;
        }
        let mut date = local.date();
        if self.start > self.end && t >= self.start {
            date = date.tomorrow().unwrap_or(date);
        }
        date.to_datetime(self.end).to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).unwrap_or(at)
    }
}

/// When a call that reached no one (no answer, voicemail) is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallRetry {
    /// The next business day at this local time, in the practice's time zone.
    NextBusinessMorning(Time),
    /// This long after the attempt.
    After(Duration),
}

impl Default for CallRetry {
    fn default() -> Self {
        CallRetry::NextBusinessMorning(Time::constant(9, 0, 0, 0))
    }
}

impl CallRetry {
    /// `"next-business-morning"` (09:00), `"next-business-morning 08:30"` or a duration (`"4h"`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("next-business-morning") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Ok(Self::default());
            }
            return rest
                .parse::<Time>()
                .map(CallRetry::NextBusinessMorning)
                .map_err(|_| format!("{rest:?} is not a time such as 08:30"));
        }
        s.parse::<Duration>().map(CallRetry::After).map_err(|e| e.to_string())
    }

    /// When to call again after an attempt at `at`.
    pub fn next(&self, at: Timestamp, calendar: &BusinessCalendar, tz: &TimeZone) -> Timestamp {
        match *self {
            CallRetry::After(d) => at.checked_add(d.to_signed()).unwrap_or(at),
            CallRetry::NextBusinessMorning(time) => {
                let date = calendar.next_open_day(at.to_zoned_datetime(tz.clone()).date());
                date.to_datetime(time).to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).unwrap_or(at)
            }
        }
    }
}

/// Which outbound channels reach someone. A channel that only logs (or is switched off)
/// is not live: nothing it would send counts as sent, and the workflow takes the path it
/// takes for a patient it cannot text (a portal message, else a staff call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveChannels {
    live: [bool; Channel::ALL.len()],
}

impl LiveChannels {
    /// Every channel reaches someone.
    pub const ALL: LiveChannels = LiveChannels { live: [true; Channel::ALL.len()] };
    /// No channel reaches anyone.
    pub const NONE: LiveChannels = LiveChannels { live: [false; Channel::ALL.len()] };

    /// The set where `live(channel)` says which are live.
    pub fn from_fn(live: impl Fn(Channel) -> bool) -> Self {
        let mut set = Self::NONE;
        for c in Channel::ALL {
            set.live[c.index()] = live(*c);
        }
        set
    }

    pub fn is_live(&self, channel: Channel) -> bool {
        self.live[channel.index()]
    }

    /// This set with `channel` on or off.
    pub fn with(mut self, channel: Channel, live: bool) -> Self {
        self.live[channel.index()] = live;
        self
    }
}

impl Default for LiveChannels {
    fn default() -> Self {
        Self::ALL
    }
}

/// The whole workflow policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub windows: WindowSet,
    /// Per-specialty windows that replace the defaults for that specialty.
    pub specialty_windows: BTreeMap<Specialty, WindowSet>,
    /// A second order for the same patient and specialty within this window is a duplicate.
    pub dedupe_window: Duration,
    pub quiet_hours: QuietHours,
    /// Providers the workflow acts for; empty means every provider.
    pub pilot_providers: Vec<ProviderId>,
    /// The practice's time zone: used for a patient with none recorded, and the zone its
    /// business days and hours are in.
    pub time_zone: TimeZone,
    /// The practice's business days, hours and holidays: business-day windows count them, and
    /// staff tasks fall due inside them.
    pub calendar: BusinessCalendar,
    /// The country (ISO 3166 code, e.g. `US`) whose national format phone numbers without a
    /// country code are read in.
    pub phone_region: String,
    /// Patients without SMS consent get a patient-portal message (the EHR takes FHIR
    /// `Communication` write-back) instead of a staff phone call.
    pub portal_messages: bool,
    /// A consult note that came in as a document (Direct, fax) is written back to the EHR as
    /// a FHIR `DocumentReference` on the referral's ServiceRequest.
    pub note_write_back: bool,
    /// A new referral to a specialist whom the directory marks as taking 360X (and who has a
    /// Direct address) also goes to them as a 360X referral request.
    pub referrals_360x: bool,
    /// How long a note request may go unanswered before the next way is tried (the ladder:
    /// FHIR → Direct → fax → a person).
    pub note_ladder_wait: Duration,
    /// The channels that reach someone (set by the application from its connectors).
    pub live: LiveChannels,
    /// When a staff call that reached no one comes back on the worklist.
    pub call_retry: CallRetry,
    /// A staff reply to a patient who texted in the last 24 hours may go out in quiet hours.
    pub replies_in_quiet_hours: bool,
    /// Stage 1's second text this long after the order, when the first had no reply and no
    /// booking; none when unset.
    pub reminder_after: Option<Window>,
    /// The workflow's texts to one referral's patient in any 7 days at most (0: no limit);
    /// past it a person calls instead.
    pub texts_per_week: u32,
    /// How far ahead of our clock an order may be dated (a sender's clock running fast, or a
    /// timestamp without an offset read in the practice's zone) and still be taken as it is.
    pub future_tolerance: Duration,
    /// How long after its order a referral's whole path (to the visit, then the note) has had
    /// time to finish: the reports' mature closed-loop rate counts only those.
    pub mature_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            windows: WindowSet::default(),
            specialty_windows: BTreeMap::new(),
            dedupe_window: Duration::days(14),
            quiet_hours: QuietHours::default(),
            pilot_providers: Vec::new(),
            time_zone: TimeZone::UTC,
            calendar: BusinessCalendar::default(),
            phone_region: "US".to_owned(),
            portal_messages: false,
            note_write_back: false,
            referrals_360x: false,
            note_ladder_wait: Duration::days(7),
            live: LiveChannels::ALL,
            call_retry: CallRetry::default(),
            replies_in_quiet_hours: false,
            reminder_after: None,
            texts_per_week: 3,
            future_tolerance: Duration::hours(24),
            mature_after: Duration::days(90),
        }
    }
}

impl Policy {
    pub fn windows(&self, specialty: Option<&Specialty>, urgency: Urgency) -> &StageWindows {
        specialty.and_then(|s| self.specialty_windows.get(s)).unwrap_or(&self.windows).for_urgency(urgency)
    }

    /// Every window set by name: "routine", "urgent", then "SPECIALTY routine" … for the
    /// specialties with their own.
    pub fn window_sets(&self) -> Vec<(String, &StageWindows)> {
        let mut out = vec![("routine".to_owned(), &self.windows.routine), ("urgent".to_owned(), &self.windows.urgent)];
        for (s, set) in &self.specialty_windows {
            out.push((format!("{} routine", s.as_str()), &set.routine));
            out.push((format!("{} urgent", s.as_str()), &set.urgent));
        }
        out
    }

    /// The practice's calendar as people read it: its hours, the next closed days from `today`,
    /// and how each window reads.
    pub fn calendar_lines(&self, today: jiff::civil::Date) -> Vec<String> {
        let mut lines = vec![format!("business hours: {} ({})", self.calendar.describe(), self.time_zone_name())];
        let next: Vec<String> =
            self.calendar.next_holidays(today, 5).into_iter().map(|(d, name)| format!("{d} {name}")).collect();
        lines.push(if next.is_empty() {
            "next holidays: none in the coming year".to_owned()
        } else {
            format!("next holidays: {}", next.join(", "))
        });
        for (name, w) in self.window_sets() {
            let reads: Vec<String> = w.named().iter().map(|(n, w)| format!("{n} {}", w.reads())).collect();
            lines.push(format!("{name} windows: {}", reads.join(" · ")));
        }
        lines
    }

    /// The practice's zone by its IANA name.
    pub fn time_zone_name(&self) -> &str {
        self.time_zone.iana_name().unwrap_or("UTC")
    }

    /// The end of `window` started at `at`, on the practice's calendar.
    pub fn after(&self, at: Timestamp, window: Window) -> Timestamp {
        window.after(at, &self.calendar, &self.time_zone)
    }

    /// When a staff task meant for `at` falls due: `at` inside business hours, else the next
    /// opening.
    pub fn task_due(&self, at: Timestamp) -> Timestamp {
        self.calendar.next_open(at, &self.time_zone)
    }

    pub fn in_pilot(&self, provider: &ProviderId) -> bool {
        self.pilot_providers.is_empty() || self.pilot_providers.contains(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn quiet_hours_defer_to_the_morning_in_the_patients_zone() {
        let q = QuietHours::default();
        let ny = TimeZone::get("America/New_York").unwrap();
        // 21:30 in New York (01:30Z next day in winter) → 08:00 New York the next morning.
        assert_eq!(q.next_allowed(ts("2026-01-15T02:30:00Z"), &ny), ts("2026-01-15T13:00:00Z"));
        // 06:00 in New York → 08:00 the same day.
        assert_eq!(q.next_allowed(ts("2026-01-15T11:00:00Z"), &ny), ts("2026-01-15T13:00:00Z"));
        // 14:00 in New York is not quiet.
        assert_eq!(q.next_allowed(ts("2026-01-15T19:00:00Z"), &ny), ts("2026-01-15T19:00:00Z"));
    }

    #[test]
    fn a_call_is_tried_again_the_next_business_morning() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let r = CallRetry::default();
        let cal = BusinessCalendar::default();
        // Friday 15:00 New York → Monday 09:00; Tuesday 07:00 → Wednesday 09:00.
        assert_eq!(r.next(ts("2026-03-06T20:00:00Z"), &cal, &ny), ts("2026-03-09T13:00:00Z"));
        assert_eq!(r.next(ts("2026-03-10T12:00:00Z"), &cal, &ny), ts("2026-03-11T13:00:00Z"));
        assert_eq!(
            CallRetry::parse("4h").unwrap().next(ts("2026-03-06T20:00:00Z"), &cal, &ny),
            ts("2026-03-07T00:00:00Z")
        );
        // Friday 9 October 2026 → Tuesday 13 October (Monday is Columbus Day).
        assert_eq!(r.next(ts("2026-10-09T20:00:00Z"), &cal, &ny), ts("2026-10-13T13:00:00Z"));
        assert_eq!(
            CallRetry::parse("next-business-morning 08:30").unwrap(),
            CallRetry::NextBusinessMorning(Time::constant(8, 30, 0, 0))
        );
        assert!(CallRetry::parse("soonish").is_err());
    }

    #[test]
    fn urgent_asap_and_stat_share_the_short_windows() {
        let p = Policy::default();
        for u in [Urgency::Urgent, Urgency::Asap, Urgency::Stat] {
            assert_eq!(p.windows(None, u).scheduling, Window::days(3));
        }
        assert_eq!(p.windows(None, Urgency::Routine).scheduling, Window::days(7));
    }

    #[test]
    fn a_specialty_can_have_its_own_windows() {
        let mut p = Policy::default();
        let onc = Specialty::parse("oncology").unwrap();
        let mut w = WindowSet::default();
        w.routine.scheduling = Window::days(2);
        p.specialty_windows.insert(onc.clone(), w);
        assert_eq!(p.windows(Some(&onc), Urgency::Routine).scheduling, Window::days(2));
        let derm = Specialty::parse("dermatology").unwrap();
        assert_eq!(p.windows(Some(&derm), Urgency::Routine).scheduling, Window::days(7));
    }
}
