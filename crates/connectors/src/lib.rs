//! Outbound connectors.
//!
//! Each channel (SMS, team chat, EHR write-back, note requests by fax or Direct) has a
//! log-only implementation; SMS also has [`Twilio`] (any Twilio-compatible REST API). The log-only connector records
//! that a message would have gone out — ids only, never its text or the recipient — and
//! reports it delivered, so a practice can run the whole workflow before connecting vendors.

mod note_request;
mod slack;
mod twilio;

use std::sync::Arc;

use refloop_app::{Connector, DeliveryOutcome, OutboxItem};
use refloop_domain::Channel;

pub use note_request::{DirectConfig, FaxConfig, NoteRequests, request_letter};
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
        match item.channel {
            Channel::Sms => self.sms.deliver(item).await,
            Channel::Chat => self.chat.deliver(item).await,
            Channel::EhrTask | Channel::Portal => self.ehr_task.deliver(item).await,
            Channel::NoteRequest => self.note_request.deliver(item).await,
            Channel::EhrQuery => self.note_lookup.deliver(item).await,
        }
    }
}

/// Delivers every message to the log.
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
            "log-only connector: message delivered to the log"
        );
        DeliveryOutcome::Delivered
    }
}
