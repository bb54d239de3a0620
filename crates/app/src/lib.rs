//! Use cases and ports.
//!
//! Every change to a referral — a new order, a staff event, a due timer, an outbox
//! result — goes through [`App`], which loads the referral, asks
//! [`refloop_domain::decide`] what to do and carries the decision out in one storage
//! transaction through the [`Store`] port. Reads for people come from the projections.

pub mod admission;
mod audit;
mod auth;
mod booking;
mod clock;
mod connector;
mod contact;
mod directory;
pub mod documents;
mod error;
pub mod export;
mod history;
mod ids;
mod inbound;
mod mfa;
pub mod period;
mod ports;
pub mod problems;
mod protocol;
mod referral_request;
mod reports;
mod service;
mod sms;
mod sso;
mod texts;
mod throttle;
mod users;
mod work;
mod workers;

pub use audit::{AuditBreak, AuditVerdict};
pub use auth::{Actor, Permission, Role, hash_token, new_token};
pub use clock::{Clock, ManualClock, SystemClock};
pub use connector::{ChannelMode, ChannelStatus, Confirmation, Connector, DeliveryOutcome};
pub use directory::{STALE_AFTER, entry_for, is_stale};
pub use error::{AppError, StoreError};
pub use history::HistoryOutcome;
pub use ids::new_id;
pub use inbound::{Applied, ContactUpdate, Mapped, Target, Via};
pub use mfa::{Enrolment, RECOVERY_CODES};
pub use ports::{
    AUDIT_GENESIS, AuditAnchor, AuditEntry, AuditQuery, AuditRecord, AuditSeal, ChannelActivity, DiskSpace, Gauges,
    InboxFilter, InboxItem, InboxStatus, ManifestFound, NewTask, OutboxFilter, OutboxGuard, OutboxItem, OutboxStatus,
    Patient, PatientKeep, People, Reaped, ReferralFilter, ReferralPage, ReferralSort, SessionRecord, SessionStage,
    Specialist, SsoPending, Store, StoredEvent, Task, TaskChange, TaskFilter, TaskLogEntry, TaskStatus, TimerRow,
    TokenRecord, Tx, UserRecord,
};
pub use protocol::{Arrival, Described, FieldView, Protocol, SegmentView};

/// The storage port and its capabilities: `use refloop_app::store::*` to call any of them on a
/// `dyn Store`.
pub mod store {
    pub use crate::ports::{
        AuditStore, AuditTx, AuthStore, DirectoryStore, DocumentStore, DocumentTx, InboxStore, InboxTx, OutboxStore,
        OutboxTx, ReferralStore, ReferralTx, ReportStore, Store, TaskStore, TaskTx, TimerTx, Tx,
    };
    pub use crate::problems::ProblemStore;
}
pub use booking::{booking_code, booking_link};
pub use contact::{PhoneOnFile, phone_on_file, phone_region, textable};
pub use reports::{
    Closure, ClosureReport, Cms50Report, Durations, GroupBy, Maturity, OVERDUE, OVERDUE_EDGES_DAYS, ReferralStats,
    RollupRow, SPANS, SpanRow, closure, fold_groups, leak_of, overdue_bucket, spans_of, split, stats_of, tenths,
};
pub use service::{App, NewReferral, PatientInput, ReferralDetail, Retention};
pub use sms::{PATIENT_REPORTED, SmsLine, SmsOutcome, SmsReplies};
pub use sso::{SSO_WITHIN, SsoStart};
pub use texts::{SmsTexts, Translation};
pub use throttle::AuthSettings;
pub use users::{MIN_PASSWORD_CHARS, NewSession, SESSION_IDLE, SESSION_MAX, WebSession};
pub use work::{Needs, OutcomeChoice, TaskReport, outcomes_for};
pub use workers::{AdvanceReport, DueReport, OutboxSettings, every};
