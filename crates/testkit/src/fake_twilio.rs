//! A small fake of Twilio's Messages REST API on loopback: records each message (basic auth
//! checked), lists them (`GET …/Messages.json?To=…&DateSent>=…`), can fail the next requests
//! with 500, answer them late (after recording the message, as a slow provider does) or fail
//! lookups, and sends signed status callbacks and inbound messages to refloop's webhooks as
//! Twilio would.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use serde_json::json;
use tokio::net::TcpListener;

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "fake-twilio-auth-token";

/// A message the fake accepted.
#[derive(Clone, Debug)]
pub struct SentSms {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status_callback: Option<String>,
    /// When the provider took it (its own clock: the real one, unless a test says otherwise).
    pub date_created: jiff::Timestamp,
}

#[derive(Default)]
struct Inner {
    sent: Vec<SentSms>,
    failures: usize,
    /// The next requests answered this late (the message is recorded first).
    delays: Vec<std::time::Duration>,
    /// Every other request is answered this late.
    slow: Option<std::time::Duration>,
    lookups_fail: bool,
    requests: usize,
    lookups: usize,
}

#[derive(Clone)]
pub struct FakeTwilio {
    inner: Arc<Mutex<Inner>>,
    /// `http://127.0.0.1:PORT`, the API root.
    pub base: String,
    http: reqwest::Client,
}

impl FakeTwilio {
    pub async fn start() -> FakeTwilio {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("an address");
        let fake = FakeTwilio { inner: Arc::default(), base: format!("http://{addr}"), http: reqwest::Client::new() };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create).get(list))
            .route("/2010-04-01/Accounts/{file}", axum::routing::get(account))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake Twilio runs") });
        fake
    }

    /// The `REFLOOP_SMS_*` settings that point a `refloop` process at this fake.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("REFLOOP_SMS_MODE", "twilio"),
            ("REFLOOP_SMS_API_BASE", self.base.as_str()),
            ("REFLOOP_SMS_ACCOUNT_SID", ACCOUNT_SID),
            ("REFLOOP_SMS_AUTH_TOKEN", AUTH_TOKEN),
            ("REFLOOP_SMS_FROM", "+15555550999"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// Messages accepted so far.
    pub fn sent(&self) -> Vec<SentSms> {
        self.inner.lock().unwrap().sent.clone()
    }

    /// Requests received (accepted or not).
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }

    /// The next `n` requests get a 500.
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().unwrap().failures = n;
    }

    /// The next requests are answered after these delays, one each (the message is taken
    /// at once, as a slow provider does).
    pub fn answer_late(&self, delays: &[std::time::Duration]) {
        self.inner.lock().unwrap().delays = delays.iter().rev().copied().collect();
    }

    /// Every request without a delay of its own ([`FakeTwilio::answer_late`]) is answered
    /// this late (the message is taken at once), until set back to `None`.
    pub fn answer_all_late(&self, delay: Option<std::time::Duration>) {
        self.inner.lock().unwrap().slow = delay;
    }

    /// Message lookups answer 500 (the provider cannot say what it has).
    pub fn fail_lookups(&self, fail: bool) {
        self.inner.lock().unwrap().lookups_fail = fail;
    }

    /// Message lookups received.
    pub fn lookups(&self) -> usize {
        self.inner.lock().unwrap().lookups
    }

    /// Takes a message as if a sender had posted it (e.g. one whose process then died).
    pub fn take(&self, to: &str, body: &str) -> SentSms {
        self.take_at(to, body, now())
    }

    /// Takes a message as if it had been posted at `at` (e.g. an earlier text of the same words).
    pub fn take_at(&self, to: &str, body: &str, at: jiff::Timestamp) -> SentSms {
        let mut inner = self.inner.lock().unwrap();
        let sms = SentSms {
            sid: format!("SM{:032}", inner.sent.len() + 1),
            to: to.to_owned(),
            from: "+15555550999".to_owned(),
            body: body.to_owned(),
            status_callback: None,
            date_created: at,
        };
        inner.sent.push(sms.clone());
        sms
    }

    /// POSTs a signed form to `url` as Twilio does; returns (status, body).
    pub async fn post_signed(&self, url: &str, params: &[(&str, &str)], token: &str) -> (u16, String) {
        let owned: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let signature = refloop_connectors::twilio_signature(token, url, &owned);
        let resp = self
            .http
            .post(url)
            .header("x-twilio-signature", signature)
            .form(&owned)
            .send()
            .await
            .expect("the webhook answers");
        (resp.status().as_u16(), resp.text().await.unwrap_or_default())
    }

    /// Reports a message's status to its StatusCallback (signed with the auth token).
    pub async fn report(&self, sms: &SentSms, status: &str) -> u16 {
        let url = sms.status_callback.clone().expect("the message has a status callback");
        let params = [("MessageSid", sms.sid.as_str()), ("MessageStatus", status), ("AccountSid", ACCOUNT_SID)];
        self.post_signed(&url, &params, AUTH_TOKEN).await.0
    }

    /// A patient's reply from `from`, as the number's messaging webhook receives it.
    pub async fn reply(&self, webhook: &str, from: &str, body: &str, sid: &str) -> (u16, String) {
        let params =
            [("MessageSid", sid), ("From", from), ("To", "+15555550999"), ("Body", body), ("AccountSid", ACCOUNT_SID)];
        self.post_signed(webhook, &params, AUTH_TOKEN).await
    }
}

/// `GET /2010-04-01/Accounts/{sid}.json`: the account, for a credentials check.
async fn account(axum::extract::Path(file): axum::extract::Path<String>, headers: HeaderMap) -> Response {
    let sid = file.strip_suffix(".json").unwrap_or_default();
    if !authorized(sid, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"code": 20003, "message": "Authenticate", "status": 401})))
            .into_response();
    }
    Json(json!({"sid": sid, "friendly_name": "fake account", "status": "active", "type": "Full"})).into_response()
}

fn authorized(sid: &str, headers: &HeaderMap) -> bool {
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}")));
    sid == ACCOUNT_SID && headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

/// `GET …/Messages.json`: the messages to `To`, newest first (every message the fake took
/// counts as sent today, so `DateSent>` keeps them all).
async fn list(
    State(f): State<FakeTwilio>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&sid, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"code": 20003, "message": "Authenticate"}))).into_response();
    }
    let mut inner = f.inner.lock().unwrap();
    inner.lookups += 1;
    if inner.lookups_fail {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"code": 20500, "message": "Internal Server Error"})))
            .into_response();
    }
    let to = q.get("To").cloned().unwrap_or_default();
    let messages: Vec<_> = inner
        .sent
        .iter()
        .rev()
        .filter(|m| to.is_empty() || m.to == to)
        .map(|m| {
            let created = jiff::fmt::rfc2822::to_string(&m.date_created.to_zoned_datetime(jiff::tz::TimeZone::UTC))
                .unwrap_or_default();
            json!({"sid": m.sid, "to": m.to, "from": m.from, "body": m.body, "status": "sent", "date_created": created})
        })
        .collect();
    Json(json!({"messages": messages, "page": 0, "page_size": 100})).into_response()
}

/// The fake provider's clock: the real one.
fn now() -> jiff::Timestamp {
    use refloop_app::Clock;
    refloop_app::SystemClock.now()
}

/// Records a posted message (or refuses it); the delay to answer it after.
fn take_posted(
    f: &FakeTwilio,
    form: &HashMap<String, String>,
) -> Result<(SentSms, Option<std::time::Duration>), Box<Response>> {
    let mut inner = f.inner.lock().unwrap();
    inner.requests += 1;
    if inner.failures > 0 {
        inner.failures -= 1;
        let refused =
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"code": 20500, "message": "Internal Server Error"})));
        return Err(Box::new(refused.into_response()));
    }
    let (Some(to), Some(from), Some(body)) = (form.get("To"), form.get("From"), form.get("Body")) else {
        let refused =
            (StatusCode::BAD_REQUEST, Json(json!({"code": 21603, "message": "A 'From' phone number is required."})));
        return Err(Box::new(refused.into_response()));
    };
    let sms = SentSms {
        sid: format!("SM{:032}", inner.sent.len() + 1),
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
        status_callback: form.get("StatusCallback").cloned(),
        date_created: now(),
    };
    inner.sent.push(sms.clone());
    let delay = inner.delays.pop().or(inner.slow);
    Ok((sms, delay))
}

async fn create(
    State(f): State<FakeTwilio>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !authorized(&sid, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"code": 20003, "message": "Authenticate"}))).into_response();
    }
    let taken = take_posted(&f, &form);
    let (sms, delay) = match taken {
        Ok(taken) => taken,
        Err(refused) => return *refused,
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    (StatusCode::CREATED, Json(json!({"sid": sms.sid, "status": "queued", "to": sms.to}))).into_response()
}
