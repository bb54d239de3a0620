//! A small SMART Scheduling Links slot publisher on loopback: a `$bulk-publish` manifest with
//! one Slot file (NDJSON), served with `Last-Modified`; a request whose `If-Modified-Since`
//! matches gets 304. Records the `If-Modified-Since` of each manifest request.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct FakeSlots {
    slots: Arc<Mutex<Vec<serde_json::Value>>>,
    modified: Arc<Mutex<String>>,
    asked_since: Arc<Mutex<Vec<Option<String>>>>,
    base: String,
    /// The manifest's URL.
    pub manifest_url: String,
}

/// A free Slot starting at `start` with these booking extensions (the IG's URLs).
pub fn slot(id: &str, start: &str, status: &str, link: Option<&str>, phone: Option<&str>) -> serde_json::Value {
    let mut ext = Vec::new();
    if let Some(l) = link {
        ext.push(serde_json::json!({"url": "http://hl7.org/fhir/uv/smart-scheduling-links/StructureDefinition/booking-deep-link", "valueUrl": l}));
    }
    if let Some(p) = phone {
        ext.push(serde_json::json!({"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-phone", "valueString": p}));
    }
    serde_json::json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/s1"}, "status": status,
        "start": start, "end": start, "extension": ext})
}

impl FakeSlots {
    pub async fn start(slots: Vec<serde_json::Value>) -> FakeSlots {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let fake = FakeSlots {
            slots: Arc::new(Mutex::new(slots)),
            modified: Arc::new(Mutex::new("Mon, 05 Oct 2026 08:00:00 GMT".into())),
            asked_since: Arc::default(),
            manifest_url: format!("{base}/$bulk-publish"),
            base,
        };
        let app = Router::new()
            .route("/$bulk-publish", get(manifest))
            .route("/data/slots.ndjson", get(slot_file))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake slot publisher runs") });
        fake
    }

    /// New slots, published now (a new `Last-Modified`).
    pub fn publish(&self, slots: Vec<serde_json::Value>, modified: &str) {
        *self.slots.lock().unwrap() = slots;
        *self.modified.lock().unwrap() = modified.to_owned();
    }

    /// The `If-Modified-Since` of each manifest request, in order.
    pub fn asked_since(&self) -> Vec<Option<String>> {
        self.asked_since.lock().unwrap().clone()
    }
}

async fn manifest(State(f): State<FakeSlots>, headers: HeaderMap) -> Response {
    let since = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    f.asked_since.lock().unwrap().push(since.clone());
    let modified = f.modified.lock().unwrap().clone();
    if since.as_deref() == Some(modified.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = serde_json::json!({
        "transactionTime": "2026-10-05T08:00:00Z",
        "request": f.manifest_url,
        "output": [
            {"type": "Schedule", "url": format!("{}/data/schedules.ndjson", f.base)},
            {"type": "Slot", "url": format!("{}/data/slots.ndjson", f.base)}
        ],
        "error": []
    });
    ([(header::LAST_MODIFIED, modified), (header::CONTENT_TYPE, "application/json".to_owned())], body.to_string())
        .into_response()
}

async fn slot_file(State(f): State<FakeSlots>) -> Response {
    let lines: Vec<String> = f.slots.lock().unwrap().iter().map(|s| s.to_string()).collect();
    ([(header::CONTENT_TYPE, "application/fhir+ndjson")], lines.join("\n")).into_response()
}
