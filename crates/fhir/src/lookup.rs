//! Stage 4's "look for the note": a targeted search of the EHR for the consult note of one
//! referral (`DocumentReference?related=ServiceRequest/{id}`), applied through the same
//! inbound path as everything else. Pull mode also brings notes in on its own schedule.

use std::sync::{Arc, OnceLock};

use refloop_app::{Clock, Connector, DeliveryOutcome, OutboxItem, Store};
use serde_json::Value;

use crate::{ingest::FhirIngest, pull::EhrClient};

/// Sends `ehr-query` outbox items as searches; the ingest is set once the app exists.
pub struct NoteLookup {
    client: Arc<EhrClient>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ingest: Arc<OnceLock<FhirIngest>>,
}

impl NoteLookup {
    /// `ingest` is filled after the app is built (the app needs its connectors first).
    pub fn new(
        client: Arc<EhrClient>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ingest: Arc<OnceLock<FhirIngest>>,
    ) -> Self {
        Self { client, store, clock, ingest }
    }
}

#[async_trait::async_trait]
impl Connector for NoteLookup {
    /// A lookup only reads the EHR (what it finds is applied once, by its resend keys):
    /// taking it again cannot double anything.
    async fn confirm(&self, _item: &OutboxItem) -> refloop_app::Confirmation {
        refloop_app::Confirmation::NotSent
    }

    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        let Some(ingest) = self.ingest.get() else {
            return DeliveryOutcome::Retry { error: "the FHIR ingest is not ready".into() };
        };
        let referral = match self.store.referral(&item.referral_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return DeliveryOutcome::Permanent { error: "no such referral".into() },
            Err(_) => return DeliveryOutcome::Retry { error: "the database could not be read".into() },
        };
        // Only a referral the EHR knows as a ServiceRequest can be searched for.
        let Some(sr) = referral.source_ids.iter().find_map(|k| k.strip_prefix("ServiceRequest/")) else {
            return DeliveryOutcome::Delivered;
        };
        let url = format!("DocumentReference?related=ServiceRequest/{sr}&_count=50");
        let page = match self.client.get(&url, self.clock.now()).await {
            Ok(p) => p,
            Err(e) => return DeliveryOutcome::Retry { error: e.to_string() },
        };
        let resources: Vec<Value> = page["entry"]
            .as_array()
            .map(|entries| entries.iter().filter_map(|e| e.get("resource").cloned()).collect())
            .unwrap_or_default();
        if !resources.is_empty() {
            let reply = ingest.import_resources(resources).await;
            tracing::info!(referral_id = %referral.id, applied = reply.applied, "note lookup in the EHR");
        }
        DeliveryOutcome::Delivered
    }
}
