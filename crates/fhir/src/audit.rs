//! Audit rows as FHIR R4 `AuditEvent`s (for `refloop audit export` and `GET /fhir/AuditEvent`):
//! the DICOM event type, the action code, the actor and its address, and one entity per id the
//! row names, with our own action kept as the subtype.

use refloop_app::AuditRecord;
use serde_json::{Value, json};

use crate::readback::fhir_id;

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Our own action names (read, list, login, revoke …).
const ACTIONS: &str = "urn:refloop:audit-action";

/// The DICOM event type (code, display) an action belongs to.
fn event_type(action: &str, kind: &str) -> (&'static str, &'static str) {
    match (action, kind) {
        ("login" | "logout" | "login-failed" | "lockout" | "unlock", _) => ("110114", "User Authentication"),
        (a, _) if a.starts_with("refused-") => ("110113", "Security Alert"),
        ("export", _) => ("110106", "Export"),
        (_, "user") => ("110136", "Security Roles Changed"),
        (_, "token") => ("110137", "User Security Attributes Changed"),
        (_, "patient" | "referral" | "sms-thread" | "inbound-message" | "task") => ("110110", "Patient Record"),
        _ => ("110100", "Application Activity"),
    }
}

/// C(reate), R(ead), U(pdate), D(elete) or E(xecute).
fn action_code(action: &str) -> &'static str {
    match action {
        "create" | "text" => "C",
        "read" | "list" | "search" | "reveal-phone" | "export" | "view" => "R",
        "delete" | "revoke" | "disable" => "D",
        "update" | "write" | "complete" | "retry" | "dismiss" | "apply" | "enable" | "unlock" | "claim" => "U",
        _ => "E",
    }
}

/// 0 success, 4 a minor failure (a refused sign-in or token).
fn outcome(action: &str) -> &'static str {
    if action.starts_with("refused-") || action == "login-failed" || action == "lockout" { "4" } else { "0" }
}

fn entity(kind: &str, id: &str) -> Value {
    let what = match kind {
        "patient" => json!({"reference": format!("Patient/{}", fhir_id(id))}),
        "referral" => json!({"reference": format!("ServiceRequest/{}", fhir_id(id))}),
        _ => json!({"identifier": {"system": format!("urn:refloop:{kind}"), "value": id}}),
    };
    // 1 Person, 2 System Object.
    let (code, display) = if matches!(kind, "patient" | "user") { ("1", "Person") } else { ("2", "System Object") };
    let mut e = json!({
        "what": what,
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": code, "display": display},
    });
    if kind == "patient" {
        e["role"] =
            json!({"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"});
    }
    e
}

/// One audit row as an R4 AuditEvent. Its id is `aud-` and the row's number.
pub fn audit_event(rec: &AuditRecord) -> Value {
    let e = &rec.entry;
    let (code, display) = event_type(&e.action, &e.resource_type);
    let mut agent = json!({
        "who": {"identifier": {"system": "urn:refloop:actor", "value": e.actor}},
        "requestor": !e.actor.starts_with("system:"),
    });
    if let Some(remote) = &e.remote {
        // An address with its port, or a bare one: the address is what AuditEvent keeps.
        let address = remote.parse::<std::net::SocketAddr>().map_or_else(|_| remote.clone(), |a| a.ip().to_string());
        agent["network"] = json!({"address": address, "type": "2"});
    }
    let entities: Vec<Value> =
        e.resource_id.split(',').filter(|id| !id.is_empty()).map(|id| entity(&e.resource_type, id)).collect();
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("aud-{}", rec.seq),
        "type": {"system": DCM, "code": code, "display": display},
        "subtype": [{"system": ACTIONS, "code": e.action}],
        "action": action_code(&e.action),
        "recorded": e.at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "outcome": outcome(&e.action),
        "agent": [agent],
        "source": {
            "site": "refloop",
            "observer": {"display": "refloop"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
        },
    });
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    if let Some(seal) = &rec.seal {
        // The chain link, so an export can be checked against the database.
        event["meta"] = json!({"tag": [{"system": "urn:refloop:audit-chain", "code": seal.hash, "display": format!("chain position {}", seal.pos)}]});
    }
    event
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use refloop_app::{AuditEntry, AuditRecord};

    use super::*;

    fn rec(action: &str, kind: &str, id: &str, remote: Option<&str>) -> AuditRecord {
        AuditRecord {
            seq: 7,
            entry: AuditEntry {
                at: "2026-03-04T05:06:07.089Z".parse::<Timestamp>().unwrap(),
                actor: "coordinator:ana".into(),
                action: action.into(),
                resource_type: kind.into(),
                resource_id: id.into(),
                remote: remote.map(str::to_owned),
            },
            seal: None,
        }
    }

    #[test]
    fn a_list_read_names_each_referral_and_the_address_without_its_port() {
        let e = audit_event(&rec("list", "referral", "ref_A,ref_B", Some("10.1.2.3:4567")));
        assert_eq!(e["action"], "R");
        assert_eq!(e["type"]["code"], "110110");
        assert_eq!(e["recorded"], "2026-03-04T05:06:07.089Z");
        assert_eq!(e["agent"][0]["network"]["address"], "10.1.2.3");
        let refs: Vec<&str> =
            e["entity"].as_array().unwrap().iter().map(|x| x["what"]["reference"].as_str().unwrap()).collect();
        assert_eq!(refs, ["ServiceRequest/ref-A", "ServiceRequest/ref-B"]);
    }

    #[test]
    fn a_refused_token_is_a_security_alert_that_failed() {
        let e = audit_event(&rec("refused-revoked", "token", "tok_1", None));
        assert_eq!((e["type"]["code"].as_str(), e["outcome"].as_str()), (Some("110113"), Some("4")));
        assert!(e["agent"][0].get("network").is_none());
    }
}
