//! The report queries: the closure figures grouped in the database from `referral_stats`.

use jiff::Timestamp;
use refloop_app::{Gauges, store::ReportStore};
use refloop_app::{RollupRow, SpanRow, StoreError};
use refloop_domain::cms50::Fact;

use crate::{
    Db, SqlStore, row,
    row::{db, ms, ts},
};

impl SqlStore {
    pub(crate) async fn rollup(
        &self,
        from: Timestamp,
        to: Timestamp,
        key: Option<&'static str>,
        spans_by_key: &[u8],
        sampled: bool,
        (now, mature_before): (Timestamp, Timestamp),
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
        // One grouping number: the row's code (bits 0–11), in progress — open and inside its
        // stage's window at $3 — (bit 12), mature — ordered before $4 — (bit 13), and how long
        // an open one is overdue (bits 14–15: the buckets of `OVERDUE`: due after $5, after $6, or before).
        let code = "code + CASE WHEN stage_due > $3 THEN 4096 ELSE 0 END + CASE WHEN ordered_at < $4 THEN 8192 ELSE 0 END \
             + CASE WHEN stage_due IS NULL OR stage_due > $3 THEN 0 WHEN stage_due > $5 THEN 16384 \
             WHEN stage_due > $6 THEN 32768 ELSE 49152 END";
        let overdue_since =
            |edge: usize| ms(now - jiff::SignedDuration::from_hours(24 * refloop_app::OVERDUE_EDGES_DAYS[edge]));
        let rows_sql = sqlx::AssertSqlSafe(format!(
            "SELECT {k} AS k, CAST({code} AS BIGINT) AS code, leak_reason, CAST(COUNT(*) AS BIGINT) AS n \
             {range} GROUP BY {group}{code}, leak_reason"
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
                let rows = sqlx::query(rows_sql)
                    .bind(a)
                    .bind(b)
                    .bind(ms(now))
                    .bind(ms(mature_before))
                    .bind(overdue_since(0))
                    .bind(overdue_since(1))
                    .fetch_all(p)
                    .await
                    .map_err(db)?;
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

    pub(crate) async fn ordered_range(&self) -> Result<Option<(Timestamp, Timestamp)>, StoreError> {
        // Both ends from the index on (ordered_at, id): no scan. One MIN or MAX per query, as
        // SQLite reads an index end only for a lone MIN or MAX (both in one would scan).
        let row: (Option<i64>, Option<i64>) = on_pool!(&self.db, p => {
            sqlx::query_as(
                "SELECT (SELECT MIN(ordered_at) FROM referral_stats) AS a, (SELECT MAX(ordered_at) FROM referral_stats) AS b",
            )
            .fetch_one(p)
            .await
            .map_err(db)?
        });
        match row {
            (Some(a), Some(b)) => Ok(Some((row::ts(a)?, row::ts(b)?))),
            _ => Ok(None),
        }
    }

    pub(crate) async fn trend(&self, bounds: &[Timestamp]) -> Result<Vec<(u64, u64)>, StoreError> {
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
}

#[async_trait::async_trait]
impl ReportStore for SqlStore {
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
            let inbox_waiting: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM inbox WHERE status IN ('review', 'dead') GROUP BY status ORDER BY status",
            )
            .fetch_all(p)
            .await
            .map_err(db)?;
            let documents_unfiled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE status = 'unfiled'")
                .fetch_one(p)
                .await
                .map_err(db)?;
            let outbox_by_status: Vec<(String, i64)> =
                sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")
                    .fetch_all(p)
                    .await
                    .map_err(db)?;
            let oldest: Option<i64> =
                sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE status IN ('pending', 'sending')")
                    .fetch_one(p)
                    .await
                    .map_err(db)?;
            Ok(Gauges {
                referrals_by_state: by_state,
                overdue_tasks: overdue,
                inbox_waiting,
                documents_unfiled,
                outbox_by_status,
                oldest_unsent: oldest.map(ts).transpose()?,
            })
        })
    }

    async fn closure_rollup(
        &self,
        from: Timestamp,
        to: Timestamp,
        key: Option<&'static str>,
        spans_by_key: &[u8],
        sampled: bool,
        moment: (Timestamp, Timestamp),
    ) -> Result<(Vec<RollupRow>, Vec<SpanRow>), StoreError> {
        self.rollup(from, to, key, spans_by_key, sampled, moment).await
    }

    async fn ordered_range(&self) -> Result<Option<(Timestamp, Timestamp)>, StoreError> {
        SqlStore::ordered_range(self).await
    }

    async fn closure_trend(&self, bounds: &[Timestamp]) -> Result<Vec<(u64, u64)>, StoreError> {
        self.trend(bounds).await
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
}
