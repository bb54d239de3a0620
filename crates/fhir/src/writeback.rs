//! Write-back to the EHR: a FHIR `Task` for the referring nurse when a referral has no
//! appointment after its scheduling window (stage 2). Conditional create on the outbox
//! item's key, so a resend never makes a second Task.

use std::sync::Arc;

use refloop_app::{Clock, Connector, DeliveryOutcome, OutboxItem, Store};
use refloop_domain::{Purpose, Urgency};
use serde_json::{Value, json};

use crate::pull::{EhrClient, PullError};

/// Sends `ehr-task` outbox items as FHIR Tasks to the EHR.
pub struct EhrTaskWriter {
    client: Arc<EhrClient>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl EhrTaskWriter {
    pub fn new(client: Arc<EhrClient>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { client, store, clock }
    }
}

#[async_trait::async_trait]
impl Connector for EhrTaskWriter {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        let referral = match self.store.referral(&item.referral_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return DeliveryOutcome::Permanent { error: "no such referral".into() },
            Err(_) => return DeliveryOutcome::Retry { error: "the database could not be read".into() },
        };
        let now = self.clock.now();
        let based_on = match referral.source_ids.iter().find_map(|k| k.strip_prefix("ServiceRequest/")) {
            Some(id) => json!({"reference": format!("ServiceRequest/{id}")}),
            None => json!({"identifier": {"system": "urn:refloop:referral", "value": referral.id.as_str()}}),
        };
        let (code, description) = match item.purpose {
            Purpose::SchedulingEscalation => (
                "Help the patient schedule the referral",
                format!("No appointment is known after the scheduling window (refloop referral {}).", referral.id),
            ),
            other => ("Follow up on the referral", format!("{} (refloop referral {}).", other.as_str(), referral.id)),
        };
        let task: Value = json!({
            "resourceType": "Task",
            "identifier": [{"system": "urn:refloop:outbox", "value": item.key}],
            "status": "requested",
            "intent": "order",
            "priority": if referral.urgency == Urgency::Routine { "routine" } else { "urgent" },
            "code": {"text": code},
            "description": description,
            "basedOn": [based_on],
            "for": {"reference": format!("Patient/{}", referral.patient_id.as_str())},
            "authoredOn": now.to_string(),
            "requester": {"display": "refloop"},
            "owner": {"identifier": {"system": "urn:refloop:provider", "value": referral.referring_provider.as_str()}},
        });
        let if_none_exist = format!("identifier=urn:refloop:outbox|{}", item.key);
        match self.client.create("Task", &task, Some(&if_none_exist), now).await {
            Ok(200..=299) => DeliveryOutcome::Delivered,
            Ok(status @ (429 | 500..=599)) => DeliveryOutcome::Retry { error: format!("the EHR answered {status}") },
            Ok(status) => DeliveryOutcome::Permanent { error: format!("the EHR refused the Task ({status})") },
            Err(PullError::Auth(e)) => DeliveryOutcome::Retry { error: format!("EHR authorization: {e}") },
            Err(_) => DeliveryOutcome::Retry { error: "the EHR could not be reached".into() },
        }
    }
}
