//! Documents that came in, as stored: kept and settled inside a transaction, read and listed
//! outside one, their content emptied after retention.

use jiff::Timestamp;
use refloop_app::{
    StoreError,
    documents::{DocumentFilter, DocumentRecord, DocumentRole, DocumentStatus},
    store::DocumentStore,
};
use refloop_domain::ReferralId;

use crate::{
    Db, SqlStore, limit,
    row::{Get, db, ms, ts},
};

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(crate) fn document(row: &dyn Get, with_content: bool) -> Result<DocumentRecord, StoreError> {
    let status = row.text("status")?;
    Ok(DocumentRecord {
        id: row.text("id")?,
        inbox_id: row.opt_text("inbox_id")?,
        source: row.text("source")?,
        name: row.text("name")?,
        media_type: row.text("media_type")?,
        sha256: row.text("sha256")?,
        size: row.int("size")? as u64,
        received_at: ts(row.int("received_at")?)?,
        status: DocumentStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown document status {status}")))?,
        referral_id: row.opt_text("referral_id")?.map(|r| ReferralId::parse(&r)).transpose().map_err(corrupt)?,
        role: match row.opt_text("role")? {
            Some(r) => Some(DocumentRole::parse(&r).ok_or_else(|| corrupt(format!("unknown document role {r}")))?),
            None => None,
        },
        settled_by: row.opt_text("settled_by")?,
        settled_at: row.opt_int("settled_at")?.map(ts).transpose()?,
        reason: row.opt_text("reason")?,
        content: if with_content { row.opt_bytes("content")?.unwrap_or_default() } else { Vec::new() },
    })
}

#[async_trait::async_trait]
impl DocumentStore for SqlStore {
    async fn document(&self, id: &str) -> Result<Option<DocumentRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM documents WHERE id = $1").bind(id).fetch_optional(p).await.map_err(db)?;
            row.map(|r| document(&r, true)).transpose()
        })
    }

    async fn documents(&self, f: &DocumentFilter) -> Result<Vec<DocumentRecord>, StoreError> {
        // Every column but the content.
        let sql = "SELECT id, inbox_id, source, name, media_type, sha256, size, received_at, status, referral_id,
                          role, settled_by, settled_at, reason
                   FROM documents WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR referral_id = $2)
                   ORDER BY received_at DESC, id DESC LIMIT $3";
        on_pool!(&self.db, p => {
            let rows = sqlx::query(sql)
                .bind(f.status.map(DocumentStatus::as_str))
                .bind(f.referral.as_ref().map(ReferralId::as_str))
                .bind(limit(f.limit))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| document(r, false)).collect()
        })
    }

    async fn count_documents(&self, status: DocumentStatus) -> Result<u64, StoreError> {
        on_pool!(&self.db, p => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE status = $1")
                .bind(status.as_str())
                .fetch_one(p)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
    }

    async fn purge_documents(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = on_writer!(self, p => {
            sqlx::query(
                "UPDATE documents SET content = $2 WHERE received_at < $1 AND status IN ('filed', 'dismissed')
                   AND length(content) > 0",
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
}
