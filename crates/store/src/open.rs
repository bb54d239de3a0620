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

// `SQLITE` and `POSTGRES`: `(version, description, SQL)` of every file in the dialect's
// migrations folder, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The migrations of one dialect, embedded in the binary (add a file to both folders).
pub(crate) fn migrator(dialect: &str) -> Migrator {
    let files = if dialect == "sqlite" { SQLITE } else { POSTGRES };
    Migrator::with_migrations(
        files
            .iter()
            .map(|(v, name, sql)| Migration::new(*v, (*name).into(), MigrationType::Simple, sql.into_sql_str(), false))
            .collect(),
    )
}

/// The file of a `sqlite://PATH` URL (`None` for PostgreSQL).
pub fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))
}

/// The schema version this binary migrates to: its newest migration.
pub fn schema_version() -> i64 {
    SQLITE.last().map(|m| m.0).unwrap_or(0)
}

/// The report rows of referrals entered before `referral_stats` existed.
const REPORT_ROWS: &str = "report rows";
/// Data migrations, in the order they run, each once per database.
const DATA_MIGRATIONS: &[&str] = &[REPORT_ROWS];
/// The schema version that made `data_migrations`.
const DATA_MIGRATIONS_SINCE: i64 = 26;

/// What [`SqlStore::migration_status`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The newest schema version applied, if any.
    pub applied: Option<i64>,
    /// Schema migrations not applied yet, as `NNNN description`.
    pub pending: Vec<String>,
    /// Data migrations not run yet.
    pub data_pending: Vec<String>,
    /// Versions applied by a newer release that this binary does not know.
    pub unknown: Vec<i64>,
}

impl MigrationStatus {
    /// Whether `migrate` has nothing left to do.
    pub fn up_to_date(&self) -> bool {
        self.pending.is_empty() && self.data_pending.is_empty()
    }
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
        if let Some(path) = sqlite_path(url) {
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
            Ok(Self {
                db: Db::Sqlite(pool),
                writer: Some(writer),
                write_failed: Default::default(),
                path: Some(path.into()),
            })
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
            Ok(Self { db: Db::Postgres(pool), writer: None, write_failed: Default::default(), path: None })
        } else {
            Err(StoreError::Other("unsupported database URL: use sqlite://PATH or postgres://…".into()))
        }
    }

    /// Applies the pending migrations of this backend's dialect, then the data migrations not
    /// yet recorded. Two processes starting at once on PostgreSQL take turns (sqlx holds an
    /// advisory lock while it migrates). A database that an even newer release migrated is
    /// accepted: its extra migrations only added (see docs/MIGRATIONS.md).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.db {
            Db::Sqlite(p) => migrator("sqlite").set_ignore_missing(true).run(p).await,
            Db::Postgres(p) => migrator("postgres").set_ignore_missing(true).run(p).await,
        };
        result.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        for name in DATA_MIGRATIONS {
            if self.data_migration_applied(name).await? {
                continue;
            }
            tracing::info!(data_migration = name, "running a data migration once");
            match *name {
                REPORT_ROWS => self.backfill_stats().await?,
                other => unreachable!("data migration {other} has no code"),
            }
            // Bookkeeping only: the database's own clock says when.
            let sql = match &self.db {
                Db::Sqlite(_) => {
                    "INSERT INTO data_migrations (name, applied_at) VALUES ($1, CAST(strftime('%s', 'now') AS INTEGER) * 1000) \
                     ON CONFLICT (name) DO NOTHING"
                }
                Db::Postgres(_) => {
                    "INSERT INTO data_migrations (name, applied_at) VALUES ($1, (extract(epoch FROM now()) * 1000)::bigint) \
                     ON CONFLICT (name) DO NOTHING"
                }
            };
            on_writer!(self, p => sqlx::query(sql).bind(*name).execute(p).await.map(|_| ()).map_err(db)?);
        }
        Ok(())
    }

    /// What [`SqlStore::migrate`] would do: the schema and data migrations not applied yet,
    /// and the schema versions applied that this binary does not know (a newer release's).
    /// Changes nothing.
    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let (dialect, exists_sql) = match &self.db {
            Db::Sqlite(_) => {
                ("sqlite", "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            }
            Db::Postgres(_) => (
                "postgres",
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'",
            ),
        };
        let exists: i64 = on_pool!(&self.db, p => sqlx::query_scalar(exists_sql).fetch_one(p).await.map_err(db)?);
        let applied: Vec<i64> = if exists > 0 {
            on_pool!(&self.db, p => sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(p).await.map_err(db)?)
        } else {
            Vec::new()
        };
        let known = migrator(dialect);
        let pending = known
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect();
        let unknown = applied.iter().copied().filter(|v| !known.version_exists(*v)).collect();
        let mut data_pending = Vec::new();
        for name in DATA_MIGRATIONS {
            if !applied.contains(&DATA_MIGRATIONS_SINCE) || !self.data_migration_applied(name).await? {
                data_pending.push((*name).to_owned());
            }
        }
        Ok(MigrationStatus { applied: applied.last().copied(), pending, data_pending, unknown })
    }

    /// The database server's clock (SQLite: this machine's), to the millisecond.
    pub async fn database_time(&self) -> Result<jiff::Timestamp, StoreError> {
        let sql = match &self.db {
            Db::Sqlite(_) => "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Db::Postgres(_) => "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        };
        let ms: i64 = on_pool!(&self.db, p => sqlx::query_scalar(sql).fetch_one(p).await.map_err(db)?);
        row::ts(ms)
    }

    async fn data_migration_applied(&self, name: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(&self.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM data_migrations WHERE name = $1")
            .bind(name)
            .fetch_one(p)
            .await
            .map_err(db)?);
        Ok(n > 0)
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
