//! `/fhir`: FHIR R4 in (create, update, transaction and batch Bundles) and out (each
//! tracked referral as a ServiceRequest with its tracking Task; staff tasks as Tasks).
//! Every answer is FHIR JSON; every error an OperationOutcome.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use refloop_app::{AppError, Permission, Via};
use refloop_domain::ReferralId;
use refloop_fhir::{FHIR_JSON, FhirError, Issue, our_id, service_request, staff_task, tracking_task};
use serde_json::{Value, json};

use crate::{AppState, auth::Auth, error::ApiError};

fn fhir(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response()
}

fn error(e: &FhirError) -> Response {
    fhir(e.status, &e.outcome())
}

fn refusal(status: u16, code: &'static str, message: impl Into<String>) -> FhirError {
    FhirError::new(status, Issue::error(code, message, None::<String>))
}

fn issue(status: u16, code: &'static str, message: impl Into<String>) -> Response {
    error(&refusal(status, code, message))
}

/// The caller, allowed to do `p`; else 401/403 as an OperationOutcome.
fn allowed(auth: Result<Auth, ApiError>, p: Permission) -> Result<Auth, FhirError> {
    match auth {
        Ok(a) if a.0.role.may(p) => Ok(a),
        Ok(_) => Err(refusal(403, "forbidden", "this token's role may not do that")),
        Err(e) => Err(refusal(e.status.as_u16(), "login", e.message)),
    }
}

fn app_error(e: AppError) -> Response {
    match e {
        AppError::NotFound { what, id } => issue(404, "not-found", format!("no {what} {id}")),
        AppError::Invalid { .. } => issue(400, "invalid", e.to_string()),
        AppError::Conflict(why) => issue(409, "conflict", why),
        other => {
            tracing::error!(error = %other, "FHIR request failed");
            issue(500, "exception", "the request could not be completed")
        }
    }
}

/// A JSON body, as FHIR servers take it: `application/fhir+json` or `application/json`.
fn json_body(headers: &HeaderMap) -> Result<(), FhirError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if matches!(mime, "application/fhir+json" | "application/json") {
        Ok(())
    } else {
        Err(refusal(415, "not-supported", "send application/fhir+json"))
    }
}

/// `GET /fhir/metadata` (no token needed, as FHIR clients expect).
pub async fn metadata(State(s): State<AppState>) -> Response {
    let date = s.app.now().to_string();
    fhir(200, &refloop_fhir::capability_statement("/fhir", env!("CARGO_PKG_VERSION"), &date))
}

/// `POST /fhir`: a transaction or batch Bundle.
pub async fn bundle(
    State(s): State<AppState>,
    auth: Result<Auth, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let via = match allowed(auth, Permission::WriteReferrals).and_then(|a| json_body(&headers).map(|()| a)) {
        Ok(a) => Via::http(a.0.remote.clone(), &a.0.name),
        Err(e) => return error(&e),
    };
    match s.fhir.bundle(&body, &via).await {
        Ok(reply) => fhir(reply.status, &reply.body),
        Err(e) => error(&e),
    }
}

/// `POST /fhir/{type}`: create (conditional with `If-None-Exist`).
pub async fn create(
    State(s): State<AppState>,
    auth: Result<Auth, ApiError>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let via = match allowed(auth, Permission::WriteReferrals).and_then(|a| json_body(&headers).map(|()| a)) {
        Ok(a) => Via::http(a.0.remote.clone(), &a.0.name),
        Err(e) => return error(&e),
    };
    let if_none_exist = headers.get("if-none-exist").and_then(|v| v.to_str().ok());
    answer(s.fhir.receive(&body, &kind, None, if_none_exist, &via).await)
}

/// `PUT /fhir/{type}/{id}`: update (or create at that id).
pub async fn update(
    State(s): State<AppState>,
    auth: Result<Auth, ApiError>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let via = match allowed(auth, Permission::WriteReferrals).and_then(|a| json_body(&headers).map(|()| a)) {
        Ok(a) => Via::http(a.0.remote.clone(), &a.0.name),
        Err(e) => return error(&e),
    };
    answer(s.fhir.receive(&body, &kind, Some(&id), None, &via).await)
}

fn answer(result: Result<refloop_fhir::Reply, FhirError>) -> Response {
    match result {
        Ok(reply) => {
            let mut r = fhir(reply.status, &reply.outcome());
            if let Some(l) = reply.location.as_deref().and_then(|l| l.parse().ok()) {
                r.headers_mut().insert(header::LOCATION, l);
            }
            r
        }
        Err(e) => error(&e),
    }
}

/// `GET /fhir/{type}/{id}`: a referral as ServiceRequest; its tracking Task or a staff task.
pub async fn read(
    State(s): State<AppState>,
    auth: Result<Auth, ApiError>,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    let auth = match allowed(auth, Permission::Read) {
        Ok(a) => a,
        Err(e) => return error(&e),
    };
    let referral_of = |fhir_id: &str| ReferralId::parse(&our_id(fhir_id)).ok();
    match kind.as_str() {
        "ServiceRequest" => {
            let Some(rid) = referral_of(&id).filter(|r| r.as_str().starts_with("ref_")) else {
                return issue(404, "not-found", format!("no ServiceRequest {id}"));
            };
            match s.app.referral_detail(&auth.0, &rid).await {
                Ok(d) => fhir(200, &service_request(&d.referral)),
                Err(e) => app_error(e),
            }
        }
        "Task" => {
            if let Some(referral) = id.strip_prefix("trk-") {
                let Some(rid) = referral_of(referral) else { return issue(404, "not-found", format!("no Task {id}")) };
                return match s.app.referral_detail(&auth.0, &rid).await {
                    Ok(d) => fhir(200, &tracking_task(&d.referral)),
                    Err(e) => app_error(e),
                };
            }
            match s.app.store().task(&our_id(&id)).await {
                Ok(Some(t)) => fhir(200, &staff_task(&t)),
                Ok(None) => issue(404, "not-found", format!("no Task {id}")),
                Err(e) => app_error(e.into()),
            }
        }
        _ => issue(404, "not-supported", format!("{kind} cannot be read here (ServiceRequest and Task can)")),
    }
}

/// `GET /fhir/Task?based-on=ServiceRequest/{id}` and `GET /fhir/ServiceRequest?_id=…`:
/// searchset Bundles.
pub async fn search(
    State(s): State<AppState>,
    auth: Result<Auth, ApiError>,
    Path(kind): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    if kind == "AuditEvent" {
        return match allowed(auth, Permission::Operate) {
            Ok(a) => audit_events(&s, &a, &pairs).await,
            Err(e) => error(&e),
        };
    }
    let auth = match allowed(auth, Permission::Read) {
        Ok(a) => a,
        Err(e) => return error(&e),
    };
    let q: std::collections::HashMap<String, String> = pairs.into_iter().collect();
    let (param, value) = match kind.as_str() {
        "Task" => ("based-on", q.get("based-on")),
        "ServiceRequest" => ("_id", q.get("_id")),
        _ => return issue(404, "not-supported", format!("{kind} cannot be searched here")),
    };
    let Some(value) = value else { return issue(400, "not-supported", format!("{kind} search needs {param}")) };
    let fhir_id = value.strip_prefix("ServiceRequest/").unwrap_or(value);
    let mut found: Vec<Value> = Vec::new();
    if let Ok(rid) = ReferralId::parse(&our_id(fhir_id)) {
        match s.app.referral_detail(&auth.0, &rid).await {
            Ok(d) if kind == "Task" => {
                found.push(tracking_task(&d.referral));
                found.extend(d.tasks.iter().map(staff_task));
            }
            Ok(d) => found.push(service_request(&d.referral)),
            Err(AppError::NotFound { .. }) => {}
            Err(e) => return app_error(e),
        }
    }
    let entry: Vec<Value> = found
        .into_iter()
        .map(|r| {
            let url =
                format!("{}/{}", r["resourceType"].as_str().unwrap_or_default(), r["id"].as_str().unwrap_or_default());
            json!({"fullUrl": url, "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    fhir(200, &json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry}))
}

/// `GET /fhir/AuditEvent?patient=&date=&_count=` (admins): the audit rows naming a patient
/// or their referrals, in a period, newest first, as a searchset of R4 AuditEvents. `date`
/// takes the prefixes eq (default), ge, gt, le and lt, and may be given twice for a range; a
/// date is a local date in the practice's time zone.
async fn audit_events(s: &AppState, auth: &Auth, pairs: &[(String, String)]) -> Response {
    let tz = s.app.policy().time_zone.clone();
    let mut q = refloop_app::AuditQuery { limit: 100, ..Default::default() };
    for (k, v) in pairs {
        match k.as_str() {
            "patient" => {
                let id = our_id(v.strip_prefix("Patient/").unwrap_or(v));
                q.ids.push(id.clone());
                match s.app.referral_ids_of_patient(&id).await {
                    Ok(ids) => q.ids.extend(ids),
                    Err(e) => return app_error(e),
                }
            }
            "date" => match date_bound(v, &tz) {
                Some((from, to)) => {
                    q.from = from.or(q.from);
                    q.to = to.or(q.to);
                }
                None => {
                    return issue(400, "invalid", format!("date: {v:?} is not a date search (e.g. ge2026-03-01)"));
                }
            },
            "_count" => match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => q.limit = n,
                _ => return issue(400, "invalid", "_count: a number from 1 to 1000"),
            },
            other => {
                return issue(
                    400,
                    "not-supported",
                    format!("AuditEvent search takes patient, date and _count, not {other}"),
                );
            }
        }
    }
    let rows = match s.app.audit_search(&auth.0, &q).await {
        Ok(rows) => rows,
        Err(e) => return app_error(e),
    };
    let entry: Vec<Value> = rows
        .iter()
        .map(|r| {
            let e = refloop_fhir::audit_event(r);
            json!({"fullUrl": format!("AuditEvent/{}", e["id"].as_str().unwrap_or_default()), "resource": e, "search": {"mode": "match"}})
        })
        .collect();
    fhir(200, &json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry}))
}

/// A FHIR `date` search value as `(from, to)` bounds: a day (local in `tz`) or an instant,
/// after an optional prefix.
fn date_bound(raw: &str, tz: &jiff::tz::TimeZone) -> Option<(Option<jiff::Timestamp>, Option<jiff::Timestamp>)> {
    let (prefix, value) = match raw.get(..2) {
        Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p, &raw[2..]),
        _ => ("eq", raw),
    };
    // A local day or an instant, read as every report period is (`app::period`).
    let start = refloop_app::period::bound("date", value, tz, false).ok()?;
    let end = refloop_app::period::bound("date", value, tz, true).ok()?;
    let end = if end == start { start + jiff::SignedDuration::from_millis(1) } else { end };
    Some(match prefix {
        "ge" => (Some(start), None),
        "gt" => (Some(end), None),
        "le" => (None, Some(end)),
        "lt" => (None, Some(start)),
        _ => (Some(start), Some(end)),
    })
}

/// `POST /webhooks/fhir`: an R4 Subscription rest-hook notification from the EHR (its
/// `channel.header` carries our bearer token). Fetches the resources it names from the EHR
/// (or polls when it names none) and answers with what was applied.
pub async fn subscription_hook(State(s): State<AppState>, auth: Result<Auth, ApiError>, body: Bytes) -> Response {
    if let Err(e) = allowed(auth, Permission::WriteReferrals) {
        return error(&e);
    }
    let Some(poller) = &s.poller else {
        return issue(409, "not-supported", "pull mode is off: set [ehr] base_url to receive notifications");
    };
    match poller.notified(&body).await {
        Ok(report) => {
            let message = format!("fetched {} resources, applied {}", report.resources, report.applied);
            fhir(200, &refloop_fhir::outcome(&[Issue::info(message)]))
        }
        Err(e) => {
            tracing::warn!(error = %e, "a FHIR notification could not be followed");
            issue(502, "transient", format!("{e}"))
        }
    }
}
