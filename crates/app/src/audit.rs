//! The audit log's chain: sealing new rows, verifying every link, searching for reviewers,
//! and the retention purge.

use jiff::Timestamp;

use crate::{AUDIT_GENESIS, Actor, App, AppError, AuditQuery, AuditRecord, ReferralFilter};

/// Rows sealed per transaction.
const SEAL_BATCH: u32 = 500;
/// Rows read per page while verifying.
const VERIFY_PAGE: u32 = 2000;

/// What `verify_audit` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditVerdict {
    /// Sealed rows checked.
    pub checked: u64,
    /// Where the chain starts (0 unless a retention purge removed its head).
    pub starts_after: i64,
    /// The first broken link, if any.
    pub broken: Option<AuditBreak>,
}

/// A link that does not hold: the row (by insertion number and chain place) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditBreak {
    pub seq: i64,
    pub pos: i64,
    pub why: &'static str,
}

impl App {
    /// Links every unsealed audit row into the chain; how many.
    pub async fn seal_audit(&self) -> Result<u64, AppError> {
        let mut total = 0;
        loop {
            let n = self.store.seal_audit(SEAL_BATCH).await?;
            total += n;
            if n < u64::from(SEAL_BATCH) {
                return Ok(total);
            }
        }
    }

    /// Seals what is new, then walks the whole chain: each row's place follows the last,
    /// it names the last row's hash, and its own hash matches its columns.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, AppError> {
        self.seal_audit().await?;
        let anchor = self.store.audit_anchor().await?;
        let (mut pos, mut prev) = anchor.map_or((0, AUDIT_GENESIS.to_owned()), |a| (a.pos, a.hash));
        let mut verdict = AuditVerdict { starts_after: pos, ..AuditVerdict::default() };
        loop {
            let page = self.store.audit_chain(pos, VERIFY_PAGE).await?;
            for rec in &page {
                let Some(seal) = &rec.seal else { continue };
                let why = if seal.pos != pos + 1 {
                    Some("a row before it is missing (its place in the chain skips)")
                } else if seal.prev_hash != prev {
                    Some("it does not name the hash of the row before it")
                } else if rec.entry.chain_hash(rec.seq, seal.pos, &seal.prev_hash) != seal.hash {
                    Some("its contents changed after it was sealed (its hash does not match)")
                } else {
                    None
                };
                if let Some(why) = why {
                    verdict.broken = Some(AuditBreak { seq: rec.seq, pos: seal.pos, why });
                    return Ok(verdict);
                }
                verdict.checked += 1;
                pos = seal.pos;
                prev = seal.hash.clone();
            }
            if page.len() < VERIFY_PAGE as usize {
                return Ok(verdict);
            }
        }
    }

    /// Audit rows for a reviewer (callers let only admins in), newest first. The search is
    /// itself audited.
    pub async fn audit_search(&self, actor: &Actor, q: &AuditQuery) -> Result<Vec<AuditRecord>, AppError> {
        let rows = self.audit_rows(q).await?;
        let what = if q.ids.is_empty() { "all".to_owned() } else { q.ids.join(",") };
        self.audit_action(actor, "search", "audit", &what).await?;
        Ok(rows)
    }

    /// Audit rows as `q` asks, after sealing what is new; not audited (callers record the
    /// export or search once).
    pub async fn audit_rows(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, AppError> {
        self.seal_audit().await?;
        Ok(self.store.audit_search(q).await?)
    }

    /// The rows that name a patient or any of their referrals, newest first: who looked at
    /// this patient. Audited.
    pub async fn who_looked(&self, actor: &Actor, patient: &str, limit: u32) -> Result<Vec<AuditRecord>, AppError> {
        let mut ids = vec![patient.to_owned()];
        ids.extend(self.referral_ids_of_patient(patient).await?);
        self.audit_search(actor, &AuditQuery { ids, limit, ..AuditQuery::default() }).await
    }

    /// The ids of a patient's referrals (at most 500).
    pub async fn referral_ids_of_patient(&self, patient: &str) -> Result<Vec<String>, AppError> {
        let f = ReferralFilter { q: Some(patient.to_owned()), limit: 500, ..ReferralFilter::default() };
        let page = self.store.referrals(&f).await?;
        Ok(page
            .items
            .into_iter()
            .filter(|r| r.patient_id.as_str() == patient)
            .map(|r| r.id.as_str().to_owned())
            .collect())
    }

    /// Deletes sealed audit rows older than `[retention] audit` from the head of the chain,
    /// keeping where the chain now starts; how many.
    pub(crate) async fn purge_old_audit(&self, now: Timestamp) -> Result<u64, AppError> {
        self.seal_audit().await?;
        Ok(self.store.purge_audit(now - self.retention.audit, now).await?)
    }
}
