//! Patient SMS through a Twilio-compatible REST API: `POST {api_base}/2010-04-01/Accounts/
//! {sid}/Messages.json`, form-encoded, HTTP basic auth, with a `StatusCallback` that
//! names the outbox item. Any vendor that speaks this API (or a local fake) can be named by
//! `api_base`. The text comes from templates that carry no diagnosis.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use refloop_app::{Confirmation, Connector, DeliveryOutcome, OutboxItem, SmsTexts, Store};
use refloop_domain::{PhoneE164, Purpose};

use crate::without_url;

/// What the SMS connector needs.
#[derive(Clone, Debug)]
pub struct TwilioConfig {
    /// The API root, e.g. `https://api.twilio.com`.
    pub api_base: String,
    pub account_sid: String,
    pub auth_token: String,
    /// Our sending number (E.164) or messaging service id.
    pub from: String,
    /// The public URL of `/webhooks/sms/status` as the provider reaches it; empty: no
    /// delivery reports (a message counts as delivered when the provider accepts it).
    pub status_callback: String,
    pub texts: SmsTexts,
    /// refloop's public base URL, for the booking links in texts (`{link_base}/b/{code}`);
    /// empty: texts carry no booking link.
    pub link_base: String,
    /// How long one request may take; past it the outcome is unknown (the provider is asked
    /// before anything is resent).
    pub timeout: Duration,
}

/// The SMS connector.
pub struct Twilio {
    cfg: TwilioConfig,
    http: reqwest::Client,
    store: Arc<dyn Store>,
}

impl Twilio {
    pub fn new(cfg: TwilioConfig, store: Arc<dyn Store>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .build()
            .expect("an HTTP client with the process's TLS provider");
        Self { cfg, http, store }
    }
}

impl Twilio {
    /// The recipient and the text of `item` as they go out, or why it cannot go out.
    async fn message(&self, item: &OutboxItem) -> Result<(PhoneE164, String), DeliveryOutcome> {
        let (patient, referral) =
            match (self.store.patient(&item.patient_id).await, self.store.referral(&item.referral_id).await) {
                (Ok(p), Ok(r)) => (p, r),
                _ => return Err(DeliveryOutcome::Retry { error: "the database could not be read".into() }),
            };
        let Some(patient) = patient else {
            return Err(DeliveryOutcome::Permanent { error: "no patient on file".into() });
        };
        // Checked again at send time: the number may have changed, or the patient opted out,
        // since the message was queued. An invalid number never reaches the API.
        let Some(to) = patient.phone.as_deref().and_then(PhoneE164::parse) else {
            return Err(DeliveryOutcome::Permanent { error: "no valid phone number (E.164) on file".into() });
        };
        if patient.sms_opted_out || !patient.sms_consent {
            return Err(DeliveryOutcome::Permanent { error: "the patient has no SMS consent or opted out".into() });
        }
        // In the patient's language when there are texts in it (English otherwise).
        let texts = self.cfg.texts.in_language(patient.language.as_deref());
        // Stage 1's texts carry the referral's booking link when its specialist has a booking page.
        let link = match (item.purpose, referral.as_ref()) {
            (Purpose::PatientNotification | Purpose::Reminder, Some(r)) => {
                refloop_app::booking_link(self.store.as_ref(), r, &self.cfg.link_base)
                    .await
                    .map_err(|_| DeliveryOutcome::Retry { error: "the database could not be read".into() })?
            }
            _ => None,
        };
        let body = match (item.purpose, item.body.as_deref()) {
            (Purpose::StaffReply, Some(text)) => text.to_owned(),
            (purpose, _) => match texts.template(purpose) {
                Some(template) => texts.fill_with(template, referral.as_ref(), link.as_deref()),
                None => {
                    return Err(DeliveryOutcome::Permanent { error: format!("no SMS text for {}", purpose.as_str()) });
                }
            },
        };
        Ok((to, body))
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.cfg.api_base.trim_end_matches('/'),
            self.cfg.account_sid
        )
    }

    /// What a message the provider took counts as: delivered, or accepted until its status
    /// callback says more.
    fn taken(&self, sid: String) -> DeliveryOutcome {
        if self.cfg.status_callback.is_empty() {
            DeliveryOutcome::Delivered
        } else {
            DeliveryOutcome::Accepted { provider_id: sid }
        }
    }
}

#[async_trait::async_trait]
impl Connector for Twilio {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        let (to, body) = match self.message(item).await {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        let mut form = vec![("To", to.as_str().to_owned()), ("From", self.cfg.from.clone()), ("Body", body)];
        if !self.cfg.status_callback.is_empty() {
            form.push(("StatusCallback", format!("{}?outbox_id={}", self.cfg.status_callback, item.id)));
        }
        let sent = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.cfg.account_sid, Some(&self.cfg.auth_token))
            .form(&form)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            // Not connected: the request never left, so trying again cannot double it.
            Err(e) if e.is_connect() => {
                return DeliveryOutcome::Retry {
                    error: format!("the SMS API could not be reached: {}", without_url(&e)),
                };
            }
            // Written, but the answer was lost (a time-out, a reset): it may have gone out.
            Err(e) => {
                return DeliveryOutcome::Unconfirmed {
                    error: format!("no answer from the SMS API: {}", without_url(&e)),
                };
            }
        };
        let status = resp.status().as_u16();
        let body: serde_json::Value = match resp.json().await {
            Ok(b) => b,
            Err(_) if (200..=299).contains(&status) => {
                return DeliveryOutcome::Unconfirmed { error: format!("the SMS API answered {status} without a body") };
            }
            Err(_) => serde_json::Value::Null,
        };
        match status {
            200..=299 => {
                let sid = body["sid"].as_str().unwrap_or_default().to_owned();
                tracing::info!(message_id = %item.id, provider_id = %sid, "SMS accepted by the provider");
                self.taken(sid)
            }
            // Too many requests: refused before it was taken.
            429 => DeliveryOutcome::Retry { error: format!("the SMS API answered {status}") },
            // A server error after the body was sent: it may have been taken.
            // The provider's message may quote the number: keep its code only.
            500..=599 => DeliveryOutcome::Unconfirmed { error: format!("the SMS API answered {status}") },
            _ => DeliveryOutcome::Permanent {
                error: format!(
                    "the SMS API refused the message ({status}, code {})",
                    body["code"].as_i64().unwrap_or(0)
                ),
            },
        }
    }

    /// Lists the messages to the patient's number sent since the first attempt's day
    /// (`GET …/Messages.json?To=…&DateSent>=…`) and looks for this item's text.
    async fn confirm(&self, item: &OutboxItem) -> Confirmation {
        let (to, body) = match self.message(item).await {
            Ok(m) => m,
            // It cannot go out now anyway (opted out, number gone): a person checks.
            Err(DeliveryOutcome::Retry { error }) => return Confirmation::Later { error },
            Err(_) => return Confirmation::CannotTell { error: "the message can no longer be rebuilt".into() },
        };
        let since = item.first_attempt_at.unwrap_or(item.created_at);
        let day = jiff::tz::TimeZone::UTC.to_datetime(since).date().to_string();
        let query = [("To", to.as_str()), ("DateSent>", day.as_str()), ("PageSize", "100")];
        let request = self.http.get(self.messages_url()).basic_auth(&self.cfg.account_sid, Some(&self.cfg.auth_token));
        let page = match crate::look_up(request, &query, "SMS API").await {
            Ok(page) => page,
            Err(later) => return later,
        };
        // The same words to the same number before this item's first attempt are another
        // message (a few minutes' leeway for the two clocks); a date the provider does not
        // give counts as a match, so that nothing is ever sent twice.
        let from = since - jiff::SignedDuration::from_mins(5);
        let created_since = |m: &serde_json::Value| {
            m["date_created"]
                .as_str()
                .and_then(|d| jiff::fmt::rfc2822::parse(d).ok())
                .is_none_or(|created| created.timestamp() >= from)
        };
        let found = page["messages"].as_array().into_iter().flatten().find(|m| {
            m["to"].as_str() == Some(to.as_str())
                && m["body"].as_str().is_some_and(|b| b.ends_with(body.as_str()))
                && created_since(m)
        });
        match found {
            None => Confirmation::NotSent,
            Some(m) => match m["status"].as_str() {
                Some("failed" | "undelivered") => Confirmation::Sent(DeliveryOutcome::Permanent {
                    error: format!("SMS {} (provider code {})", m["status"].as_str().unwrap_or(""), m["error_code"]),
                }),
                _ => Confirmation::Sent(self.taken(m["sid"].as_str().unwrap_or_default().to_owned())),
            },
        }
    }
}

/// The `X-Twilio-Signature` of a request: base64(HMAC-SHA1(auth token, URL + each POST
/// parameter's name and value, sorted by name)).
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a request's signature in constant time.
pub fn twilio_signature_ok(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let expected = twilio_signature(auth_token, url, params);
    expected.len() == signature.len()
        && expected.bytes().zip(signature.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_twilios_documented_example() {
        // Twilio's "Validating requests" example (auth token 12345); also what Python's hmac computes.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(twilio_signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(twilio_signature_ok("12345", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!twilio_signature_ok("12345", url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgR="));
    }
}
