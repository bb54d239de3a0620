//! Past referrals imported as a baseline, so the first day already shows last quarter. Each is
//! entered through the one write path as history (counted, never acted on) with its
//! milestones, all in one transaction: a row is kept whole or not at all.

use refloop_domain::{Input, ReferralId};

use crate::{Actor, AppError, NewReferral, service::App};

/// What became of one imported row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryOutcome {
    Imported(ReferralId),
    /// A referral with this baseline key is already in the database.
    AlreadyPresent(ReferralId),
}

impl App {
    /// Enters a past referral as history, then its milestones in order. `req.source_ids[0]`
    /// is its key: importing the same file twice adds nothing.
    pub async fn import_history(
        &self,
        actor: &Actor,
        mut req: NewReferral,
        milestones: Vec<Input>,
    ) -> Result<HistoryOutcome, AppError> {
        req.historical = true;
        if req.ordered_at.is_none() {
            return Err(AppError::invalid("ordered_at", "required for a past referral"));
        }
        let mut tx = self.store.begin().await?;
        if let Some(key) = req.source_ids.first()
            && let Some(id) = tx.referral_by_key(key).await?
        {
            return Ok(HistoryOutcome::AlreadyPresent(id));
        }
        let now = self.now();
        let referral = self.create_in(tx.as_mut(), actor, req, now).await?;
        for input in milestones {
            self.record_in(tx.as_mut(), actor, &referral.id, input).await?;
        }
        tx.commit().await?;
        Ok(HistoryOutcome::Imported(referral.id))
    }
}
