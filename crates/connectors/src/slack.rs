//! Team chat through a Slack-compatible incoming webhook: `POST {webhook_url}` with
//! `{"text": …}`. The text names the referral by id with a link, never the patient.

use std::{sync::Arc, time::Duration};

use refloop_app::{Connector, DeliveryOutcome, OutboxItem, Store};
use refloop_domain::Purpose;

pub struct SlackWebhook {
    url: String,
    /// Where people open a referral: `{link_base}/referrals/{id}` (empty: no link).
    link_base: String,
    http: reqwest::Client,
    store: Arc<dyn Store>,
}

impl SlackWebhook {
    pub fn new(url: &str, link_base: &str, store: Arc<dyn Store>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client with the process's TLS provider");
        Self { url: url.to_owned(), link_base: link_base.trim_end_matches('/').to_owned(), http, store }
    }
}

/// Operational problem notices go to the same channel as the team's escalations.
#[async_trait::async_trait]
impl refloop_app::problems::OpsNotifier for SlackWebhook {
    async fn notify(&self, text: &str) -> Result<(), String> {
        match self.http.post(&self.url).json(&serde_json::json!({ "text": text })).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the chat webhook answered {}", r.status().as_u16())),
            Err(e) => Err(format!("the chat webhook could not be reached: {}", e.without_url())),
        }
    }
}

#[async_trait::async_trait]
impl Connector for SlackWebhook {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        let referral = match self.store.referral(&item.referral_id).await {
            Ok(r) => r,
            Err(_) => return DeliveryOutcome::Retry { error: "the database could not be read".into() },
        };
        let what = referral
            .as_ref()
            .map(|r| {
                format!(
                    "{} {} referral",
                    r.urgency.as_str(),
                    r.specialty.as_ref().map(|s| s.as_str()).unwrap_or("uncoded")
                )
            })
            .unwrap_or_else(|| "referral".to_owned());
        let why = match item.purpose {
            Purpose::SchedulingEscalation => {
                "has no appointment after its scheduling window: please help the patient book"
            }
            Purpose::NoteRequest => "still has no consult note",
            _ => "needs attention",
        };
        let mut text = format!("Referral {} ({what}) {why}.", item.referral_id);
        if !self.link_base.is_empty() {
            text.push_str(&format!(" <{}/referrals/{}|Open it>", self.link_base, item.referral_id));
        }
        match self.http.post(&self.url).json(&serde_json::json!({ "text": text })).send().await {
            Ok(r) if r.status().is_success() => DeliveryOutcome::Delivered,
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                DeliveryOutcome::Retry { error: format!("the chat webhook answered {}", r.status().as_u16()) }
            }
            Ok(r) => DeliveryOutcome::Permanent { error: format!("the chat webhook answered {}", r.status().as_u16()) },
            Err(_) => DeliveryOutcome::Retry { error: "the chat webhook could not be reached".into() },
        }
    }
}
