//! A small fake of a Slack-compatible incoming webhook on loopback: records each message.

use std::sync::{Arc, Mutex};

use axum::{Json, Router, extract::State, routing::post};
use serde_json::Value;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct FakeChat {
    posts: Arc<Mutex<Vec<Value>>>,
    /// The webhook URL.
    pub url: String,
}

impl FakeChat {
    pub async fn start() -> FakeChat {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("an address");
        let fake = FakeChat { posts: Arc::default(), url: format!("http://{addr}/services/T000/B000/XXXX") };
        let app = Router::new().route("/services/T000/B000/XXXX", post(receive)).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake chat runs") });
        fake
    }

    /// The `text` of each message received.
    pub fn texts(&self) -> Vec<String> {
        self.posts.lock().unwrap().iter().map(|p| p["text"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

async fn receive(State(f): State<FakeChat>, Json(body): Json<Value>) -> &'static str {
    f.posts.lock().unwrap().push(body);
    "ok"
}
