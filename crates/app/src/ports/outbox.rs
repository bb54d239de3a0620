//! The outbox's records: an item, its status, the guard a recorded outcome must pass, and
//! what the reaper did.

use jiff::Timestamp;
use refloop_domain::{Channel, PatientId, Purpose, Referral, ReferralId};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting for `next_attempt_at`.
    Pending,
    /// Claimed by a worker until its lease ends.
    Sending,
    /// Handed to the provider, delivery to be confirmed.
    Accepted,
    Sent,
    Failed,
    /// It may have gone out (the sender died mid-attempt, or the provider's answer was lost):
    /// the provider is asked before anything is sent again.
    Unconfirmed,
    /// Whether it went out cannot be told: a person confirms with the patient (a
    /// `confirm-delivery` task); it is never resent.
    Unknown,
    /// Its channel is off (it only logs): it went nowhere.
    #[serde(rename = "not-sent")]
    NotSent,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 8] = [
        OutboxStatus::Pending,
        OutboxStatus::Sending,
        OutboxStatus::Accepted,
        OutboxStatus::Sent,
        OutboxStatus::Failed,
        OutboxStatus::Unconfirmed,
        OutboxStatus::Unknown,
        OutboxStatus::NotSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Accepted => "accepted",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Unconfirmed => "unconfirmed",
            OutboxStatus::Unknown => "unknown",
            OutboxStatus::NotSent => "not-sent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A message that leaves the system, written in the same transaction as its cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: String,
    pub referral_id: ReferralId,
    pub patient_id: PatientId,
    pub channel: Channel,
    pub purpose: Purpose,
    /// Idempotency key: an item with a key already in the outbox is not enqueued again.
    pub key: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// A staff reply's text; the workflow's messages are rendered from templates when sent.
    pub body: Option<String>,
    /// When the first attempt started: what the provider is asked about, from then on.
    pub first_attempt_at: Option<Timestamp>,
    /// An earlier attempt may have gone out: ask the provider before sending again.
    pub check_first: bool,
}

impl OutboxItem {
    /// A new item about `r`, pending and due now; `key` is its idempotency key. A caller sets
    /// `body` or a later `next_attempt_at` with struct update.
    pub fn pending(r: &Referral, channel: Channel, purpose: Purpose, key: String, now: Timestamp) -> Self {
        Self {
            id: crate::new_id("msg"),
            referral_id: r.id.clone(),
            patient_id: r.patient_id.clone(),
            channel,
            purpose,
            key,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            sent_at: None,
            last_error: None,
            body: None,
            first_attempt_at: None,
            check_first: false,
        }
    }
}

/// Which state of an outbox row an outcome applies to (compare-and-set): the lease a
/// worker claimed it with, or a settled status (e.g. a delivery report for an `accepted`
/// item). An outcome whose row moved on is not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxGuard<'a> {
    Lease(&'a str),
    Status(OutboxStatus),
}

/// What the reaper did with items whose lease ran out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Never attempted (no attempt had started): back to `pending`, sent as usual.
    pub released: u64,
    /// Their attempt had started: `unconfirmed`, the provider is asked before a resend.
    pub unconfirmed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    pub status: Option<OutboxStatus>,
    pub referral_id: Option<ReferralId>,
    pub limit: u32,
}
