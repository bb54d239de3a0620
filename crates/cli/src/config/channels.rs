//! What the channels take from the configuration: which are live, the SMS provider and its
//! webhooks, the EHR's pull-mode auth, the Direct mailbox, the note types that close a loop.

use anyhow::{Context, bail};

use super::{Config, seconds};

impl Config {
    /// Which outbound channels this config connects to a real vendor or system (the rest only
    /// log: off). `build_app` connects exactly these.
    pub fn live_channels(&self) -> anyhow::Result<Vec<(refloop_domain::Channel, bool)>> {
        use refloop_domain::Channel;
        let ehr = self.ehr_poller_auth()?.is_some();
        Ok(Channel::ALL
            .iter()
            .map(|&c| {
                let live = match c {
                    Channel::Sms => self.sms_live(),
                    Channel::Chat => self.chat_live(),
                    Channel::EhrTask | Channel::Portal => self.ehr.write_back && ehr,
                    Channel::EhrQuery => ehr,
                    Channel::NoteRequest => self.fax_live() || self.direct_live(),
                };
                (c, live)
            })
            .collect())
    }

    pub fn sms_live(&self) -> bool {
        self.sms.mode == "twilio"
    }

    pub fn chat_live(&self) -> bool {
        self.chat.connector == "slack"
    }

    pub fn fax_live(&self) -> bool {
        self.fax.connector == "http"
    }

    pub fn direct_live(&self) -> bool {
        self.direct.connector == "smtp"
    }

    /// When an operational problem is posted to the chat.
    pub fn problem_settings(&self) -> anyhow::Result<refloop_app::problems::ProblemSettings> {
        let c = &self.chat;
        if c.problem_dead_letters < 1 || !(1..=99).contains(&c.problem_disk_free_percent) {
            bail!("chat.problem_dead_letters: at least 1; chat.problem_disk_free_percent: 1 to 99");
        }
        if c.problem_poller_stale.as_seconds() < 60 {
            bail!("chat.problem_poller_stale: at least 1m");
        }
        Ok(refloop_app::problems::ProblemSettings {
            dead_letters: c.problem_dead_letters,
            disk_free_min: c.problem_disk_free_percent as f64 / 100.0,
            poller_stale: c.problem_poller_stale.to_signed(),
            ..Default::default()
        })
    }

    /// The HISP relay that carries Direct messages, when `[direct] connector = "smtp"`.
    pub fn direct_relay(&self) -> Option<refloop_connectors::DirectConfig> {
        self.direct_live().then(|| refloop_connectors::DirectConfig {
            relay_host: self.direct.relay_host.clone(),
            relay_port: self.direct.relay_port,
            tls: self.direct.tls.clone(),
            username: self.direct.username.clone(),
            password: self.direct.password.clone(),
            from: self.direct.from.clone(),
        })
    }

    /// The practice's fax and letter details, with the fax API when `[fax] connector = "http"`
    /// (else an empty `api_base`: fax off).
    pub fn fax_api(&self) -> refloop_connectors::FaxConfig {
        let http = self.fax_live();
        refloop_connectors::FaxConfig {
            api_base: if http { self.fax.api_base.clone() } else { String::new() },
            api_key: self.fax.api_key.clone(),
            api_secret: self.fax.api_secret.clone(),
            practice: self.practice.name.clone(),
            practice_phone: self.practice.phone.clone(),
        }
    }

    /// How to authenticate to the EHR for pull mode; `None` when pull mode is off.
    pub fn ehr_poller_auth(&self) -> anyhow::Result<Option<refloop_fhir::EhrAuth>> {
        let e = &self.ehr;
        if e.base_url.is_empty() {
            return Ok(None);
        }
        if !(e.base_url.starts_with("http://") || e.base_url.starts_with("https://")) {
            bail!("ehr.base_url: an http(s) URL of the EHR's FHIR R4 server");
        }
        if e.poll_interval.as_seconds() < 1 {
            bail!("ehr.poll_interval: at least 1s");
        }
        let known = refloop_fhir::MAPPED;
        if let Some(bad) = e.resource_types.iter().find(|t| !known.contains(&t.as_str())) {
            bail!("ehr.resource_types: {bad} is not one refloop reads ({})", known.join(", "));
        }
        Ok(Some(match e.auth.as_str() {
            "none" => refloop_fhir::EhrAuth::None,
            "bearer" if !e.token.is_empty() => refloop_fhir::EhrAuth::Bearer(e.token.clone()),
            "bearer" => bail!("ehr.token: required with auth = \"bearer\""),
            "smart" => {
                if e.client_id.is_empty() || e.token_url.is_empty() || e.private_key_file.is_empty() {
                    bail!("ehr: auth = \"smart\" needs client_id, token_url and private_key_file");
                }
                let pem = std::fs::read(&e.private_key_file)
                    .with_context(|| format!("ehr.private_key_file: cannot read {}", e.private_key_file))?;
                refloop_fhir::EhrAuth::smart(&e.client_id, &e.token_url, &pem, &e.scope)
                    .map_err(|err| anyhow::anyhow!("ehr.private_key_file: {err}"))?
            }
            other => bail!("ehr.auth: {other:?} is not none, bearer or smart"),
        }))
    }

    /// The texts of messages to patients (SMS and portal).
    pub fn patient_texts(&self) -> refloop_connectors::SmsTexts {
        let s = &self.sms;
        refloop_connectors::SmsTexts {
            practice: self.practice.name.clone(),
            practice_phone: self.practice.phone.clone(),
            notification: s.text_notification.clone(),
            reminder: s.text_reminder.clone(),
            attendance: s.text_attendance.clone(),
            opt_out_confirmation: s.text_opt_out.clone(),
            opt_in_confirmation: s.text_opt_in.clone(),
            help: s.text_help.clone(),
            translations: s.texts.clone(),
            specialty_names: Default::default(),
        }
    }

    /// The SMS connector's settings and its webhooks', when `[sms] mode = "twilio"`.
    pub fn sms(&self) -> Option<(refloop_connectors::TwilioConfig, refloop_web::SmsWebhooks)> {
        if !self.sms_live() {
            return None;
        }
        let s = &self.sms;
        let base = s.public_url.trim_end_matches('/');
        let url = |path: &str| if base.is_empty() { String::new() } else { format!("{base}{path}") };
        let texts = self.patient_texts();
        let cfg = refloop_connectors::TwilioConfig {
            api_base: s.api_base.clone(),
            account_sid: s.account_sid.clone(),
            auth_token: s.auth_token.clone(),
            from: s.from.clone(),
            status_callback: url("/webhooks/sms/status"),
            texts: texts.clone(),
            link_base: base.to_owned(),
            timeout: seconds(s.timeout),
        };
        let hooks = refloop_web::SmsWebhooks {
            auth_token: s.auth_token.clone(),
            status_url: url("/webhooks/sms/status"),
            inbound_url: url("/webhooks/sms/inbound"),
            texts,
        };
        Some((cfg, hooks))
    }

    /// How HL7 v2 messages are read: time zone and specialty codes.
    /// The Direct mailbox to read, when one is configured (its URL checked).
    pub fn direct_mailbox(&self) -> anyhow::Result<Option<refloop_direct::MailboxConfig>> {
        let d = &self.direct;
        if d.imap_url.is_empty() {
            return Ok(None);
        }
        refloop_direct::parse_url(&d.imap_url)?;
        if d.imap_user.is_empty() {
            anyhow::bail!("direct.imap_user: who reads the mailbox at {}", d.imap_url);
        }
        Ok(Some(refloop_direct::MailboxConfig {
            url: d.imap_url.clone(),
            user: d.imap_user.clone(),
            password: d.imap_password.clone(),
            ca_file: (!d.imap_ca.is_empty()).then(|| std::path::PathBuf::from(&d.imap_ca)),
            client_cert: match (d.imap_client_cert.is_empty(), d.imap_client_key.is_empty()) {
                (true, true) => None,
                (false, false) => Some((d.imap_client_cert.clone().into(), d.imap_client_key.clone().into())),
                _ => anyhow::bail!("direct.imap_client_cert and imap_client_key: give both or neither"),
            },
        }))
    }

    /// The LOINC document types that answer a referral besides the consult note, checked.
    pub fn note_types(&self) -> anyhow::Result<Vec<String>> {
        self.notes
            .document_types
            .iter()
            .map(|code| {
                let (a, b) = code.trim().split_once('-').unwrap_or_default();
                let ok = !a.is_empty()
                    && a.len() <= 7
                    && b.len() == 1
                    && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit());
                if ok {
                    Ok(code.trim().to_owned())
                } else {
                    anyhow::bail!("notes.document_types: {code:?} is not a LOINC code like 11506-3")
                }
            })
            .collect()
    }
}
