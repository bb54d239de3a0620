//! SMART Scheduling Links: each directory entry's `$bulk-publish` manifest is read (with
//! `If-Modified-Since`, so an unchanged manifest costs one 304), its `Slot` files (NDJSON)
//! searched for the earliest free slot still ahead, and that slot's `booking-deep-link` and
//! `booking-phone` extensions kept on the entry: a patient's text then carries a link to book.

use std::time::Duration;

use jiff::Timestamp;
use refloop_app::{App, ManifestFound, Specialist};
use reqwest::{StatusCode, header};
use serde::Deserialize;

use crate::without_url;

/// The most a manifest or one Slot file may hold.
const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// The most Slot files read from one manifest.
const MAX_SLOT_FILES: usize = 20;

/// What reading one entry's manifest did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestOutcome {
    /// 304: nothing changed since the last read.
    Unchanged,
    /// Read: the link and phone it gives now (either may be absent).
    Read { link: Option<String>, phone: Option<String> },
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    output: Vec<Output>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(rename = "type")]
    kind: String,
    url: String,
}

#[derive(Deserialize)]
struct Slot {
    #[serde(rename = "resourceType")]
    resource_type: String,
    #[serde(default)]
    status: String,
    start: Option<String>,
    #[serde(default)]
    extension: Vec<Extension>,
}

#[derive(Deserialize)]
struct Extension {
    url: String,
    #[serde(rename = "valueUrl")]
    value_url: Option<String>,
    #[serde(rename = "valueString")]
    value_string: Option<String>,
}

/// Reads the manifests of the directory's entries that name one; keeps what each gives.
/// Answers each entry's id with its outcome or why it could not be read (no patient data).
pub async fn refresh_manifests(app: &App, http: &reqwest::Client) -> Vec<(String, Result<ManifestOutcome, String>)> {
    let entries = match app.store().specialists(None).await {
        Ok(e) => e,
        Err(e) => return vec![(String::new(), Err(format!("the directory could not be read: {e}")))],
    };
    let now = app.now();
    let mut out = Vec::new();
    for entry in entries.iter().filter(|e| e.scheduling_manifest.is_some()) {
        let outcome = refresh_one(app, http, entry, now).await;
        if let Err(why) = &outcome {
            tracing::warn!(specialist = %entry.id, error = %why, "a scheduling manifest could not be read");
        }
        out.push((entry.id.clone(), outcome));
    }
    if out.iter().all(|(_, o)| o.is_ok()) {
        app.record_success("scheduling-manifests");
    }
    out
}

async fn refresh_one(
    app: &App,
    http: &reqwest::Client,
    entry: &Specialist,
    now: Timestamp,
) -> Result<ManifestOutcome, String> {
    let url = entry.scheduling_manifest.as_deref().unwrap_or_default();
    let before = entry.manifest.as_ref().filter(|m| m.source == url);
    let mut req = http.get(url).header(header::ACCEPT, "application/json");
    if let Some(since) = before.and_then(|m| m.modified.as_deref()) {
        req = req.header(header::IF_MODIFIED_SINCE, since);
    }
    let resp = req.send().await.map_err(|e| format!("the manifest could not be fetched: {}", without_url(&e)))?;
    if resp.status() == StatusCode::NOT_MODIFIED && before.is_some() {
        return Ok(ManifestOutcome::Unchanged);
    }
    if !resp.status().is_success() {
        return Err(format!("the manifest answered {}", resp.status().as_u16()));
    }
    let modified = resp.headers().get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let manifest: Manifest = serde_json::from_slice(&limited(resp).await?)
        .map_err(|e| format!("the manifest is not a $bulk-publish manifest: {e}"))?;
    let mut best: Option<(Timestamp, String)> = None;
    let mut phone: Option<String> = None;
    for file in manifest.output.iter().filter(|o| o.kind == "Slot").take(MAX_SLOT_FILES) {
        let resp = http
            .get(&file.url)
            .send()
            .await
            .map_err(|e| format!("a Slot file could not be fetched: {}", without_url(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("a Slot file answered {}", resp.status().as_u16()));
        }
        let body = limited(resp).await?;
        for line in body.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            let Ok(slot) = serde_json::from_slice::<Slot>(line) else { continue };
            let Some(start) = slot.start.as_deref().and_then(|s| s.parse::<Timestamp>().ok()) else { continue };
            if slot.resource_type != "Slot" || slot.status != "free" || start < now {
                continue;
            }
            let ext = |name: &str| slot.extension.iter().find(|e| e.url.ends_with(&format!("/{name}")));
            let link = ext("booking-deep-link")
                .and_then(|e| e.value_url.clone())
                .filter(|u| u.starts_with("https://") && !u.contains(char::is_whitespace));
            let slot_phone = ext("booking-phone").and_then(|e| e.value_string.clone());
            if let Some(link) = link
                && best.as_ref().is_none_or(|(at, _)| start < *at)
            {
                best = Some((start, link));
                phone = slot_phone.or(phone);
            } else if phone.is_none() {
                phone = slot_phone;
            }
        }
    }
    let found = ManifestFound { source: url.to_owned(), link: best.map(|(_, l)| l), phone, modified };
    app.store().set_manifest_found(&entry.id, &found).await.map_err(|e| format!("not kept: {e}"))?;
    Ok(ManifestOutcome::Read { link: found.link, phone: found.phone })
}

/// The body, refused past [`MAX_FILE_BYTES`].
async fn limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("the answer broke off: {}", without_url(&e)))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_FILE_BYTES {
            return Err(format!("a file larger than {} MB", MAX_FILE_BYTES / (1024 * 1024)));
        }
    }
    Ok(body)
}

/// The HTTP client manifests are read with.
pub fn manifest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client with the process's TLS provider")
}
