//! The problems table: each operational problem opened and cleared once, whichever process
//! sees it first (a conditional write that only one of them gets to make).

use jiff::Timestamp;
use refloop_app::{StoreError, store::ProblemStore};

use crate::{Db, SqlStore, row::db};

#[async_trait::async_trait]
impl ProblemStore for SqlStore {
    async fn open_problem(&self, name: &str, detail: &str, now: Timestamp) -> Result<bool, StoreError> {
        let at = now.as_millisecond();
        let n = on_writer!(self, p => sqlx::query(
            "INSERT INTO problems (name, detail, opened_at, cleared_at) VALUES ($1, $2, $3, NULL)
             ON CONFLICT (name) DO UPDATE SET detail = excluded.detail, opened_at = excluded.opened_at, cleared_at = NULL
             WHERE problems.cleared_at IS NOT NULL",
        )
        .bind(name)
        .bind(detail)
        .bind(at)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        .map_err(db)?);
        Ok(n == 1)
    }

    async fn clear_problem(&self, name: &str, now: Timestamp) -> Result<bool, StoreError> {
        let n = on_writer!(self, p => sqlx::query("UPDATE problems SET cleared_at = $2 WHERE name = $1 AND cleared_at IS NULL")
            .bind(name)
            .bind(now.as_millisecond())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
            .map_err(db)?);
        Ok(n == 1)
    }

    async fn open_problems(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(&self.db, p => sqlx::query_as("SELECT name, detail FROM problems WHERE cleared_at IS NULL ORDER BY name")
            .fetch_all(p)
            .await
            .map_err(db))
    }
}
