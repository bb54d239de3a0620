//! Opening a store: connection options per dialect, the embedded migrations, and the
//! report rows written for referrals that predate them.

use std::{str::FromStr, time::Duration};

use refloop_domain::Referral;
use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{Db, SqlStore, StoreError, pending, row, row::db};

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
            (11, "people", include_str!("../migrations/sqlite/0011_people.sql")),
            (12, "task work", include_str!("../migrations/sqlite/0012_task_work.sql")),
            (13, "staff texts", include_str!("../migrations/sqlite/0013_staff_texts.sql")),
            (14, "directory", include_str!("../migrations/sqlite/0014_directory.sql")),
            (15, "outbox leases", include_str!("../migrations/sqlite/0015_outbox_leases.sql")),
            (16, "token lifecycle", include_str!("../migrations/sqlite/0016_token_lifecycle.sql")),
            (17, "user lockout", include_str!("../migrations/sqlite/0017_user_lockout.sql")),
            (18, "audit chain", include_str!("../migrations/sqlite/0018_audit_chain.sql")),
            (19, "mfa", include_str!("../migrations/sqlite/0019_mfa.sql")),
            (20, "sso", include_str!("../migrations/sqlite/0020_sso.sql")),
            (21, "stage due", include_str!("../migrations/sqlite/0021_stage_due.sql")),
            (22, "report sample", include_str!("../migrations/sqlite/0022_report_sample.sql")),
            (23, "documents", include_str!("../migrations/sqlite/0023_documents.sql")),
            (24, "specialist fhir", include_str!("../migrations/sqlite/0024_specialist_fhir.sql")),
            (25, "patient birth date", include_str!("../migrations/sqlite/0025_patient_birth_date.sql")),
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
            (11, "people", include_str!("../migrations/postgres/0011_people.sql")),
            (12, "task work", include_str!("../migrations/postgres/0012_task_work.sql")),
            (13, "staff texts", include_str!("../migrations/postgres/0013_staff_texts.sql")),
            (14, "directory", include_str!("../migrations/postgres/0014_directory.sql")),
            (15, "outbox leases", include_str!("../migrations/postgres/0015_outbox_leases.sql")),
            (16, "token lifecycle", include_str!("../migrations/postgres/0016_token_lifecycle.sql")),
            (17, "user lockout", include_str!("../migrations/postgres/0017_user_lockout.sql")),
            (18, "audit chain", include_str!("../migrations/postgres/0018_audit_chain.sql")),
            (19, "mfa", include_str!("../migrations/postgres/0019_mfa.sql")),
            (20, "sso", include_str!("../migrations/postgres/0020_sso.sql")),
            (21, "stage due", include_str!("../migrations/postgres/0021_stage_due.sql")),
            (22, "report sample", include_str!("../migrations/postgres/0022_report_sample.sql")),
            (23, "documents", include_str!("../migrations/postgres/0023_documents.sql")),
            (24, "specialist fhir", include_str!("../migrations/postgres/0024_specialist_fhir.sql")),
            (25, "patient birth date", include_str!("../migrations/postgres/0025_patient_birth_date.sql")),
        ],
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|(v, name, sql)| Migration::new(*v, (*name).into(), MigrationType::Simple, sql.into_sql_str(), false))
            .collect(),
    )
}

/// Whether a pooled connection may be handed out: not if it still counts itself inside a
/// transaction. That happens when a commit fails for a storage fault (a full disk, an I/O
/// error): SQLite may roll the transaction back by itself, the rollback that follows then
/// fails, and the connection would refuse every later `BEGIN` ("non-zero transaction
/// depth"). Such a connection is closed and a fresh one opened in its place.
fn clean<C: sqlx::Connection>(c: &C) -> bool {
    if c.is_in_transaction() {
        tracing::warn!("a database connection left inside a failed transaction is replaced");
        return false;
    }
    true
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
            create_private(std::path::Path::new(path));
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
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .before_acquire(|c, _| Box::pin(async move { Ok(clean(c)) }))
                .connect_with(opts.clone())
                .await
                .map_err(db)?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .before_acquire(|c, _| Box::pin(async move { Ok(clean(c)) }))
                .connect_with(opts)
                .await
                .map_err(db)?;
            Ok(Self { db: Db::Sqlite(pool), writer: Some(writer), write_failed: Default::default() })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Batches of different sizes are different statements: keep more of them prepared
            // than the default 100, but a bounded number (each holds server memory per connection).
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Other(e.to_string()))?
                .statement_cache_capacity(250);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .before_acquire(|c, _| Box::pin(async move { Ok(clean(c)) }))
                .connect_with(opts)
                .await
                .map_err(db)?;
            Ok(Self { db: Db::Postgres(pool), writer: None, write_failed: Default::default() })
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
            let docs: Vec<(Referral, Option<jiff::Timestamp>)> = on_pool!(&self.db, p => {
                let rows = sqlx::query(
                    "SELECT r.doc, r.stage_due_at FROM referrals r
                     WHERE NOT EXISTS (SELECT 1 FROM referral_stats s WHERE s.ordered_at = r.ordered_at AND s.id = r.id)
                     LIMIT 2000",
                )
                .fetch_all(p)
                .await
                .map_err(db)?;
                rows.iter()
                    .map(|r| {
                        let due = row::Get::opt_int(r, "stage_due_at")?.map(row::ts).transpose()?;
                        Ok((row::referral(r)?, due))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?
            });
            if docs.is_empty() {
                return Ok(());
            }
            tracing::info!(referrals = docs.len(), "writing report rows for existing referrals");
            for chunk in docs.chunks(pending::CHUNK_ROWS) {
                on_pool!(&self.db, p => {
                    let mut q = sqlx::QueryBuilder::new("");
                    pending::stats_query!(q, chunk);
                    q.build().execute(p).await.map_err(db)?;
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

/// Creates a new database file readable and writable by its owner only (0600); SQLite gives
/// its WAL and shared-memory files the database file's permissions. An existing file is left
/// as it is; a missing folder or a refused permission is for SQLite's own open to report.
fn create_private(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
}
