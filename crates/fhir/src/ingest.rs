//! The FHIR front door: a resource (or each resource of a Bundle) is read, kept raw in the
//! inbox and applied in one transaction — the same inbox, idempotency and dead-letter
//! rules as HL7 v2. A resend (same resource id and version, or the same content) gets the
//! same answer without being applied twice. A transaction Bundle is all or nothing.

use std::collections::HashMap;

use refloop_app::{App, Described, InboxItem, InboxStatus, Mapped, Protocol, StoreError, Tx, Via, new_id};
use refloop_domain::PatientId;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    map::{ACCEPTED, FhirConfig, Mapping, map_resource},
    outcome::{FhirError, Issue, outcome},
    readback::fhir_id,
};

/// The answer to one resource.
#[derive(Clone, Debug)]
pub struct Reply {
    /// 201 created, 200 updated or understood, 202 waiting for review, 422 kept as a dead
    /// letter.
    pub status: u16,
    pub issues: Vec<Issue>,
    /// `ServiceRequest/{id}` of the referral it created or changed.
    pub location: Option<String>,
    pub inbox_id: String,
    pub inbox_status: InboxStatus,
    pub duplicate: bool,
    /// Why it was not applied, when it was not.
    pub note: Option<String>,
}

impl Reply {
    pub fn outcome(&self) -> Value {
        outcome(&self.issues)
    }
}

/// The answer to a Bundle: its HTTP status and the response Bundle (or OperationOutcome).
#[derive(Clone, Debug)]
pub struct BundleReply {
    pub status: u16,
    pub body: Value,
    /// Resources applied (created, updated or understood).
    pub applied: usize,
}

/// How a resource arrived: created (the server names it) or updated at an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Post,
    Put(String),
}

/// A resource read and mapped, ready to apply.
struct Prepared {
    kind: String,
    source: String,
    control: String,
    raw: Vec<u8>,
    mapping: Mapping,
    /// What the CMS50 measure reads from this resource, if anything: `(key, patient, fact)`.
    fact: Option<(String, String, refloop_domain::cms50::Fact)>,
}

/// Receives FHIR resources and Bundles for an [`App`].
#[derive(Clone)]
pub struct FhirIngest {
    app: App,
    cfg: FhirConfig,
}

/// Applied in this order inside a Bundle: who, then the order, then what happened to it.
fn rank(kind: &str) -> u8 {
    match kind {
        "Patient" | "Consent" | "Practitioner" | "PractitionerRole" | "Organization" => 0,
        "ServiceRequest" => 1,
        "Appointment" => 2,
        "Encounter" => 3,
        _ => 4,
    }
}

fn parse_json(body: &[u8]) -> Result<Value, FhirError> {
    serde_json::from_slice(body).map_err(|e| {
        FhirError::invalid("invalid", format!("not JSON: line {} column {}", e.line(), e.column()), None::<String>)
    })
}

impl FhirIngest {
    pub fn new(app: App, cfg: FhirConfig) -> Self {
        Self { app, cfg }
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Checks, names and maps one resource (nothing is stored yet).
    fn prepare(&self, mut resource: Value, method: &Method, expected: Option<&str>) -> Result<Prepared, FhirError> {
        let Some(kind) = resource.get("resourceType").and_then(Value::as_str).map(str::to_owned) else {
            return Err(FhirError::invalid("required", "resourceType is required", Some("resourceType".to_owned())));
        };
        if let Some(expected) = expected
            && kind != expected
        {
            return Err(FhirError::invalid(
                "invalid",
                format!("resourceType {kind} does not match the URL ({expected})"),
                Some("resourceType".to_owned()),
            ));
        }
        // Inside a Bundle, context the sender includes (Coverage, MeasureReport …) is taken
        // and left alone; on its own URL such a type is not supported.
        let unused = !ACCEPTED.contains(&kind.as_str());
        if unused && expected.is_some() {
            return Err(FhirError::new(
                404,
                Issue::error(
                    "not-supported",
                    format!("resource type {kind} is not supported"),
                    Some("resourceType".into()),
                ),
            ));
        }
        match method {
            Method::Put(id) => match resource.get("id").and_then(Value::as_str) {
                Some(body_id) if body_id == id => {}
                Some(_) => {
                    return Err(FhirError::invalid(
                        "invalid",
                        format!("{kind}.id does not match the id in the URL"),
                        Some(format!("{kind}.id")),
                    ));
                }
                None => {
                    return Err(FhirError::invalid(
                        "required",
                        format!("{kind}.id is required for an update"),
                        Some(format!("{kind}.id")),
                    ));
                }
            },
            // The server names a created resource; the sender's id (if any) is not kept.
            Method::Post => resource["id"] = json!(fhir_id(&new_id("fhr"))),
        }
        let id = resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(FhirError::invalid("value", format!("{kind}.id is not a FHIR id"), Some(format!("{kind}.id"))));
        }
        let mapping = if unused {
            Mapping {
                mapped: Mapped::Ignore("a resource type refloop does not use"),
                warnings: vec![Issue::warning(
                    "not-supported",
                    format!("{kind} is not used by refloop; taken and ignored"),
                    Some("resourceType".to_owned()),
                )],
            }
        } else {
            map_resource(&resource, &self.cfg, self.app.now())?
        };
        let fact = crate::cms50::fact_of(&resource, &self.cfg.time_zone);
        let raw = serde_json::to_vec(&resource).expect("a JSON value serializes");
        let version = resource.pointer("/meta/versionId").and_then(Value::as_str);
        let control = match (method, version) {
            (Method::Put(_), Some(v)) => format!("v{v}"),
            // Without a version, the content itself (keys sorted) names the version; a POST's
            // server-given id is left out so a resent create is recognized.
            _ => {
                let mut content = resource.clone();
                if *method == Method::Post {
                    content.as_object_mut().map(|o| o.remove("id"));
                }
                let digest = Sha256::digest(serde_json::to_vec(&content).expect("a JSON value serializes"));
                format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        let source = match method {
            Method::Put(_) => format!("{kind}/{id}"),
            Method::Post => kind.clone(),
        };
        Ok(Prepared { kind, source, control, raw, mapping, fact })
    }

    /// Applies a prepared resource inside `tx`: a resend is answered as before.
    async fn apply(&self, tx: &mut dyn Tx, p: Prepared, via: &Via) -> Result<Reply, StoreError> {
        let now = self.app.now();
        if let Some(prev) = tx.inbox_get(FhirProtocol::NAME, &p.source, &p.control).await? {
            return Ok(replay(prev));
        }
        let inbox_id = new_id("inb");
        if let Some((key, patient, fact)) = &p.fact {
            tx.put_fact(key, patient, fact, now).await?;
        }
        let created = match &p.mapping.mapped {
            Mapped::Order(order) => {
                let mut known = false;
                for key in &order.source_ids {
                    known |= tx.referral_by_key(key).await?.is_some();
                }
                !known
            }
            _ => false,
        };
        let Mapping { mapped, mut warnings } = p.mapping;
        let actor = via.actor(&format!("{}/{inbox_id}", FhirProtocol::NAME), &p.source);
        let done = self.app.apply_mapped(tx, mapped, &inbox_id, &actor).await?;
        let status = match done.status {
            InboxStatus::Applied if created => 201,
            InboxStatus::Applied | InboxStatus::Ignored => 200,
            InboxStatus::Review => 202,
            InboxStatus::Dead | InboxStatus::Rejected => 422,
        };
        let mut issues = Vec::new();
        match done.status {
            InboxStatus::Rejected => issues.push(Issue::error(
                "processing",
                format!("{} — refused (kept as {inbox_id})", done.note.as_deref().unwrap_or("refused")),
                None::<String>,
            )),
            InboxStatus::Dead => issues.push(Issue::error(
                "processing",
                format!(
                    "{} — kept as dead letter {inbox_id}; retry it once the referral exists",
                    done.note.as_deref().unwrap_or("not applied")
                ),
                None::<String>,
            )),
            InboxStatus::Review => issues.push(Issue::warning(
                "processing",
                format!("{} — waiting for review as {inbox_id}", done.note.as_deref().unwrap_or("uncertain match")),
                None::<String>,
            )),
            _ => {
                let what = done.note.clone().unwrap_or_else(|| "applied".to_owned());
                issues.push(Issue::info(format!("{what} (inbox {inbox_id})")));
            }
        }
        issues.append(&mut warnings);
        let location = done.referral.as_ref().map(|r| format!("ServiceRequest/{}", fhir_id(r.as_str())));
        let item = InboxItem {
            id: inbox_id.clone(),
            protocol: FhirProtocol::NAME.to_owned(),
            source: p.source,
            control_id: p.control,
            transport: via.describe(),
            message_type: p.kind,
            received_at: now,
            raw: p.raw,
            status: done.status,
            ack: Some(status.to_string().into_bytes()),
            application_ack: None,
            error: done.note.clone(),
            referral_id: done.referral.clone(),
            attempts: 1,
            updated_at: now,
        };
        tx.inbox_put(&item).await?;
        let label = crate::map::ACCEPTED.iter().find(|k| **k == item.message_type).copied().unwrap_or("other");
        metrics::counter!("refloop_fhir_resources_total", "type" => label, "status" => done.status.as_str())
            .increment(1);
        tracing::info!(
            inbox_id = %item.id,
            resource_type = %item.message_type,
            status = done.status.as_str(),
            referral_id = done.referral.as_ref().map(|r| r.as_str()).unwrap_or(""),
            "FHIR resource received"
        );
        Ok(Reply { status, issues, location, inbox_id, inbox_status: done.status, duplicate: false, note: done.note })
    }

    /// `POST /fhir/{kind}` (`id` none) or `PUT /fhir/{kind}/{id}`; `if_none_exist` is the
    /// conditional-create query (`identifier=[system|]value`, ServiceRequest only).
    pub async fn receive(
        &self,
        body: &[u8],
        kind: &str,
        id: Option<&str>,
        if_none_exist: Option<&str>,
        via: &Via,
    ) -> Result<Reply, FhirError> {
        let resource = parse_json(body)?;
        let method = id.map_or(Method::Post, |id| Method::Put(id.to_owned()));
        let prepared = self.prepare(resource, &method, Some(kind))?;
        let mut tx = self.app.store().begin().await.map_err(store)?;
        if let Some(query) = if_none_exist {
            if kind != "ServiceRequest" {
                return Err(FhirError::invalid(
                    "not-supported",
                    "conditional create is supported for ServiceRequest only",
                    None::<String>,
                ));
            }
            let value = query
                .strip_prefix("identifier=")
                .map(|v| v.rsplit_once('|').map_or(v, |(_, value)| value))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    FhirError::invalid(
                        "not-supported",
                        "If-None-Exist supports identifier=[system|]value only",
                        None::<String>,
                    )
                })?;
            if let Some(existing) = tx.referral_by_key(value).await.map_err(store)? {
                return Ok(Reply {
                    status: 200,
                    issues: vec![Issue::info("a referral with this identifier exists; nothing created")],
                    location: Some(format!("ServiceRequest/{}", fhir_id(existing.as_str()))),
                    inbox_id: String::new(),
                    inbox_status: InboxStatus::Ignored,
                    duplicate: true,
                    note: None,
                });
            }
        }
        let reply = self.apply(tx.as_mut(), prepared, via).await.map_err(store)?;
        tx.commit().await.map_err(store)?;
        self.app.wake_workers();
        Ok(reply)
    }

    /// `POST /fhir` with a `transaction` or `batch` Bundle.
    pub async fn bundle(&self, body: &[u8], via: &Via) -> Result<BundleReply, FhirError> {
        let bundle = parse_json(body)?;
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(FhirError::invalid("invalid", "POST /fhir takes a Bundle", Some("resourceType".to_owned())));
        }
        match bundle.get("type").and_then(Value::as_str) {
            Some("transaction") => self.transaction(bundle, via).await,
            Some("batch") => Ok(self.batch(bundle, via).await),
            _ => Err(FhirError::invalid(
                "invalid",
                "Bundle.type must be transaction or batch",
                Some("Bundle.type".to_owned()),
            )),
        }
    }

    /// Imports a file's content: any Bundle (a transaction stays all or nothing; the entries
    /// of other types are taken one by one) or a single resource.
    pub async fn import(&self, value: Value) -> Result<BundleReply, FhirError> {
        if value.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            if value.get("type").and_then(Value::as_str) == Some("transaction") {
                return self.transaction(value, &Via::file()).await;
            }
            return Ok(self.batch(value, &Via::file()).await);
        }
        Ok(self.import_resources(vec![value]).await)
    }

    /// Imports resources (e.g. NDJSON lines) together in one transaction; when that fails,
    /// each on its own.
    pub async fn import_resources(&self, resources: Vec<Value>) -> BundleReply {
        let entries: Vec<Value> = resources.into_iter().map(|r| json!({"resource": r})).collect();
        let as_transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        match self.transaction(as_transaction.clone(), &Via::file()).await {
            Ok(reply) => reply,
            Err(_) => self.batch(as_transaction, &Via::file()).await,
        }
    }

    /// The entries of a Bundle with `urn:uuid` references resolved, each with how it came.
    fn entries(&self, bundle: &Value) -> Result<Vec<(Value, Method)>, FhirError> {
        let entries = bundle.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let at = |p: &str| format!("Bundle.entry[{i}].{p}");
            let Some(resource) = e.get("resource").cloned() else {
                return Err(FhirError::invalid("required", "an entry without a resource", Some(at("resource"))));
            };
            let kind = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default().to_owned();
            let request = e.get("request");
            let method = request.and_then(|r| r.get("method")).and_then(Value::as_str);
            let url = request.and_then(|r| r.get("url")).and_then(Value::as_str).unwrap_or_default();
            let method = match method {
                Some("PUT") => {
                    let path = url.split('?').next().unwrap_or(url);
                    let path = path.split("/_history/").next().unwrap_or(path);
                    let id = path.rsplit('/').next().unwrap_or_default();
                    Method::Put(id.to_owned())
                }
                Some("POST") => Method::Post,
                Some(other) => {
                    return Err(FhirError::invalid(
                        "not-supported",
                        format!("entry method {other} is not supported (POST and PUT are)"),
                        Some(at("request.method")),
                    ));
                }
                None => match resource.get("id").and_then(Value::as_str) {
                    Some(id) => Method::Put(id.to_owned()),
                    None => Method::Post,
                },
            };
            // A created resource gets its name now, so references to it can be resolved.
            let (method, resource) = match method {
                Method::Post => {
                    let id = fhir_id(&new_id("fhr"));
                    let mut r = resource;
                    r["id"] = json!(id);
                    (Method::Put(id), r)
                }
                put => (put, resource),
            };
            if let (Some(full), Method::Put(id)) = (e.get("fullUrl").and_then(Value::as_str), &method) {
                names.insert(full.to_owned(), format!("{kind}/{id}"));
            }
            out.push((resource, method));
        }
        for (i, (resource, _)) in out.iter_mut().enumerate() {
            resolve(resource, &names, &format!("Bundle.entry[{i}].resource"))?;
        }
        Ok(out)
    }

    async fn transaction(&self, bundle: Value, via: &Via) -> Result<BundleReply, FhirError> {
        let entries = self.entries(&bundle)?;
        let mut prepared = Vec::with_capacity(entries.len());
        for (i, (resource, method)) in entries.into_iter().enumerate() {
            let p = self.prepare(resource, &method, None).map_err(|e| FhirError {
                issues: e.issues.into_iter().map(|x| x.within(&format!("Bundle.entry[{i}].resource"))).collect(),
                ..e
            })?;
            prepared.push((i, p));
        }
        prepared.sort_by_key(|(_, p)| rank(&p.kind));
        let mut tx = self.app.store().begin().await.map_err(store)?;
        let (keys, patients) = lookups(&prepared);
        tx.prefetch(FhirProtocol::NAME, &[], &keys, &patients).await.map_err(store)?;
        let mut replies: Vec<(usize, Reply)> = Vec::with_capacity(prepared.len());
        for (i, p) in prepared {
            let reply = self.apply(tx.as_mut(), p, via).await.map_err(store)?;
            if reply.status >= 400 {
                // All or nothing: dropping the transaction rolls it back, with the inbox row
                // this entry would have been kept as; the answer names nothing that was not kept.
                let why = format!(
                    "{} — nothing was kept: a transaction Bundle is all or nothing; fix this entry and send the whole Bundle again",
                    reply.note.as_deref().unwrap_or("not applied")
                );
                let issues =
                    vec![Issue::error("processing", why, None::<String>).within(&format!("Bundle.entry[{i}]"))];
                return Err(FhirError { status: reply.status, issues });
            }
            replies.push((i, reply));
        }
        tx.commit().await.map_err(store)?;
        self.app.wake_workers();
        replies.sort_by_key(|(i, _)| *i);
        let applied = replies.len();
        let entry: Vec<Value> =
            replies.iter().map(|(_, r)| response_entry(r.status, r.location.as_deref(), &r.issues)).collect();
        Ok(BundleReply {
            status: 200,
            body: json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entry}),
            applied,
        })
    }

    async fn batch(&self, bundle: Value, via: &Via) -> BundleReply {
        let entries = match self.entries(&bundle) {
            Ok(e) => e,
            Err(e) => return BundleReply { status: e.status, body: e.outcome(), applied: 0 },
        };
        let mut out = Vec::with_capacity(entries.len());
        let mut applied = 0;
        for (resource, method) in entries {
            let result = async {
                let p = self.prepare(resource, &method, None)?;
                let mut tx = self.app.store().begin().await.map_err(store)?;
                let reply = self.apply(tx.as_mut(), p, via).await.map_err(store)?;
                tx.commit().await.map_err(store)?;
                Ok::<_, FhirError>(reply)
            }
            .await;
            out.push(match result {
                Ok(r) => {
                    applied += usize::from(r.status < 400);
                    response_entry(r.status, r.location.as_deref(), &r.issues)
                }
                Err(e) => response_entry(e.status, None, &e.issues),
            });
        }
        self.app.wake_workers();
        BundleReply {
            status: 200,
            body: json!({"resourceType": "Bundle", "type": "batch-response", "entry": out}),
            applied,
        }
    }
}

/// FHIR R4 as an inbound protocol (registered on the app): stored resources are mapped again
/// with today's configuration, and shown as indented JSON.
pub struct FhirProtocol {
    cfg: FhirConfig,
}

impl FhirProtocol {
    /// The name the inbox keeps.
    pub const NAME: &'static str = "fhir";

    pub fn new(cfg: FhirConfig) -> Self {
        Self { cfg }
    }
}

impl Protocol for FhirProtocol {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn remap(&self, raw: &[u8], now: jiff::Timestamp) -> Result<Mapped, String> {
        let resource: Value = serde_json::from_slice(raw).map_err(|_| "is not JSON".to_owned())?;
        map_resource(&resource, &self.cfg, now).map(|m| m.mapped).map_err(|e| e.to_string())
    }

    fn describe(&self, raw: &[u8]) -> Option<Described> {
        let value = serde_json::from_slice::<Value>(raw).ok()?;
        serde_json::to_string_pretty(&value).ok().map(Described::Text)
    }
}

/// What a batch of resources will look up: referral keys, and patients of new orders.
fn lookups(prepared: &[(usize, Prepared)]) -> (Vec<String>, Vec<PatientId>) {
    let (mut keys, mut patients) = (Vec::new(), Vec::new());
    for (_, p) in prepared {
        match &p.mapping.mapped {
            Mapped::Order(o) => {
                keys.extend(o.source_ids.iter().cloned());
                patients.push(o.patient_id.clone());
            }
            Mapped::Event { target, .. } => keys.extend(target.keys.iter().cloned()),
            _ => {}
        }
    }
    (keys, patients)
}

/// Replaces `urn:uuid:`/`urn:oid:` references by the `Type/id` of the entry they name.
fn resolve(v: &mut Value, names: &HashMap<String, String>, at: &str) -> Result<(), FhirError> {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let here = format!("{at}.{k}");
                if k == "reference"
                    && let Value::String(r) = child
                    && (r.starts_with("urn:uuid:") || r.starts_with("urn:oid:"))
                {
                    let Some(name) = names.get(r.as_str()) else {
                        return Err(FhirError::new(
                            422,
                            Issue::error(
                                "not-found",
                                format!("reference {r} names no entry of this Bundle"),
                                Some(here),
                            ),
                        ));
                    };
                    *r = name.clone();
                } else {
                    resolve(child, names, &here)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                resolve(child, names, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn response_entry(status: u16, location: Option<&str>, issues: &[Issue]) -> Value {
    let text = match status {
        200 => "200 OK",
        201 => "201 Created",
        202 => "202 Accepted",
        400 => "400 Bad Request",
        404 => "404 Not Found",
        412 => "412 Precondition Failed",
        422 => "422 Unprocessable Entity",
        _ => "500 Internal Server Error",
    };
    let mut response = json!({"status": text, "outcome": outcome(issues)});
    if let Some(l) = location {
        response["location"] = json!(l);
    }
    json!({"response": response})
}

/// A resend: the answer the first copy got.
fn replay(prev: InboxItem) -> Reply {
    let status =
        prev.ack.as_deref().and_then(|a| std::str::from_utf8(a).ok()).and_then(|s| s.parse().ok()).unwrap_or(200);
    Reply {
        status: if status == 201 { 200 } else { status },
        issues: vec![Issue::info(format!("already received as {}; not applied again", prev.id))],
        location: prev.referral_id.as_ref().map(|r| format!("ServiceRequest/{}", fhir_id(r.as_str()))),
        inbox_id: prev.id,
        inbox_status: prev.status,
        duplicate: true,
        note: prev.error,
    }
}

fn store(e: StoreError) -> FhirError {
    tracing::error!(error = %e, "storage failed while receiving FHIR");
    FhirError::new(500, Issue::error("exception", "storage failed; nothing was applied", None::<String>))
}
