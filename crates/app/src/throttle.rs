//! Throttling of guessing: failed sign-ins per account (growing delays, then a lockout that an
//! admin lifts or that runs out) and per address, and failed bearer tokens per address (429
//! with `Retry-After`). Per-address counts live in this process; account lockouts are stored.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The limits (config `[auth]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// Failed sign-ins in a row that lock an account.
    pub lockout_after: u32,
    /// How long a lockout lasts unless an admin lifts it first.
    pub lockout_for: jiff::SignedDuration,
    /// Failed sign-ins from one address within a quarter of an hour before it must wait.
    pub signins_per_address: usize,
    /// Refused bearer tokens from one address within a minute before it must wait.
    pub tokens_per_address: usize,
    /// The first failed sign-in's delay; each further one in a row doubles it (up to 2 s).
    pub failure_delay: Duration,
    /// Roles that must sign in with a second factor (TOTP); they enrol at their first sign-in.
    pub mfa_required: Vec<crate::Role>,
    /// Writes (any method but GET and HEAD) one API token may make in a minute before it
    /// must wait (429), per process.
    pub token_writes_per_minute: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            lockout_after: 5,
            lockout_for: jiff::SignedDuration::from_mins(15),
            signins_per_address: 20,
            tokens_per_address: 30,
            failure_delay: Duration::from_millis(100),
            mfa_required: vec![crate::Role::Admin],
            token_writes_per_minute: 3000,
        }
    }
}

pub(crate) const SIGNIN_WINDOW: Duration = Duration::from_secs(15 * 60);
pub(crate) const TOKEN_WINDOW: Duration = Duration::from_secs(60);

/// Recent failures per key within a window (the wall clock of this process).
#[derive(Clone, Debug, Default)]
pub(crate) struct Recent {
    hits: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl Recent {
    /// Failures of `key` still inside `window`.
    pub fn count(&self, key: &str, window: Duration) -> usize {
        let mut hits = self.hits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        hits.get_mut(key).map_or(0, |q| recent(q, window))
    }

    /// Records a failure of `key`; the failures now inside `window`. Keys with nothing recent
    /// are dropped as the map grows, so it stays small.
    pub fn hit(&self, key: &str, window: Duration) -> usize {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if hits.len() > 10_000 {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= window));
        }
        let q = hits.entry(key.to_owned()).or_default();
        q.push_back(now);
        recent(q, window)
    }

    /// How long until the oldest failure of `key` leaves `window`.
    pub fn retry_after(&self, key: &str, window: Duration) -> Duration {
        let hits = self.hits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let oldest = hits.get(key).and_then(|q| q.front().copied());
        oldest.map_or(Duration::ZERO, |t| window.saturating_sub(t.elapsed())).max(Duration::from_secs(1))
    }
}

/// Drops the failures older than `window`; how many are left.
fn recent(q: &mut VecDeque<Instant>, window: Duration) -> usize {
    let now = Instant::now();
    while q.front().is_some_and(|t| now.duration_since(*t) > window) {
        q.pop_front();
    }
    q.len()
}

/// The per-address counts of one process.
#[derive(Clone, Debug, Default)]
pub(crate) struct Throttle {
    pub signins: Recent,
    pub tokens: Recent,
    /// Writes per API token (by name).
    pub writes: Recent,
}

/// The delay before answering the `n`th failed sign-in in a row.
pub(crate) fn failure_delay(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1 << n.saturating_sub(1).min(10)).min(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_two_seconds() {
        let base = Duration::from_millis(100);
        let delays: Vec<u128> = (1..=7).map(|n| failure_delay(base, n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn failures_are_counted_per_key_within_the_window() {
        let r = Recent::default();
        assert_eq!((r.hit("a", SIGNIN_WINDOW), r.hit("a", SIGNIN_WINDOW), r.hit("b", SIGNIN_WINDOW)), (1, 2, 1));
        assert_eq!(r.count("a", SIGNIN_WINDOW), 2);
        assert_eq!(r.count("a", Duration::ZERO), 0, "outside the window they are gone");
    }
}
