//! The referral and its lifecycle, as pure data and pure functions.
//!
//! Nothing here does I/O, reads a clock or spawns tasks: [`decide`] takes the current
//! referral, an [`Input`] and a [`Context`] (which carries `now`) and returns a
//! [`Decision`] — the new referral, the events to append, the effects to carry out and
//! the timers that must be pending afterwards. The application layer executes a decision
//! inside one storage transaction.

mod calendar;
pub mod cms50;
mod decide;
mod duration;
mod ids;
mod input;
mod kinds;
mod phone;
mod policy;
mod referral;
mod sms;
mod timers;

pub use calendar::{BusinessCalendar, Window, WindowError, parse_weekday, us_federal_holiday};
pub use decide::{
    Channel, Context, DecideError, Decision, Effect, Event, EventData, Outbound, Purpose, TaskKind, decide, decide_new,
};
pub use duration::{Duration, DurationError};
pub use ids::{FNV_OFFSET, PatientId, ProviderId, ReferralId, fnv1a};
pub use input::{Contact, DuplicateCandidate, Input, NewOrder, OrderUpdate};
pub use phone::PhoneE164;
pub use policy::{CallRetry, LiveChannels, Policy, QuietHours, StageWindows, WindowSet};
pub use referral::{
    CLOSE_REASONS, Milestones, NOTE_RUNGS, Network, Origin, ParseError, Progress, Referral, Specialty, State, Urgency,
    close_category, close_reason,
};
pub use sms::{SmsReply, classify_sms, classify_sms_in, language_code, language_name};
pub use timers::{TimerKind, TimerSpec, stage_deadline, timers_for};

/// The LOINC codes of the CMS50 "Consultant Report" value set: a document or result with
/// one of these codes is a consult note.
pub fn is_consult_report_code(loinc: &str) -> bool {
    static CODES: &str = include_str!("../data/consultant-report-loinc.txt");
    CODES.lines().filter(|l| !l.starts_with('#')).any(|l| l.split('\t').next() == Some(loinc.trim()))
}
