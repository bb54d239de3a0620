//! Timers and the outbox: what comes due, and the manual clock that makes it come due.

use std::time::Duration as StdDuration;

use jiff::{SignedDuration, Timestamp};
use refloop_domain::{Duration, Input};
use serde::Serialize;

use crate::{
    auth::Actor,
    connector::DeliveryOutcome,
    error::{AppError, StoreError},
    ports::{OutboxItem, OutboxStatus},
    service::App,
};

/// Timers handled in one transaction.
const TIMER_BATCH: u32 = 200;
/// Outbox items claimed at once.
const OUTBOX_BATCH: u32 = 100;
/// How long a worker may hold an outbox item while sending it.
const SEND_LEASE: SignedDuration = SignedDuration::from_mins(5);
/// Attempts before a failing message becomes a staff task.
const MAX_ATTEMPTS: u32 = 8;
/// What the outbox and the timeline say of a message whose channel is off.
pub const NOT_SENT: &str = "not sent (channel off)";
/// Times a batch's delivery outcomes are taken when the database breaks the transaction off.
const OUTCOME_TRIES: u32 = 3;

/// What one pass over due work did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DueReport {
    /// Timers that acted.
    pub timers_fired: u64,
    /// Timers dropped because their referral had moved on.
    pub timers_stale: u64,
    /// Outbox items handed to a connector.
    pub messages_attempted: u64,
}

impl DueReport {
    fn add(&mut self, o: DueReport) {
        self.timers_fired += o.timers_fired;
        self.timers_stale += o.timers_stale;
        self.messages_attempted += o.messages_attempted;
    }

    fn is_empty(&self) -> bool {
        *self == DueReport::default()
    }
}

/// What a manual clock advance did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AdvanceReport {
    pub now: Timestamp,
    #[serde(flatten)]
    pub work: DueReport,
}

/// Backoff before attempt `n + 1`: 1, 2, 4 … minutes, at most 4 hours, plus a jitter of up
/// to a quarter of that, spread by `spread` (the item's id), so items that failed together
/// do not retry together. Deterministic for an item: the manual clock's tests can predict it.
fn backoff(attempts: u32, spread: &str) -> SignedDuration {
    let minutes = (1i64 << attempts.min(8)).min(240);
    // FNV-1a of the id: cheap, stable, and good enough to spread retries.
    let hash = refloop_domain::fnv1a(refloop_domain::FNV_OFFSET, spread.bytes());
    let jitter_secs = (hash % (minutes as u64 * 15 + 1)) as i64;
    SignedDuration::from_mins(minutes) + SignedDuration::from_secs(jitter_secs)
}

impl App {
    /// Fires every timer due now, in batches of one transaction each.
    pub async fn fire_due(&self) -> Result<DueReport, AppError> {
        let mut report = DueReport::default();
        let system = Actor::system("timer");
        loop {
            let now = self.now();
            let mut tx = self.store.begin().await?;
            let due = tx.due_timers(now, TIMER_BATCH).await?;
            if due.is_empty() {
                return Ok(report);
            }
            let mut progressed = false;
            for timer in due {
                let Some(current) = tx.lock_referral(&timer.referral_id, true).await? else {
                    continue; // another process holds it; its own pass or ours will come back
                };
                progressed = true;
                let input = Input::TimerElapsed { kind: timer.kind, armed_version: timer.armed_version };
                match self.decide_in(tx.as_mut(), &current, input, now).await {
                    Ok(decision) => {
                        // Replacing the referral's timers removes the one that fired.
                        self.execute(tx.as_mut(), Some(current.version), decision, &system.source(), now).await?;
                        report.timers_fired += 1;
                        tracing::info!(referral_id = %timer.referral_id, timer = timer.kind.as_str(), "timer fired");
                    }
                    Err(AppError::Conflict(reason)) => {
                        tx.delete_timer(&timer.id).await?;
                        report.timers_stale += 1;
                        tracing::debug!(referral_id = %timer.referral_id, timer = timer.kind.as_str(), %reason, "stale timer dropped");
                    }
                    Err(e) => return Err(e),
                }
            }
            tx.commit().await?;
            if !progressed {
                return Ok(report);
            }
        }
    }

    /// Sends every outbox item due now and feeds each outcome back to its referral.
    pub async fn deliver_due(&self) -> Result<DueReport, AppError> {
        let mut report = DueReport::default();
        for item in self.store.reap_outbox(self.now()).await? {
            tracing::warn!(message_id = %item.id, referral_id = %item.referral_id, "a send was interrupted; not resending");
            let error = "outcome unknown: the sender stopped while sending; not resent".to_owned();
            self.feed_outcome(&item, OutboxStatus::Unknown, None, Some(error), None).await?;
        }
        loop {
            let now = self.now();
            let items = self.store.claim_outbox(now, OUTBOX_BATCH, now + SEND_LEASE).await?;
            if items.is_empty() {
                return Ok(report);
            }
            // Send the batch, then record every outcome in one transaction. A crash in between
            // leaves the sent items claimed: the reaper marks them "unknown", never resends.
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                report.messages_attempted += 1;
                let outcome = self.connector.deliver(&item).await;
                outcomes.push((item, outcome, self.now()));
            }
            // Referrals in id order: another process recording its own batch takes their locks
            // in the same order, so the two wait for each other instead of deadlocking. The
            // sends have happened: a transaction the database still breaks off is taken again.
            outcomes.sort_by(|a, b| a.0.referral_id.cmp(&b.0.referral_id));
            let mut tries = 0;
            loop {
                tries += 1;
                match self.record_outcomes(&outcomes).await {
                    Err(AppError::Store(StoreError::Conflict(why))) if tries < OUTCOME_TRIES => {
                        tracing::warn!(%why, tries, "recording delivery outcomes clashed with another writer; again");
                    }
                    other => break other?,
                }
            }
        }
    }

    /// Records a claimed batch's delivery outcomes, each fed to its referral, in one transaction.
    async fn record_outcomes(&self, outcomes: &[(OutboxItem, DeliveryOutcome, Timestamp)]) -> Result<(), AppError> {
        let mut tx = self.store.begin().await?;
        for (item, outcome, now) in outcomes {
            let now = *now;
            let tx = tx.as_mut();
            match outcome.clone() {
                DeliveryOutcome::Delivered => {
                    self.outcome_in(tx, item, OutboxStatus::Sent, Some(now), None, None, now).await?
                }
                DeliveryOutcome::Accepted { .. } => {
                    tx.finish_outbox(&item.id, OutboxStatus::Accepted, now, Some(now), None).await?
                }
                DeliveryOutcome::Retry { error } if item.attempts < MAX_ATTEMPTS => {
                    let next = now + backoff(item.attempts, &item.id);
                    tx.finish_outbox(&item.id, OutboxStatus::Pending, next, None, Some(&error)).await?;
                    tracing::warn!(message_id = %item.id, attempts = item.attempts, "delivery failed; will retry");
                }
                DeliveryOutcome::Retry { error } | DeliveryOutcome::Permanent { error } => {
                    tracing::warn!(message_id = %item.id, referral_id = %item.referral_id, "delivery failed for good");
                    self.outcome_in(tx, item, OutboxStatus::Failed, None, Some(error), None, now).await?
                }
                DeliveryOutcome::ChannelOff => {
                    tracing::info!(message_id = %item.id, referral_id = %item.referral_id, channel = item.channel.as_str(), "not sent: the channel is off");
                    let error = Some(NOT_SENT.to_owned());
                    self.outcome_in(tx, item, OutboxStatus::NotSent, None, error, None, now).await?
                }
                DeliveryOutcome::NeedsPerson { error, task } => {
                    tracing::info!(message_id = %item.id, referral_id = %item.referral_id, task = task.as_str(), "a person must act before this can go out");
                    self.outcome_in(tx, item, OutboxStatus::Failed, None, Some(error), Some(task), now).await?
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a final outcome and applies it to the referral in one transaction.
    pub(crate) async fn feed_outcome(
        &self,
        item: &OutboxItem,
        status: OutboxStatus,
        sent_at: Option<Timestamp>,
        error: Option<String>,
        task: Option<refloop_domain::TaskKind>,
    ) -> Result<(), AppError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        self.outcome_in(tx.as_mut(), item, status, sent_at, error, task, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a final outcome and applies it to the referral inside `tx`.
    #[allow(clippy::too_many_arguments)]
    async fn outcome_in(
        &self,
        tx: &mut dyn crate::Tx,
        item: &OutboxItem,
        status: OutboxStatus,
        sent_at: Option<Timestamp>,
        error: Option<String>,
        task: Option<refloop_domain::TaskKind>,
        now: Timestamp,
    ) -> Result<(), AppError> {
        tx.finish_outbox(&item.id, status, now, sent_at, error.as_deref()).await?;
        if let Some(current) = tx.lock_referral(&item.referral_id, false).await? {
            let (channel, purpose) = (item.channel, item.purpose);
            let input = match error {
                None => Input::Delivered { channel, purpose, at: now },
                Some(reason) if status == OutboxStatus::NotSent => Input::NotSent { channel, purpose, reason },
                Some(error) => Input::DeliveryFailed { channel, purpose, error, task },
            };
            match self.decide_in(tx, &current, input, now).await {
                Ok(d) => self.execute(tx, Some(current.version), d, "system:outbox", now).await?,
                Err(e) => {
                    tracing::warn!(referral_id = %item.referral_id, error = %e, "outbox outcome not applied")
                }
            }
        }
        Ok(())
    }

    /// Fires timers and sends messages until nothing more is due now.
    pub async fn run_due(&self) -> Result<DueReport, AppError> {
        let mut total = DueReport::default();
        for _ in 0..10_000 {
            let mut pass = self.fire_due().await?;
            pass.add(self.deliver_due().await?);
            if pass.is_empty() {
                break;
            }
            total.add(pass);
        }
        Ok(total)
    }

    /// Moves the manual clock forward by `by`, stopping at every instant something comes
    /// due so each timer and message acts at its own time. Refused on the system clock.
    pub async fn advance(&self, by: Duration) -> Result<AdvanceReport, AppError> {
        let manual = self.clock.manual().ok_or(AppError::NotManualClock)?;
        let target = self.now() + by.to_signed();
        let mut work = self.run_due().await?;
        while let Some(next) = self.store.next_due().await? {
            if next > target || next <= self.now() {
                break;
            }
            manual.set(next);
            work.add(self.run_due().await?);
        }
        manual.set(target);
        work.add(self.run_due().await?);
        tracing::info!(now = %self.now(), fired = work.timers_fired, "manual clock advanced");
        Ok(AdvanceReport { now: self.now(), work })
    }

    /// The background loop of `serve` on the system clock: run what is due, then wait for
    /// new work or `poll` to pass, until `shutdown` resolves.
    pub async fn run_workers(&self, poll: StdDuration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.run_due().await {
                tracing::error!(error = %e, "worker pass failed; retrying");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_spreads() {
        let within = |attempts: u32, id: &str, mins: i64| {
            let b = backoff(attempts, id);
            assert!(
                b >= SignedDuration::from_mins(mins) && b <= SignedDuration::from_secs(mins * 75),
                "{attempts}: {b:?}"
            );
            b
        };
        within(0, "msg_a", 1);
        within(3, "msg_a", 8);
        within(20, "msg_a", 240);
        assert_eq!(backoff(3, "msg_a"), backoff(3, "msg_a"), "the same item waits the same");
        let spread: std::collections::BTreeSet<_> = (0..20).map(|i| backoff(5, &format!("msg_{i}"))).collect();
        assert!(spread.len() > 10, "items that failed together retry apart: {spread:?}");
    }
}
