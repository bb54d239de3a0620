//! Outbound connectors.
//!
//! Each channel (SMS, team chat, EHR write-back, note requests by fax or Direct) will have
//! a real HTTP/SMTP implementation beside a log-only one. The log-only connector records
//! that a message would have gone out — ids only, never its text or the recipient — and
//! reports it delivered, so a practice can run the whole workflow before connecting vendors.

use refloop_app::{Connector, DeliveryOutcome, OutboxItem};

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
