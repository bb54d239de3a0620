//! The storage port's traits, by capability: `Store` (reads outside a transaction, and
//! `begin`) and `Tx` (one write transaction), each composed of the capabilities below.

use jiff::Timestamp;
use refloop_domain::{
    DuplicateCandidate, PatientId, ProviderId, Referral, ReferralId, Specialty, TaskKind, TimerSpec, cms50::Fact,
};

use super::{
    AuditAnchor, AuditEntry, AuditQuery, AuditRecord, ChannelActivity, DiskSpace, Gauges, InboxFilter, InboxItem,
    NewTask, OutboxFilter, OutboxGuard, OutboxItem, OutboxStatus, Patient, PatientKeep, People, Reaped, ReferralFilter,
    ReferralPage, SessionRecord, Specialist, SsoPending, StoredEvent, Task, TaskChange, TaskFilter, TaskLogEntry,
    TimerRow, TokenRecord, UserRecord,
};
use crate::{
    documents::{DocumentFilter, DocumentRecord, DocumentSettlement, DocumentStatus},
    error::StoreError,
};

/// One write transaction. Dropping it without [`Tx::commit`] rolls it back.
/// Each capability is its own trait (`use refloop_app::store::*` brings them all).
#[async_trait::async_trait]
pub trait Tx: ReferralTx + TimerTx + OutboxTx + TaskTx + InboxTx + DocumentTx + AuditTx + Send {
    /// Writes the readiness probe's row (see [`Store::ready`]).
    async fn probe_write(&mut self, now: Timestamp) -> Result<(), StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Referrals, their patients and events, inside a transaction.
#[async_trait::async_trait]
pub trait ReferralTx: Send {
    /// Loads and locks a referral for the rest of the transaction. With `skip_locked`, a
    /// referral another transaction holds is reported as `None` instead of waited for.
    async fn lock_referral(&mut self, id: &ReferralId, skip_locked: bool) -> Result<Option<Referral>, StoreError>;

    /// The newest tracked, non-duplicate referral of this patient and specialty ordered
    /// between `from` and `to`.
    async fn duplicate_candidate(
        &mut self,
        patient: &PatientId,
        specialty: &Specialty,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<DuplicateCandidate>, StoreError>;

    /// Reads a patient (without a lock: see the lock order in ARCHITECTURE.md).
    async fn patient(&mut self, id: &PatientId) -> Result<Option<Patient>, StoreError>;

    /// Reads a patient this transaction is about to change, locking the row on PostgreSQL
    /// until it ends (take it before the patient's referrals).
    async fn lock_patient(&mut self, id: &PatientId) -> Result<Option<Patient>, StoreError>;

    /// Inserts or updates a patient and returns the stored row. On update, `keep` says which
    /// recorded choices stay as they are.
    async fn upsert_patient(&mut self, p: &Patient, keep: PatientKeep) -> Result<Patient, StoreError>;

    /// Inserts a new referral projection; `stage_due_at` is when its current stage is late.
    async fn insert_referral(
        &mut self,
        r: &Referral,
        stage_due_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Replaces the projection if it is still at `expected_version`.
    async fn update_referral(
        &mut self,
        r: &Referral,
        expected_version: u64,
        stage_due_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn append_events(&mut self, events: &[StoredEvent]) -> Result<(), StoreError>;

    /// Records a referring provider's name (the last one written wins).
    async fn put_provider(&mut self, id: &ProviderId, name: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Makes `key` name the referral unless it names one already.
    async fn put_key(&mut self, key: &str, id: &ReferralId) -> Result<(), StoreError>;

    /// The referral a source key (placer or referral number) belongs to.
    async fn referral_by_key(&mut self, key: &str) -> Result<Option<ReferralId>, StoreError>;

    /// The patients born on `birth_date` (`YYYY-MM-DD`), at most 200.
    async fn patients_born(&mut self, birth_date: &str) -> Result<Vec<Patient>, StoreError>;

    /// The patient's open, tracked referrals, newest first; of one specialty when given.
    async fn open_referrals(
        &mut self,
        patient: &PatientId,
        specialty: Option<&Specialty>,
    ) -> Result<Vec<Referral>, StoreError>;

    /// Records (or replaces, by `key`) a fact a quality measure reads.
    async fn put_fact(&mut self, key: &str, patient: &str, fact: &Fact, at: Timestamp) -> Result<(), StoreError>;
}

/// The referrals' timers.
#[async_trait::async_trait]
pub trait TimerTx: Send {
    /// Replaces every pending timer of the referral with `timers`, armed for `version`.
    async fn replace_timers(&mut self, id: &ReferralId, version: u64, timers: &[TimerSpec]) -> Result<(), StoreError>;

    /// Arms timers for a referral that has none yet (a new one), for `version`.
    async fn arm_timers(&mut self, id: &ReferralId, version: u64, timers: &[TimerSpec]) -> Result<(), StoreError>;

    /// Due timers, earliest first. On PostgreSQL they are locked, skipping rows that
    /// another process holds.
    async fn due_timers(&mut self, now: Timestamp, limit: u32) -> Result<Vec<TimerRow>, StoreError>;

    async fn delete_timer(&mut self, id: &str) -> Result<(), StoreError>;
}

/// What goes out, written with the decision that sends it.
#[async_trait::async_trait]
pub trait OutboxTx: Send {
    /// Enqueues an outbox item unless its key is already there (the first item with a key
    /// wins, in the database or earlier in this transaction). Written at commit.
    async fn enqueue(&mut self, item: &OutboxItem) -> Result<(), StoreError>;

    /// Records the outcome of a delivery attempt if the row is still as `guard` says;
    /// false when it moved on (another process took the lease over, or settled it).
    async fn finish_outbox(
        &mut self,
        id: &str,
        guard: OutboxGuard<'_>,
        status: OutboxStatus,
        next_attempt_at: Timestamp,
        sent_at: Option<Timestamp>,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;
}

/// Staff tasks and their history.
#[async_trait::async_trait]
pub trait TaskTx: Send {
    async fn open_task(&mut self, t: &NewTask) -> Result<(), StoreError>;

    /// Closes the open or claimed tasks of these kinds on the referral.
    async fn close_tasks(
        &mut self,
        id: &ReferralId,
        kinds: &[TaskKind],
        now: Timestamp,
        outcome: &str,
    ) -> Result<(), StoreError>;

    /// Applies `change` to task `id` if it is open or claimed; `None` when it is not (or absent).
    async fn change_task(&mut self, id: &str, change: &TaskChange) -> Result<Option<Task>, StoreError>;

    async fn log_task(&mut self, entry: &TaskLogEntry) -> Result<(), StoreError>;

    /// Closes the open review tasks of an inbound message.
    async fn close_inbox_tasks(&mut self, inbox_id: &str, now: Timestamp, outcome: &str) -> Result<(), StoreError>;
}

/// Documents that came in, inside a transaction.
#[async_trait::async_trait]
pub trait DocumentTx: Send {
    async fn put_document(&mut self, d: &DocumentRecord) -> Result<(), StoreError>;

    /// Reads a document (with its content) and, on PostgreSQL, locks it until the end.
    async fn lock_document(&mut self, id: &str) -> Result<Option<DocumentRecord>, StoreError>;

    async fn settle_document(&mut self, id: &str, s: &DocumentSettlement) -> Result<(), StoreError>;

    /// Settles the still unfiled documents of a message (`s.role` unset: kept as each was
    /// read, a note as the consult note); the ids of those filed as the consult note.
    async fn settle_inbox_documents(
        &mut self,
        inbox_id: &str,
        s: &DocumentSettlement,
    ) -> Result<Vec<String>, StoreError>;
}

/// Documents, as read outside a transaction.
#[async_trait::async_trait]
pub trait DocumentStore: Send + Sync {
    /// A document with its content.
    async fn document(&self, id: &str) -> Result<Option<DocumentRecord>, StoreError>;

    /// Documents without their content, newest first.
    async fn documents(&self, f: &DocumentFilter) -> Result<Vec<DocumentRecord>, StoreError>;

    async fn count_documents(&self, status: DocumentStatus) -> Result<u64, StoreError>;

    /// Empties the content of filed and dismissed documents received before `before`; how many.
    async fn purge_documents(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// What came in, kept with what it changed.
#[async_trait::async_trait]
pub trait InboxTx: Send {
    /// The inbox row of a message already received: by protocol (`hl7v2`, `fhir`), sender
    /// and control id (for FHIR, the resource's version key).
    async fn inbox_get(
        &mut self,
        protocol: &str,
        source: &str,
        control_id: &str,
    ) -> Result<Option<InboxItem>, StoreError>;

    /// Reads ahead what a batch of inbound messages will ask for — inbox rows of `protocol` by
    /// (sender, control id), referral keys, and the tracked referrals of the patients of new
    /// orders — so that [`Tx::inbox_get`], [`Tx::referral_by_key`] and
    /// [`Tx::duplicate_candidate`] answer from memory.
    async fn prefetch(
        &mut self,
        protocol: &str,
        messages: &[(String, String)],
        keys: &[String],
        patients: &[PatientId],
    ) -> Result<(), StoreError>;

    /// Inserts or replaces (by id) an inbox row. Inserting a second row for the same
    /// source and control id fails with [`StoreError::Conflict`].
    async fn inbox_put(&mut self, item: &InboxItem) -> Result<(), StoreError>;
}

/// Audit rows, written with the work they record.
#[async_trait::async_trait]
pub trait AuditTx: Send {
    async fn audit(&mut self, e: &AuditEntry) -> Result<(), StoreError>;
}

/// The database behind refloop: what every use of it needs (a transaction, health), and
/// each capability as its own trait, so a caller names the part it uses and the port grows
/// by capability, not as one list (`use refloop_app::store::*` brings them all).
#[async_trait::async_trait]
pub trait Store:
    ReferralStore
    + TaskStore
    + OutboxStore
    + InboxStore
    + DocumentStore
    + DirectoryStore
    + AuthStore
    + AuditStore
    + ReportStore
    + crate::problems::ProblemStore
    + Send
    + Sync
    + 'static
{
    /// The backend's name: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The space on the disk that holds the database, when refloop can see it (a SQLite
    /// file; `None` for a database server).
    fn disk_space(&self) -> Option<DiskSpace> {
        None
    }

    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether the database takes writes: a read while the last write worked; after a write
    /// failed for a storage fault, a real write (committed) until one works.
    async fn ready(&self, now: Timestamp) -> Result<(), StoreError>;

    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError>;
}

/// Referrals and their patients, as read outside a transaction.
#[async_trait::async_trait]
pub trait ReferralStore: Send + Sync {
    async fn referral(&self, id: &ReferralId) -> Result<Option<Referral>, StoreError>;

    /// These referrals (those that exist), in no particular order.
    async fn referrals_by_id(&self, ids: &[ReferralId]) -> Result<Vec<Referral>, StoreError>;

    async fn referrals(&self, f: &ReferralFilter) -> Result<ReferralPage, StoreError>;

    /// Every referral ordered in `[from, to)` (for reports).
    async fn referrals_ordered_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Referral>, StoreError>;

    async fn events(&self, id: &ReferralId) -> Result<Vec<StoredEvent>, StoreError>;

    async fn patient(&self, id: &PatientId) -> Result<Option<Patient>, StoreError>;

    /// These patients and these providers' names (those on file).
    async fn people(&self, patients: &[PatientId], providers: &[ProviderId]) -> Result<People, StoreError>;

    /// The specialties and referring providers that referrals name, for pickers.
    async fn referral_facets(&self) -> Result<(Vec<String>, Vec<(ProviderId, Option<String>)>), StoreError>;

    /// Patients whose phone on file is exactly `phone` (E.164).
    async fn patients_by_phone(&self, phone: &str) -> Result<Vec<Patient>, StoreError>;

    /// The referral `key` names (a read outside any transaction).
    async fn referral_named_by(&self, key: &str) -> Result<Option<ReferralId>, StoreError>;
}

/// Staff tasks and their history.
#[async_trait::async_trait]
pub trait TaskStore: Send + Sync {
    async fn tasks(&self, f: &TaskFilter) -> Result<Vec<Task>, StoreError>;

    /// The history of a referral's tasks, oldest first.
    async fn task_log(&self, referral: &ReferralId) -> Result<Vec<TaskLogEntry>, StoreError>;

    async fn task(&self, id: &str) -> Result<Option<Task>, StoreError>;
}

/// What goes out: the outbox, its leases, and when the next thing comes due.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    /// Each channel's last success and last failure, over the whole outbox.
    async fn channel_activity(&self) -> Result<Vec<ChannelActivity>, StoreError>;

    async fn outbox(&self, f: &OutboxFilter) -> Result<Vec<OutboxItem>, StoreError>;

    async fn outbox_item(&self, id: &str) -> Result<Option<OutboxItem>, StoreError>;

    /// Claims due `pending` and `unconfirmed` items for sending until `lease_until` (status
    /// `sending`), each under the lease `token`; an `unconfirmed` one comes with `check_first`.
    async fn claim_outbox(
        &self,
        now: Timestamp,
        limit: u32,
        lease_until: Timestamp,
        token: &str,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// Marks that an attempt on a claimed item starts now (counted in `attempts`); false when
    /// the lease `token` no longer holds it.
    async fn start_attempt(&self, id: &str, token: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Extends the leases still held under `token` to `lease_until`; how many.
    async fn extend_leases(&self, token: &str, lease_until: Timestamp) -> Result<u64, StoreError>;

    /// Gives back the items held under `token` whose attempt has not started (shutdown).
    async fn release_outbox(&self, token: &str) -> Result<u64, StoreError>;

    /// Items whose lease ran out (their sender died or stalled): never attempted → `pending`;
    /// attempt started → `unconfirmed`, due at `now`.
    async fn reap_outbox(&self, now: Timestamp) -> Result<Reaped, StoreError>;

    /// The earliest instant at which a timer or an outbox item comes due.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
}

/// What came in: inbound messages, their retention, and the pollers' positions.
#[async_trait::async_trait]
pub trait InboxStore: Send + Sync {
    /// Empties the raw body of settled inbound messages (applied, ignored, rejected) received
    /// before `before`, keeping their ids, senders, outcomes and ACKs; how many.
    async fn purge_raw(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Inbound messages, newest first.
    async fn inbox(&self, f: &InboxFilter) -> Result<Vec<InboxItem>, StoreError>;

    /// How many inbound messages have `status`.
    async fn count_inbox(&self, status: crate::InboxStatus) -> Result<u64, StoreError>;

    async fn inbox_item(&self, id: &str) -> Result<Option<InboxItem>, StoreError>;

    /// The message kept under this protocol, sender and id, if any (a read, outside any
    /// transaction).
    async fn inbox_by_key(
        &self,
        protocol: &str,
        source: &str,
        control_id: &str,
    ) -> Result<Option<InboxItem>, StoreError>;

    /// The inbound messages of `protocol` about a referral, oldest first.
    async fn inbox_of_referral(&self, referral: &ReferralId, protocol: &str) -> Result<Vec<InboxItem>, StoreError>;

    /// A poller's durable position (e.g. `fhir-pull:ServiceRequest` → last `_lastUpdated`).
    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError>;

    async fn set_cursor(&self, name: &str, value: &str, at: Timestamp) -> Result<(), StoreError>;
}

/// The specialist directory.
#[async_trait::async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Inserts or replaces (by id) a directory entry.
    async fn upsert_specialist(&self, s: &Specialist) -> Result<(), StoreError>;
    /// Keeps what a specialist's scheduling manifest gave (the entry's other fields unchanged).
    async fn set_manifest_found(&self, id: &str, found: &crate::ManifestFound) -> Result<(), StoreError>;

    /// The directory by name; only entries last verified before `verified_before` when given.
    async fn specialists(&self, verified_before: Option<Timestamp>) -> Result<Vec<Specialist>, StoreError>;
}

/// Who may sign in: users, API tokens, sessions, second factors and single sign-on.
#[async_trait::async_trait]
pub trait AuthStore: Send + Sync {
    async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError>;

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Counts a failed sign-in of `username`; from the `lock_after`th in a row it is locked
    /// until `lock_until`. The failures in a row and the lock, when the user exists.
    async fn login_failed(
        &self,
        username: &str,
        lock_after: u32,
        lock_until: Timestamp,
    ) -> Result<Option<(u32, Option<Timestamp>)>, StoreError>;

    /// A sign-in worked, or an admin unlocked the user: no failures, no lock.
    async fn login_cleared(&self, username: &str) -> Result<(), StoreError>;

    /// Every token, newest first (hashes included; never shown).
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes the live tokens whose id or name is `which`; their ids.
    async fn revoke_tokens(&self, which: &str, at: Timestamp) -> Result<Vec<String>, StoreError>;

    /// Records a use at `at`, unless one was recorded in the minute before.
    async fn token_used(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;

    async fn upsert_user(&self, u: &UserRecord) -> Result<(), StoreError>;

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Sets a user's TOTP secret, the one being enrolled, and the last step used.
    async fn set_totp(
        &self,
        username: &str,
        secret: Option<&str>,
        pending: Option<&str>,
        last_step: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Takes TOTP time step `step` for a user if it is later than the last one taken (a code
    /// is used once, across processes); whether it was.
    async fn take_totp_step(&self, username: &str, step: i64) -> Result<bool, StoreError>;

    /// Replaces a user's recovery codes (their hashes).
    async fn set_recovery_codes(&self, username: &str, hashes: &[String]) -> Result<(), StoreError>;

    /// Uses the unused recovery code with this hash; whether there was one.
    async fn use_recovery_code(&self, username: &str, hash: &str, at: Timestamp) -> Result<bool, StoreError>;

    async fn unused_recovery_codes(&self, username: &str) -> Result<u32, StoreError>;

    async fn put_sso_pending(&self, p: &SsoPending) -> Result<(), StoreError>;

    /// Takes (and removes) the sign-in under way with this state hash; those begun before
    /// `stale_before` are removed too and never returned.
    async fn take_sso_pending(
        &self,
        state_hash: &str,
        stale_before: Timestamp,
    ) -> Result<Option<SsoPending>, StoreError>;

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError>;

    async fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError>;

    async fn touch_session(&self, hash: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Every session (expired ones until they are next used or their user signs in again).
    async fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError>;

    /// Ends one session (`hash`) or every session of a user (`username`).
    async fn delete_sessions(&self, hash: Option<&str>, username: Option<&str>) -> Result<(), StoreError>;
}

/// The hash-chained audit log.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError>;

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Seals up to `batch` unsealed audit rows, oldest first, after the chain's last row;
    /// how many. One sealer at a time (a lock), so the chain never forks.
    async fn seal_audit(&self, batch: u32) -> Result<u64, StoreError>;

    /// Sealed rows after chain place `after`, in chain order.
    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;

    /// How many rows are not sealed yet.
    async fn unsealed_audit(&self) -> Result<u64, StoreError>;

    /// Where the chain starts when a purge has removed its head.
    async fn audit_anchor(&self) -> Result<Option<AuditAnchor>, StoreError>;

    async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deletes sealed rows recorded before `before` from the head of the chain and records
    /// the new anchor; how many.
    async fn purge_audit(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError>;
}

/// What the reports and the metrics aggregate.
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync {
    /// Counts for monitoring at `now`: open referrals by state, overdue open tasks, and
    /// outbox items waiting or being sent.
    async fn gauges(&self, now: Timestamp) -> Result<Gauges, StoreError>;

    /// The report rows of tracked referrals ordered in `[from, to)`, grouped by the report
    /// column `key` (`specialty`, `provider`, `specialist`, `network`, `urgency`; `None`: one
    /// group with the key `""`). Span histograms are per key for the spans (indexes into
    /// [`crate::SPANS`]) in `spans_by_key`, and over all groups (key `""`) for the others;
    /// with `sampled`, over a fixed one-in-four sample of the referrals (counts not scaled).
    async fn closure_rollup(
        &self,
        from: Timestamp,
        to: Timestamp,
        key: Option<&'static str>,
        spans_by_key: &[u8],
        sampled: bool,
        // `(now, mature_before)`: rows are told apart by whether they are in progress at
        // `now` and ordered before `mature_before`.
        moment: (Timestamp, Timestamp),
    ) -> Result<(Vec<crate::RollupRow>, Vec<crate::SpanRow>), StoreError>;

    /// The first and last order time of any referral (the data the reports can cover).
    async fn ordered_range(&self) -> Result<Option<(Timestamp, Timestamp)>, StoreError>;

    /// Tracked referrals and how many closed the loop, ordered in each `[bounds[i],
    /// bounds[i + 1])`: `(referrals, closed)` per piece.
    async fn closure_trend(&self, bounds: &[Timestamp]) -> Result<Vec<(u64, u64)>, StoreError>;

    /// Every measure fact as `(patient, fact)`.
    async fn measure_facts(&self) -> Result<Vec<(String, Fact)>, StoreError>;
}
