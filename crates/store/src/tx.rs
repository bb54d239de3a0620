//! One write transaction on either backend.

use std::collections::HashMap;

use jiff::Timestamp;
use refloop_app::{
    AuditEntry, InboxItem, NewTask, OutboxGuard, OutboxItem, OutboxStatus, Patient, PatientKeep, StoreError,
    StoredEvent, Task, TaskChange, TaskLogEntry, TimerRow, Tx,
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

#[async_trait::async_trait]
impl Tx for SqlTx {
    async fn lock_referral(&mut self, id: &ReferralId, skip_locked: bool) -> Result<Option<Referral>, StoreError> {
        self.flush(Only::Parents).await?;
        match &mut self.inner {
            // SQLite: this transaction already holds the write lock, so the referral's patient
            // comes in the same read (the engine looks it up next) instead of a second one.
            Inner::Sqlite(tx) => readahead::referral_with_patient(tx, &mut self.known_patients, id).await,
            Inner::Postgres(tx) => {
                let sql = if skip_locked {
                    "SELECT doc FROM referrals WHERE id = $1 FOR UPDATE SKIP LOCKED"
                } else {
                    "SELECT doc FROM referrals WHERE id = $1 FOR UPDATE"
                };
                let found = sqlx::query(sql).bind(id.as_str()).fetch_optional(&mut **tx).await.map_err(db)?;
                found.map(|r| row::referral(&r)).transpose()
            }
        }
    }

    async fn duplicate_candidate(
        &mut self,
        patient: &PatientId,
        specialty: &Specialty,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<DuplicateCandidate>, StoreError> {
        if let Some(known) = self.known_tracked.get(patient) {
            let newest = known
                .iter()
                .filter(|(_, s, at)| s.as_ref() == Some(specialty) && *at >= from && *at <= to)
                .max_by_key(|(_, _, at)| *at);
            return Ok(newest.map(|(id, _, at)| DuplicateCandidate { id: id.clone(), ordered_at: *at }));
        }
        self.flush(Only::Parents).await?;
        let found = on_tx!(self, c => {
            let found = sqlx::query(
                "SELECT id, ordered_at FROM referrals
                 WHERE patient_id = $1 AND specialty = $2 AND ordered_at BETWEEN $3 AND $4
                   AND tracked = $5
                 ORDER BY ordered_at DESC LIMIT 1",
            )
            .bind(patient.as_str())
            .bind(specialty.as_str())
            .bind(ms(from))
            .bind(ms(to))
            .bind(true)
            .fetch_optional(c)
            .await
            .map_err(db)?;
            match found {
                Some(r) => Some((row::Get::text(&r, "id")?, row::Get::int(&r, "ordered_at")?)),
                None => None,
            }
        });
        found
            .map(|(id, at)| {
                Ok(DuplicateCandidate {
                    id: ReferralId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    ordered_at: ts(at)?,
                })
            })
            .transpose()
    }

    async fn patient(&mut self, id: &PatientId) -> Result<Option<Patient>, StoreError> {
        self.load_patients(std::slice::from_ref(id), false).await?;
        Ok(self.known_patients.get(id).cloned().flatten())
    }

    async fn lock_patient(&mut self, id: &PatientId) -> Result<Option<Patient>, StoreError> {
        self.load_patients(std::slice::from_ref(id), true).await?;
        Ok(self.known_patients.get(id).cloned().flatten())
    }

    async fn upsert_patient(&mut self, p: &Patient, keep: PatientKeep) -> Result<Patient, StoreError> {
        self.load_patients(std::slice::from_ref(&p.id), true).await?;
        if self.pending.patients.iter().any(|(q, _)| q.id == p.id) {
            self.flush(Only::Parents).await?;
        }
        let stored = self.known_patients.get(&p.id).cloned().flatten();
        let merged = match &stored {
            Some(old) => Patient {
                sms_consent: if keep.consent { old.sms_consent } else { p.sms_consent },
                sms_opted_out: if keep.opt_out { old.sms_opted_out } else { p.sms_opted_out },
                // What an update does not say is kept.
                birth_date: p.birth_date.clone().or_else(|| old.birth_date.clone()),
                language: p.language.clone().or_else(|| old.language.clone()),
                ..p.clone()
            },
            None => p.clone(),
        };
        // A row read (and locked) here is overwritten with the merge; a new one keeps what a
        // concurrent insert of the same patient recorded, as the upsert says.
        let row_keep = if stored.is_some() { PatientKeep::default() } else { keep };
        self.pending.patients.push((merged.clone(), row_keep));
        self.known_patients.insert(p.id.clone(), Some(merged.clone()));
        Ok(merged)
    }

    async fn insert_referral(
        &mut self,
        r: &Referral,
        stage_due_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.pending.referrals.push((r.clone(), stage_due_at, now));
        self.pending.stats.push((r.clone(), stage_due_at));
        self.track(r);
        self.put_keys(r).await
    }

    async fn update_referral(
        &mut self,
        r: &Referral,
        expected_version: u64,
        stage_due_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.flush(Only::Parents).await?;
        let updated = on_tx!(self, c => {
            bind_referral!(sqlx::query(UPDATE_REFERRAL), r, stage_due_at, now)
                .bind(expected_version as i64)
                .execute(c)
                .await
                .map_err(db)?
                .rows_affected()
        });
        // Source ids are fixed when the referral is entered, so its keys were written then.
        if updated != 1 {
            return Err(StoreError::Conflict(format!("another writer changed referral {} first", r.id)));
        }
        self.pending.stats.push((r.clone(), stage_due_at));
        self.track(r);
        Ok(())
    }

    async fn append_events(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.pending.events.extend_from_slice(events);
        Ok(())
    }

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

    async fn change_task(&mut self, id: &str, change: &TaskChange) -> Result<Option<Task>, StoreError> {
        self.flush(Only::Tasks).await?;
        let row = on_tx!(self, c => {
            let q = match change {
                TaskChange::Claim { assignee, reassign } => sqlx::query(
                    "UPDATE tasks SET status = 'claimed', assignee = $2
                     WHERE id = $1 AND (status = 'open' OR ($3 AND status = 'claimed')) RETURNING *",
                )
                .bind(id)
                .bind(assignee.clone())
                .bind(*reassign),
                TaskChange::Complete { by, outcome, note, at } => sqlx::query(
                    "UPDATE tasks SET status = 'done', completed_at = $2, outcome = $3, note = $4,
                            assignee = COALESCE(assignee, $5)
                     WHERE id = $1 AND status IN ('open', 'claimed') RETURNING *",
                )
                .bind(id)
                .bind(ms(*at))
                .bind(outcome.clone())
                .bind(note.clone())
                .bind(by.clone()),
                TaskChange::Retry { outcome, note, due_at } => sqlx::query(
                    "UPDATE tasks SET status = 'open', assignee = NULL, due_at = $2, outcome = $3, note = $4,
                            attempts = attempts + 1
                     WHERE id = $1 AND status IN ('open', 'claimed') RETURNING *",
                )
                .bind(id)
                .bind(ms(*due_at))
                .bind(outcome.clone())
                .bind(note.clone()),
            };
            q.fetch_optional(&mut *c).await.map_err(db)?.map(|r| row::task(&r)).transpose()?
        });
        Ok(row)
    }

    async fn log_task(&mut self, e: &TaskLogEntry) -> Result<(), StoreError> {
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO task_log (task_id, referral_id, at, actor, action, assignee, outcome, note)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(e.task_id.clone())
            .bind(e.referral_id.as_str().to_owned())
            .bind(ms(e.at))
            .bind(e.actor.clone())
            .bind(e.action.clone())
            .bind(e.assignee.clone())
            .bind(e.outcome.clone())
            .bind(e.note.clone())
            .execute(&mut *c)
            .await
            .map_err(db)?;
        });
        Ok(())
    }

    async fn put_provider(&mut self, id: &ProviderId, name: &str, now: Timestamp) -> Result<(), StoreError> {
        self.pending.put_provider(id.as_str(), name, now);
        Ok(())
    }

    async fn open_task(&mut self, t: &NewTask) -> Result<(), StoreError> {
        self.pending.tasks.push(t.clone());
        Ok(())
    }

    async fn close_tasks(
        &mut self,
        id: &ReferralId,
        kinds: &[TaskKind],
        now: Timestamp,
        outcome: &str,
    ) -> Result<(), StoreError> {
        if kinds.is_empty() {
            return Ok(());
        }
        self.flush(Only::Tasks).await?;
        // One statement for every kind.
        on_tx!(self, c => {
            let mut q = sqlx::QueryBuilder::new("UPDATE tasks SET status = 'done', completed_at = ");
            q.push_bind(ms(now)).push(", outcome = ").push_bind(outcome).push(" WHERE referral_id = ");
            q.push_bind(id.as_str()).push(" AND status IN ('open', 'claimed') AND kind IN (");
            let mut list = q.separated(", ");
            for kind in kinds {
                list.push_bind(kind.as_str());
            }
            q.push(")");
            q.build().execute(c).await.map_err(db)?;
        });
        Ok(())
    }

    async fn audit(&mut self, e: &AuditEntry) -> Result<(), StoreError> {
        self.pending.audits.push(e.clone());
        Ok(())
    }

    async fn close_inbox_tasks(&mut self, inbox_id: &str, now: Timestamp, outcome: &str) -> Result<(), StoreError> {
        self.flush(Only::Tasks).await?;
        on_tx!(self, c => {
            sqlx::query(
                "UPDATE tasks SET status = 'done', completed_at = $2, outcome = $3
                 WHERE inbox_id = $1 AND status IN ('open', 'claimed')",
            )
            .bind(inbox_id)
            .bind(ms(now))
            .bind(outcome)
            .execute(c)
            .await
            .map_err(db)?;
        });
        Ok(())
    }

    async fn referral_by_key(&mut self, key: &str) -> Result<Option<ReferralId>, StoreError> {
        if let Some(known) = self.known_keys.get(key) {
            return Ok(known.clone().or_else(|| self.pending.find_key(key)));
        }
        let found: Option<String> = on_tx!(self, c => {
            sqlx::query_scalar("SELECT referral_id FROM referral_keys WHERE key = $1")
                .bind(key)
                .fetch_optional(c)
                .await
                .map_err(db)?
        });
        match found {
            Some(id) => ReferralId::parse(&id).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
            None => Ok(self.pending.find_key(key)),
        }
    }

    async fn open_referrals(
        &mut self,
        patient: &PatientId,
        specialty: Option<&Specialty>,
    ) -> Result<Vec<Referral>, StoreError> {
        self.flush(Only::Parents).await?;
        on_tx!(self, c => {
            let rows = sqlx::query(
                "SELECT doc FROM referrals
                 WHERE patient_id = $1 AND ($2 IS NULL OR specialty = $2) AND tracked = $3
                   AND state IN ('ordered', 'patient-notified', 'scheduled', 'attended')
                 ORDER BY ordered_at DESC LIMIT 20",
            )
            .bind(patient.as_str())
            .bind(specialty.map(|s| s.as_str()))
            .bind(true)
            .fetch_all(c)
            .await
            .map_err(db)?;
            rows.iter().map(|r| row::referral(r)).collect()
        })
    }

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

    async fn put_fact(&mut self, key: &str, patient: &str, fact: &Fact, at: Timestamp) -> Result<(), StoreError> {
        let doc = serde_json::to_string(fact).map_err(|e| StoreError::Other(e.to_string()))?;
        let kind =
            serde_json::to_value(fact).ok().and_then(|v| v["kind"].as_str().map(str::to_owned)).unwrap_or_default();
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO measure_facts (key, patient, kind, doc, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO UPDATE SET patient = excluded.patient, kind = excluded.kind, doc = excluded.doc,
                     updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(patient)
            .bind(&kind)
            .bind(&doc)
            .bind(ms(at))
            .execute(c)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

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
