//! Read-ahead: what a transaction reads once and keeps — patients, the tracked referrals of
//! patients with new orders, inbox rows and referral keys — so a group commit of many
//! messages reads each in one query, and later lookups in the transaction cost nothing.

use std::collections::HashMap;

use refloop_app::{InboxItem, Patient, StoreError};
use refloop_domain::{PatientId, Referral, ReferralId, Specialty};

use super::{Inner, SqlTx};
use sqlx::{Sqlite, Transaction};

use crate::row::{self, db, ts};

impl SqlTx {
    /// Reads the patients not yet known to this transaction. With `lock` (a transaction that
    /// writes them: the write-behind upsert merges with what it read), their rows are locked on
    /// PostgreSQL until it ends, in id order, and one already read without a lock is read again;
    /// without it they are only read, so a transaction that reads a referral's patient never
    /// holds a patient lock while it waits for a referral (the lock order, ARCHITECTURE.md).
    pub(super) async fn load_patients(&mut self, ids: &[PatientId], lock: bool) -> Result<(), StoreError> {
        let lock = lock && self.is_postgres();
        let wanted: Vec<&PatientId> = ids
            .iter()
            .filter(
                |id| if lock { !self.locked_patients.contains(*id) } else { !self.known_patients.contains_key(*id) },
            )
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let found: Vec<Patient> = on_tx!(self, c => {
            let mut q = sqlx::QueryBuilder::new("SELECT * FROM patients WHERE id IN (");
            let mut list = q.separated(", ");
            for id in &wanted {
                list.push_bind(id.as_str());
            }
            q.push(")");
            if lock {
                q.push(" ORDER BY id FOR UPDATE");
            }
            let rows = q.build().fetch_all(c).await.map_err(db)?;
            rows.iter().map(|r| row::patient(r)).collect::<Result<_, _>>()?
        });
        if lock {
            self.locked_patients.extend(wanted.iter().map(|id| (*id).clone()));
        }
        for id in wanted {
            self.known_patients.insert(id.clone(), None);
        }
        for p in found {
            self.known_patients.insert(p.id.clone(), Some(p));
        }
        Ok(())
    }

    /// The tracked referrals of `patients`, for duplicate detection without a query each.
    pub(super) async fn read_tracked(&mut self, patients: &[PatientId]) -> Result<(), StoreError> {
        if patients.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, String, Option<String>, i64)> = on_tx!(self, c => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT id, patient_id, specialty, ordered_at FROM referrals WHERE tracked = ",
            );
            q.push_bind(true);
            q.push(" AND patient_id IN (");
            let mut list = q.separated(", ");
            for p in patients {
                list.push_bind(p.as_str());
            }
            q.push(")");
            let rows = q.build().fetch_all(c).await.map_err(db)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        row::Get::text(r, "id")?,
                        row::Get::text(r, "patient_id")?,
                        row::Get::opt_text(r, "specialty")?,
                        row::Get::int(r, "ordered_at")?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        for p in patients {
            self.known_tracked.entry(p.clone()).or_default();
        }
        let corrupt = |e: refloop_domain::ParseError| StoreError::Corrupt(e.to_string());
        for (id, patient, specialty, at) in rows {
            let entry = (
                ReferralId::parse(&id).map_err(corrupt)?,
                specialty.map(|s| Specialty::parse(&s)).transpose().map_err(corrupt)?,
                ts(at)?,
            );
            self.known_tracked.entry(PatientId::parse(&patient).map_err(corrupt)?).or_default().push(entry);
        }
        Ok(())
    }

    /// The inbox rows of (sender, control id) pairs of `protocol`: resends answered without a
    /// query each.
    pub(super) async fn read_inbox(&mut self, protocol: &str, messages: &[(String, String)]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        // One equality lookup per message, so the unique index is searched whatever plan
        // the server caches for the statement (a cached generic plan for `IN` lists kept
        // only the leading columns as the index condition and scanned every message).
        let mut rows: Vec<InboxItem> = Vec::new();
        for chunk in messages.chunks(100) {
            rows.extend(on_tx!(self, c => {
                let mut q = sqlx::QueryBuilder::new("");
                for (i, (source, control)) in chunk.iter().enumerate() {
                    if i > 0 {
                        q.push(" UNION ALL ");
                    }
                    q.push("SELECT * FROM inbox WHERE protocol = ");
                    q.push_bind(protocol);
                    q.push(" AND source = ");
                    q.push_bind(source.as_str());
                    q.push(" AND control_id = ");
                    q.push_bind(control.as_str());
                }
                let found = q.build().fetch_all(c).await.map_err(db)?;
                found.iter().map(|r| row::inbox(r)).collect::<Result<Vec<_>, _>>()?
            }));
        }
        for (source, control) in messages {
            self.known_inbox.insert((protocol.to_owned(), source.clone(), control.clone()), None);
        }
        for row in rows {
            let key = (row.protocol.clone(), row.source.clone(), row.control_id.clone());
            if self.known_inbox.contains_key(&key) {
                self.known_inbox.insert(key, Some(row));
            }
        }
        Ok(())
    }

    /// The referrals that hold `keys`.
    pub(super) async fn read_keys(&mut self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, String)> = on_tx!(self, c => {
            let mut q = sqlx::QueryBuilder::new("SELECT key, referral_id FROM referral_keys WHERE key IN (");
            let mut list = q.separated(", ");
            for key in keys {
                list.push_bind(key.as_str());
            }
            q.push(")");
            let rows = q.build().fetch_all(c).await.map_err(db)?;
            rows.iter()
                .map(|r| Ok((row::Get::text(r, "key")?, row::Get::text(r, "referral_id")?)))
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        for key in keys {
            self.known_keys.insert(key.clone(), None);
        }
        // PostgreSQL: the referrals these messages update are locked now, in id order, after
        // their patients and before anything else (the lock order, ARCHITECTURE.md).
        if let Inner::Postgres(tx) = &mut self.inner {
            let mut ids: Vec<&str> = rows.iter().map(|(_, id)| id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() {
                sqlx::query("SELECT id FROM referrals WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                    .bind(ids)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db)?;
            }
        }
        for (key, id) in rows {
            let id = ReferralId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.known_keys.insert(key, Some(id));
        }
        Ok(())
    }
}

/// SQLite: the referral and, unless already known, its patient, in one read.
pub(super) async fn referral_with_patient(
    tx: &mut Transaction<'static, Sqlite>,
    known_patients: &mut HashMap<PatientId, Option<Patient>>,
    id: &ReferralId,
) -> Result<Option<Referral>, StoreError> {
    let found = sqlx::query(
        "SELECT r.doc AS doc, p.* FROM referrals r LEFT JOIN patients p ON p.id = r.patient_id \
         WHERE r.id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db)?;
    let Some(found) = found else { return Ok(None) };
    let referral = row::referral(&found)?;
    if !known_patients.contains_key(&referral.patient_id) {
        let patient = match row::Get::opt_text(&found, "id")? {
            Some(_) => Some(row::patient(&found)?),
            None => None,
        };
        known_patients.insert(referral.patient_id.clone(), patient);
    }
    Ok(Some(referral))
}
