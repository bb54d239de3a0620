//! One write transaction on either backend.

use std::collections::HashMap;

use jiff::Timestamp;
use refloop_app::{
    AuditEntry, InboxItem, NewTask, OutboxGuard, OutboxItem, OutboxStatus, Patient, PatientKeep, StoreError,
    StoredEvent, Task, TaskChange, TaskLogEntry, TimerRow, store::*,
};
use refloop_domain::{
    DuplicateCandidate, PatientId, ProviderId, Referral, ReferralId, Specialty, TaskKind, TimerSpec, cms50::Fact,
};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::{
    Db,
    pending::{Combine, Only, Pending, flush_pending},
    row::{self, db, ms, ts},
};

/// Inserts an audit row through any executor.
macro_rules! insert_audit {
    ($exec:expr, $e:expr) => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, resource_type, resource_id, remote)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($crate::row::ms($e.at))
        .bind(&$e.actor)
        .bind(&$e.action)
        .bind(&$e.resource_type)
        .bind(&$e.resource_id)
        .bind(&$e.remote)
        .execute($exec)
        .await
        .map(|_| ())
        .map_err($crate::row::db)
    };
}

enum Inner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

pub(crate) struct SqlTx {
    inner: Inner,
    /// The store's "a write failed" mark: set by a commit that fails for a storage fault,
    /// cleared by one that works.
    write_failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Append-only inserts not yet written (see `pending.rs`).
    pending: Pending,
    /// Read ahead by `prefetch`: inbox rows by (source, control id) and referral keys;
    /// `None` records that the database has none.
    known_inbox: HashMap<(String, String, String), Option<InboxItem>>,
    known_keys: HashMap<String, Option<ReferralId>>,
    /// The tracked referrals of prefetched patients: (id, specialty, ordered at), kept up
    /// to date as this transaction writes referrals.
    known_tracked: HashMap<PatientId, Vec<(ReferralId, Option<Specialty>, Timestamp)>>,
    /// Patients read in this transaction, as this transaction left them; `None` records
    /// that the database has none.
    known_patients: HashMap<PatientId, Option<Patient>>,
    /// PostgreSQL: the patients whose rows this transaction holds locked — only those it
    /// writes or may write (see the lock order in ARCHITECTURE.md).
    locked_patients: std::collections::HashSet<PatientId>,
}

/// Runs the same body against the transaction's connection, whichever backend it is.
macro_rules! on_tx {
    ($self:expr, $c:ident => $body:expr) => {
        match &mut $self.inner {
            Inner::Sqlite(tx) => {
                let $c = &mut **tx;
                $body
            }
            Inner::Postgres(tx) => {
                let $c = &mut **tx;
                $body
            }
        }
    };
}

mod readahead;

impl SqlTx {
    /// Begins on the SQLite `writer` connection when there is one.
    pub(crate) async fn begin(
        db: &Db,
        writer: Option<&sqlx::SqlitePool>,
        write_failed: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Box<dyn Tx>, StoreError> {
        let begun = match db {
            // Take the write lock up front: SQLite has one writer, and a deferred transaction
            // that reads first could fail to upgrade.
            Db::Sqlite(p) => writer.unwrap_or(p).begin_with("BEGIN IMMEDIATE").await.map(Inner::Sqlite),
            Db::Postgres(p) => p.begin().await.map(Inner::Postgres),
        };
        let inner = begun.map_err(|e| mark(write_failed, db_err(e)))?;
        Ok(Box::new(SqlTx {
            inner,
            write_failed: write_failed.clone(),
            pending: Pending::default(),
            known_inbox: HashMap::new(),
            known_keys: HashMap::new(),
            known_tracked: HashMap::new(),
            known_patients: HashMap::new(),
            locked_patients: std::collections::HashSet::new(),
        }))
    }

    /// Keeps the prefetched tracked referrals of the patient current after a write.
    fn track(&mut self, r: &Referral) {
        if let Some(known) = self.known_tracked.get_mut(&r.patient_id) {
            known.retain(|(id, _, _)| id != &r.id);
            if r.is_tracked() {
                known.push((r.id.clone(), r.specialty.clone(), r.ordered_at));
            }
        }
    }

    /// Records the referral's source ids as keys; a key another referral holds stays with it.
    async fn put_keys(&mut self, r: &Referral) -> Result<(), StoreError> {
        for key in &r.source_ids {
            self.pending.put_key(key, &r.id);
        }
        Ok(())
    }

    /// Writes pending inserts (all, or one table's) before a statement that reads or
    /// changes them.
    async fn flush(&mut self, only: Only) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match &mut self.inner {
            Inner::Sqlite(tx) => {
                let c = &mut **tx;
                flush_pending!(&mut self.pending, c, only, Combine::Statements);
            }
            Inner::Postgres(tx) => {
                let c = &mut **tx;
                flush_pending!(&mut self.pending, c, only, Combine::WithParts);
            }
        }
        Ok(())
    }

    fn is_postgres(&self) -> bool {
        matches!(self.inner, Inner::Postgres(_))
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    db(e)
}

/// Sets the store's "a write failed" mark for a storage fault; passes the error on.
fn mark(write_failed: &std::sync::atomic::AtomicBool, e: StoreError) -> StoreError {
    if matches!(e, StoreError::Unavailable(_)) {
        write_failed.store(true, std::sync::atomic::Ordering::Release);
    }
    e
}

const UPDATE_REFERRAL: &str = "UPDATE referrals SET version = $2, state = $3, patient_id = $4,
        referring_provider = $5, specialty = $6, urgency = $7, origin = $8, network = $9,
        duplicate_of = $10, tracked = $11, ordered_at = $12, stage_due_at = $13, updated_at = $14,
        doc = $15
    WHERE id = $1 AND version = $16";

/// Binds a referral's projection columns, `$1`–`$15`, in the order of the statement above.
macro_rules! bind_referral {
    ($q:expr, $r:expr, $due:expr, $now:expr) => {
        $q.bind($r.id.as_str())
            .bind($r.version as i64)
            .bind($r.state.as_str())
            .bind($r.patient_id.as_str())
            .bind($r.referring_provider.as_str())
            .bind($r.specialty.as_ref().map(|s| s.as_str()))
            .bind($r.urgency.as_str())
            .bind($r.origin.as_str())
            .bind($r.network.as_str())
            .bind($r.duplicate_of.as_ref().map(|d| d.as_str()))
            .bind($r.is_tracked())
            .bind(ms($r.ordered_at))
            .bind($due.map(ms))
            .bind(ms($now))
            .bind(row::referral_doc($r))
    };
}

mod documents;
mod referrals;
mod tasks;

#[async_trait::async_trait]
impl Tx for SqlTx {
    async fn probe_write(&mut self, now: Timestamp) -> Result<(), StoreError> {
        on_tx!(self, c => {
            sqlx::query("INSERT INTO write_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at")
                .bind(ms(now))
                .execute(c)
                .await
                .map_err(db)?;
        });
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let flushed = self.flush(Only::All).await;
        let committed = match flushed {
            Err(e) => Err(e),
            Ok(()) => match self.inner {
                Inner::Sqlite(tx) => tx.commit().await.map_err(db),
                Inner::Postgres(tx) => tx.commit().await.map_err(db),
            },
        };
        match committed {
            Ok(()) => {
                self.write_failed.store(false, std::sync::atomic::Ordering::Release);
                Ok(())
            }
            Err(e) => Err(mark(&self.write_failed, e)),
        }
    }
}

#[async_trait::async_trait]
impl TimerTx for SqlTx {
    async fn replace_timers(&mut self, id: &ReferralId, version: u64, timers: &[TimerSpec]) -> Result<(), StoreError> {
        // This referral's timers not yet written are dropped rather than written and deleted.
        self.pending.timers.retain(|(referral, _, _)| referral != id);
        match &mut self.inner {
            // SQLite runs a flush's statements in order: the DELETE goes with it, just before
            // the new timers. (In one PostgreSQL statement a DELETE and an INSERT of the same
            // key would race, so there it goes at once.)
            Inner::Sqlite(_) => {
                if !self.pending.timer_clears.contains(id) {
                    self.pending.timer_clears.push(id.clone());
                }
            }
            Inner::Postgres(tx) => {
                sqlx::query("DELETE FROM timers WHERE referral_id = $1")
                    .bind(id.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
            }
        }
        self.arm_timers(id, version, timers).await
    }

    async fn arm_timers(&mut self, id: &ReferralId, version: u64, timers: &[TimerSpec]) -> Result<(), StoreError> {
        self.pending.timers.extend(timers.iter().map(|t| (id.clone(), version, *t)));
        Ok(())
    }

    async fn due_timers(&mut self, now: Timestamp, n: u32) -> Result<Vec<TimerRow>, StoreError> {
        self.flush(Only::Timers).await?;
        let n = i64::from(n.max(1));
        match &mut self.inner {
            Inner::Sqlite(tx) => {
                let rows = sqlx::query("SELECT * FROM timers WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2")
                    .bind(ms(now))
                    .bind(n)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db)?;
                rows.iter().map(|r| row::timer(r)).collect()
            }
            Inner::Postgres(tx) => {
                // Lock the referrals first (every writer of a referral's timers holds its
                // row lock), skipping those another process is working on.
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT r.id FROM referrals r JOIN timers t ON t.referral_id = r.id
                     WHERE t.due_at <= $1 ORDER BY t.due_at LIMIT $2
                     FOR UPDATE OF r SKIP LOCKED",
                )
                .bind(ms(now))
                .bind(n)
                .fetch_all(&mut **tx)
                .await
                .map_err(db)?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query(
                    "SELECT * FROM timers WHERE due_at <= $1 AND referral_id = ANY($2) ORDER BY due_at, id",
                )
                .bind(ms(now))
                .bind(ids)
                .fetch_all(&mut **tx)
                .await
                .map_err(db)?;
                rows.iter().map(|r| row::timer(r)).collect()
            }
        }
    }

    async fn delete_timer(&mut self, id: &str) -> Result<(), StoreError> {
        self.flush(Only::Timers).await?;
        on_tx!(self, c => {
            sqlx::query("DELETE FROM timers WHERE id = $1").bind(id).execute(c).await.map_err(db)?;
        });
        Ok(())
    }
}

#[async_trait::async_trait]
impl OutboxTx for SqlTx {
    async fn enqueue(&mut self, m: &OutboxItem) -> Result<(), StoreError> {
        self.pending.outbox.push(m.clone());
        Ok(())
    }

    async fn finish_outbox(
        &mut self,
        id: &str,
        guard: OutboxGuard<'_>,
        status: OutboxStatus,
        next_attempt_at: Timestamp,
        sent_at: Option<Timestamp>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (lease, expected) = match guard {
            OutboxGuard::Lease(token) => (Some(token), OutboxStatus::Sending.as_str()),
            OutboxGuard::Status(s) => (None, s.as_str()),
        };
        let done = on_tx!(self, c => {
            sqlx::query(
                "UPDATE outbox SET status = $2, next_attempt_at = $3, sent_at = COALESCE($4, sent_at),
                        last_error = $5, lease_until = NULL, lease_token = NULL,
                        check_first = ($2 = 'unconfirmed')
                 WHERE id = $1 AND status = $6 AND ($7 IS NULL OR lease_token = $7)",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(ms(next_attempt_at))
            .bind(sent_at.map(ms))
            .bind(error)
            .bind(expected)
            .bind(lease)
            .execute(c)
            .await
            .map_err(db)?
            .rows_affected()
        });
        Ok(done == 1)
    }
}

#[async_trait::async_trait]
impl InboxTx for SqlTx {
    async fn inbox_get(
        &mut self,
        protocol: &str,
        source: &str,
        control_id: &str,
    ) -> Result<Option<InboxItem>, StoreError> {
        if let Some(item) = self.pending.find_inbox(protocol, source, control_id) {
            return Ok(Some(item));
        }
        if let Some(known) = self.known_inbox.get(&(protocol.to_owned(), source.to_owned(), control_id.to_owned())) {
            return Ok(known.clone());
        }
        on_tx!(self, c => {
            let found = sqlx::query("SELECT * FROM inbox WHERE protocol = $1 AND source = $2 AND control_id = $3")
                .bind(protocol)
                .bind(source)
                .bind(control_id)
                .fetch_optional(c)
                .await
                .map_err(db)?;
            found.map(|r| row::inbox(&r)).transpose()
        })
    }

    async fn prefetch(
        &mut self,
        protocol: &str,
        messages: &[(String, String)],
        keys: &[String],
        patients: &[PatientId],
    ) -> Result<(), StoreError> {
        self.flush(Only::Parents).await?;
        self.load_patients(patients, true).await?;
        self.read_tracked(patients).await?;
        self.read_inbox(protocol, messages).await?;
        self.read_keys(keys).await
    }

    async fn inbox_put(&mut self, m: &InboxItem) -> Result<(), StoreError> {
        self.pending.put_inbox(m);
        Ok(())
    }
}

#[async_trait::async_trait]
impl AuditTx for SqlTx {
    async fn audit(&mut self, e: &AuditEntry) -> Result<(), StoreError> {
        self.pending.audits.push(e.clone());
        Ok(())
    }
}
