//! The outbound port: one trait for every channel that leaves the system.

use crate::ports::OutboxItem;

/// What happened to one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered to its recipient.
    Delivered,
    /// Accepted by the provider; delivery will be reported later (e.g. an SMS status webhook).
    Accepted { provider_id: String },
    /// Failed for now; try again later.
    Retry { error: String },
    /// Failed for good; a staff task takes over.
    Permanent { error: String },
}

/// Sends outbox items. Implementations must be idempotent per `item.key`.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome;
}
