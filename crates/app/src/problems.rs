//! Operational problems told to people: a channel failing, dead letters piling up, a poller
//! stuck, the database's disk nearly full. Each is posted to the team chat once when it
//! starts and once when it clears, never once per message: the `problems` table records
//! which are open, and only the process whose update opened (or cleared) one posts it.

use std::{collections::BTreeMap, sync::Arc};

use jiff::{SignedDuration, Timestamp};

use crate::{AppError, ChannelActivity, DiskSpace, StoreError, service::App};

/// Where problem notices go (the team chat's webhook).
#[async_trait::async_trait]
pub trait OpsNotifier: Send + Sync {
    /// Posts `text` (ids and part names only, never patient data).
    async fn notify(&self, text: &str) -> Result<(), String>;
}

/// When a condition counts as a problem.
#[derive(Clone, Debug)]
pub struct ProblemSettings {
    /// Dead letters at or above this are a problem.
    pub dead_letters: i64,
    /// Free share of the database's disk below this is a problem.
    pub disk_free_min: f64,
    /// A poller without a good pass for this long is stuck.
    pub poller_stale: SignedDuration,
    /// A channel whose last failure is this recent, with no success since, is failing.
    pub channel_window: SignedDuration,
}

impl Default for ProblemSettings {
    fn default() -> Self {
        Self {
            dead_letters: 10,
            disk_free_min: 0.10,
            poller_stale: SignedDuration::from_mins(30),
            channel_window: SignedDuration::from_hours(1),
        }
    }
}

/// What a problem check reads.
#[derive(Clone, Debug, Default)]
pub struct Readings {
    pub channels: Vec<ChannelActivity>,
    pub dead_letters: i64,
    pub disk: Option<DiskSpace>,
    /// Each watched poller's last good pass (or when it was first watched).
    pub pollers: BTreeMap<&'static str, Timestamp>,
}

/// The problems `r` shows at `now`: name → what to tell people.
pub fn problems_in(r: &Readings, now: Timestamp, s: &ProblemSettings) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in &r.channels {
        if let Some(failed) = c.last_failure
            && c.last_success.is_none_or(|ok| ok < failed)
            && now - failed < s.channel_window
        {
            out.insert(
                format!("channel-failing:{}", c.channel),
                format!(
                    "the {} channel is failing: its last message failed at {failed} with no success since",
                    c.channel
                ),
            );
        }
    }
    if r.dead_letters >= s.dead_letters {
        out.insert(
            "dead-letters".into(),
            format!("{} inbound messages failed to apply (refloop dead-letters list)", r.dead_letters),
        );
    }
    if let Some(d) = r.disk
        && d.free_ratio() < s.disk_free_min
    {
        out.insert("disk-nearly-full".into(), format!("the database's disk is {:.1} % free", d.free_ratio() * 100.0));
    }
    for (part, last) in &r.pollers {
        if now - *last > s.poller_stale {
            out.insert(format!("poller-stuck:{part}"), format!("{part} has not worked since {last}"));
        }
    }
    out
}

/// The process's share: where notices go, the settings, and the pollers it runs.
#[derive(Default)]
pub(crate) struct Problems {
    notifier: Option<Arc<dyn OpsNotifier>>,
    settings: ProblemSettings,
    pollers: std::sync::Mutex<BTreeMap<&'static str, Timestamp>>,
}

impl App {
    /// Problem notices go to `notifier` under `settings`.
    pub fn with_problem_notices(mut self, notifier: Arc<dyn OpsNotifier>, settings: ProblemSettings) -> Self {
        self.problems = Arc::new(Problems { notifier: Some(notifier), settings, pollers: Default::default() });
        self
    }

    /// From now on `part` (a poller this process runs) is expected to record good passes.
    pub fn watch_poller(&self, part: &'static str) {
        let now = self.now();
        self.problems.pollers.lock().expect("the pollers' lock").entry(part).or_insert(now);
    }

    /// A good pass of the poller `part`: for the problem check and the metric
    /// `refloop_last_success_timestamp_seconds{part}`.
    pub fn record_success(&self, part: &'static str) {
        let now = self.now();
        self.problems.pollers.lock().expect("the pollers' lock").insert(part, now);
        metrics::gauge!("refloop_last_success_timestamp_seconds", "part" => part)
            .set(now.as_millisecond() as f64 / 1000.0);
    }

    /// Looks for problems; opens the new ones and clears the gone ones in the database, and
    /// posts a notice for each this process opened or cleared. Returns the notices posted.
    pub async fn check_problems(&self) -> Result<Vec<String>, AppError> {
        let Some(notifier) = self.problems.notifier.clone() else { return Ok(Vec::new()) };
        let now = self.now();
        let readings = Readings {
            channels: self.store.channel_activity().await?,
            dead_letters: self.store.count_inbox(crate::InboxStatus::Dead).await? as i64,
            disk: self.store.disk_space(),
            pollers: self.problems.pollers.lock().expect("the pollers' lock").clone(),
        };
        let found = problems_in(&readings, now, &self.problems.settings);
        let mut notices = Vec::new();
        for (name, detail) in &found {
            if self.store.open_problem(name, detail, now).await? {
                notices.push(format!("refloop problem: {detail}. `refloop doctor` checks each part."));
            }
        }
        for (name, detail) in self.store.open_problems().await? {
            if !found.contains_key(&name) && self.store.clear_problem(&name, now).await? {
                notices.push(format!("refloop problem cleared: {name} (it was: {detail})."));
            }
        }
        for text in &notices {
            if let Err(e) = notifier.notify(text).await {
                // Told once or not at all: the problem stays recorded (and in /metrics).
                tracing::warn!(error = %e, "a problem notice could not be posted");
            }
        }
        Ok(notices)
    }
}

/// The problems table: opened and cleared once each (across processes).
#[async_trait::async_trait]
pub trait ProblemStore: Send + Sync {
    /// Opens `name` unless it is open: true when this call opened it.
    async fn open_problem(&self, name: &str, detail: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Clears `name` if it is open: true when this call cleared it.
    async fn clear_problem(&self, name: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// The open problems: name and detail.
    async fn open_problems(&self) -> Result<Vec<(String, String)>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn each_condition_is_a_problem_only_past_its_threshold() {
        let now = t("2026-03-02T15:00:00Z");
        let s = ProblemSettings::default();
        let channel = |name: &str, ok: Option<&str>, failed: Option<&str>| ChannelActivity {
            channel: name.into(),
            last_success: ok.map(t),
            last_failure: failed.map(t),
        };
        let r = Readings {
            channels: vec![
                channel("sms", Some("2026-03-02T14:00:00Z"), Some("2026-03-02T14:50:00Z")),
                channel("chat", Some("2026-03-02T14:55:00Z"), Some("2026-03-02T14:50:00Z")),
                channel("note-request", None, Some("2026-03-02T13:00:00Z")),
                channel("ehr-task", None, Some("2026-03-02T14:30:00Z")),
            ],
            dead_letters: 10,
            disk: Some(DiskSpace { free: 9, total: 100 }),
            pollers: BTreeMap::from([
                ("fhir-poller", t("2026-03-02T14:29:00Z")),
                ("direct-mailbox", t("2026-03-02T14:31:00Z")),
            ]),
        };
        let found: Vec<String> = problems_in(&r, now, &s).into_keys().collect();
        assert_eq!(
            found,
            [
                "channel-failing:ehr-task",
                "channel-failing:sms",
                "dead-letters",
                "disk-nearly-full",
                "poller-stuck:fhir-poller"
            ],
            "chat worked since its failure; note-request failed over an hour ago; the mailbox is within 30 min"
        );
        let calm = Readings {
            channels: vec![],
            dead_letters: 9,
            disk: Some(DiskSpace { free: 10, total: 100 }),
            pollers: BTreeMap::new(),
        };
        assert!(problems_in(&calm, now, &s).is_empty());
    }
}
