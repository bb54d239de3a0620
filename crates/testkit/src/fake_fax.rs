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
    /// Received faxes' PDFs, served at `/media/{index}`.
    media: Vec<Vec<u8>>,
    media_fetches: usize,
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
        let app = Router::new()
            .route("/v2.1/faxes", post(send).get(list))
            .route("/media/{index}", axum::routing::get(media))
            .route("/v2.1/account/status", axum::routing::get(account))
            .with_state(fake.clone());
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

    /// Downloads of received faxes' PDFs (`GET /media/…`).
    pub fn media_fetches(&self) -> usize {
        self.inner.lock().unwrap().media_fetches
    }

    /// The provider received fax `id` with this PDF and calls the practice's inbound webhook
    /// (`url`), signed with `secret`: the PDF inline (base64) or at a URL of this fake.
    pub async fn deliver_inbound(
        &self,
        url: &str,
        secret: &str,
        id: &str,
        pdf: &[u8],
        inline: bool,
    ) -> reqwest::Response {
        let mut body = json!({"id": id, "from": "+19375550142", "to": "+19375550100", "pages": 1});
        if inline {
            body["file"] = json!(base64::engine::general_purpose::STANDARD.encode(pdf));
        } else {
            let mut inner = self.inner.lock().unwrap();
            inner.media.push(pdf.to_vec());
            body["media_url"] = json!(format!("{}/media/{}", self.base, inner.media.len() - 1));
        }
        let body = serde_json::to_vec(&body).expect("JSON");
        post_signed(url, secret, body).await
    }
}

/// Posts `body` to the inbound-fax webhook at `url`, signed with `secret`.
pub async fn post_signed(url: &str, secret: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(refloop_connectors::FAX_SIGNATURE_HEADER, refloop_connectors::fax_signature(secret, &body))
        .body(body)
        .send()
        .await
        .expect("the webhook answers")
}

async fn media(State(f): State<FakeFax>, axum::extract::Path(index): axum::extract::Path<usize>) -> Response {
    let mut inner = f.inner.lock().unwrap();
    inner.media_fetches += 1;
    match inner.media.get(index) {
        Some(pdf) => ([("content-type", "application/pdf")], pdf.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A one-page PDF whose text layer holds `lines` (Helvetica), as a fax provider's PDF of a
/// typed cover sheet has one.
pub fn fax_pdf(lines: &[&str]) -> Vec<u8> {
    use lopdf::{
        Document, Object, Stream,
        content::{Content, Operation},
        dictionary,
    };
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica"});
    let resources_id = doc.add_object(dictionary! {"Font" => dictionary! {"F1" => font_id}});
    let mut operations = vec![Operation::new("BT", vec![]), Operation::new("Tf", vec!["F1".into(), 12.into()])];
    operations.push(Operation::new("Td", vec![72.into(), 720.into()]));
    for line in lines {
        operations.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
        operations.push(Operation::new("Td", vec![0.into(), (-16).into()]));
    }
    operations.push(Operation::new("ET", vec![]));
    let content = Content { operations }.encode().expect("a content stream");
    let content_id = doc.add_object(Stream::new(dictionary! {}, content));
    let page_id = doc.add_object(dictionary! {"Type" => "Page", "Parent" => pages_id, "Contents" => content_id});
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1, "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("the PDF is written");
    out
}

/// `GET /v2.1/account/status`: the account's balance, for a credentials check.
async fn account(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"success": false, "message": "invalid credentials"})))
            .into_response();
    }
    Json(json!({"success": true, "message": "Account status retrieved successfully", "data": {"balance": 1000}}))
        .into_response()
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
