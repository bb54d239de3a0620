//! The [`Store`] port on SQLite (the embedded default) and PostgreSQL (scale-out).
//!
//! One implementation serves both: each query is written once with `$n` placeholders and
//! run against whichever pool the URL chose. Where the dialects differ — row locks with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite — the code says so
//! in place. Each dialect has its own migrations folder.

mod pending;
mod row;
#[macro_use]
mod tx;

use std::{str::FromStr, time::Duration};

use jiff::Timestamp;
use refloop_app::{
    AuditEntry, Gauges, InboxFilter, InboxItem, OutboxFilter, OutboxItem, Patient, ReferralFilter, ReferralPage,
    RollupRow, SessionRecord, SpanRow, Specialist, Store, StoreError, StoredEvent, Task, TaskFilter, TokenRecord, Tx,
    UserRecord,
};
use refloop_domain::{PatientId, Referral, ReferralId, cms50::Fact};
use sqlx::{
    PgPool, SqlSafeStr, SqlitePool,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use row::{db, ms, ts};

pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool is configured.
macro_rules! on_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            Db::Sqlite($p) => $body,
            Db::Postgres($p) => $body,
        }
    };
}

/// A SQL-backed store.
pub struct SqlStore {
    db: Db,
    /// SQLite only: the one connection write transactions use. SQLite has one writer at a
    /// time anyway, and a connection that made the last change keeps its page cache (another
    /// connection's write would make it start cold).
    writer: Option<SqlitePool>,
}

/// The migrations of one dialect, embedded in the binary. Add a file, add a line.
fn migrator(dialect: &str) -> Migrator {
    let files: &[(i64, &str, &'static str)] = match dialect {
        "sqlite" => &[
            (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
            (2, "inbox", include_str!("../migrations/sqlite/0002_inbox.sql")),
            (3, "task_inbox", include_str!("../migrations/sqlite/0003_task_inbox.sql")),
            (4, "application_ack", include_str!("../migrations/sqlite/0004_application_ack.sql")),
            (5, "cursors", include_str!("../migrations/sqlite/0005_cursors.sql")),
            (6, "patient_phone", include_str!("../migrations/sqlite/0006_patient_phone.sql")),
            (7, "specialists", include_str!("../migrations/sqlite/0007_specialists.sql")),
            (8, "users", include_str!("../migrations/sqlite/0008_users.sql")),
            (9, "measure facts", include_str!("../migrations/sqlite/0009_measure_facts.sql")),
            (10, "referral stats", include_str!("../migrations/sqlite/0010_referral_stats.sql")),
        ],
        _ => &[
            (1, "init", include_str!("../migrations/postgres/0001_init.sql")),
            (2, "inbox", include_str!("../migrations/postgres/0002_inbox.sql")),
            (3, "task_inbox", include_str!("../migrations/postgres/0003_task_inbox.sql")),
            (4, "application_ack", include_str!("../migrations/postgres/0004_application_ack.sql")),
            (5, "cursors", include_str!("../migrations/postgres/0005_cursors.sql")),
            (6, "patient_phone", include_str!("../migrations/postgres/0006_patient_phone.sql")),
            (7, "specialists", include_str!("../migrations/postgres/0007_specialists.sql")),
            (8, "users", include_str!("../migrations/postgres/0008_users.sql")),
            (9, "measure facts", include_str!("../migrations/postgres/0009_measure_facts.sql")),
            (10, "referral stats", include_str!("../migrations/postgres/0010_referral_stats.sql")),
        ],
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|(v, name, sql)| Migration::new(*v, (*name).into(), MigrationType::Simple, sql.into_sql_str(), false))
            .collect(),
    )
}

impl SqlStore {
    /// Opens `sqlite://PATH` (created if missing; WAL, synchronous commits) or
    /// `postgres://…`. Does not migrate: call [`SqlStore::migrate`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, SqliteSynchronous::Full).await
    }

    /// A SQLite file for scratch work (the simulator's runs): commits are not synced to disk,
    /// so a crash may lose them. Never for a database that holds anything to keep.
    pub async fn connect_scratch(url: &str) -> Result<Self, StoreError> {
        Self::open(url, SqliteSynchronous::Off).await
    }

    async fn open(url: &str, synchronous: SqliteSynchronous) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() || path.contains(":memory:") {
                return Err(StoreError::Other("SQLite needs a file path: sqlite://PATH".into()));
            }
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                // A larger page cache and memory-mapped reads (up to SQLite's 2 GiB ceiling:
                // address space, not memory; the newest referrals sit at the end of the file)
                // keep reads out of read(2) calls; writes still go through the WAL with a full fsync.
                .pragma("cache_size", "-32768")
                .pragma("mmap_size", "2147418112")
                .pragma("temp_store", "memory")
                .pragma("wal_autocheckpoint", "8000");
            let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts.clone()).await.map_err(db)?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(db)?;
            Ok(Self { db: Db::Sqlite(pool), writer: Some(writer) })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Other(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(db)?;
            Ok(Self { db: Db::Postgres(pool), writer: None })
        } else {
            Err(StoreError::Other("unsupported database URL: use sqlite://PATH or postgres://…".into()))
        }
    }

    /// Applies the pending migrations of this backend's dialect.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.db {
            Db::Sqlite(p) => migrator("sqlite").run(p).await,
            Db::Postgres(p) => migrator("postgres").run(p).await,
        };
        result.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        self.backfill_stats().await
    }

    /// Writes the report rows of referrals entered before `referral_stats` existed.
    async fn backfill_stats(&self) -> Result<(), StoreError> {
        loop {
            let docs: Vec<Referral> = on_pool!(&self.db, p => {
                let rows = sqlx::query(
                    "SELECT r.doc FROM referrals r
                     WHERE NOT EXISTS (SELECT 1 FROM referral_stats s WHERE s.ordered_at = r.ordered_at AND s.id = r.id)
                     LIMIT 2000",
                )
                .fetch_all(p)
                .await
                .map_err(db)?;
                rows.iter().map(|r| row::referral(r)).collect::<Result<Vec<_>, _>>()?
            });
            if docs.is_empty() {
                return Ok(());
            }
            tracing::info!(referrals = docs.len(), "writing report rows for existing referrals");
            for chunk in docs.chunks(pending::CHUNK_ROWS) {
                on_pool!(&self.db, p => {
                    pending::stats_query!(chunk).build().execute(p).await.map_err(db)?;
                });
            }
        }
    }

    /// Runs one SQL statement as it is: for maintenance scripts and tests, never with input
    /// from a request.
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        on_pool!(&self.db, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()).map_err(db))
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        if let Some(w) = &self.writer {
            w.close().await;
        }
        on_pool!(&self.db, p => p.close().await)
    }
}

const REFERRALS_PAGE: &str = "SELECT doc, ordered_at, id FROM referrals
    WHERE ($1 IS NULL OR state = $1)
      AND ($2 IS NULL OR specialty = $2)
      AND ($3 IS NULL OR referring_provider = $3)
      AND ($4 IS NULL OR stage_due_at < $4)
      AND ($5 IS NULL OR ordered_at < $5 OR (ordered_at = $5 AND id < $6))
      AND ($8 IS NULL OR ordered_at >= $8)
      AND ($9 IS NULL OR ordered_at < $9)
    ORDER BY ordered_at DESC, id DESC
    LIMIT $7";

const TASKS: &str = "SELECT * FROM tasks
    WHERE ($1 IS NULL OR status = $1)
      AND ($2 IS NULL OR assignee = $2)
      AND ($3 IS NULL OR referral_id = $3)
    ORDER BY due_at, id
    LIMIT $4";

const OUTBOX: &str = "SELECT * FROM outbox
    WHERE ($1 IS NULL OR status = $1)
      AND ($2 IS NULL OR referral_id = $2)
    ORDER BY created_at DESC, id
    LIMIT $3";

const CLAIM_OUTBOX_SQLITE: &str = "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = $3
    WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at LIMIT $2)
    RETURNING *";

const CLAIM_OUTBOX_POSTGRES: &str = "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = $3
    WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING *";

fn limit(n: u32) -> i64 {
    i64::from(n.clamp(1, 1000))
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(&self.db, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()).map_err(db))
    }

    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        tx::SqlTx::begin(&self.db, self.writer.as_ref()).await
    }

    async fn referral(&self, id: &ReferralId) -> Result<Option<Referral>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT doc FROM referrals WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::referral(&r)).transpose()
        })
    }

    async fn referrals(&self, f: &ReferralFilter) -> Result<ReferralPage, StoreError> {
        let n = limit(f.limit);
        let rows = on_pool!(&self.db, p => {
            let rows = sqlx::query(REFERRALS_PAGE)
                .bind(f.state.map(|s| s.as_str()))
                .bind(f.specialty.as_ref().map(|s| s.as_str().to_owned()))
                .bind(f.provider.clone())
                .bind(f.overdue_at.map(ms))
                .bind(f.after.as_ref().map(|(t, _)| ms(*t)))
                .bind(f.after.as_ref().map(|(_, id)| id.as_str().to_owned()))
                .bind(n + 1)
                .bind(f.ordered_from.map(ms))
                .bind(f.ordered_before.map(ms))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::referral(r)).collect::<Result<Vec<_>, _>>()?
        });
        let mut items = rows;
        let next = if items.len() as i64 > n {
            items.truncate(n as usize);
            items.last().map(|r| (r.ordered_at, r.id.clone()))
        } else {
            None
        };
        Ok(ReferralPage { items, next })
    }

    async fn events(&self, id: &ReferralId) -> Result<Vec<StoredEvent>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM events WHERE referral_id = $1 ORDER BY seq")
                .bind(id.as_str())
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::event(r)).collect()
        })
    }

    async fn patient(&self, id: &PatientId) -> Result<Option<Patient>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM patients WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::patient(&r)).transpose()
        })
    }

    async fn tasks(&self, f: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query(TASKS)
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.assignee.clone())
                .bind(f.referral_id.as_ref().map(|r| r.as_str().to_owned()))
                .bind(limit(f.limit))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::task(r)).collect()
        })
    }

    async fn task(&self, id: &str) -> Result<Option<Task>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::task(&r)).transpose()
        })
    }

    async fn claim_task(&self, id: &str, assignee: &str, reassign: bool) -> Result<Option<Task>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query(
                "UPDATE tasks SET status = 'claimed', assignee = $2
                 WHERE id = $1 AND (status = 'open' OR ($3 AND status = 'claimed')) RETURNING *",
            )
            .bind(id)
            .bind(assignee)
            .bind(reassign)
            .fetch_optional(p)
            .await
            .map_err(db)?;
            row.map(|r| row::task(&r)).transpose()
        })
    }

    async fn complete_task(
        &self,
        id: &str,
        by: &str,
        outcome: &str,
        now: Timestamp,
    ) -> Result<Option<Task>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query(
                "UPDATE tasks SET status = 'done', completed_at = $2, outcome = $3,
                        assignee = COALESCE(assignee, $4)
                 WHERE id = $1 AND status IN ('open', 'claimed') RETURNING *",
            )
            .bind(id)
            .bind(ms(now))
            .bind(outcome)
            .bind(by)
            .fetch_optional(p)
            .await
            .map_err(db)?;
            row.map(|r| row::task(&r)).transpose()
        })
    }

    async fn outbox(&self, f: &OutboxFilter) -> Result<Vec<OutboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query(OUTBOX)
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.referral_id.as_ref().map(|r| r.as_str().to_owned()))
                .bind(limit(f.limit))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::outbox(r)).collect()
        })
    }

    async fn gauges(&self, now: Timestamp) -> Result<Gauges, StoreError> {
        on_pool!(&self.db, p => {
            let by_state: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM referrals GROUP BY state ORDER BY state")
                .fetch_all(p)
                .await
                .map_err(db)?;
            let overdue: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE status IN ('open', 'claimed') AND due_at < $1")
                .bind(ms(now))
                .fetch_one(p)
                .await
                .map_err(db)?;
            let backlog: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")
                .fetch_one(p)
                .await
                .map_err(db)?;
            Ok(Gauges { referrals_by_state: by_state, overdue_tasks: overdue, outbox_backlog: backlog })
        })
    }

    async fn referrals_ordered_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Referral>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT doc FROM referrals WHERE ordered_at >= $1 AND ordered_at < $2 ORDER BY ordered_at")
                .bind(ms(from))
                .bind(ms(to))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::referral(r)).collect()
        })
    }

    async fn outbox_item(&self, id: &str) -> Result<Option<OutboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM outbox WHERE id = $1").bind(id).fetch_optional(p).await.map_err(db)?;
            row.map(|r| row::outbox(&r)).transpose()
        })
    }

    async fn upsert_specialist(&self, s: &Specialist) -> Result<(), StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO specialists (id, name, specialties, network, phone, fax, direct_address, last_verified, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, specialties = excluded.specialties,
                     network = excluded.network, phone = excluded.phone, fax = excluded.fax,
                     direct_address = excluded.direct_address, last_verified = excluded.last_verified,
                     updated_at = excluded.updated_at",
            )
            .bind(&s.id)
            .bind(&s.name)
            .bind(s.specialties.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","))
            .bind(s.network.as_str())
            .bind(&s.phone)
            .bind(&s.fax)
            .bind(&s.direct_address)
            .bind(ms(s.last_verified))
            .bind(ms(s.updated_at))
            .execute(p)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    async fn specialists(&self, verified_before: Option<Timestamp>) -> Result<Vec<Specialist>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query(
                "SELECT * FROM specialists WHERE ($1 IS NULL OR last_verified < $1) ORDER BY name, id LIMIT 5000",
            )
            .bind(verified_before.map(ms))
            .fetch_all(p)
            .await
            .map_err(db)?;
            rows.iter().map(|r| row::specialist(r)).collect()
        })
    }

    async fn patients_by_phone(&self, phone: &str) -> Result<Vec<Patient>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM patients WHERE phone = $1 ORDER BY id LIMIT 20")
                .bind(phone)
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::patient(r)).collect()
        })
    }

    async fn claim_outbox(
        &self,
        now: Timestamp,
        n: u32,
        lease_until: Timestamp,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = match self.db {
            Db::Sqlite(_) => CLAIM_OUTBOX_SQLITE,
            Db::Postgres(_) => CLAIM_OUTBOX_POSTGRES,
        };
        on_pool!(&self.db, p => {
            let rows = sqlx::query(sql)
                .bind(ms(now))
                .bind(limit(n))
                .bind(ms(lease_until))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::outbox(r)).collect()
        })
    }

    async fn reap_outbox(&self, now: Timestamp) -> Result<Vec<OutboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query(
                "UPDATE outbox SET status = 'unknown' WHERE status = 'sending' AND lease_until < $1 RETURNING *",
            )
            .bind(ms(now))
            .fetch_all(p)
            .await
            .map_err(db)?;
            rows.iter().map(|r| row::outbox(r)).collect()
        })
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let next: Option<i64> = on_pool!(&self.db, p => {
            sqlx::query_scalar(
                "SELECT MIN(x) FROM (
                    SELECT MIN(due_at) AS x FROM timers
                    UNION ALL
                    SELECT MIN(next_attempt_at) AS x FROM outbox WHERE status = 'pending'
                 ) AS due",
            )
            .fetch_one(p)
            .await
            .map_err(db)?
        });
        next.map(ts).transpose()
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query("INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&t.id)
                .bind(&t.name)
                .bind(t.role.as_str())
                .bind(&t.hash)
                .bind(ms(t.created_at))
                .execute(p)
                .await
                .map_err(db)?;
        });
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::token(&r)).transpose()
        })
    }

    async fn upsert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO users (username, role, password_hash, disabled, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (username) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,
                     disabled = excluded.disabled, updated_at = excluded.updated_at",
            )
            .bind(&u.username)
            .bind(u.role.as_str())
            .bind(&u.password_hash)
            .bind(u.disabled)
            .bind(ms(u.created_at))
            .bind(ms(u.updated_at))
            .execute(p)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::user(&r)).transpose()
        })
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM users ORDER BY username").fetch_all(p).await.map_err(db)?;
            rows.iter().map(|r| row::user(r)).collect()
        })
    }

    async fn closure_rollup(
        &self,
        from: Timestamp,
        to: Timestamp,
        key: Option<&'static str>,
        spans_by_key: &[u8],
        sampled: bool,
    ) -> Result<(Vec<RollupRow>, Vec<SpanRow>), StoreError> {
        let k = match key {
            None => "''",
            Some("specialty") => "COALESCE(specialty, '(needs coding)')",
            Some("provider") => "provider",
            Some("specialist") => "COALESCE(specialist, '(unknown)')",
            Some("network") => "network",
            Some("urgency") => "urgency",
            Some(other) => return Err(StoreError::Other(format!("no report column {other}"))),
        };
        let group = if key.is_some() { format!("{k}, ") } else { String::new() };
        let range = "FROM referral_stats WHERE ordered_at >= $1 AND ordered_at < $2 AND tracked = 1";
        let rows_sql = sqlx::AssertSqlSafe(format!(
            "SELECT {k} AS k, CAST(code AS BIGINT) AS code, leak_reason, CAST(COUNT(*) AS BIGINT) AS n \
             {range} GROUP BY {group}code, leak_reason"
        ));
        let span_sql = |i: usize, m: &str| {
            let keyed = spans_by_key.contains(&(i as u8));
            let (k, group) = if keyed { (k, group.as_str()) } else { ("''", "") };
            let sample = if sampled { " AND sample < 2" } else { "" };
            sqlx::AssertSqlSafe(format!(
                "SELECT {k} AS k, CAST({i} AS BIGINT) AS span, CAST(({m} * 10 + 720) / 1440 AS BIGINT) AS t, \
                 CAST(COUNT(*) AS BIGINT) AS n, CAST(SUM({m}) AS BIGINT) AS m \
                 {range} AND {m} IS NOT NULL{sample} GROUP BY {group}({m} * 10 + 720) / 1440"
            ))
        };
        // Six scans of the period, run side by side on the pool's connections.
        let (a, b) = (ms(from), ms(to));
        on_pool!(&self.db, p => {
            let spans = |i: usize, m: &'static str| {
                let sql = span_sql(i, m);
                async move {
                    let rows = sqlx::query(sql).bind(a).bind(b).fetch_all(p).await.map_err(db)?;
                    rows.iter().map(|r| row::span(r)).collect::<Result<Vec<_>, _>>()
                }
            };
            let rows = async {
                let rows = sqlx::query(rows_sql).bind(a).bind(b).fetch_all(p).await.map_err(db)?;
                rows.iter().map(|r| row::rollup(r)).collect::<Result<Vec<_>, _>>()
            };
            let (rows, s0, s1, s2, s3, s4) = tokio::try_join!(
                rows,
                spans(0, "m_notify"),
                spans(1, "m_schedule"),
                spans(2, "m_attend"),
                spans(3, "m_note"),
                spans(4, "m_total"),
            )?;
            Ok((rows, [s0, s1, s2, s3, s4].concat()))
        })
    }

    async fn closure_trend(&self, bounds: &[Timestamp]) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut out = Vec::with_capacity(bounds.len().saturating_sub(1));
        for chunk in bounds.windows(2).collect::<Vec<_>>().chunks(100) {
            let mut rows = on_pool!(&self.db, p => {
                let mut q = sqlx::QueryBuilder::new("");
                for (i, w) in chunk.iter().enumerate() {
                    if i > 0 {
                        q.push(" UNION ALL ");
                    }
                    q.push("SELECT CAST(").push_bind(i as i64).push(" AS BIGINT) AS b, CAST(COUNT(*) AS BIGINT) AS n, ");
                    q.push("CAST(COALESCE(SUM(CASE WHEN code < 64 THEN 1 ELSE 0 END), 0) AS BIGINT) AS closed ");
                    q.push("FROM referral_stats WHERE tracked = 1 AND ordered_at >= ").push_bind(ms(w[0]));
                    q.push(" AND ordered_at < ").push_bind(ms(w[1]));
                }
                let rows = q.build().fetch_all(p).await.map_err(db)?;
                rows.iter().map(|r| row::trend(r)).collect::<Result<Vec<_>, _>>()?
            });
            rows.sort_by_key(|r| r.0);
            out.extend(rows.into_iter().map(|(_, n, c)| (n, c)));
        }
        Ok(out)
    }

    async fn measure_facts(&self) -> Result<Vec<(String, Fact)>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT patient, doc FROM measure_facts ORDER BY patient, key")
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::fact(r)).collect()
        })
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query("INSERT INTO sessions (hash, username, csrf, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&s.hash)
                .bind(&s.username)
                .bind(&s.csrf)
                .bind(ms(s.created_at))
                .bind(ms(s.last_seen_at))
                .execute(p)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    async fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM sessions WHERE hash = $1")
                .bind(hash)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::session(&r)).transpose()
        })
    }

    async fn touch_session(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE hash = $2")
                .bind(ms(at))
                .bind(hash)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    async fn delete_sessions(&self, hash: Option<&str>, username: Option<&str>) -> Result<(), StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query("DELETE FROM sessions WHERE hash = $1 OR username = $2")
                .bind(hash)
                .bind(username)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        on_pool!(&self.db, p => insert_audit!(p, e))
    }

    async fn inbox(&self, f: &InboxFilter) -> Result<Vec<InboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query(
                "SELECT * FROM inbox WHERE ($1 IS NULL OR status = $1) ORDER BY received_at DESC, id DESC LIMIT $2",
            )
            .bind(f.status.map(|s| s.as_str()))
            .bind(limit(f.limit))
            .fetch_all(p)
            .await
            .map_err(db)?;
            rows.iter().map(|r| row::inbox(r)).collect()
        })
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query_scalar("SELECT value FROM cursors WHERE name = $1").bind(name).fetch_optional(p).await.map_err(db)
        })
    }

    async fn set_cursor(&self, name: &str, value: &str, at: Timestamp) -> Result<(), StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(value)
            .bind(ms(at))
            .execute(p)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    async fn inbox_item(&self, id: &str) -> Result<Option<InboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM inbox WHERE id = $1").bind(id).fetch_optional(p).await.map_err(db)?;
            row.map(|r| row::inbox(&r)).transpose()
        })
    }

    async fn audit_log(&self, n: u32) -> Result<Vec<AuditEntry>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT $1")
                .bind(limit(n))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::audit(r)).collect()
        })
    }
}
