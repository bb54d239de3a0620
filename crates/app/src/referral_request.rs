//! 360X as the referral initiator, on the app's side: a new referral to a specialist whom
//! the directory marks as taking 360X (with a Direct address) queues the referral request;
//! the note-request connector builds and sends it.

use jiff::Timestamp;
use refloop_domain::Referral;

use crate::{AppError, OutboxItem, Tx, service::App};

impl App {
    /// Queues the 360X referral request of a new referral when the directory says its
    /// specialist takes 360X over Direct (see [`refloop_domain::Policy::referrals_360x`]).
    pub(crate) async fn request_360x(
        &self,
        tx: &mut dyn Tx,
        referral: &Referral,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let directory = self.store().specialists(None).await?;
        let Some(entry) = crate::entry_for(&directory, referral) else { return Ok(()) };
        if !entry.accepts_360x || entry.direct_address.is_none() {
            return Ok(());
        }
        let w = self.policy.windows(referral.specialty.as_ref(), referral.urgency);
        let needed_by = self.policy.after(self.policy.after(referral.ordered_at, w.notify), w.scheduling);
        let key = format!("{}:note-request:referral-request:1", referral.id);
        let item = OutboxItem {
            body: Some(needed_by.to_string()),
            ..OutboxItem::pending(
                referral,
                refloop_domain::Channel::NoteRequest,
                refloop_domain::Purpose::ReferralRequest,
                key,
                now,
            )
        };
        tx.enqueue(&item).await?;
        Ok(())
    }
}
