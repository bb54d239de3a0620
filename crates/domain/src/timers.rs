//! The timers a referral needs, derived from its state and progress.
//!
//! Timers are not stored as intentions that can drift from the referral: after every
//! decision the full set is recomputed by [`timers_for`] and replaces what was pending,
//! armed for the new version. A firing whose version is not the referral's is stale.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{
    policy::Policy,
    referral::{Referral, State},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerKind {
    /// Stage 1: the SMS went out but the patient is not reached by the deadline.
    NotifyDeadline,
    /// Stage 2: no appointment known by day 7 (routine) / day 3 (urgent).
    SchedulingEscalation,
    /// Stage 3: the day after the appointment, ask "did you attend?".
    AttendanceCheck,
    /// Stage 3: no answer 48 h after asking.
    AttendanceReply,
    /// Stage 4: start looking for the note.
    NoteLook,
    /// Stage 4: request the note from the specialist.
    NoteRequest,
    /// Stage 4: escalate to the referring physician.
    NoteEscalation,
    /// Stage 4: the note request went unanswered: ask the next way.
    NoteLadder,
    /// Stage 1: a second text when the first had no reply and no booking (off by default).
    NotifyReminder,
}

impl TimerKind {
    pub const ALL: [TimerKind; 9] = [
        TimerKind::NotifyDeadline,
        TimerKind::SchedulingEscalation,
        TimerKind::AttendanceCheck,
        TimerKind::AttendanceReply,
        TimerKind::NoteLook,
        TimerKind::NoteRequest,
        TimerKind::NoteEscalation,
        TimerKind::NoteLadder,
        TimerKind::NotifyReminder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::NotifyDeadline => "notify-deadline",
            TimerKind::SchedulingEscalation => "scheduling-escalation",
            TimerKind::AttendanceCheck => "attendance-check",
            TimerKind::AttendanceReply => "attendance-reply",
            TimerKind::NoteLook => "note-look",
            TimerKind::NoteRequest => "note-request",
            TimerKind::NoteEscalation => "note-escalation",
            TimerKind::NoteLadder => "note-ladder",
            TimerKind::NotifyReminder => "notify-reminder",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// A timer that must be pending: fire `kind` at `due_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerSpec {
    pub kind: TimerKind,
    pub due_at: Timestamp,
}

fn plus(at: Timestamp, d: crate::Duration) -> Timestamp {
    at.checked_add(d.to_signed()).unwrap_or(Timestamp::MAX)
}

/// Every timer the referral needs now. Empty for a referral the workflow does not act on.
pub fn timers_for(r: &Referral, policy: &Policy) -> Vec<TimerSpec> {
    if !r.is_actionable() {
        return Vec::new();
    }
    let w = policy.windows(r.specialty.as_ref(), r.urgency);
    let p = &r.progress;
    let mut out = Vec::new();
    let mut arm = |kind, due_at| out.push(TimerSpec { kind, due_at });
    match r.state {
        State::Ordered | State::PatientNotified => {
            if r.state == State::Ordered && p.notify_by_sms && !p.notify_escalated {
                arm(TimerKind::NotifyDeadline, policy.after(r.ordered_at, w.notify));
            }
            if let Some(after) = policy.reminder_after
                && p.notify_by_sms
                && !p.reminded
                && !p.patient_replied
            {
                arm(TimerKind::NotifyReminder, policy.after(r.ordered_at, after));
            }
            let base = r.scheduling_base();
            if p.scheduling_escalated_for != Some(base) {
                arm(TimerKind::SchedulingEscalation, policy.after(base, w.scheduling));
            }
        }
        State::Scheduled => {
            if let Some(appt) = r.appointment_at {
                match p.attendance_asked {
                    Some((for_appt, asked_at)) if for_appt == appt => {
                        if p.attendance_escalated_for != Some(appt) {
                            arm(TimerKind::AttendanceReply, policy.after(asked_at, w.attendance_reply));
                        }
                    }
                    _ => arm(TimerKind::AttendanceCheck, policy.after(appt, w.attendance_check)),
                }
            }
        }
        State::Attended => {
            let visit = r.milestones.attended.unwrap_or(r.ordered_at);
            if !p.note_looked {
                arm(TimerKind::NoteLook, policy.after(visit, w.note_look));
            }
            if !p.note_requested {
                arm(TimerKind::NoteRequest, policy.after(visit, w.note_request));
            }
            if !p.note_escalated {
                arm(TimerKind::NoteEscalation, policy.after(visit, w.note_escalate));
            }
            if p.note_requested
                && (1..crate::referral::NOTE_RUNGS).contains(&p.note_rung)
                && r.network != crate::Network::InNetwork
                && let Some(at) = p.note_requested_at
            {
                arm(TimerKind::NoteLadder, plus(at, policy.note_ladder_wait));
            }
        }
        State::NoteReceived | State::Cancelled | State::ClosedIncomplete => {}
    }
    out
}

/// When the referral's current stage is late: the notify window for an order, the
/// scheduling window while unscheduled, the attendance window after the appointment, the
/// note-request window after the visit. `None` for untracked or finished referrals.
pub fn stage_deadline(r: &Referral, policy: &Policy) -> Option<Timestamp> {
    if !r.is_tracked() || !r.state.is_open() {
        return None;
    }
    let w = policy.windows(r.specialty.as_ref(), r.urgency);
    match r.state {
        State::Ordered => Some(policy.after(r.ordered_at, w.notify)),
        State::PatientNotified => Some(policy.after(r.scheduling_base(), w.scheduling)),
        State::Scheduled => {
            r.appointment_at.map(|a| policy.after(policy.after(a, w.attendance_check), w.attendance_reply))
        }
        State::Attended => r.milestones.attended.map(|a| policy.after(a, w.note_request)),
        State::NoteReceived | State::Cancelled | State::ClosedIncomplete => None,
    }
}
