//! Timers and the outbox: what comes due, and the manual clock that makes it come due.

use std::time::Duration as StdDuration;

use jiff::{SignedDuration, Timestamp};
use refloop_domain::{Duration, Input, TaskKind};
use serde::Serialize;

use crate::{
    auth::Actor,
    connector::{Confirmation, DeliveryOutcome},
    error::{AppError, StoreError},
    ids::new_id,
    ports::{OutboxGuard, OutboxItem, OutboxStatus},
    service::App,
};

/// Timers handled in one transaction.
const TIMER_BATCH: u32 = 200;
/// Attempts before a failing message becomes a staff task.
const MAX_ATTEMPTS: u32 = 8;
/// What the outbox and the timeline say of a message whose channel is off.
pub const NOT_SENT: &str = "not sent (channel off)";
/// Times a batch's delivery outcomes are taken when the database breaks the transaction off.
const OUTCOME_TRIES: u32 = 5;

/// How the outbox worker claims and sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxSettings {
    /// How long a claim holds an item. The sender renews it every third of this while it
    /// works; a sender that died loses its items to the reaper one lease later.
    pub lease: SignedDuration,
    /// Items claimed at once.
    pub batch: u32,
    /// Attempts of one batch under way at once (a slow provider holds up one slot, not the batch).
    pub concurrency: usize,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self { lease: SignedDuration::from_mins(1), batch: 100, concurrency: 8 }
    }
}

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
    ///
    /// Each claim carries a lease token written on its rows: the attempt is marked before the
    /// connector is called, the lease is renewed while the batch is under way, and an outcome
    /// is recorded only where the token still holds the row (compare-and-set). An item whose
    /// earlier attempt may have gone out (`check_first`) is looked up at the provider first.
    pub async fn deliver_due(&self) -> Result<DueReport, AppError> {
        let mut report = DueReport::default();
        let reaped = self.store.reap_outbox(self.now()).await?;
        if reaped != crate::Reaped::default() {
            tracing::warn!(
                released = reaped.released,
                unconfirmed = reaped.unconfirmed,
                "outbox leases ran out: items never attempted go out again; those under way are checked with the provider"
            );
        }
        loop {
            if self.is_stopping() {
                return Ok(report);
            }
            let now = self.now();
            let token = new_id("lease");
            let items = self.store.claim_outbox(now, self.outbox.batch, now + self.outbox.lease, &token).await?;
            if items.is_empty() {
                return Ok(report);
            }
            let heartbeat = self.renew_leases(token.clone());
            let mut outcomes = self.attempt_all(items, &token).await;
            heartbeat.abort();
            if self.is_stopping() {
                let released = self.store.release_outbox(&token).await?;
                tracing::info!(released, "shutting down: items not yet attempted are given back");
            }
            report.messages_attempted += outcomes.len() as u64;
            // Referrals in id order: another process recording its own batch takes their locks
            // in the same order, so the two wait for each other instead of deadlocking. The
            // sends have happened: a transaction the database still breaks off is taken again.
            outcomes.sort_by(|a, b| a.0.referral_id.cmp(&b.0.referral_id));
            let mut tries = 0;
            loop {
                tries += 1;
                match self.record_outcomes(&outcomes, &token).await {
                    Err(AppError::Store(StoreError::Conflict(why))) if tries < OUTCOME_TRIES => {
                        tracing::warn!(%why, tries, "recording delivery outcomes clashed with another writer; again");
                    }
                    other => break other?,
                }
            }
        }
    }

    /// Renews the leases held under `token` every third of a lease until aborted.
    fn renew_leases(&self, token: String) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        let every = (app.outbox.lease / 3).unsigned_abs().max(StdDuration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let until = app.now() + app.outbox.lease;
                if let Err(e) = app.store.extend_leases(&token, until).await {
                    tracing::warn!(error = %e, "could not renew outbox leases");
                }
            }
        })
    }

    /// Attempts a claimed batch, a few items at a time; the outcomes of attempts that started.
    async fn attempt_all(&self, items: Vec<OutboxItem>, token: &str) -> Vec<(OutboxItem, DeliveryOutcome, Timestamp)> {
        let mut running = tokio::task::JoinSet::new();
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            while running.len() >= self.outbox.concurrency.max(1) {
                if let Some(Ok(Some(done))) = running.join_next().await {
                    outcomes.push(done);
                }
            }
            let (app, token) = (self.clone(), token.to_owned());
            running.spawn(async move { app.attempt(item, &token).await });
        }
        while let Some(done) = running.join_next().await {
            if let Ok(Some(done)) = done {
                outcomes.push(done);
            }
        }
        outcomes
    }

    /// One attempt: marked as started first (so a crash from here on is checked with the
    /// provider, never blindly resent), then the provider is asked or the item sent. `None`
    /// when the attempt did not start (shutting down, or the lease was lost).
    async fn attempt(&self, item: OutboxItem, token: &str) -> Option<(OutboxItem, DeliveryOutcome, Timestamp)> {
        if self.is_stopping() {
            return None;
        }
        match self.store.start_attempt(&item.id, token, self.now()).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::warn!(message_id = %item.id, error = %e, "could not mark the attempt; not sending");
                return None;
            }
        }
        let mut item = item;
        item.attempts += 1;
        item.first_attempt_at = item.first_attempt_at.or(Some(self.now()));
        let outcome = if item.check_first {
            match self.connector.confirm(&item).await {
                Confirmation::Sent(outcome) => {
                    tracing::info!(message_id = %item.id, "the provider has the message: not sent again");
                    outcome
                }
                Confirmation::NotSent => {
                    tracing::info!(message_id = %item.id, "the provider does not have the message: sending it once");
                    self.connector.deliver(&item).await
                }
                Confirmation::Later { error } => DeliveryOutcome::Unconfirmed { error },
                Confirmation::CannotTell { error } => {
                    DeliveryOutcome::NeedsPerson { error, task: TaskKind::ConfirmDelivery }
                }
            }
        } else {
            self.connector.deliver(&item).await
        };
        Some((item, outcome, self.now()))
    }

    /// Records a claimed batch's delivery outcomes, each fed to its referral, in one
    /// transaction; an item whose lease `token` no longer holds it is left to its new holder.
    async fn record_outcomes(
        &self,
        outcomes: &[(OutboxItem, DeliveryOutcome, Timestamp)],
        token: &str,
    ) -> Result<(), AppError> {
        let lease = OutboxGuard::Lease(token);
        let mut tx = self.store.begin().await?;
        for (item, outcome, now) in outcomes {
            let now = *now;
            let tx = tx.as_mut();
            let settled = match outcome.clone() {
                DeliveryOutcome::Delivered => {
                    self.outcome_in(tx, item, lease, OutboxStatus::Sent, Some(now), None, None, now).await?
                }
                DeliveryOutcome::Accepted { .. } => {
                    tx.finish_outbox(&item.id, lease, OutboxStatus::Accepted, now, Some(now), None).await?
                }
                DeliveryOutcome::Retry { error } if item.attempts < MAX_ATTEMPTS => {
                    let next = now + backoff(item.attempts, &item.id);
                    tracing::warn!(message_id = %item.id, attempts = item.attempts, "delivery failed; will retry");
                    tx.finish_outbox(&item.id, lease, OutboxStatus::Pending, next, None, Some(&error)).await?
                }
                DeliveryOutcome::Unconfirmed { error } if item.attempts < MAX_ATTEMPTS => {
                    // Asked again after the backoff: by then the provider lists what it took.
                    let next = now + backoff(item.attempts, &item.id);
                    tracing::warn!(message_id = %item.id, attempts = item.attempts, "delivery outcome unknown; the provider will be asked before any resend");
                    tx.finish_outbox(&item.id, lease, OutboxStatus::Unconfirmed, next, None, Some(&error)).await?
                }
                DeliveryOutcome::Unconfirmed { error } => {
                    tracing::warn!(message_id = %item.id, referral_id = %item.referral_id, "delivery outcome unknown after every attempt");
                    let task = Some(TaskKind::ConfirmDelivery);
                    self.outcome_in(tx, item, lease, OutboxStatus::Unknown, None, Some(error), task, now).await?
                }
                DeliveryOutcome::Retry { error } | DeliveryOutcome::Permanent { error } => {
                    tracing::warn!(message_id = %item.id, referral_id = %item.referral_id, "delivery failed for good");
                    self.outcome_in(tx, item, lease, OutboxStatus::Failed, None, Some(error), None, now).await?
                }
                DeliveryOutcome::ChannelOff => {
                    tracing::info!(message_id = %item.id, referral_id = %item.referral_id, channel = item.channel.as_str(), "not sent: the channel is off");
                    let error = Some(NOT_SENT.to_owned());
                    self.outcome_in(tx, item, lease, OutboxStatus::NotSent, None, error, None, now).await?
                }
                DeliveryOutcome::NeedsPerson { error, task } => {
                    tracing::info!(message_id = %item.id, referral_id = %item.referral_id, task = task.as_str(), "a person must act before this can go out");
                    let status =
                        if task == TaskKind::ConfirmDelivery { OutboxStatus::Unknown } else { OutboxStatus::Failed };
                    self.outcome_in(tx, item, lease, status, None, Some(error), Some(task), now).await?
                }
            };
            if !settled {
                tracing::warn!(message_id = %item.id, "the item's lease passed to another sender; its outcome is theirs to record");
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a final outcome for an item still in the state `guard` names, and applies it
    /// to the referral, in one transaction; false when the item had moved on.
    pub(crate) async fn feed_outcome(
        &self,
        item: &OutboxItem,
        guard: OutboxGuard<'_>,
        status: OutboxStatus,
        sent_at: Option<Timestamp>,
        error: Option<String>,
    ) -> Result<bool, AppError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let done = self.outcome_in(tx.as_mut(), item, guard, status, sent_at, error, None, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Records a final outcome and applies it to the referral inside `tx`, if the item is
    /// still as `guard` says (false, and nothing done, when it is not).
    #[allow(clippy::too_many_arguments)]
    async fn outcome_in(
        &self,
        tx: &mut dyn crate::Tx,
        item: &OutboxItem,
        guard: OutboxGuard<'_>,
        status: OutboxStatus,
        sent_at: Option<Timestamp>,
        error: Option<String>,
        task: Option<refloop_domain::TaskKind>,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        // The referral's row before its outbox row (the lock order, ARCHITECTURE.md).
        let current = tx.lock_referral(&item.referral_id, false).await?;
        if !tx.finish_outbox(&item.id, guard, status, now, sent_at, error.as_deref()).await? {
            return Ok(false);
        }
        if let Some(current) = current {
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
        Ok(true)
    }

    /// Empties the raw bodies of settled inbound messages older than `[retention]
    /// raw_messages`, at most once an hour of the app's clock; how many.
    pub async fn purge_old_messages(&self) -> Result<u64, AppError> {
        let now = self.now();
        {
            let mut last = self.last_purge.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| now - at < SignedDuration::from_hours(1)) {
                return Ok(0);
            }
            *last = Some(now);
        }
        let purged = self.store.purge_raw(now - self.retention.raw_messages).await?;
        if purged > 0 {
            tracing::info!(purged, "raw bodies of settled inbound messages past their retention emptied");
        }
        let emptied = self.purge_old_documents(now - self.retention.documents).await?;
        if emptied > 0 {
            tracing::info!(emptied, "content of settled documents past their retention emptied");
        }
        // Audit time is the wall clock's, so its retention is too.
        let gone = self.purge_old_audit(self.wall.now()).await?;
        if gone > 0 {
            tracing::info!(gone, "audit rows past their retention deleted from the head of the chain");
        }
        Ok(purged)
    }

    /// Fires timers and sends messages until nothing more is due now.
    pub async fn run_due(&self) -> Result<DueReport, AppError> {
        if let Err(e) = self.purge_old_messages().await {
            tracing::warn!(error = %e, "could not purge old raw messages; will try again");
        }
        if let Err(e) = self.seal_audit().await {
            tracing::warn!(error = %e, "could not seal new audit rows; will try again");
        }
        let mut total = DueReport::default();
        for _ in 0..10_000 {
            if self.is_stopping() {
                break;
            }
            let mut pass = self.retrying_conflicts(|| self.fire_due()).await?;
            pass.add(self.retrying_conflicts(|| self.deliver_due()).await?);
            if pass.is_empty() {
                break;
            }
            total.add(pass);
        }
        Ok(total)
    }

    /// Runs `work` again when the database broke it off to end a deadlock or a serialization
    /// conflict (nothing of it was kept), a few times with a short pause, so such a clash
    /// never reaches a caller of the workers.
    async fn retrying_conflicts<T, F, Fut>(&self, mut work: F) -> Result<T, AppError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        let mut tries = 0u32;
        loop {
            tries += 1;
            match work().await {
                Err(AppError::Store(StoreError::Conflict(why))) if tries < OUTCOME_TRIES => {
                    tracing::info!(%why, tries, "due work clashed with another process; again");
                    tokio::time::sleep(StdDuration::from_millis(10 * u64::from(tries))).await;
                }
                other => return other,
            }
        }
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

    /// Whether shutdown has begun: nothing more is claimed and no new attempt starts.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Begins shutdown: the workers finish what is under way and claim nothing more.
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// The background loop of `serve` on the system clock: run what is due, then wait for
    /// new work or `poll` to pass, until `shutdown` resolves. Then nothing more is claimed,
    /// attempts under way get `grace` to finish (items not yet attempted are given back),
    /// and the loop returns.
    pub async fn run_workers(
        &self,
        poll: StdDuration,
        grace: StdDuration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let work = async {
            while !self.is_stopping() {
                if let Err(e) = self.run_due().await {
                    tracing::error!(error = %e, "worker pass failed; retrying");
                }
                if self.is_stopping() {
                    break;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        };
        tokio::pin!(work, shutdown);
        tokio::select! {
            _ = &mut work => return,
            _ = &mut shutdown => {}
        }
        self.stop();
        if tokio::time::timeout(grace, work).await.is_err() {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "sends still under way at the end of the shutdown grace: the provider is asked about them after restart"
            );
        }
    }
}

/// Runs `pass` every `interval` until `shutdown` (a poller: the EHR's FHIR pull); after
/// a failed pass, logged under `what`, waits 1 s, 2 s, 4 s … (at most `interval`) instead.
pub async fn every<F, Fut, E>(
    what: &'static str,
    interval: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(shutdown);
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        let wait = match pass().await {
            Ok(()) => {
                backoff = std::time::Duration::from_secs(1);
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "{what} failed");
                let w = backoff;
                backoff = (backoff * 2).min(interval);
                w
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
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
