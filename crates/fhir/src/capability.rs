//! `GET /fhir/metadata`: what this server does, and nothing it does not.

use serde_json::{Value, json};

use crate::map::ACCEPTED;

/// The CapabilityStatement; `base` is the server's `/fhir` URL, `version` refloop's.
pub fn capability_statement(base: &str, version: &str, date: &str) -> Value {
    let mut resources: Vec<Value> = ACCEPTED
        .iter()
        .map(|kind| {
            let mut interaction = vec![json!({"code": "create"}), json!({"code": "update"})];
            let mut search: Vec<Value> = Vec::new();
            match *kind {
                "ServiceRequest" => {
                    interaction.extend([json!({"code": "read"}), json!({"code": "search-type"})]);
                    search = vec![
                        json!({"name": "patient", "type": "reference"}),
                        json!({"name": "identifier", "type": "token"}),
                        json!({"name": "status", "type": "token"}),
                    ];
                }
                "Task" => {
                    interaction.extend([json!({"code": "read"}), json!({"code": "search-type"})]);
                    search = vec![json!({"name": "based-on", "type": "reference"})];
                }
                _ => {}
            }
            let mut r = json!({
                "type": kind,
                "interaction": interaction,
                "versioning": "no-version",
                "conditionalCreate": *kind == "ServiceRequest",
            });
            if !search.is_empty() {
                r["searchParam"] = json!(search);
            }
            r
        })
        .collect();
    // Read-only, for admins: the audit log.
    resources.push(json!({
        "type": "AuditEvent",
        "interaction": [{"code": "search-type"}],
        "versioning": "no-version",
        "searchParam": [
            {"name": "patient", "type": "reference"},
            {"name": "date", "type": "date"},
            {"name": "_count", "type": "number"},
        ],
        "documentation": "The audit log (admins only), newest first.",
    }));
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "refloop",
        "kind": "instance",
        "software": {"name": "refloop", "version": version},
        "implementation": {"description": "refloop referral tracking", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Referral data in (create/update, transaction and batch Bundles); tracked referrals out as ServiceRequest and tracking Task. Bearer token required.",
            "security": {"description": "Bearer API token (roles integration, admin; coordinator and viewer may read)"},
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    })
}
