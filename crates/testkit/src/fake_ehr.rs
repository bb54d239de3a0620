//! A small fake of an EHR's FHIR R4 server on loopback, for pull-mode tests: searches by
//! `_lastUpdated` with `_count` paging (`next` links), reads by id, and a SMART Backend
//! Services token endpoint that checks the client's RS384 assertion.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The test key pair (see `keys/README.md`).
pub const SMART_PRIVATE_KEY: &[u8] = include_bytes!("../keys/smart-test-private.pem");
const SMART_PUBLIC_KEY: &[u8] = include_bytes!("../keys/smart-test-public.pem");
const ACCESS_TOKEN: &str = "fake-ehr-access-token";
pub const CLIENT_ID: &str = "refloop-test-client";

#[derive(Default)]
struct Inner {
    resources: Vec<Value>,
    /// Answer this many searches with 503 before serving.
    failures: usize,
    /// Query strings of the searches, in order.
    searches: Vec<String>,
    tokens_issued: usize,
    /// Resources refloop wrote back (Tasks, Communications).
    created: Vec<Value>,
    /// Takes writes without a token (a specialist's endpoint in the note-request tests).
    open: bool,
}

/// The running fake; dropping it leaves the server to the end of the test.
#[derive(Clone)]
pub struct FakeEhr {
    inner: Arc<Mutex<Inner>>,
    /// `http://127.0.0.1:PORT/fhir`
    pub base: String,
    /// `http://127.0.0.1:PORT/token`
    pub token_url: String,
}

impl FakeEhr {
    pub async fn start() -> FakeEhr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        let fake = FakeEhr {
            inner: Arc::default(),
            base: format!("http://{addr}/fhir"),
            token_url: format!("http://{addr}/token"),
        };
        let app = Router::new()
            .route("/token", post(token))
            .route("/fhir/metadata", get(metadata))
            .route("/fhir/{kind}", get(search).post(create))
            .route("/fhir/{kind}/{id}", get(read))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake EHR runs") });
        fake
    }

    /// A specialist's FHIR endpoint that takes Tasks (note requests) without a token.
    pub async fn start_open() -> FakeEhr {
        let fake = Self::start().await;
        fake.inner.lock().unwrap().open = true;
        fake
    }

    /// Adds a resource, last updated at `at`.
    pub fn put(&self, mut resource: Value, at: &str) {
        resource["meta"] = json!({"lastUpdated": at, "versionId": "1"});
        let mut inner = self.inner.lock().unwrap();
        let (kind, id) = (resource["resourceType"].clone(), resource["id"].clone());
        inner.resources.retain(|r| !(r["resourceType"] == kind && r["id"] == id));
        inner.resources.push(resource);
    }

    /// The next `n` searches fail with 503.
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().unwrap().failures = n;
    }

    pub fn searches(&self) -> Vec<String> {
        self.inner.lock().unwrap().searches.clone()
    }

    /// The Tasks refloop created here (conditional creates that matched are not repeated).
    pub fn tasks(&self) -> Vec<Value> {
        self.created("Task")
    }

    /// The Communications (portal messages) refloop created here.
    pub fn communications(&self) -> Vec<Value> {
        self.created("Communication")
    }

    /// The DocumentReferences (consult notes written back) refloop created here.
    pub fn documents(&self) -> Vec<Value> {
        self.created("DocumentReference")
    }

    fn created(&self, kind: &str) -> Vec<Value> {
        self.inner.lock().unwrap().created.iter().filter(|r| r["resourceType"] == kind).cloned().collect()
    }

    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().unwrap().tokens_issued
    }
}

/// The server's CapabilityStatement (FHIR R4).
async fn metadata() -> Response {
    Json(json!({
        "resourceType": "CapabilityStatement", "status": "active", "date": "2026-01-01", "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["json"],
        "rest": [{"mode": "server", "resource": [{"type": "ServiceRequest"}, {"type": "DocumentReference"}]}]
    }))
    .into_response()
}

async fn token(State(f): State<FakeEhr>, Form(form): Form<HashMap<String, String>>) -> Response {
    let assertion = form.get("client_assertion").cloned().unwrap_or_default();
    let mut v = Validation::new(Algorithm::RS384);
    v.set_audience(&[f.token_url.as_str()]);
    v.set_issuer(&[CLIENT_ID]);
    // The client's clock may be a test's manual clock: check the signature and claims, not
    // the wall-clock expiry.
    v.validate_exp = false;
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let key = DecodingKey::from_rsa_pem(SMART_PUBLIC_KEY).expect("the test public key");
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_assertion_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && jsonwebtoken::decode::<Value>(&assertion, &key, &v).is_ok_and(|t| t.claims["sub"] == CLIENT_ID);
    if !ok {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_client"}))).into_response();
    }
    f.inner.lock().unwrap().tokens_issued += 1;
    Json(json!({"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 300, "scope": "system/*.read"}))
        .into_response()
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {ACCESS_TOKEN}"))
}

async fn search(
    State(f): State<FakeEhr>,
    Path(kind): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut inner = f.inner.lock().unwrap();
    let mut query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    query.sort();
    inner.searches.push(format!("{kind}?{}", query.join("&")));
    if inner.failures > 0 {
        inner.failures -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let after: Option<Timestamp> =
        q.get("_lastUpdated").and_then(|v| v.strip_prefix("gt")).and_then(|v| v.parse().ok());
    let count: usize = q.get("_count").and_then(|c| c.parse().ok()).unwrap_or(50);
    let offset: usize = q.get("_offset").and_then(|c| c.parse().ok()).unwrap_or(0);
    let updated = |r: &Value| r["meta"]["lastUpdated"].as_str().and_then(|s| s.parse::<Timestamp>().ok());
    let mut matching: Vec<&Value> = inner
        .resources
        .iter()
        .filter(|r| r["resourceType"] == kind.as_str())
        .filter(|r| after.is_none_or(|a| updated(r).is_some_and(|u| u > a)))
        .filter(|r| {
            q.get("related").is_none_or(|want| {
                r["context"]["related"]
                    .as_array()
                    .is_some_and(|rel| rel.iter().any(|x| x["reference"] == want.as_str()))
            })
        })
        .collect();
    matching.sort_by_key(|r| updated(r));
    let page: Vec<Value> = matching.iter().skip(offset).take(count).map(|r| json!({"resource": r})).collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": matching.len(), "entry": page});
    if offset + count < matching.len() {
        let mut next: Vec<String> =
            q.iter().filter(|(k, _)| *k != "_offset").map(|(k, v)| format!("{k}={v}")).collect();
        next.push(format!("_offset={}", offset + count));
        bundle["link"] = json!([{"relation": "next", "url": format!("{}/{kind}?{}", f.base, next.join("&"))}]);
    }
    Json(bundle).into_response()
}

async fn read(State(f): State<FakeEhr>, Path((kind, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let inner = f.inner.lock().unwrap();
    match inner.resources.iter().find(|r| r["resourceType"] == kind.as_str() && r["id"] == id.as_str()) {
        Some(r) => Json(r.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn create(State(f): State<FakeEhr>, Path(kind): Path<String>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&headers) && !f.inner.lock().unwrap().open {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(resource) = serde_json::from_str::<Value>(&body) else { return StatusCode::BAD_REQUEST.into_response() };
    if !matches!(kind.as_str(), "Task" | "Communication" | "DocumentReference")
        || resource["resourceType"] != kind.as_str()
    {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    }
    let mut inner = f.inner.lock().unwrap();
    let wanted = headers
        .get("if-none-exist")
        .and_then(|v| v.to_str().ok())
        .and_then(|q| q.rsplit_once('|'))
        .map(|(_, v)| v.to_owned());
    if let Some(value) = wanted
        && inner
            .created
            .iter()
            .any(|t| t["resourceType"] == kind.as_str() && t["identifier"][0]["value"] == value.as_str())
    {
        return StatusCode::OK.into_response();
    }
    let mut created = resource;
    created["id"] = json!(format!("{}-{}", kind.to_lowercase(), inner.created.len() + 1));
    inner.created.push(created.clone());
    (StatusCode::CREATED, Json(created)).into_response()
}
