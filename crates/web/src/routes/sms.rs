//! The SMS provider's webhooks (Twilio-compatible): delivery status of what we sent, and
//! patients' replies. Both check `X-Twilio-Signature` against the auth token and the public
//! URL the provider called; a bad or missing signature changes nothing.

use axum::{
    Form,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use refloop_app::SmsOutcome;
use refloop_connectors::{SmsTexts, twilio_signature_ok};

use crate::AppState;

/// What the SMS webhooks need: the provider's auth token (to check signatures), the public
/// URLs the provider calls, and the texts of automatic replies.
#[derive(Clone, Debug)]
pub struct SmsWebhooks {
    pub auth_token: String,
    /// e.g. `https://refloop.example.org/webhooks/sms/status`
    pub status_url: String,
    pub inbound_url: String,
    pub texts: SmsTexts,
}

/// The webhooks' settings, when the request is signed for `url_of(hooks)`; else the
/// status and reason to refuse it with (changing nothing).
fn verified<'a>(
    s: &'a AppState,
    url_of: fn(&SmsWebhooks) -> &str,
    query: Option<&str>,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<&'a SmsWebhooks, (StatusCode, &'static str)> {
    let Some(hooks) = &s.sms else {
        return Err((StatusCode::NOT_FOUND, "SMS webhooks are off ([sms] mode = \"log\")"));
    };
    let url = url_of(hooks);
    let full = match query {
        Some(q) if !q.is_empty() => format!("{url}?{q}"),
        _ => url.to_owned(),
    };
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !twilio_signature_ok(&hooks.auth_token, &full, form, signature) {
        tracing::warn!(webhook = %url, "SMS webhook with a bad signature refused");
        return Err((StatusCode::FORBIDDEN, "bad signature"));
    }
    Ok(hooks)
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn refused(status: StatusCode, why: &str) -> Response {
    (status, why.to_owned()).into_response()
}

/// `POST /webhooks/sms/status?outbox_id=…`: `MessageStatus` delivered → the patient was
/// reached; failed or undelivered → a fix-contact task. Other statuses are progress only.
pub async fn status(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err((status, why)) = verified(&s, |h| &h.status_url, query.as_deref(), &headers, &form) {
        return refused(status, why);
    }
    let outbox_id = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("outbox_id=")))
        .unwrap_or_default()
        .to_owned();
    let result = match param(&form, "MessageStatus") {
        Some("delivered") => s.app.delivery_reported(&outbox_id, true, None).await,
        Some(status @ ("failed" | "undelivered")) => {
            let code = param(&form, "ErrorCode").unwrap_or("none");
            s.app.delivery_reported(&outbox_id, false, Some(format!("SMS {status} (provider code {code})"))).await
        }
        _ => Ok(false),
    };
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "an SMS status could not be recorded");
            // The provider retries on 5xx.
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// `POST /webhooks/sms/inbound`: a patient's reply. Answers with TwiML: a confirmation for
/// STOP (once) and START, the help text for HELP, and nothing otherwise — free text goes to
/// the staff, never to an automatic answer.
pub async fn inbound(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let hooks = match verified(&s, |h| &h.inbound_url, query.as_deref(), &headers, &form) {
        Ok(h) => h,
        Err((status, why)) => return refused(status, why),
    };
    let (Some(from), Some(sid)) = (param(&form, "From"), param(&form, "MessageSid")) else {
        return refused(StatusCode::BAD_REQUEST, "From and MessageSid are required");
    };
    let body = param(&form, "Body").unwrap_or("");
    let outcome = match s.app.sms_received(from, body, sid).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "an inbound SMS could not be recorded");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    // In the language of the keyword (PARAR, AYUDA …), else the patient's, else English.
    let in_language = |language: &Option<String>| hooks.texts.in_language(language.as_deref());
    let reply = match &outcome {
        SmsOutcome::OptedOut { first: true, language } => {
            let t = in_language(language);
            Some(t.fill(&t.opt_out_confirmation, None))
        }
        SmsOutcome::OptedIn { language } => {
            let t = in_language(language);
            Some(t.fill(&t.opt_in_confirmation, None))
        }
        SmsOutcome::Help { language } => {
            let t = in_language(language);
            Some(t.fill(&t.help, None))
        }
        _ => None,
    };
    let xml = match reply {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            escape_xml(&text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned(),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

use crate::escape_markup as escape_xml;
