//! A transaction's documents: keeping one, locking it to settle it, settling a message's.

use refloop_app::documents::{DocumentRecord, DocumentRole, DocumentSettlement};

use sqlx::Row;

use super::*;
use crate::documents::document;

#[async_trait::async_trait]
impl DocumentTx for SqlTx {
    async fn put_document(&mut self, d: &DocumentRecord) -> Result<(), StoreError> {
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO documents (id, inbox_id, source, name, media_type, sha256, size, received_at, status,
                                        referral_id, role, settled_by, settled_at, reason, content)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&d.id)
            .bind(&d.inbox_id)
            .bind(&d.source)
            .bind(&d.name)
            .bind(&d.media_type)
            .bind(&d.sha256)
            .bind(d.size as i64)
            .bind(ms(d.received_at))
            .bind(d.status.as_str())
            .bind(d.referral_id.as_ref().map(ReferralId::as_str))
            .bind(d.role.map(DocumentRole::as_str))
            .bind(&d.settled_by)
            .bind(d.settled_at.map(ms))
            .bind(&d.reason)
            .bind(&d.content)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    async fn lock_document(&mut self, id: &str) -> Result<Option<DocumentRecord>, StoreError> {
        let postgres = self.is_postgres();
        let sql = if postgres {
            "SELECT * FROM documents WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT * FROM documents WHERE id = $1"
        };
        on_tx!(self, c => {
            let row = sqlx::query(sql).bind(id).fetch_optional(c).await.map_err(db)?;
            row.map(|r| document(&r, true)).transpose()
        })
    }

    async fn settle_document(&mut self, id: &str, s: &DocumentSettlement) -> Result<(), StoreError> {
        on_tx!(self, c => {
            sqlx::query(
                "UPDATE documents SET status = $2, referral_id = COALESCE($3, referral_id), role = COALESCE($4, role),
                        settled_by = $5, settled_at = $6, reason = $7
                 WHERE id = $1",
            )
            .bind(id)
            .bind(s.status.as_str())
            .bind(s.referral.as_ref().map(ReferralId::as_str))
            .bind(s.role.map(DocumentRole::as_str))
            .bind(&s.by)
            .bind(ms(s.at))
            .bind(&s.reason)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    async fn settle_inbox_documents(
        &mut self,
        inbox_id: &str,
        s: &DocumentSettlement,
    ) -> Result<Vec<String>, StoreError> {
        // Unset, a filed document's role is as the protocol read it (an unfiled one keeps that
        // reading as its role): a note as the consult note.
        let role = s.role.map(DocumentRole::as_str);
        let notes = on_tx!(self, c => {
            sqlx::query(
                "UPDATE documents SET status = $2, referral_id = $3,
                        role = CASE WHEN $2 <> 'filed' THEN NULL
                                    WHEN $4 IS NOT NULL THEN $4
                                    WHEN role = 'consult-note' THEN 'consult-note'
                                    ELSE 'other' END,
                        settled_by = $5, settled_at = $6, reason = $7
                 WHERE inbox_id = $1 AND status = 'unfiled'
                 RETURNING id, role",
            )
            .bind(inbox_id)
            .bind(s.status.as_str())
            .bind(s.referral.as_ref().map(ReferralId::as_str))
            .bind(role)
            .bind(&s.by)
            .bind(ms(s.at))
            .bind(&s.reason)
            .fetch_all(c)
            .await
            .map_err(db)?
            .iter()
            .filter(|r| r.get::<Option<String>, _>("role").as_deref() == Some("consult-note"))
            .map(|r| r.get::<String, _>("id"))
            .collect::<Vec<_>>()
        });
        Ok(notes)
    }
}
