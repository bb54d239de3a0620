//! The outbound port: one trait for every channel that leaves the system.

use refloop_domain::TaskKind;

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
    /// Cannot go out until a person does `task` (e.g. verify the specialist's fax number).
    NeedsPerson { error: String, task: TaskKind },
}

/// Sends outbox items. Implementations must be idempotent per `item.key`.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome;
}
