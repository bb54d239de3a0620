//! What can happen to a referral, as the domain sees it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{
    decide::{Channel, Purpose, TaskKind},
    ids::{PatientId, ProviderId, ReferralId},
    referral::{Network, Origin, Specialty, State, Urgency},
    timers::TimerKind,
};

/// A new order, already parsed at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub id: ReferralId,
    pub patient_id: PatientId,
    pub referring_provider: ProviderId,
    pub specialty: Option<Specialty>,
    pub specialist: Option<String>,
    pub urgency: Urgency,
    pub origin: Origin,
    pub network: Network,
    pub reason: Option<String>,
    pub source_ids: Vec<String>,
    pub ordered_at: Timestamp,
    /// A past referral imported as history (a baseline): counted in reports, never acted on.
    pub historical: bool,
}

/// Changes to an existing order's attributes (e.g. the specialty gets coded).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderUpdate {
    pub specialty: Option<Specialty>,
    pub specialist: Option<String>,
    pub urgency: Option<Urgency>,
    pub network: Option<Network>,
}

/// The patient's contact data and consent, as far as the workflow needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub phone: Option<String>,
    pub sms_consent: bool,
    pub sms_opted_out: bool,
}

/// An earlier referral for the same patient and specialty that a new order may duplicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateCandidate {
    pub id: ReferralId,
    pub ordered_at: Timestamp,
}

/// Something that happened to an existing referral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A milestone reached in the world at `at` (patient reached, booked, visit, note).
    Milestone {
        state: State,
        at: Timestamp,
        appointment_at: Option<Timestamp>,
        channel: Option<String>,
    },
    /// The patient did not come to the appointment.
    NoShow {
        at: Timestamp,
    },
    /// The appointment was cancelled or deleted: the referral awaits scheduling again.
    AppointmentCancelled {
        at: Timestamp,
    },
    /// The patient's text message, for a person to read and answer (a person filed it on
    /// this referral).
    PatientReplied {
        at: Timestamp,
    },
    /// The patient opened the booking link in their text (a signal, not a milestone).
    BookingLinkOpened {
        at: Timestamp,
    },
    /// The specialist accepted or declined the referral.
    SpecialistResponded {
        at: Timestamp,
        accepted: bool,
    },
    /// The order was cancelled or entered in error.
    Cancel {
        at: Timestamp,
        reason: Option<String>,
    },
    /// Staff verified the specialist's contact data (a verify-specialist task was done):
    /// a note request that could not go out is sent again.
    SpecialistVerified {
        at: Timestamp,
    },
    /// Staff closed the referral without a note, with a reason.
    CloseIncomplete {
        at: Timestamp,
        reason: String,
    },
    OrderUpdated(OrderUpdate),
    /// A durable timer came due; `armed_version` is the referral version it was armed for.
    TimerElapsed {
        kind: TimerKind,
        armed_version: u64,
    },
    /// The outbox delivered a message.
    Delivered {
        channel: Channel,
        purpose: Purpose,
        at: Timestamp,
    },
    /// Staff could not reach the patient at the number on file (a wrong number on a call).
    ContactFailed {
        at: Timestamp,
        reason: String,
    },
    /// Staff fixed the patient's number (the context carries the new contact): stage 1's
    /// message goes out again if the patient was not reached yet.
    ContactFixed {
        at: Timestamp,
    },
    /// The message went to a channel that is off (it only logs): it reached no one.
    NotSent {
        channel: Channel,
        purpose: Purpose,
        reason: String,
    },
    /// The outbox gave up on a message.
    DeliveryFailed {
        channel: Channel,
        purpose: Purpose,
        error: String,
        /// The task a person must do instead, when the connector knows (else by channel).
        task: Option<TaskKind>,
    },
}
