//! Pull mode: when the EHR cannot push, refloop pages its FHIR server by `_lastUpdated`,
//! keeps a durable cursor per resource type, and backs off on errors. A Subscription
//! rest-hook notification makes it fetch the named resources (or poll) at once.
//!
//! Auth: none, a static bearer token, or SMART Backend Services (client credentials with a
//! `private_key_jwt` assertion signed RS384, as the SMART App Launch IG specifies).

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use refloop_app::{StoreError, new_id};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::ingest::FhirIngest;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("the EHR could not be reached: {0}")]
    Http(String),
    #[error("the EHR answered {status} for {what}")]
    Status { status: u16, what: String },
    #[error("authorization with the EHR failed: {0}")]
    Auth(String),
    #[error("the EHR sent something that is not a FHIR Bundle: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How refloop authenticates to the EHR's FHIR server.
#[derive(Clone)]
pub enum EhrAuth {
    None,
    Bearer(String),
    /// SMART Backend Services: an RS384-signed JWT assertion exchanged for an access token.
    Smart {
        client_id: String,
        token_url: String,
        key: EncodingKey,
        scope: String,
    },
}

impl EhrAuth {
    /// SMART Backend Services with an RSA private key in PEM.
    pub fn smart(client_id: &str, token_url: &str, private_key_pem: &[u8], scope: &str) -> Result<Self, PullError> {
        let key =
            EncodingKey::from_rsa_pem(private_key_pem).map_err(|e| PullError::Auth(format!("private key: {e}")))?;
        Ok(EhrAuth::Smart { client_id: client_id.into(), token_url: token_url.into(), key, scope: scope.into() })
    }
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
}

/// An HTTP client of the EHR's FHIR server.
pub struct EhrClient {
    base: String,
    http: reqwest::Client,
    auth: EhrAuth,
    /// The current access token (SMART) and when it expires.
    token: Mutex<Option<(String, Timestamp)>>,
}

impl EhrClient {
    pub fn new(base: &str, auth: EhrAuth) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client with the process's TLS provider");
        Self { base: base.trim_end_matches('/').to_owned(), http, auth, token: Mutex::new(None) }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token to send, fetching a SMART access token when needed.
    async fn bearer(&self, now: Timestamp) -> Result<Option<String>, PullError> {
        let (client_id, token_url, key, scope) = match &self.auth {
            EhrAuth::None => return Ok(None),
            EhrAuth::Bearer(t) => return Ok(Some(t.clone())),
            EhrAuth::Smart { client_id, token_url, key, scope } => (client_id, token_url, key, scope),
        };
        let mut token = self.token.lock().await;
        if let Some((t, until)) = token.as_ref()
            && *until > now + jiff::SignedDuration::from_secs(30)
        {
            return Ok(Some(t.clone()));
        }
        let claims = Assertion {
            iss: client_id,
            sub: client_id,
            aud: token_url,
            iat: now.as_second(),
            exp: now.as_second() + 300,
            jti: new_id("jti"),
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS384), &claims, key)
            .map_err(|e| PullError::Auth(format!("signing the assertion: {e}")))?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", jwt.as_str()),
        ];
        let resp = self.http.post(token_url).form(&form).send().await.map_err(|e| PullError::Http(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(PullError::Auth(format!("the token endpoint answered {}", resp.status().as_u16())));
        }
        let body: Value = resp.json().await.map_err(|e| PullError::Auth(format!("token response: {e}")))?;
        let access = body["access_token"].as_str().ok_or_else(|| PullError::Auth("no access_token".into()))?;
        let expires_in = body["expires_in"].as_i64().unwrap_or(300);
        *token = Some((access.to_owned(), now + jiff::SignedDuration::from_secs(expires_in)));
        Ok(Some(access.to_owned()))
    }

    /// For `refloop doctor`: a SMART access token (when that is the configured way in), then
    /// the server's CapabilityStatement. Reads only.
    pub async fn check(&self, now: Timestamp) -> Result<String, PullError> {
        let smart = matches!(self.auth, EhrAuth::Smart { .. });
        self.bearer(now).await?;
        let cap = self.get("metadata", now).await?;
        if cap["resourceType"] != "CapabilityStatement" {
            return Err(PullError::Invalid("metadata is not a CapabilityStatement".into()));
        }
        let version = cap["fhirVersion"].as_str().unwrap_or("unknown");
        Ok(format!("FHIR {version} at {}{}", self.base, if smart { ", SMART token issued" } else { "" }))
    }

    /// GETs a FHIR URL (absolute, or relative to the base) as JSON.
    pub async fn get(&self, url: &str, now: Timestamp) -> Result<Value, PullError> {
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}/{}", self.base, url.trim_start_matches('/'))
        };
        let mut req = self.http.get(&url).header("accept", "application/fhir+json");
        if let Some(t) = self.bearer(now).await? {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| PullError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        if status == 401 {
            // The token may have been revoked early: fetch a new one next time.
            *self.token.lock().await = None;
        }
        if !(200..300).contains(&status) {
            let what = url.split('?').next().unwrap_or(&url).trim_start_matches(&self.base).to_owned();
            return Err(PullError::Status { status, what });
        }
        resp.json().await.map_err(|e| PullError::Invalid(e.to_string()))
    }
}

impl EhrClient {
    /// POSTs a resource to `{base}/{kind}`, with `If-None-Exist` when given (so a resend
    /// does not create it twice). Returns the HTTP status.
    pub async fn create(
        &self,
        kind: &str,
        body: &Value,
        if_none_exist: Option<&str>,
        now: Timestamp,
    ) -> Result<u16, PullError> {
        let url = format!("{}/{kind}", self.base);
        let mut req = self.http.post(&url).header("content-type", "application/fhir+json").body(body.to_string());
        if let Some(q) = if_none_exist {
            req = req.header("if-none-exist", q);
        }
        if let Some(t) = self.bearer(now).await? {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| PullError::Http(e.to_string()))?;
        Ok(resp.status().as_u16())
    }
}

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    pub pages: usize,
    pub resources: usize,
    pub applied: usize,
}

/// Pulls changed resources from the EHR into refloop.
#[derive(Clone)]
pub struct Poller {
    client: Arc<EhrClient>,
    ingest: FhirIngest,
    kinds: Vec<String>,
    page_size: u32,
}

fn cursor_name(kind: &str) -> String {
    format!("fhir-pull:{kind}")
}

impl Poller {
    pub fn new(client: Arc<EhrClient>, ingest: FhirIngest, kinds: Vec<String>, page_size: u32) -> Self {
        Self { client, ingest, kinds, page_size: page_size.clamp(1, 1000) }
    }

    /// Pages every resource type from its cursor; the cursor moves after each page is
    /// stored, so a crash or an EHR error resumes where it stopped.
    pub async fn poll_once(&self) -> Result<PollReport, PullError> {
        let mut report = PollReport::default();
        let store = self.ingest.app().store().clone();
        for kind in &self.kinds {
            let since = store.cursor(&cursor_name(kind)).await?;
            let mut url = format!("{kind}?_sort=_lastUpdated&_count={}", self.page_size);
            if let Some(s) = &since {
                url.push_str(&format!("&_lastUpdated=gt{s}"));
            }
            let mut next = Some(url);
            while let Some(url) = next.take() {
                let now = self.ingest.app().now();
                let page = self.client.get(&url, now).await?;
                if page.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                    return Err(PullError::Invalid(format!("a search of {kind} did not return a Bundle")));
                }
                let resources: Vec<Value> = page["entry"]
                    .as_array()
                    .map(|entries| entries.iter().filter_map(|e| e.get("resource").cloned()).collect())
                    .unwrap_or_default();
                report.pages += 1;
                report.resources += resources.len();
                let newest = resources
                    .iter()
                    .filter_map(|r| r.pointer("/meta/lastUpdated").and_then(Value::as_str))
                    .filter_map(|s| s.parse::<Timestamp>().ok().map(|t| (t, s.to_owned())))
                    .max_by_key(|(t, _)| *t);
                if !resources.is_empty() {
                    report.applied += self.ingest.import_resources(resources).await.applied;
                }
                let older = since.as_deref().and_then(|s| s.parse::<Timestamp>().ok());
                if let Some((t, s)) = newest
                    && older.is_none_or(|o| t > o)
                {
                    store.set_cursor(&cursor_name(kind), &s, self.ingest.app().now()).await?;
                }
                next = page["link"]
                    .as_array()
                    .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
                    .and_then(|l| l["url"].as_str())
                    .map(str::to_owned);
            }
        }
        tracing::info!(pages = report.pages, resources = report.resources, applied = report.applied, "FHIR pull done");
        Ok(report)
    }

    /// A Subscription rest-hook notification: fetches each resource it names (a Bundle's
    /// entries, by `fullUrl` or `resource`), or polls when it names none.
    pub async fn notified(&self, body: &[u8]) -> Result<PollReport, PullError> {
        let refs = notified_references(body);
        if refs.is_empty() {
            return self.poll_once().await;
        }
        let mut resources = Vec::with_capacity(refs.len());
        for r in &refs {
            resources.push(self.client.get(r, self.ingest.app().now()).await?);
        }
        let applied = self.ingest.import_resources(resources).await.applied;
        Ok(PollReport { pages: 0, resources: refs.len(), applied })
    }

    /// Polls every `interval` until `shutdown`; after an error waits 1 s, 2 s, 4 s … (at
    /// most `interval`) and tries again.
    pub async fn run(self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        refloop_app::every("FHIR pull", interval, shutdown, || async {
            self.poll_once().await?;
            self.ingest.app().record_success("fhir-poller");
            Ok::<(), PullError>(())
        })
        .await
    }
}

/// `Type/id` references a notification names: a Bundle's entries (`resource` type and id,
/// or a `fullUrl`), a single resource, or none (empty body, a SubscriptionStatus only).
fn notified_references(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let named = |r: &Value| -> Option<String> {
        let kind = r.get("resourceType")?.as_str()?;
        if matches!(kind, "Bundle" | "SubscriptionStatus" | "Parameters" | "Subscription") {
            return None;
        }
        Some(format!("{kind}/{}", r.get("id")?.as_str()?))
    };
    match v.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => v["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| {
                        e.get("resource").and_then(named).or_else(|| {
                            let url = e.get("fullUrl")?.as_str()?;
                            let parts: Vec<&str> = url.trim_end_matches('/').rsplitn(3, '/').collect();
                            (parts.len() >= 2 && parts[1].chars().next()?.is_ascii_uppercase())
                                .then(|| format!("{}/{}", parts[1], parts[0]))
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Some(_) => named(&v).into_iter().collect(),
        None => Vec::new(),
    }
}
