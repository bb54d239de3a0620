//! Tracked referrals served as FHIR: the referral as its ServiceRequest, its progress as a
//! tracking Task with a BSeR business status, and staff tasks as Tasks.

use refloop_app::{Task as StaffTask, TaskStatus};
use refloop_domain::{Referral, State};
use serde_json::{Value, json};

const BSER: &str = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS";

/// A FHIR id for one of ours: FHIR ids allow `[A-Za-z0-9-.]`, ours are `prefix_…`.
pub fn fhir_id(id: &str) -> String {
    id.replacen('_', "-", 1)
}

/// Ours for a FHIR id (the inverse of [`fhir_id`]).
pub fn our_id(id: &str) -> String {
    id.replacen('-', "_", 1)
}

/// The id of a referral's tracking Task.
pub fn tracking_task_id(referral: &str) -> String {
    format!("trk-{}", fhir_id(referral))
}

/// The referral as a ServiceRequest.
pub fn service_request(r: &Referral) -> Value {
    let status = match r.state {
        State::NoteReceived => "completed",
        State::Cancelled | State::ClosedIncomplete => "revoked",
        _ => "active",
    };
    let mut identifier = vec![json!({"system": "urn:refloop:referral", "value": r.id.as_str()})];
    identifier.extend(r.source_ids.iter().map(|s| json!({"system": "urn:refloop:source-id", "value": s})));
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "id": fhir_id(r.id.as_str()),
        "identifier": identifier,
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "103696004",
                                   "display": "Patient referral to specialist"}]}],
        "priority": r.urgency.as_str(),
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]},
        "subject": {"reference": format!("Patient/{}", r.patient_id.as_str())},
        "authoredOn": r.ordered_at.to_string(),
        "requester": {"identifier": {"system": "urn:refloop:provider", "value": r.referring_provider.as_str()}},
    });
    if let Some(s) = &r.specialty {
        sr["performerType"] =
            json!({"coding": [{"system": "urn:refloop:specialty", "code": s.as_str()}], "text": s.as_str()});
    }
    if let Some(name) = &r.specialist {
        sr["performer"] = json!([{"display": name}]);
    }
    sr
}

/// The BSeR business status of a referral's state.
fn business_status(state: State) -> (&'static str, &'static str) {
    match state {
        State::Ordered | State::PatientNotified => ("2.0", "Service Request Created"),
        State::Scheduled => ("5.1.1", "Event Scheduled"),
        State::Attended => ("5.1.4", "Event Completed"),
        State::NoteReceived => ("7.0", "Fulfillment Completed"),
        State::Cancelled | State::ClosedIncomplete => ("6.0", "Fulfillment Cancelled"),
    }
}

/// The referral's progress as a Task (`basedOn` and `focus` the ServiceRequest).
pub fn tracking_task(r: &Referral) -> Value {
    let status = match r.state {
        State::NoteReceived => "completed",
        State::Cancelled => "cancelled",
        State::ClosedIncomplete => "failed",
        _ => "in-progress",
    };
    let (code, display) = business_status(r.state);
    let m = &r.milestones;
    let end = m.note_received.or(m.cancelled).filter(|_| r.state.is_terminal() || r.state == State::NoteReceived);
    let last = [m.ordered, m.patient_notified, m.scheduled, m.attended, m.note_received, m.cancelled]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(r.ordered_at);
    let sr = format!("ServiceRequest/{}", fhir_id(r.id.as_str()));
    let mut task = json!({
        "resourceType": "Task",
        "id": tracking_task_id(r.id.as_str()),
        "identifier": [{"system": "urn:refloop:tracking-task", "value": r.id.as_str()}],
        "basedOn": [{"reference": sr}],
        "focus": {"reference": sr},
        "status": status,
        "businessStatus": {"coding": [{"system": BSER, "code": code, "display": display}], "text": r.state.as_str()},
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "for": {"reference": format!("Patient/{}", r.patient_id.as_str())},
        "authoredOn": r.ordered_at.to_string(),
        "lastModified": last.to_string(),
        "executionPeriod": {"start": r.ordered_at.to_string()},
        "requester": {"identifier": {"system": "urn:refloop:provider", "value": r.referring_provider.as_str()}},
    });
    if let Some(end) = end {
        task["executionPeriod"]["end"] = json!(end.to_string());
    }
    if let Some(owner) = r.specialist.as_deref().or(r.specialty.as_ref().map(|s| s.as_str())) {
        task["owner"] = json!({"display": owner});
    }
    task
}

/// A staff task (worklist item) as a Task.
pub fn staff_task(t: &StaffTask) -> Value {
    let status = match t.status {
        TaskStatus::Open => "requested",
        TaskStatus::Claimed => "accepted",
        TaskStatus::Done => "completed",
    };
    let mut task = json!({
        "resourceType": "Task",
        "id": fhir_id(&t.id),
        "identifier": [{"system": "urn:refloop:task", "value": t.id}],
        "basedOn": [{"reference": format!("ServiceRequest/{}", fhir_id(t.referral_id.as_str()))}],
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": "urn:refloop:task-kind", "code": t.kind.as_str()}], "text": t.kind.as_str()},
        "authoredOn": t.created_at.to_string(),
        "restriction": {"period": {"end": t.due_at.to_string()}},
    });
    if let Some(who) = &t.assignee {
        task["owner"] = json!({"display": who});
    }
    if let Some(done) = t.completed_at {
        task["executionPeriod"] = json!({"start": t.created_at.to_string(), "end": done.to_string()});
    }
    task
}
