//! A small fake of a fax provider's HTTP API (Phaxio-style `POST /v2.1/faxes`, basic auth)
//! on loopback: records each fax.

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

/// A fax the fake accepted: the number and the HTML sent.
#[derive(Clone, Debug)]
pub struct SentFax {
    pub to: String,
    pub html: String,
}

#[derive(Clone)]
pub struct FakeFax {
    sent: Arc<Mutex<Vec<SentFax>>>,
    pub base: String,
}

impl FakeFax {
    pub async fn start() -> FakeFax {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("an address");
        let fake = FakeFax { sent: Arc::default(), base: format!("http://{addr}") };
        let app = Router::new().route("/v2.1/faxes", post(send)).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake fax API runs") });
        fake
    }

    pub fn sent(&self) -> Vec<SentFax> {
        self.sent.lock().unwrap().clone()
    }
}

async fn send(State(f): State<FakeFax>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{FAX_KEY}:{FAX_SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (Some(to), Some(html)) = (form.get("to"), form.get("string_data")) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"success": false}))).into_response();
    };
    let mut sent = f.sent.lock().unwrap();
    sent.push(SentFax { to: to.clone(), html: html.clone() });
    Json(json!({"success": true, "message": "Fax queued for sending", "data": {"id": sent.len()}})).into_response()
}
