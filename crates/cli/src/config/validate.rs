//! The checks a configuration passes before anything starts: each refusal names its key.

use std::net::SocketAddr;

use anyhow::{Context, bail};

use super::Config;

impl Config {
    /// Refuses a configuration that cannot work, naming the key.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.http_addr()?;
        self.server
            .mllp
            .parse::<SocketAddr>()
            .with_context(|| format!("server.mllp: {:?} is not an address", self.server.mllp))?;
        let url = &self.database.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("database.url: use sqlite://PATH or postgres://…");
        }
        self.clock_mode()?;
        if let Some(bad) = self.sms.texts.keys().find(|k| refloop_domain::language_code(k) != Some(k.as_str())) {
            bail!("sms.texts.{bad}: name the table by an ISO 639-1 language code (es, vi, zh …)");
        }
        self.policy()?;
        self.hl7_map()?;
        self.note_types()?;
        self.direct_mailbox()?;
        if !(1024..=64 * 1024 * 1024).contains(&self.hl7.max_message_bytes) {
            bail!("hl7.max_message_bytes: between 1024 and 67108864");
        }
        if self.hl7.tls_cert.is_empty() != self.hl7.tls_key.is_empty() {
            bail!("hl7.tls_cert and hl7.tls_key: set both for MLLP over TLS, or neither");
        }
        self.hl7_senders()?;
        if self.workflow.note_ladder_wait.as_seconds() < 86_400 {
            bail!("workflow.note_ladder_wait: at least 1d");
        }
        if self.retention.documents.as_seconds() < 30 * 86_400 {
            bail!("retention.documents: at least 30d");
        }
        if self.retention.raw_messages.as_seconds() < 86_400 {
            bail!("retention.raw_messages: at least 1d");
        }
        for role in &self.auth.mfa_required {
            if !matches!(role.as_str(), "admin" | "coordinator" | "viewer") {
                bail!("auth.mfa_required: {role:?} is not a role that signs in (admin, coordinator, viewer)");
            }
        }
        let o = &self.auth.oidc;
        if !o.issuer.is_empty() {
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| o.issuer.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/'])));
            if !o.issuer.starts_with("https://") && !loopback {
                bail!("auth.oidc.issuer: https:// (plain http only on loopback)");
            }
            for (field, value) in
                [("client_id", &o.client_id), ("client_secret", &o.client_secret), ("redirect_url", &o.redirect_url)]
            {
                if value.is_empty() {
                    bail!("auth.oidc.{field}: needed when auth.oidc.issuer is set");
                }
            }
            if !o.redirect_url.ends_with("/login/sso/callback") {
                bail!("auth.oidc.redirect_url: refloop's address followed by /login/sso/callback");
            }
            if o.roles.is_empty() {
                bail!("auth.oidc.roles: map at least one value of the {} claim to a role", o.role_claim);
            }
            for (value, role) in &o.roles {
                if !matches!(role.as_str(), "admin" | "coordinator" | "viewer") {
                    bail!("auth.oidc.roles.{value}: {role:?} is not admin, coordinator or viewer");
                }
            }
        }
        if self.retention.audit.as_seconds() < 365 * 86_400 {
            bail!("retention.audit: at least 365d (HIPAA asks for six years of security documentation)");
        }
        if self.auth.token_lifetime.as_seconds() < 60 {
            bail!("auth.token_lifetime: at least 1m");
        }
        if self.auth.lockout_after == 0 || self.auth.signins_per_address == 0 || self.auth.tokens_per_address == 0 {
            bail!("auth.lockout_after, signins_per_address and tokens_per_address: at least 1");
        }
        if self.server.tls_cert.is_empty() != self.server.tls_key.is_empty() {
            bail!("server.tls_cert and server.tls_key: set both for HTTPS, or neither");
        }
        if self.hl7.frame_timeout.as_seconds() < 1 || self.hl7.idle_timeout.as_seconds() < 1 {
            bail!("hl7.idle_timeout and hl7.frame_timeout: at least 1s");
        }
        if self.server.header_timeout.as_seconds() < 1 {
            bail!("server.header_timeout: at least 1s");
        }
        if self.server.max_connections == 0 || self.server.max_connections_per_address == 0 {
            bail!("server.max_connections and max_connections_per_address: at least 1");
        }
        if self.hl7.tls_cert.is_empty() && !self.hl7.tls_client_ca.is_empty() {
            bail!("hl7.tls_client_ca: needs hl7.tls_cert and hl7.tls_key");
        }
        match self.chat.connector.as_str() {
            "log" => {}
            "slack"
                if self.chat.webhook_url.starts_with("https://") || self.chat.webhook_url.starts_with("http://") => {}
            "slack" => {
                bail!("chat.webhook_url: the incoming webhook's http(s) URL is required with connector = \"slack\"")
            }
            other => bail!("chat.connector: {other:?} is not \"log\" or \"slack\""),
        }
        match self.fax.connector.as_str() {
            "log" => {}
            "http" if self.fax.api_base.starts_with("http") && !self.fax.api_key.is_empty() => {}
            "http" => bail!("fax: connector = \"http\" needs api_base and api_key"),
            other => bail!("fax.connector: {other:?} is not \"log\" or \"http\""),
        }
        match self.direct.connector.as_str() {
            "log" => {}
            "smtp" => {
                let d = &self.direct;
                if d.relay_host.is_empty() || !d.from.contains('@') {
                    bail!("direct: connector = \"smtp\" needs relay_host and from (our Direct address)");
                }
                if !matches!(d.tls.as_str(), "none" | "starttls" | "tls") {
                    bail!("direct.tls: none, starttls or tls");
                }
            }
            other => bail!("direct.connector: {other:?} is not \"log\" or \"smtp\""),
        }
        if self.ehr.write_back && self.ehr.base_url.is_empty() {
            bail!("ehr.write_back: needs ehr.base_url");
        }
        self.ehr_poller_auth()?;
        match self.sms.mode.as_str() {
            "log" => {}
            "twilio" => {
                let s = &self.sms;
                for (key, value) in [("account_sid", &s.account_sid), ("auth_token", &s.auth_token), ("from", &s.from)]
                {
                    if value.is_empty() {
                        bail!("sms.{key}: required with mode = \"twilio\"");
                    }
                }
                if !(s.api_base.starts_with("http://") || s.api_base.starts_with("https://")) {
                    bail!("sms.api_base: an http(s) URL");
                }
                for (key, text) in [
                    ("text_notification", &s.text_notification),
                    ("text_attendance", &s.text_attendance),
                    ("text_opt_out", &s.text_opt_out),
                    ("text_opt_in", &s.text_opt_in),
                    ("text_help", &s.text_help),
                ] {
                    if text.trim().is_empty() || text.len() > 640 {
                        bail!("sms.{key}: 1–640 characters (at most four SMS segments)");
                    }
                }
                if !(s.public_url.is_empty()
                    || s.public_url.starts_with("http://")
                    || s.public_url.starts_with("https://"))
                {
                    bail!("sms.public_url: an http(s) URL, or empty (no delivery reports or replies)");
                }
            }
            other => bail!("sms.mode: {other:?} is not \"log\" or \"twilio\""),
        }
        if self.workers.poll_interval.as_seconds() < 1 {
            bail!("workers.poll_interval: at least 1s");
        }
        if self.workers.outbox_lease.as_seconds() < 3 {
            bail!("workers.outbox_lease: at least 3s");
        }
        if !(1..=1000).contains(&self.workers.outbox_batch) {
            bail!("workers.outbox_batch: 1–1000");
        }
        if self.sms.timeout.as_seconds() < 1 {
            bail!("sms.timeout: at least 1s");
        }
        Ok(())
    }
}
