//! The Store port: what the application needs from a database.
//!
//! Writes happen inside a [`Tx`]: one decision, one transaction. Reads for people go
//! straight to the [`Store`].

use jiff::Timestamp;
use refloop_domain::{
    EventData, Network, PatientId, ProviderId, Referral, ReferralId, Specialty, State, TaskKind, TimerKind,
};
use serde::Serialize;

mod accounts;
mod outbox;
mod storage;

pub use accounts::{
    AUDIT_GENESIS, AuditAnchor, AuditEntry, AuditQuery, AuditRecord, AuditSeal, SessionRecord, SessionStage,
    SsoPending, TokenRecord, UserRecord,
};
pub use outbox::{OutboxFilter, OutboxGuard, OutboxItem, OutboxStatus, Reaped};
pub use storage::{
    AuditStore, AuditTx, AuthStore, DirectoryStore, DocumentStore, DocumentTx, InboxStore, InboxTx, OutboxStore,
    OutboxTx, ReferralStore, ReferralTx, ReportStore, Store, TaskStore, TaskTx, TimerTx, Tx,
};

/// One entry of a referral's append-only log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub referral_id: ReferralId,
    /// The referral version this event produced.
    pub version: u64,
    pub data: EventData,
    /// When it happened in the world.
    pub at: Timestamp,
    /// When refloop learned it.
    pub recorded_at: Timestamp,
    /// Where it came from: `coordinator:alice`, `timer`, `outbox`, `hl7:…`.
    pub source: String,
}

/// A pending durable timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRow {
    pub id: String,
    pub referral_id: ReferralId,
    pub kind: TimerKind,
    pub due_at: Timestamp,
    pub armed_version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Open,
    Claimed,
    Done,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Claimed => "claimed",
            TaskStatus::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(TaskStatus::Open),
            "claimed" => Some(TaskStatus::Claimed),
            "done" => Some(TaskStatus::Done),
            _ => None,
        }
    }
}

/// A worklist task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub referral_id: ReferralId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub assignee: Option<String>,
    pub due_at: Timestamp,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub outcome: Option<String>,
    /// For a review task: the inbound message to confirm.
    pub inbox_id: Option<String>,
    /// Calls that reached no one so far (no answer, voicemail).
    pub attempts: u32,
    /// The staff note of the last outcome.
    pub note: Option<String>,
}

/// A change to one task, taken only while the task is open or claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskChange {
    /// To `assignee`; `reassign` also takes a task someone else claimed.
    Claim { assignee: String, reassign: bool },
    /// Done, with its outcome and note.
    Complete { by: String, outcome: String, note: Option<String>, at: Timestamp },
    /// Back to open (unclaimed), due again at `due_at`, one more attempt counted.
    Retry { outcome: String, note: Option<String>, due_at: Timestamp },
}

/// One line of a task's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLogEntry {
    pub task_id: String,
    pub referral_id: ReferralId,
    pub at: Timestamp,
    pub actor: String,
    /// `claimed`, `reassigned`, `retry` or `completed`.
    pub action: String,
    pub assignee: Option<String>,
    pub outcome: Option<String>,
    pub note: Option<String>,
}

/// A task to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    pub id: String,
    pub referral_id: ReferralId,
    pub kind: TaskKind,
    pub due_at: Timestamp,
    pub created_at: Timestamp,
    pub inbox_id: Option<String>,
}

/// The patient's contact data. Never logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patient {
    pub id: PatientId,
    pub name: Option<String>,
    /// `YYYY-MM-DD`, when the EHR sent it.
    pub birth_date: Option<String>,
    /// Preferred language (a BCP 47 / ISO 639 code or the EHR's text), when known.
    pub language: Option<String>,
    /// What refloop reads from the number that came: E.164 when it can take a text (see
    /// [`crate::phone_on_file`]).
    pub phone: Option<String>,
    /// The number as it came, for staff to see.
    pub phone_text: Option<String>,
    pub sms_consent: bool,
    pub sms_opted_out: bool,
    pub time_zone: Option<String>,
    pub updated_at: Timestamp,
}

/// What an update of a patient keeps from the stored row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatientKeep {
    /// Keep the recorded SMS consent (the update carries none).
    pub consent: bool,
    /// Keep the recorded opt-out (only the SMS channel changes it).
    pub opt_out: bool,
}

/// Monitoring counts (see [`Store::gauges`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    pub referrals_by_state: Vec<(String, i64)>,
    pub overdue_tasks: i64,
    /// Inbound messages waiting for a person, by status (`review`, `dead`).
    pub inbox_waiting: Vec<(String, i64)>,
    /// Documents in Unfiled documents.
    pub documents_unfiled: i64,
    /// Outbox items by status.
    pub outbox_by_status: Vec<(String, i64)>,
    /// When the oldest item still waiting to go out (`pending`, `sending`) was queued.
    pub oldest_unsent: Option<Timestamp>,
}

impl Gauges {
    /// Outbox items waiting to go out (`pending`, `sending`).
    pub fn outbox_backlog(&self) -> i64 {
        self.outbox_by_status.iter().filter(|(s, _)| s == "pending" || s == "sending").map(|(_, n)| n).sum()
    }
}

/// Free and total bytes of a file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub free: u64,
    pub total: u64,
}

impl DiskSpace {
    /// The share that is free, 0 to 1.
    pub fn free_ratio(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.free as f64 / self.total as f64 }
    }
}

/// When a channel last reached someone and last failed, from its outbox history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelActivity {
    pub channel: String,
    /// The last message sent or accepted by the provider.
    pub last_success: Option<Timestamp>,
    /// The last message that failed for good or whose outcome is unknown.
    pub last_failure: Option<Timestamp>,
}

/// A specialist in the directory: where note requests go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Specialist {
    pub id: String,
    pub name: String,
    pub specialties: Vec<Specialty>,
    pub network: Network,
    pub phone: Option<String>,
    pub fax: Option<String>,
    pub direct_address: Option<String>,
    /// Takes ONC/IHE 360X closed-loop referrals over Direct.
    pub accepts_360x: bool,
    /// Where patients book online (https).
    pub booking_url: Option<String>,
    /// Their SMART Scheduling Links `$bulk-publish` manifest (https, or http to a loopback
    /// host): its free slots' booking links stand in when there is no `booking_url`.
    pub scheduling_manifest: Option<String>,
    /// What the manifest last gave (written by the manifest poll only, never by an edit).
    pub manifest: Option<ManifestFound>,
    /// Their FHIR endpoint, where a note request goes first as a Task (https, or http to a
    /// loopback host).
    pub fhir_base: Option<String>,
    /// When someone last confirmed this contact data.
    pub last_verified: Timestamp,
    pub updated_at: Timestamp,
}

/// What a specialist's scheduling manifest last gave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ManifestFound {
    /// The manifest URL these came from.
    pub source: String,
    /// A free slot's `booking-deep-link`.
    pub link: Option<String>,
    /// A free slot's `booking-phone`.
    pub phone: Option<String>,
    /// The manifest's `Last-Modified`, sent back as `If-Modified-Since`.
    pub modified: Option<String>,
}

impl Specialist {
    /// Where a patient books: the entry's booking page, else the link its manifest gave.
    pub fn booking_target(&self) -> Option<&str> {
        self.booking_url.as_deref().or_else(|| {
            self.manifest
                .as_ref()
                .filter(|m| self.scheduling_manifest.as_deref() == Some(m.source.as_str()))
                .and_then(|m| m.link.as_deref())
        })
    }
}

/// Filters for the referral list. Ordered newest order first; `cursor` continues a page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferralFilter {
    pub state: Option<State>,
    pub specialty: Option<Specialty>,
    pub provider: Option<String>,
    /// Only referrals whose current stage is past its window at this instant.
    pub overdue_at: Option<Timestamp>,
    /// `(ordered_at, id)` of the last item of the previous page.
    pub after: Option<(Timestamp, ReferralId)>,
    /// Only referrals ordered in `[ordered_from, ordered_before)`.
    pub ordered_from: Option<Timestamp>,
    pub ordered_before: Option<Timestamp>,
    /// Search: a patient name prefix (any word, case and accents ignored), a patient id /
    /// MRN, a source id (`demo:5`, a placer number, `ServiceRequest/…`) or a referral id prefix.
    pub q: Option<String>,
    pub sort: ReferralSort,
    /// With a sort other than [`ReferralSort::Ordered`]: rows to skip (`after` is for that one).
    pub offset: u32,
    pub limit: u32,
}

/// The order of a referral list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReferralSort {
    /// Newest order first (pages by cursor).
    #[default]
    Ordered,
    /// Oldest order first.
    OrderedAsc,
    /// The current stage's deadline, soonest first (none last).
    Due,
    /// Patient name, A to Z.
    Patient,
    /// State in funnel order.
    State,
}

impl ReferralSort {
    pub const ALL: &'static [ReferralSort] = &[
        ReferralSort::Ordered,
        ReferralSort::OrderedAsc,
        ReferralSort::Due,
        ReferralSort::Patient,
        ReferralSort::State,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReferralSort::Ordered => "ordered",
            ReferralSort::OrderedAsc => "ordered-asc",
            ReferralSort::Due => "due",
            ReferralSort::Patient => "patient",
            ReferralSort::State => "state",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|x| x.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralPage {
    pub items: Vec<Referral>,
    pub next: Option<(Timestamp, ReferralId)>,
    /// With a sort by offset: the next page's offset.
    pub next_offset: Option<u32>,
    /// How many referrals match the filter (all pages).
    pub total: u64,
    /// The patients and referring providers of `items`, for roles that may read patient data.
    pub people: People,
}

/// Patients and referring providers as people: what staff pages show beside the ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct People {
    pub patients: std::collections::BTreeMap<PatientId, Patient>,
    pub providers: std::collections::BTreeMap<ProviderId, String>,
}

impl People {
    pub fn patient(&self, id: &PatientId) -> Option<&Patient> {
        self.patients.get(id)
    }

    pub fn provider(&self, id: &ProviderId) -> Option<&str> {
        self.providers.get(id).map(String::as_str)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub assignee: Option<String>,
    pub referral_id: Option<ReferralId>,
    /// Only tasks completed at or after this instant.
    pub completed_after: Option<Timestamp>,
    /// Only the review tasks of this inbound message.
    pub inbox_id: Option<String>,
    pub limit: u32,
}

/// What became of an inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxStatus {
    /// Applied to a referral (or created one).
    Applied,
    /// Understood; nothing to do for referrals.
    Ignored,
    /// Refused (AE/AR): the sender must fix it.
    Rejected,
    /// Could not be matched with certainty: a person decides.
    Review,
    /// Failed to apply; kept with its error, retryable.
    Dead,
}

impl InboxStatus {
    pub const ALL: &'static [InboxStatus] =
        &[InboxStatus::Applied, InboxStatus::Ignored, InboxStatus::Rejected, InboxStatus::Review, InboxStatus::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Applied => "applied",
            InboxStatus::Ignored => "ignored",
            InboxStatus::Rejected => "rejected",
            InboxStatus::Review => "review",
            InboxStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|x| x.as_str() == s)
    }
}

/// An inbound message, kept raw with where it came from and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxItem {
    pub id: String,
    /// `hl7v2`, later `fhir`.
    pub protocol: String,
    /// The sender (for HL7: MSH-3^MSH-4); with `control_id`, unique.
    pub source: String,
    pub control_id: String,
    /// How it arrived: `mllp`, `http`, `file`.
    pub transport: String,
    /// For HL7: MSH-9 as `TYPE^TRIGGER`.
    pub message_type: String,
    pub received_at: Timestamp,
    pub raw: Vec<u8>,
    pub status: InboxStatus,
    /// The acknowledgement we answered with, sent again for a resend (in enhanced mode the
    /// accept acknowledgement).
    pub ack: Option<Vec<u8>>,
    /// Enhanced mode: the application acknowledgement that follows the accept one.
    pub application_ack: Option<Vec<u8>>,
    pub error: Option<String>,
    pub referral_id: Option<ReferralId>,
    pub attempts: u32,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboxFilter {
    pub status: Option<InboxStatus>,
    pub limit: u32,
}
