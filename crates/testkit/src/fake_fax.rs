//! A small fake of a fax provider's HTTP API (Phaxio-style `POST /v2.1/faxes`, basic auth)
//! on loopback: records each fax with its tags, lists them by tag (`GET /v2.1/faxes?tag[k]=v`),
//! and can answer the next requests 500 before or after taking the fax.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use serde_json::json;
use tokio::net::TcpListener;

pub const FAX_KEY: &str = "fake-fax-key";
pub const FAX_SECRET: &str = "fake-fax-secret";

/// A fax the fake accepted: the number, the HTML sent and its tags.
#[derive(Clone, Debug)]
pub struct SentFax {
    pub to: String,
    pub html: String,
    pub tags: HashMap<String, String>,
}

#[derive(Default)]
struct Inner {
    sent: Vec<SentFax>,
    /// The next requests answered 500 without taking the fax.
    refuse: usize,
    /// The next requests answered 500 after taking the fax (it goes out all the same).
    lose_answer: usize,
    lookups: usize,
}

#[derive(Clone)]
pub struct FakeFax {
    inner: Arc<Mutex<Inner>>,
    pub base: String,
}

impl FakeFax {
    pub async fn start() -> FakeFax {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("an address");
        let fake = FakeFax { inner: Arc::default(), base: format!("http://{addr}") };
        let app = Router::new().route("/v2.1/faxes", post(send).get(list)).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake fax API runs") });
        fake
    }

    pub fn sent(&self) -> Vec<SentFax> {
        self.inner.lock().unwrap().sent.clone()
    }

    /// The next `n` requests get a 500 and no fax is sent.
    pub fn refuse_next(&self, n: usize) {
        self.inner.lock().unwrap().refuse = n;
    }

    /// The next `n` requests get a 500 although the fax is taken and sent.
    pub fn lose_next_answers(&self, n: usize) {
        self.inner.lock().unwrap().lose_answer = n;
    }

    /// Lookups (`GET /v2.1/faxes`) received.
    pub fn lookups(&self) -> usize {
        self.inner.lock().unwrap().lookups
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{FAX_KEY}:{FAX_SECRET}")));
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn server_error() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"success": false, "message": "internal error"}))).into_response()
}

/// The faxes whose tags match every `tag[k]=v` of the query.
async fn list(
    State(f): State<FakeFax>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut inner = f.inner.lock().unwrap();
    inner.lookups += 1;
    let wanted: Vec<(&str, &String)> = q
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("tag[").and_then(|k| k.strip_suffix(']')).map(|k| (k, v)))
        .collect();
    let data: Vec<_> = inner
        .sent
        .iter()
        .enumerate()
        .filter(|(_, fax)| wanted.iter().all(|(k, v)| fax.tags.get(*k) == Some(*v)))
        .map(|(i, fax)| json!({"id": i + 1, "status": "success", "direction": "sent", "tags": fax.tags}))
        .collect();
    Json(json!({"success": true, "data": data})).into_response()
}

async fn send(State(f): State<FakeFax>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (Some(to), Some(html)) = (form.get("to"), form.get("string_data")) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"success": false}))).into_response();
    };
    let mut inner = f.inner.lock().unwrap();
    if inner.refuse > 0 {
        inner.refuse -= 1;
        return server_error();
    }
    let tags = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("tags[").and_then(|k| k.strip_suffix(']')).map(|k| (k.to_owned(), v.clone()))
        })
        .collect();
    inner.sent.push(SentFax { to: to.clone(), html: html.clone(), tags });
    if inner.lose_answer > 0 {
        inner.lose_answer -= 1;
        return server_error();
    }
    Json(json!({"success": true, "message": "Fax queued for sending", "data": {"id": inner.sent.len()}}))
        .into_response()
}
