//! The referral: its states, attributes and milestones.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ids::{PatientId, ProviderId, ReferralId};

/// A value that could not be parsed; names the field and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ParseError {
    pub field: &'static str,
    pub message: String,
}

impl ParseError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

macro_rules! kebab_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError::new(
                        stringify!($name),
                        format!("expected one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

kebab_enum!(
    /// The tracking state. The first five are the milestones in order; the last two are
    /// side paths that end the referral.
    State {
        Ordered => "ordered",
        PatientNotified => "patient-notified",
        Scheduled => "scheduled",
        Attended => "attended",
        NoteReceived => "note-received",
        Cancelled => "cancelled",
        ClosedIncomplete => "closed-incomplete",
    }
);

kebab_enum!(
    /// How soon the patient must be seen.
    Urgency {
        Routine => "routine",
        Urgent => "urgent",
        Asap => "asap",
        Stat => "stat",
    }
);

kebab_enum!(
    /// Who started the referral: only physician orders are tracked and counted.
    Origin {
        PhysicianOrder => "physician-order",
        SelfReferral => "self-referral",
    }
);

kebab_enum!(
    /// Whether the specialist shares our EHR network.
    Network {
        InNetwork => "in-network",
        OutOfNetwork => "out-of-network",
        Unknown => "unknown",
    }
);

impl State {
    /// Position on the milestone path; `None` for the side paths.
    pub fn rank(self) -> Option<u8> {
        match self {
            State::Ordered => Some(0),
            State::PatientNotified => Some(1),
            State::Scheduled => Some(2),
            State::Attended => Some(3),
            State::NoteReceived => Some(4),
            State::Cancelled | State::ClosedIncomplete => None,
        }
    }

    /// Cancelled and closed-incomplete end the referral: nothing moves it again.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Cancelled | State::ClosedIncomplete)
    }

    /// The loop is still open: the referral may still act and be acted on.
    pub fn is_open(self) -> bool {
        !self.is_terminal() && self != State::NoteReceived
    }
}

/// A specialty code (e.g. a NUCC taxonomy or SNOMED code, or a local code such as
/// `cardiology`). Lower-cased, trimmed, non-empty.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Specialty(String);

impl Specialty {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim().to_ascii_lowercase();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if ok {
            Ok(Self(s))
        } else {
            Err(ParseError::new("specialty", "a code of 1–64 letters, digits, '-', '_', '.', ':'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Specialty {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<Specialty> for String {
    fn from(s: Specialty) -> String {
        s.0
    }
}

/// When each milestone (and side path) was first reached, in world time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Milestones {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_notified: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attended: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_received: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_incomplete: Option<Timestamp>,
}

impl Milestones {
    pub fn get(&self, state: State) -> Option<Timestamp> {
        match state {
            State::Ordered => self.ordered,
            State::PatientNotified => self.patient_notified,
            State::Scheduled => self.scheduled,
            State::Attended => self.attended,
            State::NoteReceived => self.note_received,
            State::Cancelled => self.cancelled,
            State::ClosedIncomplete => self.closed_incomplete,
        }
    }

    fn slot(&mut self, state: State) -> &mut Option<Timestamp> {
        match state {
            State::Ordered => &mut self.ordered,
            State::PatientNotified => &mut self.patient_notified,
            State::Scheduled => &mut self.scheduled,
            State::Attended => &mut self.attended,
            State::NoteReceived => &mut self.note_received,
            State::Cancelled => &mut self.cancelled,
            State::ClosedIncomplete => &mut self.closed_incomplete,
        }
    }

    /// Records the first time a milestone was reached; a later report never moves it.
    pub(crate) fn reach(&mut self, state: State, at: Timestamp) {
        self.slot(state).get_or_insert(at);
    }
}

/// What the workflow has already done, so that a recomputed schedule never repeats it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The stage-1 patient message went out by SMS (a deadline timer guards it).
    #[serde(default)]
    pub notify_by_sms: bool,
    /// Stage 1 has acted (message queued or staff task opened).
    #[serde(default)]
    pub notify_done: bool,
    #[serde(default)]
    pub notify_escalated: bool,
    /// The start of the scheduling window that was already escalated (order or last no-show).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_escalated_for: Option<Timestamp>,
    /// The appointment the "did you attend?" question was asked for, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendance_asked: Option<(Timestamp, Timestamp)>,
    /// The appointment whose attendance was escalated to a phone task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendance_escalated_for: Option<Timestamp>,
    #[serde(default)]
    pub note_looked: bool,
    #[serde(default)]
    pub note_requested: bool,
    #[serde(default)]
    pub note_escalated: bool,
    /// How many note requests went out (the first is round 1; each verification adds one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub note_request_rounds: u32,
    /// How many times staff fixed the patient's number (each re-sends stage 1 under its own key).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contact_fixes: u32,
    /// A 360X referral request reached the specialist's HISP: a cancellation goes to them too,
    /// and their cancellation status confirms it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sent_360x: bool,
    /// The rung of the note-request ladder the last request took (1: the first way the
    /// specialist can be asked, then the next way each time one goes unanswered; the last
    /// rung is a person).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub note_rung: u32,
    /// When the last note request went out: the next rung waits `note_ladder_wait` from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_requested_at: Option<Timestamp>,
    /// When the patient last opened the booking link in their text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_link_opened: Option<Timestamp>,
    /// The patient texted back (a keyword or words a person read).
    #[serde(default, skip_serializing_if = "is_false")]
    pub patient_replied: bool,
    /// Stage 1's second reminder was due (sent, or not sendable).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reminded: bool,
    /// When the workflow's texts to the patient were queued in the last week (the weekly limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts_sent: Vec<Timestamp>,
}

/// The rungs of the note-request ladder: the specialist's FHIR endpoint, Direct, fax, then a
/// person (the connector skips a way the specialist does not have).
pub const NOTE_RUNGS: u32 = 4;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One physician-ordered (or self-) referral of one patient to one specialty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub id: ReferralId,
    /// Bumped by every decision that changes the referral; timers are armed for a version.
    pub version: u64,
    pub state: State,
    pub patient_id: PatientId,
    pub referring_provider: ProviderId,
    /// `None` until coded: such a referral is flagged "needs coding" and not routed.
    pub specialty: Option<Specialty>,
    pub specialist: Option<String>,
    pub urgency: Urgency,
    pub origin: Origin,
    pub network: Network,
    pub reason: Option<String>,
    /// Identifiers of the order in the source systems (placer numbers, FHIR ids).
    #[serde(default)]
    pub source_ids: Vec<String>,
    pub ordered_at: Timestamp,
    pub milestones: Milestones,
    pub appointment_at: Option<Timestamp>,
    pub duplicate_of: Option<ReferralId>,
    /// The referring provider is outside the pilot: tracked silently, never acted on.
    pub shadow: bool,
    pub close_reason: Option<String>,
    #[serde(default)]
    pub no_shows: u32,
    #[serde(default)]
    pub last_no_show_at: Option<Timestamp>,
    /// Since when the referral awaits scheduling again (after a no-show or a cancelled
    /// appointment); the scheduling window restarts here.
    #[serde(default)]
    pub awaiting_since: Option<Timestamp>,
    #[serde(default)]
    pub progress: Progress,
}

impl Referral {
    /// Counted in measures: a physician order that is not a duplicate and not cancelled.
    pub fn is_tracked(&self) -> bool {
        self.origin == Origin::PhysicianOrder && self.duplicate_of.is_none() && self.state != State::Cancelled
    }

    /// The workflow may act on it: tracked, in the pilot, coded, loop still open.
    pub fn is_actionable(&self) -> bool {
        self.is_tracked() && !self.shadow && self.specialty.is_some() && self.state.is_open()
    }

    /// Where the scheduling window starts: the order, or the last time the referral went
    /// back to awaiting scheduling.
    pub fn scheduling_base(&self) -> Timestamp {
        self.awaiting_since.or(self.last_no_show_at).unwrap_or(self.ordered_at)
    }

    pub fn needs_coding(&self) -> bool {
        self.specialty.is_none()
    }
}

/// Why a referral was closed without its loop closing: the documented list the reports group
/// by. `other` takes the staff's words after a colon (`other: cost`); any reason may add
/// detail the same way (`patient declined: cost`).
pub const CLOSE_REASONS: [&str; 7] =
    ["patient declined", "went elsewhere", "moved", "deceased", "insurance", "specialist declined", "other"];

/// The listed reason `reason` starts with (alone, or before a colon), if any.
fn listed(reason: &str) -> Option<&'static str> {
    let lower = reason.trim().to_lowercase();
    CLOSE_REASONS
        .into_iter()
        .find(|listed| lower.strip_prefix(listed).is_some_and(|rest| rest.is_empty() || rest.starts_with(':')))
}

/// A closing reason as kept: one of [`CLOSE_REASONS`], with the detail given after a colon;
/// words that name none of them are `other: <words>`.
pub fn close_reason(raw: &str) -> String {
    let raw = raw.trim();
    match listed(raw) {
        Some(l) => {
            let detail = raw.get(l.len()..).unwrap_or_default().trim_start_matches(':').trim();
            if detail.is_empty() { l.to_owned() } else { format!("{l}: {detail}") }
        }
        None => format!("other: {raw}"),
    }
}

/// The listed reason a kept closing reason belongs to (`other` for words from before the
/// list).
pub fn close_category(reason: &str) -> &'static str {
    listed(reason).unwrap_or("other")
}

#[cfg(test)]
mod close_reason_tests {
    use super::*;

    #[test]
    fn closing_reasons_come_from_the_list_with_their_detail() {
        assert_eq!(close_reason("Patient declined"), "patient declined");
        assert_eq!(close_reason("patient declined: cost"), "patient declined: cost");
        assert_eq!(close_reason(" moved away "), "other: moved away");
        assert_eq!(close_reason("other: lost to follow-up"), "other: lost to follow-up");
        assert_eq!(close_category("patient declined: cost"), "patient declined");
        assert_eq!(close_category("no longer needed"), "other");
    }
}
