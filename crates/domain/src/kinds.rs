//! The names the workflow speaks in: where a message goes ([`Channel`]), why it is sent
//! ([`Purpose`]), and the staff tasks it opens ([`TaskKind`]).

use serde::{Deserialize, Serialize};

use crate::referral::State;

/// Where an outbound message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// Patient SMS.
    Sms,
    /// Team chat (Slack-compatible incoming webhook).
    Chat,
    /// A FHIR Task written back to the EHR for the referring nurse.
    EhrTask,
    /// A query to the EHR for the consult note.
    EhrQuery,
    /// The note request to the specialist (Direct or fax, chosen by the connector).
    NoteRequest,
    /// A patient-portal message written back to the EHR (FHIR `Communication`): the patient
    /// is reached without SMS consent.
    Portal,
}

/// Why a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    PatientNotification,
    SchedulingEscalation,
    AttendanceQuestion,
    NoteLookup,
    NoteRequest,
    /// A person's own text to the patient (its body travels with the outbox item).
    StaffReply,
    /// The consult note that came in, written back to the EHR (a FHIR `DocumentReference`;
    /// the outbox item's body is the document's id).
    NoteWriteBack,
    /// The 360X referral request to a specialist who takes them (Direct, an XDM package with
    /// an `OMG^O19` and a C-CDA Referral Note; the outbox item's body is the "needed by" time).
    ReferralRequest,
    /// The 360X cancellation of a referral request that went out (`OMG^O19`, ORC `CA`).
    ReferralCancel,
    /// Stage 1's second text to a patient who has neither answered nor booked.
    Reminder,
}

impl Channel {
    pub const ALL: &'static [Channel] =
        &[Channel::Sms, Channel::Chat, Channel::EhrTask, Channel::EhrQuery, Channel::NoteRequest, Channel::Portal];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Chat => "chat",
            Channel::EhrTask => "ehr-task",
            Channel::EhrQuery => "ehr-query",
            Channel::NoteRequest => "note-request",
            Channel::Portal => "portal",
        }
    }
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PatientNotification => "patient-notification",
            Purpose::SchedulingEscalation => "scheduling-escalation",
            Purpose::AttendanceQuestion => "attendance-question",
            Purpose::NoteLookup => "note-lookup",
            Purpose::NoteRequest => "note-request",
            Purpose::StaffReply => "staff-reply",
            Purpose::NoteWriteBack => "note-write-back",
            Purpose::ReferralRequest => "referral-request",
            Purpose::ReferralCancel => "referral-cancel",
            Purpose::Reminder => "reminder",
        }
    }
}

/// A staff task on the worklist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Call the patient: no SMS possible, or not reached in time.
    NotifyPatient,
    /// The phone number is missing, invalid or undeliverable.
    FixContact,
    /// Front desk: no appointment known after the scheduling window.
    ScheduleFollowUp,
    /// Call the patient: did they attend?
    AttendanceCall,
    /// In-network note is late: review in the shared EHR.
    NoteReview,
    /// Referring physician: no note after the last window; consider another specialist.
    PhysicianEscalation,
    /// An outbound message failed for good.
    DeliveryFailed,
    /// Whether a message went out cannot be told (the provider could not say): confirm with
    /// the recipient instead of sending it again.
    ConfirmDelivery,
    /// The specialist declined the referral: find another.
    SpecialistDeclined,
    /// An inbound message may belong to this referral: confirm it or apply it elsewhere.
    ReviewMatch,
    /// The patient replied by SMS with something for a person to read and answer.
    PatientReply,
    /// The specialist's contact data is missing or stale: verify it, then request the note.
    VerifySpecialist,
    /// The specialist cannot send electronically (an interoperability gap): request the
    /// records by hand.
    RecordsRequest,
}

impl TaskKind {
    /// A task done by phoning the patient (the one who makes the call may need an interpreter).
    pub fn calls_patient(self) -> bool {
        matches!(
            self,
            TaskKind::NotifyPatient | TaskKind::FixContact | TaskKind::ScheduleFollowUp | TaskKind::AttendanceCall
        )
    }

    pub const ALL: &'static [TaskKind] = &[
        TaskKind::NotifyPatient,
        TaskKind::FixContact,
        TaskKind::ScheduleFollowUp,
        TaskKind::AttendanceCall,
        TaskKind::NoteReview,
        TaskKind::PhysicianEscalation,
        TaskKind::DeliveryFailed,
        TaskKind::ConfirmDelivery,
        TaskKind::SpecialistDeclined,
        TaskKind::ReviewMatch,
        TaskKind::PatientReply,
        TaskKind::VerifySpecialist,
        TaskKind::RecordsRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::NotifyPatient => "notify-patient",
            TaskKind::FixContact => "fix-contact",
            TaskKind::ScheduleFollowUp => "schedule-follow-up",
            TaskKind::AttendanceCall => "attendance-call",
            TaskKind::NoteReview => "note-review",
            TaskKind::PhysicianEscalation => "physician-escalation",
            TaskKind::DeliveryFailed => "delivery-failed",
            TaskKind::ConfirmDelivery => "confirm-delivery",
            TaskKind::SpecialistDeclined => "specialist-declined",
            TaskKind::ReviewMatch => "review-match",
            TaskKind::PatientReply => "patient-reply",
            TaskKind::VerifySpecialist => "verify-specialist",
            TaskKind::RecordsRequest => "records-request",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// A short title for the worklist; ids only, never patient data.
    pub fn title(self) -> &'static str {
        match self {
            TaskKind::NotifyPatient => "Call the patient with the specialist's contact and how to schedule",
            TaskKind::FixContact => "Fix the patient's phone number, then notify them",
            TaskKind::ScheduleFollowUp => "No appointment yet: help the patient schedule",
            TaskKind::AttendanceCall => "Call the patient: did they attend the appointment?",
            TaskKind::NoteReview => "Consult note is late: review the shared EHR",
            TaskKind::PhysicianEscalation => "No consult note: consider an alternative specialist",
            TaskKind::DeliveryFailed => "A message to the patient or specialist failed",
            TaskKind::ConfirmDelivery => {
                "A message may or may not have gone out: confirm with the recipient (it is not resent)"
            }
            TaskKind::SpecialistDeclined => "The specialist declined the referral: choose another",
            TaskKind::ReviewMatch => "An inbound message may belong to this referral: confirm or reassign it",
            TaskKind::PatientReply => "The patient replied by SMS: read it and answer",
            TaskKind::VerifySpecialist => "Verify the specialist's contact data, then request the consult note",
            TaskKind::RecordsRequest => "The specialist cannot send electronically: request the records by hand",
        }
    }

    /// A few words for a worklist row.
    pub fn short(self) -> &'static str {
        match self {
            TaskKind::NotifyPatient => "Call: how to schedule",
            TaskKind::FixContact => "Fix the phone number",
            TaskKind::ScheduleFollowUp => "Call: help schedule",
            TaskKind::AttendanceCall => "Call: did they attend?",
            TaskKind::NoteReview => "Find the note in the EHR",
            TaskKind::PhysicianEscalation => "No note: tell the physician",
            TaskKind::DeliveryFailed => "A message failed",
            TaskKind::ConfirmDelivery => "Did the message arrive?",
            TaskKind::SpecialistDeclined => "Specialist declined",
            TaskKind::ReviewMatch => "Review a message",
            TaskKind::PatientReply => "Answer the patient's text",
            TaskKind::VerifySpecialist => "Verify the specialist",
            TaskKind::RecordsRequest => "Request records by hand",
        }
    }

    /// Whether reaching `state` makes this task moot.
    pub(crate) fn resolved_by(self, state: State) -> bool {
        let rank = state.rank().unwrap_or(u8::MAX);
        match self {
            TaskKind::NotifyPatient => rank >= 1,
            TaskKind::ScheduleFollowUp | TaskKind::SpecialistDeclined => rank >= 2,
            TaskKind::AttendanceCall => rank >= 3,
            TaskKind::NoteReview
            | TaskKind::PhysicianEscalation
            | TaskKind::VerifySpecialist
            | TaskKind::RecordsRequest => rank >= 4,
            TaskKind::FixContact
            | TaskKind::DeliveryFailed
            | TaskKind::ConfirmDelivery
            | TaskKind::ReviewMatch
            | TaskKind::PatientReply => state.is_terminal(),
        }
    }
}
