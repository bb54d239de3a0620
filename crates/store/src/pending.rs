//! Write-behind for a transaction's append-only inserts.
//!
//! Events, audit rows, new tasks, armed timers and inbox rows are collected and written with
//! one multi-row INSERT per table — before the commit, and before any statement of the same
//! transaction that reads or changes those tables (the `Tx` methods call [`Pending::flush`]
//! first). A group commit of many messages then costs a few statements instead of a few
//! per message. Nothing here outlives the transaction: dropping it drops the rows with it.

use refloop_app::{AuditEntry, InboxItem, NewTask, StoredEvent};
use refloop_domain::{ReferralId, TimerSpec};

#[derive(Default)]
pub(crate) struct Pending {
    pub events: Vec<StoredEvent>,
    pub audits: Vec<AuditEntry>,
    pub tasks: Vec<NewTask>,
    pub timers: Vec<(ReferralId, u64, TimerSpec)>,
    /// Inserted or replaced by id; the last write of an id wins.
    pub inbox: Vec<InboxItem>,
    /// Referral keys; the first referral to claim a key keeps it.
    pub keys: Vec<(String, ReferralId)>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.audits.is_empty()
            && self.tasks.is_empty()
            && self.timers.is_empty()
            && self.inbox.is_empty()
            && self.keys.is_empty()
    }

    pub fn put_key(&mut self, key: &str, id: &ReferralId) {
        if !self.keys.iter().any(|(k, _)| k == key) {
            self.keys.push((key.to_owned(), id.clone()));
        }
    }

    pub fn find_key(&self, key: &str) -> Option<ReferralId> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, id)| id.clone())
    }

    pub fn put_inbox(&mut self, item: &InboxItem) {
        self.inbox.retain(|m| m.id != item.id);
        self.inbox.push(item.clone());
    }

    pub fn find_inbox(&self, source: &str, control_id: &str) -> Option<InboxItem> {
        self.inbox.iter().find(|m| m.protocol == "hl7v2" && m.source == source && m.control_id == control_id).cloned()
    }
}

/// Which pending rows to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Only {
    All,
    Timers,
    Tasks,
}

/// Writes pending rows through `$c` (a connection of either backend): all of them, or only
/// the table a following statement reads or changes.
macro_rules! flush_pending {
    ($p:expr, $c:ident, $only:expr) => {{
        let p: &mut $crate::pending::Pending = $p;
        let only: $crate::pending::Only = $only;
        let all = only == $crate::pending::Only::All;
        if all {
            for chunk in std::mem::take(&mut p.events).chunks($crate::pending::CHUNK_ROWS) {
                $crate::pending::events_query!(chunk).build().execute(&mut *$c).await.map_err($crate::row::db)?;
            }
            for chunk in std::mem::take(&mut p.audits).chunks($crate::pending::CHUNK_ROWS) {
                $crate::pending::audits_query!(chunk).build().execute(&mut *$c).await.map_err($crate::row::db)?;
            }
        }
        if all || only == $crate::pending::Only::Tasks {
            for chunk in std::mem::take(&mut p.tasks).chunks($crate::pending::CHUNK_ROWS) {
                $crate::pending::tasks_query!(chunk).build().execute(&mut *$c).await.map_err($crate::row::db)?;
            }
        }
        if all || only == $crate::pending::Only::Timers {
            for chunk in std::mem::take(&mut p.timers).chunks($crate::pending::CHUNK_ROWS) {
                $crate::pending::timers_query!(chunk).build().execute(&mut *$c).await.map_err($crate::row::db)?;
            }
        }
        if all {
            for chunk in std::mem::take(&mut p.keys).chunks($crate::pending::CHUNK_ROWS) {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO referral_keys (key, referral_id) ");
                q.push_values(chunk, |mut b, (key, id)| {
                    b.push_bind(key.as_str()).push_bind(id.as_str());
                });
                q.push(" ON CONFLICT (key) DO NOTHING");
                q.build().execute(&mut *$c).await.map_err($crate::row::db)?;
            }
            for chunk in std::mem::take(&mut p.inbox).chunks($crate::pending::CHUNK_ROWS) {
                match $crate::pending::inbox_query!(chunk).build().execute(&mut *$c).await {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(refloop_app::StoreError::Conflict(
                            "an inbound message arrived twice at once".into(),
                        ));
                    }
                    Err(e) => return Err($crate::row::db(e)),
                }
            }
        }
    }};
}
pub(crate) use flush_pending;

/// Rows per INSERT statement (well under both backends' parameter limits).
pub(crate) const CHUNK_ROWS: usize = 200;

macro_rules! events_query {
    ($rows:expr) => {{
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO events (referral_id, version, type, at, recorded_at, source, data) ");
        q.push_values($rows, |mut b, e| {
            b.push_bind(e.referral_id.as_str())
                .push_bind(e.version as i64)
                .push_bind(e.data.kind())
                .push_bind($crate::row::ms(e.at))
                .push_bind($crate::row::ms(e.recorded_at))
                .push_bind(e.source.as_str())
                .push_bind($crate::row::event_data(e));
        });
        q
    }};
}
pub(crate) use events_query;

macro_rules! audits_query {
    ($rows:expr) => {{
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO audit_log (at, actor, action, resource_type, resource_id, remote) ");
        q.push_values($rows, |mut b, e| {
            b.push_bind($crate::row::ms(e.at))
                .push_bind(e.actor.as_str())
                .push_bind(e.action.as_str())
                .push_bind(e.resource_type.as_str())
                .push_bind(e.resource_id.as_str())
                .push_bind(e.remote.as_deref());
        });
        q
    }};
}
pub(crate) use audits_query;

macro_rules! tasks_query {
    ($rows:expr) => {{
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO tasks (id, referral_id, kind, status, due_at, created_at, inbox_id) ");
        q.push_values($rows, |mut b, t| {
            b.push_bind(t.id.as_str())
                .push_bind(t.referral_id.as_str())
                .push_bind(t.kind.as_str())
                .push_bind("open")
                .push_bind($crate::row::ms(t.due_at))
                .push_bind($crate::row::ms(t.created_at))
                .push_bind(t.inbox_id.as_deref());
        });
        q
    }};
}
pub(crate) use tasks_query;

macro_rules! timers_query {
    ($rows:expr) => {{
        let mut q = sqlx::QueryBuilder::new("INSERT INTO timers (id, referral_id, kind, due_at, armed_version) ");
        q.push_values($rows, |mut b, (id, version, t)| {
            b.push_bind(format!("{id}:{}", t.kind.as_str()))
                .push_bind(id.as_str())
                .push_bind(t.kind.as_str())
                .push_bind($crate::row::ms(t.due_at))
                .push_bind(*version as i64);
        });
        q
    }};
}
pub(crate) use timers_query;

macro_rules! inbox_query {
    ($rows:expr) => {{
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO inbox (id, protocol, source, control_id, transport, message_type, received_at, raw, \
             status, ack, application_ack, error, referral_id, attempts, updated_at) ",
        );
        q.push_values($rows, |mut b, m| {
            b.push_bind(m.id.as_str())
                .push_bind(m.protocol.as_str())
                .push_bind(m.source.as_str())
                .push_bind(m.control_id.as_str())
                .push_bind(m.transport.as_str())
                .push_bind(m.message_type.as_str())
                .push_bind($crate::row::ms(m.received_at))
                .push_bind(m.raw.as_slice())
                .push_bind(m.status.as_str())
                .push_bind(m.ack.as_deref())
                .push_bind(m.application_ack.as_deref())
                .push_bind(m.error.as_deref())
                .push_bind(m.referral_id.as_ref().map(|r| r.as_str()))
                .push_bind(i64::from(m.attempts))
                .push_bind($crate::row::ms(m.updated_at));
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, ack = excluded.ack, \
             application_ack = excluded.application_ack, error = excluded.error, \
             referral_id = excluded.referral_id, attempts = excluded.attempts, updated_at = excluded.updated_at",
        );
        q
    }};
}
pub(crate) use inbox_query;
