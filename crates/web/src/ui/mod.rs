//! The web UI for people: server-rendered pages (askama), a session cookie after an argon2
//! password check, a CSRF token on every form, no JavaScript.

mod chart;
mod pages;

use std::{collections::HashMap, net::SocketAddr};

use askama::Template;
use axum::{
    Router,
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use jiff::{Timestamp, civil, tz::TimeZone};
use refloop_app::{AppError, Permission, SessionStage, WebSession};

use crate::AppState;

pub(crate) const SESSION_COOKIE: &str = "refloop_session";
const LOGIN_COOKIE: &str = "refloop_login";

/// What the UI shows beyond the database: the effective configuration and whether this is demo data.
#[derive(Clone, Debug, Default)]
pub struct UiInfo {
    /// The effective configuration, secrets hidden (as `refloop check-config` prints it).
    pub settings: String,
    /// The database holds simulated data: every page says so.
    pub demo: bool,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/login/mfa", get(pages::mfa_form).post(pages::mfa_submit))
        .route("/login/sso", get(pages::sso_start))
        .route("/login/sso/callback", get(pages::sso_callback))
        .route("/account/mfa", get(pages::enrol_form).post(pages::enrol_submit))
        .route("/referrals", get(pages::referrals))
        .route("/referrals.csv", get(pages::referrals_csv))
        .route("/referrals/{id}", get(pages::referral))
        .route("/referrals/{id}/events", post(pages::record_event))
        .route("/referrals/{id}/sms", post(pages::send_sms))
        .route("/referrals/{id}/language", post(pages::set_language))
        .route("/worklist", get(pages::worklist))
        .route("/worklist/claim-next", post(pages::claim_next))
        .route("/worklist/bulk", post(pages::bulk))
        .route("/tasks/{id}/{action}", post(pages::task_action))
        .route("/documents", get(pages::documents))
        .route("/documents/{id}", get(pages::document))
        .route("/documents/{id}/content", get(pages::document_content))
        .route("/documents/{id}/{action}", post(pages::document_action))
        .route("/inbox", get(pages::inbox))
        .route("/inbox/{id}", get(pages::inbox_item))
        .route("/inbox/{id}/{action}", post(pages::inbox_action))
        .route("/directory", get(pages::directory).post(pages::save_entry))
        .route("/directory/{id}/verify", post(pages::verify_entry))
        .route("/settings", get(pages::settings))
        .route("/admin/audit", get(pages::audit))
        .route("/reports/cms50", get(pages::cms50))
        .route("/admin/access", get(pages::access))
        .route("/admin/access/{kind}/{id}/{action}", post(pages::access_action))
        .route("/export.csv", get(pages::export_csv))
}

/// A signed-in person. Without a live session the page redirects to the sign-in form.
pub(crate) struct Web(pub WebSession);

impl Web {
    fn require(&self, p: Permission) -> Result<(), UiError> {
        if self.0.actor.role.may(p) {
            Ok(())
        } else {
            Err(UiError(StatusCode::FORBIDDEN, "Your role may not do that.".into()))
        }
    }

    /// Every posted form carries the session's CSRF token.
    fn check_form(&self, form: &HashMap<String, String>) -> Result<(), UiError> {
        match form.get("csrf") {
            Some(t) if constant_time_eq(t.as_bytes(), self.0.csrf.as_bytes()) => Ok(()),
            _ => Err(UiError(
                StatusCode::FORBIDDEN,
                "The form expired or did not come from this site. Reload and try again.".into(),
            )),
        }
    }

    fn nav(&self, page: &'static str) -> Option<Nav> {
        Some(Nav { page, user: self.0.actor.name.clone(), role: self.0.actor.role.as_str(), csrf: self.0.csrf.clone() })
    }
}

impl FromRequestParts<AppState> for Web {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let Signing(s, _) = Signing::from_request_parts(parts, state).await?;
        match s.stage {
            SessionStage::Full => Ok(Web(s)),
            // The password was right; the second factor (or its enrolment) comes first.
            SessionStage::Mfa => {
                Err(Redirect::to(&format!("/login/mfa?next={}", percent_encode(&next))).into_response())
            }
            SessionStage::Enrol => Err(Redirect::to("/account/mfa").into_response()),
        }
    }
}

/// A live session at any stage of signing in, with its cookie value: the second-factor pages
/// take it (every other page takes [`Web`]).
pub(crate) struct Signing(pub WebSession, pub String);

impl FromRequestParts<AppState> for Signing {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip().to_string());
        if let Some(token) = cookie(&parts.headers, SESSION_COOKIE) {
            match state.app.web_session(token, remote).await {
                Ok(Some(s)) => return Ok(Signing(s, token.to_owned())),
                Ok(None) => {}
                Err(e) => return Err(UiError::from(e).into_response()),
            }
        }
        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        Err(Redirect::to(&format!("/login?next={}", percent_encode(next))).into_response())
    }
}

/// The top bar: where we are and who is signed in.
pub(crate) struct Nav {
    pub page: &'static str,
    pub user: String,
    pub role: &'static str,
    pub csrf: String,
}

/// An error page.
pub(crate) struct UiError(pub StatusCode, pub String);

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    status: String,
    message: String,
}

impl From<AppError> for UiError {
    fn from(e: AppError) -> Self {
        let api = crate::ApiError::from(e);
        UiError(api.status, api.message)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = ErrorPage { nav: None, demo: false, notice: None, status: self.0.to_string(), message: self.1 };
        (self.0, render(&page)).into_response()
    }
}

type UiResult<T> = Result<T, UiError>;

fn render(t: &impl Template) -> Response {
    render_with(
        t,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
    )
}

/// A page that embeds one of our own documents (a PDF) in a frame.
fn render_framing_self(t: &impl Template) -> Response {
    render_with(
        t,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'",
    )
}

fn render_with(t: &impl Template, csp: &'static str) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = Html(html).into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A cookie's value from the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a cookie only this site's pages send back, never readable by scripts.
fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let v = format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age_secs}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("refloop_invalid=1"))
}

/// Only a path on this site is a place to go back to: it starts with one `/`, and holds no
/// backslash, whitespace or control character (browsers drop a tab or newline, so
/// `/%09/evil.example` would become `//evil.example`, another site).
fn local_path(p: Option<&String>) -> String {
    match p {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control()) =>
        {
            p.clone()
        }
        _ => "/".into(),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A time as people read it, in the practice's time zone: one format on every page ("Tue 1 Dec 14:05").
fn when(t: Option<Timestamp>, tz: &TimeZone) -> String {
    t.map(|t| tz.to_datetime(t).strftime("%a %-d %b %H:%M").to_string()).unwrap_or_default()
}

/// A `datetime-local` or `date` field, read in the practice's time zone.
fn parse_local(field: &str, raw: &str, tz: &TimeZone) -> UiResult<Option<Timestamp>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let dt = raw
        .parse::<civil::DateTime>()
        .or_else(|_| raw.parse::<civil::Date>().map(|d| d.to_datetime(civil::Time::midnight())))
        .map_err(|_| {
            UiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{field}: expected a date such as 2026-03-02"))
        })?;
    dt.to_zoned_datetime(tz.clone())
        .map(|z| Some(z.timestamp()))
        .map_err(|_| UiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{field}: not a time in this time zone")))
}

fn pct(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".into(), |r| format!("{:.1}%", r * 100.0))
}

fn days(d: Option<f64>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{d:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        for bad in [
            "//evil.example",
            "https://evil.example",
            "https:evil.example",
            "/\\evil",
            "evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/\u{7f}/evil.example",
        ] {
            assert_eq!(local_path(Some(&bad.to_owned())), "/");
        }
        assert_eq!(local_path(Some(&"/worklist".to_owned())), "/worklist");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; refloop_session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn local_dates_are_read_in_the_practice_zone() {
        let tz = TimeZone::get("America/Chicago").unwrap();
        assert_eq!(
            parse_local("at", "2026-03-02T09:30", &tz).ok().flatten().map(|t| t.to_string()),
            Some("2026-03-02T15:30:00Z".into())
        );
        assert_eq!(
            parse_local("at", "2026-03-02", &tz).ok().flatten().map(|t| t.to_string()),
            Some("2026-03-02T06:00:00Z".into())
        );
        assert!(parse_local("at", "yesterday", &tz).is_err());
    }
}
