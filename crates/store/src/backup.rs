//! SQLite backups: a consistent copy made while `serve` keeps writing (`VACUUM INTO` reads
//! one snapshot), checked, and restored only over a database no process has open.

use std::path::{Path, PathBuf};

use sqlx::{
    Connection, SqliteConnection,
    sqlite::{SqliteConnectOptions, SqliteLockingMode},
};

use crate::{Db, SqlStore, StoreError, row::db};

/// The tables whose row counts a backup reports.
const COUNTED: &[&str] = &["referrals", "events", "inbox", "outbox", "tasks", "documents", "patients", "audit_log"];

/// What a SQLite file holds: its size, SQLite's own check, and row counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    pub bytes: u64,
    /// `PRAGMA integrity_check`: "ok" when sound.
    pub integrity: String,
    pub counts: Vec<(&'static str, i64)>,
}

impl SqlStore {
    /// Copies this SQLite database into `dest` (which must not exist) as one consistent
    /// snapshot, while other connections and processes go on writing; the copy is readable by
    /// its owner only. PostgreSQL: refused (pg_dump does this).
    pub async fn backup_into(&self, dest: &Path) -> Result<(), StoreError> {
        let Db::Sqlite(pool) = &self.db else {
            return Err(StoreError::Other("a PostgreSQL database is backed up with pg_dump".into()));
        };
        if dest.exists() {
            return Err(StoreError::Other(format!("{} exists: back up into a new file", dest.display())));
        }
        // VACUUM INTO takes an empty file: made first, so that it is private (0600).
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(|e| StoreError::Other(format!("creating {}: {e}", dest.display())))?;
        }
        let target = dest.to_str().ok_or_else(|| StoreError::Other("the backup path is not UTF-8".into()))?;
        let result = sqlx::query("VACUUM INTO $1").bind(target).execute(pool).await.map_err(db);
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result.map(|_| ())
    }
}

/// Opens a SQLite file read-only and reports on it (no WAL, nothing written).
pub async fn inspect_sqlite_file(path: &Path) -> Result<FileReport, StoreError> {
    let bytes = std::fs::metadata(path).map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?.len();
    let options = SqliteConnectOptions::new().filename(path).read_only(true).immutable(true);
    let mut conn = SqliteConnection::connect_with(&options).await.map_err(db)?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.map_err(db)?;
    let mut counts = Vec::new();
    for table in COUNTED {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.map_err(db)?;
        counts.push((*table, n));
    }
    let _ = conn.close().await;
    Ok(FileReport { bytes, integrity: rows.join("; "), counts })
}

/// Puts the SQLite backup `from` in place of the database at `to`, after checking it. Refused
/// while any process has `to` open (a running `serve`): SQLite's exclusive lock is the test.
/// The database replaced is kept beside it as `….before-restore`; returns that path.
pub async fn restore_sqlite_file(from: &Path, to: &Path) -> Result<Option<PathBuf>, StoreError> {
    let report = inspect_sqlite_file(from).await?;
    if report.integrity != "ok" {
        return Err(StoreError::Other(format!("{} fails its integrity check: {}", from.display(), report.integrity)));
    }
    let kept = if to.exists() {
        let options = SqliteConnectOptions::new()
            .filename(to)
            .locking_mode(SqliteLockingMode::Exclusive)
            .busy_timeout(std::time::Duration::ZERO);
        let in_use = || StoreError::Other(format!("{} is in use: stop refloop before restoring over it", to.display()));
        let mut conn = SqliteConnection::connect_with(&options).await.map_err(|_| in_use())?;
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await.map_err(|_| in_use())?;
        sqlx::query("COMMIT").execute(&mut conn).await.map_err(db)?;
        // Folds any WAL into the file, so the copy kept aside is whole.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.map_err(db)?;
        conn.close().await.map_err(db)?;
        let aside = PathBuf::from(format!("{}.before-restore", to.display()));
        std::fs::rename(to, &aside).map_err(|e| StoreError::Other(format!("moving {} aside: {e}", to.display())))?;
        Some(aside)
    } else {
        None
    };
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
    }
    let partial = PathBuf::from(format!("{}.restoring", to.display()));
    let copy = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut src = std::fs::File::open(from)?;
        let mut dst = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
        std::io::copy(&mut src, &mut dst)?;
        dst.sync_all()?;
        std::fs::rename(&partial, to)
    };
    copy().map_err(|e| StoreError::Other(format!("copying {} to {}: {e}", from.display(), to.display())))?;
    Ok(kept)
}
