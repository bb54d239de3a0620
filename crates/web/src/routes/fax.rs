//! `POST /webhooks/fax/inbound`: the fax provider's inbound callback. The body's signature is
//! checked against `[fax] webhook_secret` before anything is read; the PDF (inline or fetched)
//! is kept in the inbox under the provider's fax id — a resend is answered with the fax kept
//! the first time and applies nothing — and as a document: matched to a referral by the short
//! code in its text, else in Unfiled documents.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use refloop_app::{Arrival, Via};
use refloop_connectors::{FAX_SIGNATURE_HEADER, FaxRefusal, InboundFax, fax_signature_ok};
use refloop_direct::FaxProtocol;

use crate::AppState;
use axum::Json;

/// What the inbound-fax webhook needs: the shared secret, and a client to fetch PDFs with.
#[derive(Clone, Debug)]
pub struct FaxWebhook {
    pub secret: String,
    pub http: reqwest::Client,
}

impl FaxWebhook {
    pub fn new(secret: &str) -> Self {
        Self { secret: secret.to_owned(), http: reqwest::Client::new() }
    }
}

/// The largest body the webhook takes: a PDF at its limit, base64-encoded, and the rest.
pub const MAX_FAX_BODY: usize = refloop_app::documents::MAX_DOCUMENT_BYTES / 3 * 4 + 64 * 1024;

fn answer(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub async fn inbound(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(hook) = &s.fax else {
        return answer(StatusCode::NOT_FOUND, "inbound fax is off ([fax] webhook_secret is empty)".into());
    };
    let signature = headers.get(FAX_SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !fax_signature_ok(&hook.secret, &body, signature) {
        tracing::warn!("inbound-fax webhook with a bad signature refused");
        return answer(StatusCode::FORBIDDEN, "bad signature".into());
    }
    let refused = |r: FaxRefusal| match r {
        FaxRefusal::Invalid(why) => answer(StatusCode::UNPROCESSABLE_ENTITY, why),
        FaxRefusal::Later(why) => answer(StatusCode::BAD_GATEWAY, why),
    };
    let fax = match InboundFax::parse(&body) {
        Ok(f) => f,
        Err(r) => return refused(r),
    };
    // A resend of a fax kept already needs no download.
    if let Ok(Some(kept)) = s.app.kept(FaxProtocol::NAME, "fax", &fax.id).await {
        return kept_answer(&kept, false);
    }
    let pdf = match fax.pdf(&hook.http).await {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    let arrival = Arrival { source: "fax", control_id: &fax.id, message_type: "fax", raw: &pdf };
    let via = Via { transport: "http", remote: None, token: None };
    match s.app.receive(FaxProtocol::NAME, arrival, &via).await {
        Ok((item, new)) => kept_answer(&item, new),
        Err(e) => {
            tracing::warn!(error = %e, "inbound fax not kept");
            answer(StatusCode::SERVICE_UNAVAILABLE, "the fax could not be kept now; send it again".into())
        }
    }
}

fn kept_answer(item: &refloop_app::InboxItem, new: bool) -> Response {
    let body = serde_json::json!({
        "inbox_id": item.id,
        "status": item.status.as_str(),
        "referral_id": item.referral_id.as_ref().map(ToString::to_string),
        "duplicate": !new,
    });
    (if new { StatusCode::CREATED } else { StatusCode::OK }, Json(body)).into_response()
}
