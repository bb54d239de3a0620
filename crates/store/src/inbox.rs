//! The inbound log as stored: listing and reading messages, the pollers' cursors, and the
//! retention purge of raw bodies. The `Store` methods of the same names call these.

use jiff::Timestamp;
use refloop_app::store::InboxStore;
use refloop_app::{InboxFilter, InboxItem, StoreError};
use refloop_domain::ReferralId;

use crate::{
    Db, SqlStore, limit, row,
    row::{db, ms},
};

impl SqlStore {
    pub(crate) async fn purge_raw(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = on_writer!(self, p => {
            sqlx::query(
                "UPDATE inbox SET raw = $2 WHERE received_at < $1 AND status IN ('applied', 'ignored', 'rejected')
                   AND length(raw) > 0",
            )
            .bind(ms(before))
            .bind(Vec::<u8>::new())
            .execute(p)
            .await
            .map_err(db)?
            .rows_affected()
        });
        Ok(done)
    }

    pub(crate) async fn inbox(&self, f: &InboxFilter) -> Result<Vec<InboxItem>, StoreError> {
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

    pub(crate) async fn inbox_of_referral(
        &self,
        referral: &ReferralId,
        protocol: &str,
    ) -> Result<Vec<InboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query(
                "SELECT * FROM inbox WHERE referral_id = $1 AND protocol = $2 ORDER BY received_at, id LIMIT 500",
            )
            .bind(referral.as_str())
            .bind(protocol)
            .fetch_all(p)
            .await
            .map_err(db)?;
            rows.iter().map(|r| row::inbox(r)).collect()
        })
    }

    pub(crate) async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        on_pool!(&self.db, p => {
            sqlx::query_scalar("SELECT value FROM cursors WHERE name = $1").bind(name).fetch_optional(p).await.map_err(db)
        })
    }

    pub(crate) async fn set_cursor(&self, name: &str, value: &str, at: Timestamp) -> Result<(), StoreError> {
        on_writer!(self, p => {
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

    pub(crate) async fn inbox_by_key(
        &self,
        protocol: &str,
        source: &str,
        control_id: &str,
    ) -> Result<Option<InboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM inbox WHERE protocol = $1 AND source = $2 AND control_id = $3")
                .bind(protocol)
                .bind(source)
                .bind(control_id)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::inbox(&r)).transpose()
        })
    }

    pub(crate) async fn inbox_item(&self, id: &str) -> Result<Option<InboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM inbox WHERE id = $1").bind(id).fetch_optional(p).await.map_err(db)?;
            row.map(|r| row::inbox(&r)).transpose()
        })
    }
}

#[async_trait::async_trait]
impl InboxStore for SqlStore {
    async fn purge_raw(&self, before: Timestamp) -> Result<u64, StoreError> {
        SqlStore::purge_raw(self, before).await
    }

    async fn count_inbox(&self, status: refloop_app::InboxStatus) -> Result<u64, StoreError> {
        on_pool!(&self.db, p => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE status = $1")
                .bind(status.as_str())
                .fetch_one(p)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
    }

    async fn inbox(&self, f: &InboxFilter) -> Result<Vec<InboxItem>, StoreError> {
        SqlStore::inbox(self, f).await
    }

    async fn inbox_of_referral(&self, referral: &ReferralId, protocol: &str) -> Result<Vec<InboxItem>, StoreError> {
        SqlStore::inbox_of_referral(self, referral, protocol).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        SqlStore::cursor(self, name).await
    }

    async fn set_cursor(&self, name: &str, value: &str, at: Timestamp) -> Result<(), StoreError> {
        SqlStore::set_cursor(self, name, value, at).await
    }

    async fn inbox_by_key(
        &self,
        protocol: &str,
        source: &str,
        control_id: &str,
    ) -> Result<Option<InboxItem>, StoreError> {
        SqlStore::inbox_by_key(self, protocol, source, control_id).await
    }

    async fn inbox_item(&self, id: &str) -> Result<Option<InboxItem>, StoreError> {
        SqlStore::inbox_item(self, id).await
    }
}
