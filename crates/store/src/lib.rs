//! The [`Store`] port on SQLite (the embedded default) and PostgreSQL (scale-out).
//!
//! One implementation serves both: each query is written once with `$n` placeholders and
//! run against whichever pool the URL chose. Where the dialects differ — row locks with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite — the code says so
//! in place. Each dialect has its own migrations folder.

mod pending;
mod row;
mod search;
#[macro_use]
mod tx;

use jiff::Timestamp;
use refloop_app::{
    OutboxFilter, OutboxItem, Patient, People, ReferralFilter, ReferralPage, ReferralSort, Specialist, StoreError,
    StoredEvent, Task, TaskFilter, Tx, store::*,
};
use refloop_domain::{PatientId, ProviderId, Referral, ReferralId};
use sqlx::{PgPool, SqlitePool};

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

/// Runs a write that is not part of a transaction: on SQLite on the one writer connection,
/// so it queues behind write transactions instead of polling for the database lock.
macro_rules! on_writer {
    ($store:expr, $p:ident => $body:expr) => {
        match (&$store.db, &$store.writer) {
            (Db::Postgres($p), _) => $body,
            (Db::Sqlite(_), Some($p)) => $body,
            (Db::Sqlite($p), None) => $body,
        }
    };
}

mod accounts;
mod audit;
mod backup;
mod documents;
mod inbox;
mod open;
mod problems;

pub use backup::{FileReport, inspect_sqlite_file, restore_sqlite_file};
pub use open::{MigrationStatus, schema_version, sqlite_path};
mod reports;

/// A SQL-backed store.
pub struct SqlStore {
    db: Db,
    /// SQLite only: the one connection write transactions use. SQLite has one writer at a
    /// time anyway, and a connection that made the last change keeps its page cache (another
    /// connection's write would make it start cold).
    writer: Option<SqlitePool>,
    /// Set when a write failed for a storage fault, cleared by the next commit that works:
    /// `ready` then proves with a write that the database takes writes again.
    write_failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// SQLite only: the database file.
    path: Option<std::path::PathBuf>,
}

const TASKS: &str = "SELECT * FROM tasks
    WHERE ($1 IS NULL OR status = $1)
      AND ($2 IS NULL OR assignee = $2)
      AND ($3 IS NULL OR referral_id = $3)
      AND ($5 IS NULL OR completed_at >= $5)
      AND ($6 IS NULL OR inbox_id = $6)
    ORDER BY due_at, id
    LIMIT $4";

const OUTBOX: &str = "SELECT * FROM outbox
    WHERE ($1 IS NULL OR status = $1)
      AND ($2 IS NULL OR referral_id = $2)
    ORDER BY created_at DESC, id
    LIMIT $3";

/// Items whose lease ran out: one never attempted goes back to `pending`; one whose attempt
/// had started becomes `unconfirmed` (the provider is asked before a resend). `{skip}` is
/// `FOR UPDATE SKIP LOCKED` on PostgreSQL: a row another process holds is being settled by
/// a live sender, and taking it would lock rows in no order against that sender (a deadlock).
const REAP_OUTBOX: &str = "UPDATE outbox
    SET status = CASE WHEN attempt_started_at IS NULL THEN 'pending' ELSE 'unconfirmed' END,
        next_attempt_at = CASE WHEN attempt_started_at IS NULL THEN next_attempt_at ELSE $1 END,
        lease_token = NULL, lease_until = NULL
    WHERE id IN (SELECT id FROM outbox WHERE status = 'sending' AND lease_until < $1 {skip})
    RETURNING status";

/// Claims due items under a lease token; an `unconfirmed` one is checked with the provider first.
const CLAIM_OUTBOX: &str = "UPDATE outbox
    SET check_first = (status = 'unconfirmed'), status = 'sending', lease_until = $3, lease_token = $4,
        attempt_started_at = NULL
    WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'unconfirmed') AND next_attempt_at <= $1
                 ORDER BY next_attempt_at LIMIT $2 {skip})
    RETURNING *";

fn skip_locked(sql: &str, db: &Db) -> String {
    sql.replace("{skip}", if matches!(db, Db::Postgres(_)) { "FOR UPDATE SKIP LOCKED" } else { "" })
}

fn limit(n: u32) -> i64 {
    i64::from(n.clamp(1, 1000))
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn disk_space(&self) -> Option<refloop_app::DiskSpace> {
        let path = self.path.as_ref()?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let s = rustix::fs::statvfs(dir).ok()?;
        Some(refloop_app::DiskSpace { free: s.f_bavail * s.f_frsize, total: s.f_blocks * s.f_frsize })
    }

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
        tx::SqlTx::begin(&self.db, self.writer.as_ref(), &self.write_failed).await
    }

    async fn ready(&self, now: Timestamp) -> Result<(), StoreError> {
        if !self.write_failed.load(std::sync::atomic::Ordering::Acquire) {
            return self.ping().await;
        }
        // A write failed lately: ready again only once a write commits.
        let mut tx = self.begin().await?;
        tx.probe_write(now).await?;
        tx.commit().await
    }
}

#[async_trait::async_trait]
impl ReferralStore for SqlStore {
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
        let by_cursor = f.sort == ReferralSort::Ordered;
        let (rows, total) = on_pool!(&self.db, p => {
            let mut q = sqlx::QueryBuilder::new("SELECT r.doc FROM referrals r");
            if f.sort == ReferralSort::Patient {
                q.push(" LEFT JOIN patients p ON p.id = r.patient_id");
            }
            search::push_where(&mut q, f, by_cursor);
            q.push(search::order_by(f.sort));
            q.push(" LIMIT ").push_bind(n + 1);
            if !by_cursor {
                q.push(" OFFSET ").push_bind(i64::from(f.offset));
            }
            let rows = q.build().fetch_all(p).await.map_err(db)?;
            let items = rows.iter().map(|r| row::referral(r)).collect::<Result<Vec<_>, _>>()?;
            let mut count = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM referrals r");
            search::push_where(&mut count, f, false);
            let total: i64 = count.build_query_scalar().fetch_one(p).await.map_err(db)?;
            (items, total)
        });
        let mut items = rows;
        let more = items.len() as i64 > n;
        items.truncate(n as usize);
        let next = (more && by_cursor).then(|| items.last().map(|r| (r.ordered_at, r.id.clone()))).flatten();
        let next_offset = (more && !by_cursor).then(|| f.offset + n as u32);
        Ok(ReferralPage { items, next, next_offset, total: total.max(0) as u64, people: People::default() })
    }

    async fn referrals_by_id(&self, ids: &[ReferralId]) -> Result<Vec<Referral>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        on_pool!(&self.db, p => {
            for chunk in ids.chunks(search::IN_LIST) {
                let mut q = search::id_in("SELECT doc FROM referrals", chunk.iter().map(ReferralId::as_str));
                for r in q.build().fetch_all(p).await.map_err(db)? {
                    out.push(row::referral(&r)?);
                }
            }
        });
        Ok(out)
    }

    async fn people(&self, patients: &[PatientId], providers: &[ProviderId]) -> Result<People, StoreError> {
        let mut people = People::default();
        on_pool!(&self.db, p => {
            for chunk in patients.chunks(search::IN_LIST) {
                let mut q = search::id_in("SELECT * FROM patients", chunk.iter().map(PatientId::as_str));
                for r in q.build().fetch_all(p).await.map_err(db)? {
                    let patient = row::patient(&r)?;
                    people.patients.insert(patient.id.clone(), patient);
                }
            }
            for chunk in providers.chunks(search::IN_LIST) {
                let mut q = search::id_in("SELECT id, name FROM providers", chunk.iter().map(ProviderId::as_str));
                let rows: Vec<(String, String)> = q.build_query_as().fetch_all(p).await.map_err(db)?;
                for (id, name) in rows {
                    people.providers.insert(ProviderId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?, name);
                }
            }
        });
        Ok(people)
    }

    async fn referral_facets(&self) -> Result<(Vec<String>, Vec<(ProviderId, Option<String>)>), StoreError> {
        on_pool!(&self.db, p => {
            let specialties: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT specialty FROM referrals WHERE specialty IS NOT NULL ORDER BY specialty",
            )
            .fetch_all(p)
            .await
            .map_err(db)?;
            let providers: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT r.referring_provider, MAX(v.name) FROM referrals r \
                 LEFT JOIN providers v ON v.id = r.referring_provider \
                 GROUP BY r.referring_provider ORDER BY r.referring_provider",
            )
            .fetch_all(p)
            .await
            .map_err(db)?;
            let providers = providers
                .into_iter()
                .map(|(id, name)| Ok((ProviderId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?, name)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((specialties, providers))
        })
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

    async fn referral_named_by(&self, key: &str) -> Result<Option<ReferralId>, StoreError> {
        let found: Option<String> = on_pool!(&self.db, p => {
            sqlx::query_scalar("SELECT referral_id FROM referral_keys WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await
                .map_err(db)?
        });
        found.map(|id| ReferralId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
    }
}

#[async_trait::async_trait]
impl TaskStore for SqlStore {
    async fn tasks(&self, f: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query(TASKS)
                .bind(f.status.map(|s| s.as_str()))
                .bind(f.assignee.clone())
                .bind(f.referral_id.as_ref().map(|r| r.as_str().to_owned()))
                .bind(limit(f.limit))
                .bind(f.completed_after.map(ms))
                .bind(f.inbox_id.clone())
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::task(r)).collect()
        })
    }

    async fn task_log(&self, referral: &ReferralId) -> Result<Vec<refloop_app::TaskLogEntry>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM task_log WHERE referral_id = $1 ORDER BY seq")
                .bind(referral.as_str())
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::task_log(r)).collect()
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
}

#[async_trait::async_trait]
impl OutboxStore for SqlStore {
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

    async fn channel_activity(&self) -> Result<Vec<refloop_app::ChannelActivity>, StoreError> {
        const SQL: &str = "SELECT channel, \
            MAX(CASE WHEN status IN ('sent', 'accepted') THEN sent_at END), \
            MAX(CASE WHEN status IN ('failed', 'unknown') THEN next_attempt_at END) \
            FROM outbox GROUP BY channel ORDER BY channel";
        on_pool!(&self.db, p => {
            let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(SQL).fetch_all(p).await.map_err(db)?;
            rows.into_iter()
                .map(|(channel, ok, failed)| {
                    Ok(refloop_app::ChannelActivity {
                        channel,
                        last_success: ok.map(ts).transpose()?,
                        last_failure: failed.map(ts).transpose()?,
                    })
                })
                .collect()
        })
    }

    async fn outbox_item(&self, id: &str) -> Result<Option<OutboxItem>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM outbox WHERE id = $1").bind(id).fetch_optional(p).await.map_err(db)?;
            row.map(|r| row::outbox(&r)).transpose()
        })
    }

    async fn claim_outbox(
        &self,
        now: Timestamp,
        n: u32,
        lease_until: Timestamp,
        token: &str,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let sql = sqlx::AssertSqlSafe(skip_locked(CLAIM_OUTBOX, &self.db));
        on_writer!(self, p => {
            let rows = sqlx::query(sql)
                .bind(ms(now))
                .bind(limit(n))
                .bind(ms(lease_until))
                .bind(token)
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::outbox(r)).collect()
        })
    }

    async fn start_attempt(&self, id: &str, token: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done = on_writer!(self, p => {
            sqlx::query(
                "UPDATE outbox SET attempt_started_at = $3, attempts = attempts + 1,
                        first_attempt_at = COALESCE(first_attempt_at, $3)
                 WHERE id = $1 AND lease_token = $2 AND status = 'sending'",
            )
            .bind(id)
            .bind(token)
            .bind(ms(now))
            .execute(p)
            .await
            .map_err(db)?
            .rows_affected()
        });
        Ok(done == 1)
    }

    async fn extend_leases(&self, token: &str, lease_until: Timestamp) -> Result<u64, StoreError> {
        on_writer!(self, p => {
            sqlx::query("UPDATE outbox SET lease_until = $2 WHERE lease_token = $1 AND status = 'sending'")
                .bind(token)
                .bind(ms(lease_until))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
                .map_err(db)
        })
    }

    async fn release_outbox(&self, token: &str) -> Result<u64, StoreError> {
        on_writer!(self, p => {
            sqlx::query(
                "UPDATE outbox SET status = CASE WHEN check_first THEN 'unconfirmed' ELSE 'pending' END,
                        lease_token = NULL, lease_until = NULL
                 WHERE lease_token = $1 AND status = 'sending' AND attempt_started_at IS NULL",
            )
            .bind(token)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
            .map_err(db)
        })
    }

    async fn reap_outbox(&self, now: Timestamp) -> Result<refloop_app::Reaped, StoreError> {
        let sql = sqlx::AssertSqlSafe(skip_locked(REAP_OUTBOX, &self.db));
        let statuses: Vec<String> = on_writer!(self, p => {
            sqlx::query_scalar(sql).bind(ms(now)).fetch_all(p).await.map_err(db)?
        });
        let released = statuses.iter().filter(|s| *s == "pending").count() as u64;
        Ok(refloop_app::Reaped { released, unconfirmed: statuses.len() as u64 - released })
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let next: Option<i64> = on_pool!(&self.db, p => {
            sqlx::query_scalar(
                "SELECT MIN(x) FROM (
                    SELECT MIN(due_at) AS x FROM timers
                    UNION ALL
                    SELECT MIN(next_attempt_at) AS x FROM outbox WHERE status IN ('pending', 'unconfirmed')
                 ) AS due",
            )
            .fetch_one(p)
            .await
            .map_err(db)?
        });
        next.map(ts).transpose()
    }
}

#[async_trait::async_trait]
impl DirectoryStore for SqlStore {
    async fn upsert_specialist(&self, s: &Specialist) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO specialists (id, name, specialties, network, phone, fax, direct_address, last_verified,
                                          updated_at, accepts_360x, booking_url, fhir_base, scheduling_manifest)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, specialties = excluded.specialties,
                     network = excluded.network, phone = excluded.phone, fax = excluded.fax,
                     direct_address = excluded.direct_address, last_verified = excluded.last_verified,
                     updated_at = excluded.updated_at, accepts_360x = excluded.accepts_360x,
                     booking_url = excluded.booking_url, fhir_base = excluded.fhir_base,
                     scheduling_manifest = excluded.scheduling_manifest",
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
            .bind(s.accepts_360x)
            .bind(&s.booking_url)
            .bind(&s.fhir_base)
            .bind(&s.scheduling_manifest)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    async fn set_manifest_found(&self, id: &str, found: &refloop_app::ManifestFound) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query(
                "UPDATE specialists SET manifest_source = $2, manifest_link = $3, manifest_phone = $4,
                     manifest_modified = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(&found.source)
            .bind(&found.link)
            .bind(&found.phone)
            .bind(&found.modified)
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
}
