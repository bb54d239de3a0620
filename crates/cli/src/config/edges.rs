//! What the edges of the service take from the configuration: who may send HL7, the
//! listeners' limits and TLS, sign-in throttling and retention.

use std::path::Path;

use anyhow::{Context, bail};

use super::{Config, seconds};

impl Config {
    /// Who may send HL7 (`[[hl7.senders]]`, or anyone with `allow_any_sender`).
    pub fn hl7_senders(&self) -> anyhow::Result<refloop_hl7::Senders> {
        if self.hl7.allow_any_sender {
            return Ok(refloop_hl7::Senders::anyone());
        }
        let mut list: Vec<refloop_hl7::Sender> = Vec::new();
        for (i, e) in self.hl7.senders.iter().enumerate() {
            let at = format!("hl7.senders[{i}]");
            if e.name.trim().is_empty() || e.msh3.trim().is_empty() {
                bail!("{at}: name and msh3 are required");
            }
            if list.iter().any(|s| s.name == e.name) {
                bail!("{at}.name: {:?} is used twice", e.name);
            }
            if e.cidrs.is_empty() {
                bail!("{at}.cidrs: the networks the sender connects from (e.g. [\"10.1.20.0/24\"])");
            }
            let cidrs = e
                .cidrs
                .iter()
                .map(|c| {
                    c.parse::<refloop_hl7::IpNet>().map_err(|_| anyhow::anyhow!("{at}.cidrs: {c:?} is not a network"))
                })
                .collect::<anyhow::Result<_>>()?;
            if e.tls_subject.is_some() && self.hl7.tls_client_ca.is_empty() {
                bail!("{at}.tls_subject: needs mutual TLS on MLLP ([hl7] tls_cert, tls_key and tls_client_ca)");
            }
            list.push(refloop_hl7::Sender {
                name: e.name.clone(),
                msh3: e.msh3.clone(),
                msh4: e.msh4.clone(),
                cidrs,
                tls_subject: e.tls_subject.clone(),
            });
        }
        Ok(refloop_hl7::Senders::only(list))
    }

    /// What an operator should hear about the configuration (printed by `check-config`).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.hl7.allow_any_sender {
            warnings.push(
                "hl7.allow_any_sender = true: HL7 from anyone who can connect is taken (a lab set-up; list [[hl7.senders]] in production)".to_owned(),
            );
        } else if self.hl7.senders.is_empty() {
            warnings.push("hl7.senders: none listed, so every HL7 message is refused (AR, unknown sender)".to_owned());
        }
        if self.direct.referrals_360x && self.direct.connector != "smtp" {
            warnings.push(
                "direct.referrals_360x = true but direct.connector is not \"smtp\": no 360X referral request goes out"
                    .to_owned(),
            );
        }
        if !self.fax.webhook_secret.is_empty() && self.fax.webhook_secret.len() < 16 {
            warnings.push("fax.webhook_secret: shorter than 16 characters; use a long random secret".to_owned());
        }
        warnings
    }

    pub fn retention(&self) -> refloop_app::Retention {
        refloop_app::Retention {
            raw_messages: self.retention.raw_messages.to_signed(),
            audit: self.retention.audit.to_signed(),
            documents: self.retention.documents.to_signed(),
        }
    }

    /// Sign-in and token throttling.
    pub fn auth_settings(&self) -> refloop_app::AuthSettings {
        let a = &self.auth;
        refloop_app::AuthSettings {
            lockout_after: a.lockout_after,
            lockout_for: a.lockout_for.to_signed(),
            signins_per_address: a.signins_per_address,
            tokens_per_address: a.tokens_per_address,
            token_writes_per_minute: a.token_writes_per_minute,
            // Checked when the config is loaded.
            mfa_required: a.mfa_required.iter().filter_map(|r| refloop_app::Role::parse(r)).collect(),
            ..Default::default()
        }
    }

    /// The single sign-on client, when `[auth.oidc] issuer` is set (checked at load).
    pub fn oidc(&self) -> Option<refloop_web::Oidc> {
        let o = &self.auth.oidc;
        (!o.issuer.is_empty()).then(|| {
            refloop_web::Oidc::new(refloop_web::OidcSettings {
                issuer: o.issuer.clone(),
                client_id: o.client_id.clone(),
                client_secret: o.client_secret.clone(),
                redirect_url: o.redirect_url.clone(),
                username_claim: o.username_claim.clone(),
                role_claim: o.role_claim.clone(),
                roles: o.roles.iter().filter_map(|(v, r)| Some((v.clone(), refloop_app::Role::parse(r)?))).collect(),
                label: o.label.clone(),
            })
        })
    }

    /// The connection caps each listener keeps.
    pub fn connection_limits(&self) -> refloop_app::admission::ConnectionLimits {
        refloop_app::admission::ConnectionLimits {
            total: self.server.max_connections,
            per_address: self.server.max_connections_per_address,
        }
    }

    pub fn http_limits(&self) -> anyhow::Result<refloop_web::HttpLimits> {
        let s = &self.server;
        let tls = if s.tls_cert.is_empty() {
            None
        } else {
            Some(refloop_hl7::tls_acceptor(Path::new(&s.tls_cert), Path::new(&s.tls_key), None).context("server.tls")?)
        };
        Ok(refloop_web::HttpLimits {
            header_timeout: seconds(s.header_timeout),
            connections: self.connection_limits(),
            tls,
        })
    }

    /// The MLLP listener's settings; reads the TLS files when TLS is configured.
    pub fn mllp_listener(&self) -> anyhow::Result<refloop_hl7::ListenerConfig> {
        let h = &self.hl7;
        let tls = if h.tls_cert.is_empty() {
            None
        } else {
            let ca = (!h.tls_client_ca.is_empty()).then(|| Path::new(&h.tls_client_ca));
            Some(refloop_hl7::tls_acceptor(Path::new(&h.tls_cert), Path::new(&h.tls_key), ca).context("hl7.tls")?)
        };
        Ok(refloop_hl7::ListenerConfig {
            max_message: h.max_message_bytes,
            idle_timeout: seconds(h.idle_timeout),
            frame_timeout: seconds(h.frame_timeout),
            tls,
            connections: self.connection_limits(),
        })
    }
}
