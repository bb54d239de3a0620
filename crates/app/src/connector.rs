//! The outbound port: one trait for every channel that leaves the system.

use refloop_domain::{Channel, TaskKind};

use crate::ports::OutboxItem;

/// What happened to one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered to its recipient.
    Delivered,
    /// Accepted by the provider; delivery will be reported later (e.g. an SMS status webhook).
    Accepted { provider_id: String },
    /// Failed for now, and it did not go out (the provider was not reached, or refused it
    /// before taking it): try again later.
    Retry { error: String },
    /// It may have gone out: the request was written but the answer was lost (a time-out, a
    /// connection reset mid-answer, a 5xx after the body was sent). Never resent blindly:
    /// the provider is asked first ([`Connector::confirm`]).
    Unconfirmed { error: String },
    /// Failed for good; a staff task takes over.
    Permanent { error: String },
    /// Cannot go out until a person does `task` (e.g. verify the specialist's fax number).
    NeedsPerson { error: String, task: TaskKind },
    /// The channel is off (it only logs): nothing went out and nothing will.
    ChannelOff,
}

/// Whether a channel reaches anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelMode {
    /// A real vendor or system: what it delivers reached someone.
    Live,
    /// The simulator's people answer it (`serve --demo`): counts as reached, in demo data only.
    Simulated,
    /// Only logs: nothing sent through it reaches anyone or counts as sent.
    Off,
}

impl ChannelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelMode::Live => "live",
            ChannelMode::Simulated => "simulated",
            ChannelMode::Off => "off",
        }
    }

    pub fn reaches_someone(self) -> bool {
        self != ChannelMode::Off
    }
}

/// What the provider says of an earlier attempt whose outcome was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// It has the message: it went out (`Delivered` or `Accepted`).
    Sent(DeliveryOutcome),
    /// It has no such message: sending it now cannot double it.
    NotSent,
    /// The lookup failed for now (the provider was not reached): ask again later.
    Later { error: String },
    /// It cannot tell (no lookup in its API): a person confirms.
    CannotTell { error: String },
}

/// Sends outbox items. Implementations must be idempotent per `item.key`.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome;

    /// Asks the provider whether an earlier attempt on `item` (from `item.first_attempt_at`)
    /// went out. By default a channel cannot tell.
    async fn confirm(&self, _item: &OutboxItem) -> Confirmation {
        Confirmation::CannotTell { error: "this channel cannot look up what it sent".to_owned() }
    }

    /// Whether what goes out on `channel` reaches anyone.
    fn mode(&self, _channel: Channel) -> ChannelMode {
        ChannelMode::Live
    }
}

/// One outbound channel as the settings page and `check-config` show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChannelStatus {
    pub channel: Channel,
    /// What it carries, in words.
    pub label: &'static str,
    pub mode: ChannelMode,
    /// The workflow leaks without it: stage 1 and 3 fall back to calls (SMS), stage 4 to
    /// requests by hand (note requests). The dashboard warns while one of these is off.
    pub needed: bool,
    pub last_success: Option<jiff::Timestamp>,
    pub last_failure: Option<jiff::Timestamp>,
}

impl ChannelStatus {
    pub fn label_of(channel: Channel) -> &'static str {
        match channel {
            Channel::Sms => "Patient SMS",
            Channel::Chat => "Team chat",
            Channel::EhrTask => "EHR task write-back",
            Channel::Portal => "Patient-portal message (EHR)",
            Channel::EhrQuery => "EHR note lookup",
            Channel::NoteRequest => "Note request (fax / Direct)",
        }
    }

    pub fn needed_by_workflow(channel: Channel) -> bool {
        matches!(channel, Channel::Sms | Channel::NoteRequest)
    }
}
