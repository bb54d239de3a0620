//! The audit log as stored: inserting is in `tx.rs`/`pending.rs`; here the sealer that links
//! new rows into the hash chain, the chain and search reads, and the retention purge. The
//! `Store` methods of the same names call these.

use jiff::Timestamp;
use refloop_app::store::AuditStore;
use refloop_app::{AUDIT_GENESIS, AuditAnchor, AuditEntry, AuditQuery, AuditRecord, AuditSeal, StoreError};

use crate::{
    Db, SqlStore, limit, row,
    row::{db, ms},
};

/// PostgreSQL advisory lock key the sealer and the purge hold ("rfl-audt").
const SEAL_LOCK: i64 = 0x7266_6c2d_6175_6474;

const DROP_DELETE_GUARD: &str = "DROP TRIGGER audit_no_delete ON audit_log";
const SQLITE_DROP_DELETE_GUARD: &str = "DROP TRIGGER audit_no_delete";
const SQLITE_DELETE_GUARD: &str = "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END";
const PG_DELETE_GUARD: &str = "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refloop_audit_append_only()";

fn record(r: &dyn row::Get) -> Result<AuditRecord, StoreError> {
    let seal = match (r.opt_int("chain_pos")?, r.opt_text("prev_hash")?, r.opt_text("hash")?) {
        (Some(pos), Some(prev_hash), Some(hash)) => Some(AuditSeal { pos, prev_hash, hash }),
        _ => None,
    };
    Ok(AuditRecord { seq: r.int("seq")?, entry: row::audit(r)?, seal })
}

impl SqlStore {
    pub(crate) async fn seal_audit(&self, batch: u32) -> Result<u64, StoreError> {
        // Every worker pass asks: when nothing waits (the partial index says so at once), no
        // write transaction and no lock.
        if !self.any_unsealed().await? {
            return Ok(0);
        }
        on_writer!(self, p => {
            let mut tx = p.begin().await.map_err(db)?;
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SEAL_LOCK).execute(&mut *tx).await.map_err(db)?;
            }
            let head: Option<(i64, String)> = sqlx::query_as(
                "SELECT chain_pos, hash FROM audit_log WHERE chain_pos IS NOT NULL ORDER BY chain_pos DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let head = match head {
                Some(h) => Some(h),
                None => sqlx::query_as("SELECT chain_pos, hash FROM audit_anchor WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?,
            };
            let (mut pos, mut prev) = head.unwrap_or((0, AUDIT_GENESIS.to_owned()));
            let rows = sqlx::query("SELECT * FROM audit_log WHERE hash IS NULL ORDER BY seq LIMIT $1")
                .bind(i64::from(batch))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            let mut sealed = 0;
            for r in &rows {
                let rec = record(r)?;
                pos += 1;
                let hash = rec.entry.chain_hash(rec.seq, pos, &prev);
                sqlx::query("UPDATE audit_log SET chain_pos = $2, prev_hash = $3, hash = $4 WHERE seq = $1 AND hash IS NULL")
                    .bind(rec.seq)
                    .bind(pos)
                    .bind(&prev)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                prev = hash;
                sealed += 1;
            }
            tx.commit().await.map_err(db)?;
            Ok(sealed)
        })
    }

    pub(crate) async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM audit_log WHERE chain_pos > $1 ORDER BY chain_pos LIMIT $2")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| record(r)).collect()
        })
    }

    async fn any_unsealed(&self) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(&self.db, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM audit_log WHERE hash IS NULL LIMIT 1) AS waiting")
                .fetch_one(p)
                .await
                .map_err(db)?
        });
        Ok(n > 0)
    }

    pub(crate) async fn unsealed_audit(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(&self.db, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE hash IS NULL").fetch_one(p).await.map_err(db)?
        });
        Ok(n.max(0) as u64)
    }

    pub(crate) async fn audit_anchor(&self) -> Result<Option<AuditAnchor>, StoreError> {
        let row: Option<(i64, String)> = on_pool!(&self.db, p => {
            sqlx::query_as("SELECT chain_pos, hash FROM audit_anchor WHERE id = 1")
                .fetch_optional(p)
                .await
                .map_err(db)?
        });
        Ok(row.map(|(pos, hash)| AuditAnchor { pos, hash }))
    }

    pub(crate) async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let mut b = sqlx::QueryBuilder::new("SELECT * FROM audit_log WHERE 1 = 1");
            if let Some(actor) = &q.actor {
                // `role:name` as recorded, or a bare name in any role.
                b.push(" AND (actor = ").push_bind(actor.clone());
                b.push(" OR actor LIKE ").push_bind(format!("%:{actor}")).push(")");
            }
            if let Some(action) = &q.action {
                b.push(" AND action = ").push_bind(action.clone());
            }
            if let Some(from) = q.from {
                b.push(" AND at >= ").push_bind(ms(from));
            }
            if let Some(to) = q.to {
                b.push(" AND at < ").push_bind(ms(to));
            }
            if let Some(seq) = q.before_seq {
                b.push(" AND seq < ").push_bind(seq);
            }
            if !q.ids.is_empty() {
                // A list read names its ids joined by commas; ids never hold a comma.
                b.push(" AND (");
                for (i, id) in q.ids.iter().enumerate() {
                    if i > 0 {
                        b.push(" OR ");
                    }
                    b.push("resource_id = ").push_bind(id.clone());
                    b.push(" OR (',' || resource_id || ',') LIKE ").push_bind(format!("%,{id},%"));
                }
                b.push(")");
            }
            if let Some(seq) = q.oldest_after {
                b.push(" AND seq > ").push_bind(seq);
            }
            b.push(if q.oldest_after.is_some() { " ORDER BY seq LIMIT " } else { " ORDER BY seq DESC LIMIT " });
            b.push_bind(i64::from(q.limit.clamp(1, 1000)));
            let rows = b.build().fetch_all(p).await.map_err(db)?;
            rows.iter().map(|r| record(r)).collect()
        })
    }

    pub(crate) async fn purge_audit(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        on_writer!(self, p => {
            let mut tx = p.begin().await.map_err(db)?;
            let postgres = matches!(self.db, Db::Postgres(_));
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SEAL_LOCK).execute(&mut *tx).await.map_err(db)?;
            }
            // The chain's head is cut only up to its first row that must stay.
            let last: Option<(i64, String)> = sqlx::query_as(
                "SELECT chain_pos, hash FROM audit_log WHERE chain_pos IS NOT NULL AND chain_pos <
                   COALESCE((SELECT MIN(chain_pos) FROM audit_log WHERE at >= $1 AND chain_pos IS NOT NULL), 9223372036854775807)
                 ORDER BY chain_pos DESC LIMIT 1",
            )
            .bind(ms(before))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let Some((pos, hash)) = last else { return Ok(0) };
            let (drop, create) = if postgres {
                (DROP_DELETE_GUARD, PG_DELETE_GUARD)
            } else {
                (SQLITE_DROP_DELETE_GUARD, SQLITE_DELETE_GUARD)
            };
            sqlx::query(drop).execute(&mut *tx).await.map_err(db)?;
            let gone = sqlx::query("DELETE FROM audit_log WHERE chain_pos <= $1")
                .bind(pos)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            sqlx::query(create).execute(&mut *tx).await.map_err(db)?;
            sqlx::query(
                "INSERT INTO audit_anchor (id, chain_pos, hash, purged_at) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET chain_pos = excluded.chain_pos, hash = excluded.hash,
                   purged_at = excluded.purged_at",
            )
            .bind(pos)
            .bind(&hash)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(gone)
        })
    }

    pub(crate) async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        on_writer!(self, p => insert_audit!(p, e))
    }

    pub(crate) async fn audit_log(&self, n: u32) -> Result<Vec<AuditEntry>, StoreError> {
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

#[async_trait::async_trait]
impl AuditStore for SqlStore {
    async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        SqlStore::audit(self, e).await
    }

    async fn seal_audit(&self, batch: u32) -> Result<u64, StoreError> {
        SqlStore::seal_audit(self, batch).await
    }

    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        SqlStore::audit_chain(self, after, limit).await
    }

    async fn unsealed_audit(&self) -> Result<u64, StoreError> {
        SqlStore::unsealed_audit(self).await
    }

    async fn audit_anchor(&self) -> Result<Option<AuditAnchor>, StoreError> {
        SqlStore::audit_anchor(self).await
    }

    async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        SqlStore::audit_search(self, q).await
    }

    async fn purge_audit(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        SqlStore::purge_audit(self, before, now).await
    }

    async fn audit_log(&self, n: u32) -> Result<Vec<AuditEntry>, StoreError> {
        SqlStore::audit_log(self, n).await
    }
}
