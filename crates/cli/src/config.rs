//! Configuration in layers: the embedded commented defaults, the file, `REFLOOP_*`
//! environment variables, then flags. Validated once, at start.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration as StdDuration};

use anyhow::{Context, bail};
use jiff::{Timestamp, civil::Time, tz::TimeZone};
#[cfg(test)]
use refloop_domain::Window;
use refloop_domain::{Duration, Policy, ProviderId, QuietHours, Specialty, WindowSet};
use serde::{Deserialize, Serialize};

mod channels;
mod edges;
mod layers;
mod validate;

/// A whole number of seconds as a standard duration.
fn seconds(d: Duration) -> StdDuration {
    StdDuration::from_secs(d.as_seconds().unsigned_abs())
}

/// The commented defaults, embedded in the binary.
pub const DEFAULTS: &str = include_str!("../../../config.default.toml");

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub database: Database,
    pub auth: Auth,
    pub clock: ClockConfig,
    pub workers: Workers,
    pub log: Log,
    pub practice: Practice,
    pub workflow: Workflow,
    pub hl7: Hl7,
    pub sms: Sms,
    pub chat: Chat,
    pub ehr: Ehr,
    pub fax: Fax,
    pub direct: Direct,
    pub notes: Notes,
    pub directory: DirectoryConfig,
    pub retention: RetentionConfig,
}

/// The specialist directory.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// How often the entries' SMART Scheduling Links manifests are read (at least a minute).
    pub scheduling_poll: Duration,
}

/// Which documents that come back answer a referral.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notes {
    /// LOINC document types that close the loop besides the consult note (11488-4).
    pub document_types: Vec<String>,
}

/// How long data is kept.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The raw body of a settled inbound message (its id, sender, outcome and ACK stay).
    pub raw_messages: Duration,
    /// Audit rows (deleted from the head of the hash chain once older).
    pub audit: Duration,
    /// The content of filed and dismissed documents.
    pub documents: Duration,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub http: String,
    pub mllp: String,
    /// An HTTP request's headers must arrive within this (and a kept-alive connection may be
    /// idle this long).
    pub header_timeout: Duration,
    /// Open connections at most, in all and from one address — for each listener (HTTP, MLLP).
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// HTTPS: PEM files for the certificate chain and its key; when set, the HTTP listener
    /// speaks TLS only (1.2 and 1.3) and answers carry HSTS.
    pub tls_cert: String,
    pub tls_key: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    /// How long `serve` waits for an unreachable database at start, trying again with backoff.
    pub connect_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    pub mode: String,
    pub start: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    pub poll_interval: Duration,
    pub outbox_lease: Duration,
    pub outbox_batch: u32,
    pub shutdown_grace: Duration,
}

/// API tokens and sign-in.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// How long a new API token works (`token create --expires-in` for another span).
    pub token_lifetime: Duration,
    /// Failed sign-ins in a row that lock an account, and for how long.
    pub lockout_after: u32,
    pub lockout_for: Duration,
    /// Failed sign-ins from one address in a quarter of an hour before it must wait (429).
    pub signins_per_address: usize,
    /// Refused API tokens from one address in a minute before it must wait (429).
    pub tokens_per_address: usize,
    /// Roles that must sign in with a second factor (TOTP); they enrol at their first sign-in.
    pub mfa_required: Vec<String>,
    /// Writes one API token may make in a minute before it must wait (429).
    pub token_writes_per_minute: usize,
    /// Single sign-on through the practice's OpenID provider (off while `issuer` is empty).
    pub oidc: OidcConfig,
}

/// `[auth.oidc]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_url: String,
    pub username_claim: String,
    pub role_claim: String,
    pub label: String,
    /// Claim value → role (admin, coordinator or viewer).
    pub roles: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Practice {
    pub name: String,
    pub phone: String,
    pub time_zone: String,
    pub phone_region: String,
    /// Open weekdays (`"mon"` … `"sun"`).
    pub business_days: Vec<String>,
    /// Opening hours on those days, local: `"08:00-17:00"`.
    pub business_hours: String,
    /// The practice's own closed days (`"2026-12-24"`).
    pub holidays: Vec<String>,
    /// The US federal holidays, as observed, are closed days too.
    pub us_federal_holidays: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub dedupe_window: Duration,
    /// The reports count a referral as mature (its whole path has had time) this long after
    /// its order.
    pub mature_after: Duration,
    /// A note request unanswered this long goes out the next way (FHIR → Direct → fax → a
    /// person).
    pub note_ladder_wait: Duration,
    pub quiet_hours_start: String,
    pub quiet_hours_end: String,
    pub pilot_providers: Vec<String>,
    pub call_retry: String,
    pub routine: refloop_domain::StageWindows,
    pub urgent: refloop_domain::StageWindows,
    #[serde(default)]
    pub specialty: BTreeMap<String, WindowSet>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hl7 {
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    /// A message whose first bytes came must be complete within this.
    pub frame_timeout: Duration,
    /// PEM certificate chain and key: when set, the MLLP listener speaks only TLS.
    pub tls_cert: String,
    pub tls_key: String,
    /// PEM CA: when set, senders must present a certificate it signed.
    pub tls_client_ca: String,
    pub future_tolerance: Duration,
    /// A lab set-up: take messages from anyone who can connect (`check-config` warns).
    pub allow_any_sender: bool,
    /// The known senders; with none (and `allow_any_sender` off) every message is refused.
    #[serde(default)]
    pub senders: Vec<SenderEntry>,
    #[serde(default)]
    pub specialty_map: BTreeMap<String, String>,
}

/// `[[hl7.senders]]`: a system that may send us HL7.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SenderEntry {
    /// Its name; over HTTP (`POST /hl7v2`) the name of its API token.
    pub name: String,
    /// MSH-3, the sending application (its namespace id).
    pub msh3: String,
    /// MSH-4, the sending facility; empty or absent for any.
    #[serde(default)]
    pub msh4: String,
    /// The networks it connects from over MLLP, e.g. `["10.1.20.0/24"]`.
    pub cidrs: Vec<String>,
    /// With MLLP over mutual TLS (`[hl7] tls_client_ca`): the subject its client certificate
    /// must carry, e.g. `"CN=epic-bridge,O=North Clinic"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_subject: Option<String>,
}

/// Note requests by Direct (SMTP through a HISP relay).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    pub connector: String,
    pub relay_host: String,
    pub relay_port: u16,
    pub tls: String,
    pub username: String,
    pub password: String,
    pub from: String,
    /// The Direct mailbox the answers come to: `imaps://host:port/FOLDER` (or `imap://` to a
    /// loopback host); empty: not read.
    pub imap_url: String,
    pub imap_user: String,
    pub imap_password: String,
    /// A PEM file of the CA that signs the mailbox's certificate; empty: the public roots.
    pub imap_ca: String,
    /// A client certificate (PEM chain) and its key, when the HISP asks for one.
    pub imap_client_cert: String,
    pub imap_client_key: String,
    /// How often the mailbox is read.
    pub imap_poll: Duration,
    /// New referrals to specialists the directory marks as taking 360X also go to them as a
    /// 360X referral request (needs `connector = "smtp"`).
    pub referrals_360x: bool,
}

/// Note requests by fax.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fax {
    pub connector: String,
    pub api_base: String,
    pub api_key: String,
    pub api_secret: String,
    /// The inbound-fax webhook's HMAC secret (empty: the webhook is off).
    pub webhook_secret: String,
}

/// Team chat.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    pub connector: String,
    pub webhook_url: String,
    pub link_base: String,
    pub problem_dead_letters: i64,
    pub problem_poller_stale: Duration,
    pub problem_disk_free_percent: i64,
}

/// Patient SMS.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sms {
    pub mode: String,
    pub api_base: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
    pub public_url: String,
    pub text_notification: String,
    pub text_reminder: String,
    pub text_attendance: String,
    pub text_opt_out: String,
    pub text_opt_in: String,
    pub text_help: String,
    pub reply_in_quiet_hours: bool,
    /// Stage 1's second text this long after the order when the first had no reply and no
    /// booking (`"3d"`, `"2bd"`); empty: none.
    pub reminder_after: String,
    /// The workflow's texts to one referral's patient in any 7 days at most (0: no limit).
    pub max_per_week: u32,
    pub timeout: Duration,
    /// The texts in other languages, by ISO 639-1 code (`[sms.texts.es]`).
    #[serde(default)]
    pub texts: std::collections::BTreeMap<String, refloop_app::Translation>,
}

/// The EHR: its FHIR server for pull mode (and, later, write-back).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ehr {
    pub base_url: String,
    pub auth: String,
    pub token: String,
    pub client_id: String,
    pub token_url: String,
    pub private_key_file: String,
    pub scope: String,
    pub poll_interval: Duration,
    pub page_size: u32,
    pub resource_types: Vec<String>,
    pub write_back: bool,
    pub portal_messages: bool,
}

/// How the clock is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    System,
    Manual { start: Option<Timestamp> },
}

/// Command-line overrides, applied last.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub database: Option<String>,
    pub http: Option<String>,
    pub mllp: Option<String>,
}

impl Config {
    /// Loads defaults, then `file`, then the environment, then `overrides`, and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> anyhow::Result<Config> {
        let table = layers::table(DEFAULTS, file, env)?;
        let mut config: Config = table.try_into().context("invalid configuration")?;
        if let Some(url) = &overrides.database {
            config.database.url = url.clone();
        }
        if let Some(http) = &overrides.http {
            config.server.http = http.clone();
        }
        if let Some(mllp) = &overrides.mllp {
            config.server.mllp = mllp.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn http_addr(&self) -> anyhow::Result<SocketAddr> {
        self.server.http.parse().with_context(|| format!("server.http: {:?} is not an address", self.server.http))
    }

    pub fn poll_interval(&self) -> StdDuration {
        seconds(self.workers.poll_interval)
    }

    /// How long in-flight sends may take to finish at shutdown.
    pub fn shutdown_grace(&self) -> StdDuration {
        seconds(self.workers.shutdown_grace)
    }

    /// How long `serve` waits for its database at start.
    pub fn connect_timeout(&self) -> StdDuration {
        seconds(self.database.connect_timeout)
    }

    /// How the outbox worker claims and sends.
    pub fn outbox(&self) -> refloop_app::OutboxSettings {
        refloop_app::OutboxSettings {
            lease: self.workers.outbox_lease.to_signed(),
            batch: self.workers.outbox_batch,
            ..refloop_app::OutboxSettings::default()
        }
    }

    pub fn clock_mode(&self) -> anyhow::Result<ClockMode> {
        match self.clock.mode.as_str() {
            "system" => Ok(ClockMode::System),
            "manual" => {
                let start = match self.clock.start.trim() {
                    "" => None,
                    s => Some(
                        s.parse::<Timestamp>()
                            .with_context(|| format!("clock.start: {s:?} is not an RFC 3339 instant"))?,
                    ),
                };
                Ok(ClockMode::Manual { start })
            }
            other => bail!("clock.mode: {other:?} is not \"system\" or \"manual\""),
        }
    }

    pub fn hl7_map(&self) -> anyhow::Result<refloop_hl7::MapConfig> {
        let mut map = refloop_hl7::MapConfig::with_defaults(self.policy()?.time_zone);
        for (code, specialty) in &self.hl7.specialty_map {
            let s = Specialty::parse(specialty).map_err(|e| anyhow::anyhow!("hl7.specialty_map.{code}: {e}"))?;
            map.specialty_map.insert(code.trim().to_ascii_lowercase(), s);
        }
        Ok(map)
    }

    /// The workflow policy the domain runs on.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        let w = &self.workflow;
        let time = |field: &str, s: &str| -> anyhow::Result<Time> {
            s.parse::<Time>().with_context(|| format!("workflow.{field}: {s:?} is not a time such as 20:00"))
        };
        let mut specialty_windows = BTreeMap::new();
        for (code, set) in &w.specialty {
            let s = Specialty::parse(code).map_err(|e| anyhow::anyhow!("workflow.specialty.{code}: {e}"))?;
            specialty_windows.insert(s, set.clone());
        }
        let pilot_providers = w
            .pilot_providers
            .iter()
            .map(|p| ProviderId::parse(p).map_err(|e| anyhow::anyhow!("workflow.pilot_providers: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Policy {
            windows: WindowSet { routine: w.routine.clone(), urgent: w.urgent.clone() },
            specialty_windows,
            dedupe_window: w.dedupe_window,
            quiet_hours: QuietHours {
                start: time("quiet_hours_start", &w.quiet_hours_start)?,
                end: time("quiet_hours_end", &w.quiet_hours_end)?,
            },
            pilot_providers,
            calendar: self.calendar()?,
            time_zone: TimeZone::get(&self.practice.time_zone).with_context(|| {
                format!("practice.time_zone: {:?} is not an IANA time zone", self.practice.time_zone)
            })?,
            phone_region: refloop_app::phone_region(&self.practice.phone_region).ok_or_else(|| {
                anyhow::anyhow!(
                    "practice.phone_region: {:?} is not a country code (ISO 3166, e.g. US, GB, CA)",
                    self.practice.phone_region
                )
            })?,
            portal_messages: self.ehr.write_back && self.ehr.portal_messages,
            note_write_back: self.ehr.write_back,
            referrals_360x: self.direct.referrals_360x && self.direct.connector == "smtp",
            // The app sets which channels reach someone from the connectors it is given.
            live: refloop_domain::LiveChannels::ALL,
            replies_in_quiet_hours: self.sms.reply_in_quiet_hours,
            reminder_after: match self.sms.reminder_after.trim() {
                "" => None,
                w => Some(w.parse::<refloop_domain::Window>().map_err(|e| anyhow::anyhow!("sms.reminder_after: {e}"))?),
            },
            texts_per_week: self.sms.max_per_week,
            future_tolerance: self.hl7.future_tolerance,
            mature_after: w.mature_after,
            note_ladder_wait: w.note_ladder_wait,
            call_retry: refloop_domain::CallRetry::parse(&w.call_retry)
                .map_err(|e| anyhow::anyhow!("workflow.call_retry: {e}"))?,
        })
    }

    /// The practice's business days, hours and holidays.
    pub fn calendar(&self) -> anyhow::Result<refloop_domain::BusinessCalendar> {
        let p = &self.practice;
        let mut cal = refloop_domain::BusinessCalendar { us_federal: p.us_federal_holidays, ..Default::default() };
        let days = p
            .business_days
            .iter()
            .map(|d| {
                refloop_domain::parse_weekday(d)
                    .ok_or_else(|| anyhow::anyhow!("practice.business_days: {d:?} is not a weekday such as \"mon\""))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if days.is_empty() {
            bail!("practice.business_days: name at least one open weekday");
        }
        cal.set_days(&days);
        let hours_err = || {
            anyhow::anyhow!(
                "practice.business_hours: {:?} is not opening and closing times such as \"08:00-17:00\"",
                p.business_hours
            )
        };
        let (opens, closes) = p.business_hours.split_once('-').ok_or_else(hours_err)?;
        cal.opens = opens.trim().parse::<Time>().map_err(|_| hours_err())?;
        cal.closes = closes.trim().parse::<Time>().map_err(|_| hours_err())?;
        if cal.opens >= cal.closes {
            return Err(hours_err());
        }
        for h in &p.holidays {
            let date = h
                .trim()
                .parse::<jiff::civil::Date>()
                .map_err(|_| anyhow::anyhow!("practice.holidays: {h:?} is not a date such as \"2026-12-24\""))?;
            cal.holidays.insert(date);
        }
        Ok(cal)
    }

    /// The effective configuration as TOML, with secrets (database passwords) hidden.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url(&shown.database.url);
        // A Slack webhook URL is itself a secret.
        for secret in [
            &mut shown.ehr.token,
            &mut shown.sms.auth_token,
            &mut shown.direct.password,
            &mut shown.direct.imap_password,
            &mut shown.fax.api_secret,
            &mut shown.fax.webhook_secret,
            &mut shown.chat.webhook_url,
        ] {
            if !secret.is_empty() {
                *secret = "(hidden)".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_default()
    }
}

pub use refloop_store::sqlite_path;

/// Hides the password of a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_embedded_defaults_are_the_spec_defaults() {
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
        let p = c.policy().unwrap();
        assert_eq!(p.windows.routine.notify, Window::hours(24));
        assert_eq!(p.windows.routine.scheduling, Window::days(7));
        assert_eq!(p.windows.urgent.notify, Window::hours(2));
        assert_eq!(p.windows.urgent.scheduling, Window::days(3));
        assert_eq!(p.dedupe_window, Duration::days(14));
        assert_eq!(p.calendar, refloop_domain::BusinessCalendar::default(), "Mon–Fri 08:00–17:00, US federal holidays");
        assert_eq!(c.database.url, "sqlite://refloop.db");
        assert_eq!(c.clock_mode().unwrap(), ClockMode::System);
    }

    #[test]
    fn file_then_env_then_flags_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refloop.toml");
        std::fs::write(
            &path,
            "[database]\nurl = \"sqlite://file.db\"\n[workflow.routine]\nscheduling = \"5d\"\n[clock]\nmode = \"manual\"\n",
        )
        .unwrap();
        let e = env(&[
            ("REFLOOP_WORKFLOW_ROUTINE_SCHEDULING", "6d"),
            ("REFLOOP_WORKFLOW_PILOT_PROVIDERS", "dr-a, dr-b"),
            ("REFLOOP_DATABASE_URL", "sqlite://env.db"),
        ]);
        let c = Config::load(Some(&path), e.clone(), &Overrides::default()).unwrap();
        assert_eq!(c.workflow.routine.scheduling, Window::days(6));
        let bd = Config::load(None, env(&[("REFLOOP_WORKFLOW_ROUTINE_SCHEDULING", "5bd")]), &Overrides::default());
        assert_eq!(bd.unwrap().policy().unwrap().windows.routine.scheduling, Window::BusinessDays(5));
        assert_eq!(c.workflow.pilot_providers, vec!["dr-a", "dr-b"]);
        assert_eq!(c.database.url, "sqlite://env.db");
        assert_eq!(c.clock_mode().unwrap(), ClockMode::Manual { start: None });
        let flags = Overrides { database: Some("sqlite://flag.db".into()), ..Overrides::default() };
        assert_eq!(Config::load(Some(&path), e, &flags).unwrap().database.url, "sqlite://flag.db");
    }

    #[test]
    fn invalid_settings_are_refused_with_the_key_named() {
        let cases = [
            ("REFLOOP_WORKFLOW_ROUTINE_NOTIFY", "soon", "invalid window"),
            ("REFLOOP_WORKFLOW_ROUTINE_SCHEDULING", "5 days", "invalid window"),
            ("REFLOOP_PRACTICE_BUSINESS_DAYS", "mon, funday", "practice.business_days"),
            ("REFLOOP_PRACTICE_BUSINESS_HOURS", "17:00-08:00", "practice.business_hours"),
            ("REFLOOP_PRACTICE_HOLIDAYS", "2026-02-30", "practice.holidays"),
            ("REFLOOP_CLOCK_MODE", "sundial", "clock.mode"),
            ("REFLOOP_PRACTICE_TIME_ZONE", "Mars/Olympus", "practice.time_zone"),
            ("REFLOOP_PRACTICE_PHONE_REGION", "Atlantis", "practice.phone_region"),
            ("REFLOOP_SERVER_HTTP", "localhost", "server.http"),
            ("REFLOOP_DATABASE_URL", "mysql://x", "database.url"),
        ];
        for (k, v, expected) in cases {
            let err = Config::load(None, env(&[(k, v)]), &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{k}={v}: {err:#}");
        }
    }

    #[test]
    fn the_hl7_specialty_map_adds_local_codes_to_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refloop.toml");
        std::fs::write(&path, "[hl7.specialty_map]\n\"RHH-GI\" = \"gastroenterology\"\n").unwrap();
        let map = Config::load(Some(&path), env(&[]), &Overrides::default()).unwrap().hl7_map().unwrap();
        assert_eq!(map.specialty_map.get("rhh-gi").map(|s| s.as_str()), Some("gastroenterology"));
        assert_eq!(map.specialty_map.get("car").map(|s| s.as_str()), Some("cardiology"));
        std::fs::write(&path, "[hl7.specialty_map]\nx = \"not a code!\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("hl7.specialty_map.x"), "{err:#}");
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refloop.toml");
        std::fs::write(&path, "[workflow]\nscheduling_window = \"7d\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[]), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("scheduling_window"), "{err:#}");
    }

    #[test]
    fn check_config_hides_database_passwords() {
        let flags =
            Overrides { database: Some("postgres://app:hunter2@db:5432/refloop".into()), ..Overrides::default() };
        let c = Config::load(None, env(&[]), &flags).unwrap();
        let shown = c.redacted_toml();
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("postgres://app:***@db:5432/refloop"));
    }
}
