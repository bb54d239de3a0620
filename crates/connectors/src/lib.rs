//! Outbound connectors.
//!
//! Each channel (SMS, team chat, EHR write-back, note requests by fax or Direct) has a
//! log-only implementation; SMS also has [`Twilio`] (any Twilio-compatible REST API). The log-only connector records
//! that a message would have gone out — ids only, never its text or the recipient — and
//! reports it not sent: a channel that only logs is off, so nothing it "sends" counts as
//! reaching anyone (the workflow opens the staff task a failure would).

pub mod checks;
mod fax_inbound;
mod note_request;
pub mod scheduling;
mod slack;
mod twilio;

use std::sync::Arc;

use refloop_app::{ChannelMode, Confirmation, Connector, DeliveryOutcome, OutboxItem};
use refloop_domain::Channel;

pub use fax_inbound::{FAX_SIGNATURE_HEADER, FaxRefusal, InboundFax, fax_signature, fax_signature_ok};
pub use note_request::{DirectConfig, FaxConfig, NoteRequests, request_letter};

/// A provider's answer to "what do you have?" (a GET with the query), as JSON; `Err` is the
/// [`Confirmation::Later`] to give when it cannot say now. `api` names the provider in errors.
async fn look_up(
    request: reqwest::RequestBuilder,
    query: &[(&str, &str)],
    api: &str,
) -> Result<serde_json::Value, Confirmation> {
    let later = |error: String| Confirmation::Later { error };
    match request.query(query).send().await {
        Ok(r) if r.status().is_success() => {
            r.json().await.map_err(|_| later(format!("the {api}'s lookup answer was not JSON")))
        }
        Ok(r) => Err(later(format!("the {api} answered {} to a lookup", r.status()))),
        Err(_) => Err(later(format!("the {api} lookup failed"))),
    }
}
pub use refloop_app::SmsTexts;
pub use slack::SlackWebhook;
pub use twilio::{Twilio, TwilioConfig, twilio_signature, twilio_signature_ok};

/// Sends each channel through its connector; the log-only one where none is configured.
pub struct Channels {
    pub sms: Arc<dyn Connector>,
    pub chat: Arc<dyn Connector>,
    /// EHR write-back: Tasks for staff and portal messages (Communication) for patients.
    pub ehr_task: Arc<dyn Connector>,
    pub note_request: Arc<dyn Connector>,
    /// Stage 4's search of the EHR for the note.
    pub note_lookup: Arc<dyn Connector>,
}

impl Channels {
    /// Every channel to the log.
    pub fn log_only() -> Self {
        Self {
            sms: Arc::new(LogOnly),
            chat: Arc::new(LogOnly),
            ehr_task: Arc::new(LogOnly),
            note_request: Arc::new(LogOnly),
            note_lookup: Arc::new(LogOnly),
        }
    }
}

#[async_trait::async_trait]
impl Connector for Channels {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        self.of(item.channel).deliver(item).await
    }

    async fn confirm(&self, item: &OutboxItem) -> Confirmation {
        self.of(item.channel).confirm(item).await
    }

    fn mode(&self, channel: Channel) -> ChannelMode {
        self.of(channel).mode(channel)
    }
}

impl Channels {
    /// The connector that carries `channel`.
    fn of(&self, channel: Channel) -> &dyn Connector {
        match channel {
            Channel::Sms => self.sms.as_ref(),
            Channel::Chat => self.chat.as_ref(),
            Channel::EhrTask | Channel::Portal => self.ehr_task.as_ref(),
            Channel::NoteRequest => self.note_request.as_ref(),
            Channel::EhrQuery => self.note_lookup.as_ref(),
        }
    }

    /// Every channel still on the log goes to `simulated` instead (`serve --demo`: the
    /// simulator's people answer what the demo practice sends).
    pub fn simulate_the_rest(&mut self, simulated: Arc<dyn Connector>) {
        for (channel, slot) in [
            (Channel::Sms, &mut self.sms),
            (Channel::Chat, &mut self.chat),
            (Channel::EhrTask, &mut self.ehr_task),
            (Channel::NoteRequest, &mut self.note_request),
            (Channel::EhrQuery, &mut self.note_lookup),
        ] {
            if slot.mode(channel) == ChannelMode::Off {
                *slot = simulated.clone();
            }
        }
    }
}

/// Writes every message to the log (ids only) and reports it not sent: the channel is off.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogOnly;

#[async_trait::async_trait]
impl Connector for LogOnly {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        tracing::info!(
            message_id = %item.id,
            referral_id = %item.referral_id,
            channel = item.channel.as_str(),
            purpose = item.purpose.as_str(),
            "log-only connector: not sent (channel off)"
        );
        DeliveryOutcome::ChannelOff
    }

    fn mode(&self, _channel: Channel) -> ChannelMode {
        ChannelMode::Off
    }
}

/// A request error's words without the URL (which may carry an account id or a secret path).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    e
}
