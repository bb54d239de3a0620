//! Write-back to the EHR: a FHIR `Task` for the referring nurse when a referral has no
//! appointment after its scheduling window (stage 2), a patient-portal message (a FHIR
//! `Communication`) for a patient without SMS consent (stage 1), and the consult note that
//! came back by Direct or fax as a `DocumentReference` on the referral's ServiceRequest, so
//! the referring physician reads it in the EHR (stage 4). Conditional create on the outbox
//! item's key, so a resend never makes a second one.

use std::sync::Arc;

use refloop_app::{Clock, Connector, DeliveryOutcome, OutboxItem, SmsTexts, Store};
use refloop_domain::{Channel, Purpose, Referral, Urgency};
use serde_json::{Value, json};

use crate::pull::{EhrClient, PullError};

/// Sends `ehr-task` outbox items as FHIR Tasks and `portal` items as Communications.
pub struct EhrWriter {
    client: Arc<EhrClient>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    texts: SmsTexts,
}

impl EhrWriter {
    pub fn new(client: Arc<EhrClient>, store: Arc<dyn Store>, clock: Arc<dyn Clock>, texts: SmsTexts) -> Self {
        Self { client, store, clock, texts }
    }

    /// The portal message: the notification text, to the patient, about the referral.
    fn communication(&self, item: &OutboxItem, r: &Referral, based_on: Value, now: jiff::Timestamp) -> Value {
        json!({
            "resourceType": "Communication",
            "identifier": [{"system": "urn:refloop:outbox", "value": item.key}],
            "status": "completed",
            "category": [{"text": "referral notification"}],
            "basedOn": [based_on],
            "subject": {"reference": format!("Patient/{}", r.patient_id.as_str())},
            "recipient": [{"reference": format!("Patient/{}", r.patient_id.as_str())}],
            "sent": now.to_string(),
            "payload": [{"contentString": self.texts.fill(&self.texts.notification, Some(r))}],
        })
    }
}

#[async_trait::async_trait]
impl Connector for EhrWriter {
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
        if item.purpose == Purpose::NoteWriteBack {
            return self.note(item, &referral, based_on, now).await;
        }
        if item.channel == Channel::Portal {
            let message = self.communication(item, &referral, based_on, now);
            let if_none_exist = format!("identifier=urn:refloop:outbox|{}", item.key);
            return outcome(
                self.client.create("Communication", &message, Some(&if_none_exist), now).await,
                "Communication",
            );
        }
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
        outcome(self.client.create("Task", &task, Some(&if_none_exist), now).await, "Task")
    }
}

impl EhrWriter {
    /// The consult note (the document named by the item's body) as a `DocumentReference`:
    /// the content inline with its type, size and SHA-1, the patient, and `context.related`
    /// the referral's ServiceRequest.
    async fn note(&self, item: &OutboxItem, r: &Referral, related: Value, now: jiff::Timestamp) -> DeliveryOutcome {
        use base64::Engine;
        use sha1::Digest;
        let doc_id = item.body.as_deref().unwrap_or_default();
        let doc = match self.store.document(doc_id).await {
            Ok(Some(d)) => d,
            Ok(None) => return DeliveryOutcome::Permanent { error: format!("no document {doc_id}") },
            Err(_) => return DeliveryOutcome::Retry { error: "the database could not be read".into() },
        };
        if doc.content.is_empty() {
            return DeliveryOutcome::Permanent { error: format!("document {doc_id}: its content is no longer kept") };
        }
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let resource = json!({
            "resourceType": "DocumentReference",
            "identifier": [{"system": "urn:refloop:outbox", "value": item.key},
                           {"system": "urn:refloop:document", "value": doc.id}],
            "status": "current",
            "docStatus": "final",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}]},
            "subject": {"reference": format!("Patient/{}", r.patient_id.as_str())},
            "date": now.to_string(),
            "description": format!("Consult note for refloop referral {}, received by {}", r.id, doc.source),
            "content": [{"attachment": {
                "contentType": doc.media_type,
                "data": b64(&doc.content),
                "size": doc.size,
                "hash": b64(&sha1::Sha1::digest(&doc.content)),
                "title": doc.name,
                "creation": doc.received_at.to_string(),
            }}],
            "context": {"related": [related]},
        });
        let if_none_exist = format!("identifier=urn:refloop:outbox|{}", item.key);
        outcome(
            self.client.create("DocumentReference", &resource, Some(&if_none_exist), now).await,
            "DocumentReference",
        )
    }
}

fn outcome(result: Result<u16, PullError>, what: &str) -> DeliveryOutcome {
    match result {
        Ok(200..=299) => DeliveryOutcome::Delivered,
        Ok(status @ (429 | 500..=599)) => DeliveryOutcome::Retry { error: format!("the EHR answered {status}") },
        Ok(status) => DeliveryOutcome::Permanent { error: format!("the EHR refused the {what} ({status})") },
        Err(PullError::Auth(e)) => DeliveryOutcome::Retry { error: format!("EHR authorization: {e}") },
        Err(_) => DeliveryOutcome::Retry { error: "the EHR could not be reached".into() },
    }
}
