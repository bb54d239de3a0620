//! The Clock port: the only place that reads the wall clock.

use jiff::Timestamp;
use std::sync::Mutex;

/// Where "now" comes from. Production uses [`SystemClock`]; tests, demos and the
/// simulator use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// The manual clock behind this one, when time is driven by hand.
    fn manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned reading of the wall clock
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// Moves the clock to `to`; a clock never goes back, so an earlier instant is ignored.
    pub fn set(&self, to: Timestamp) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if to > *now {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}
