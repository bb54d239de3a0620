//! HTTP for refloop: the JSON API under `/api/v1`, health checks and the OpenAPI document.
//!
//! Handlers parse requests into domain types, check the caller's role and call
//! [`refloop_app::App`]; they hold no business logic. One file per resource under `routes/`.

mod auth;
mod dto;
mod error;
mod json;
mod oidc;
mod openapi;
mod routes;
pub use routes::fax::FaxWebhook;
mod ui;

use std::{future::Future, time::Duration};

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    routing::{get, post, put},
};
use metrics_exporter_prometheus::PrometheusHandle;
use refloop_app::App;
use refloop_fhir::FhirIngest;
use refloop_hl7::Ingest;
use tokio::net::TcpListener;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer, trace::TraceLayer};

pub use error::{ApiError, ErrorBody};
pub use oidc::{Oidc, OidcError, OidcSettings, SsoIdentity};
pub use routes::{sms::SmsWebhooks, specialists::SpecialistBody, specialists::parse as parse_specialist};
pub use ui::UiInfo;

/// Largest request body accepted anywhere (413 beyond).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub hl7: Ingest,
    pub fhir: FhirIngest,
    /// Pull mode, when `[ehr] base_url` is set: the Subscription rest-hook uses it.
    pub poller: Option<refloop_fhir::Poller>,
    /// The SMS provider's webhooks, when `[sms] mode = "twilio"`.
    pub sms: Option<routes::sms::SmsWebhooks>,
    /// The inbound-fax webhook, when `[fax] webhook_secret` is set.
    pub fax: Option<routes::fax::FaxWebhook>,
    /// The Prometheus recorder, when one is installed.
    pub metrics: Option<PrometheusHandle>,
    pub ui: UiInfo,
    /// Single sign-on, when `[auth.oidc]` names an identity provider.
    pub oidc: Option<Oidc>,
}

/// `s` safe inside markup (HTML or XML text and quoted attributes).
pub(crate) fn escape_markup(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/referrals", post(routes::referrals::create).get(routes::referrals::list))
        .route("/referrals/{id}", get(routes::referrals::show))
        .route("/referrals/{id}/events", post(routes::referrals::record_event))
        .route("/referrals/{id}/sms", post(routes::referrals::send_sms))
        .route("/tasks", get(routes::tasks::list))
        .route("/tasks/claim-next", post(routes::tasks::claim_next))
        .route("/tasks/{id}/claim", post(routes::tasks::claim))
        .route("/tasks/{id}/complete", post(routes::tasks::complete))
        .route("/outbox", get(routes::tasks::outbox))
        .route("/channels", get(routes::channels::list))
        .route("/clock", get(routes::clock::show))
        .route("/clock/advance", post(routes::clock::advance))
        .route("/dead-letters", get(routes::inbox::dead_letters))
        .route("/inbox", get(routes::inbox::list))
        .route("/inbox/{id}", get(routes::inbox::show))
        .route("/inbox/{id}/retry", post(routes::inbox::retry))
        .route("/inbox/{id}/apply", post(routes::inbox::apply))
        .route("/inbox/{id}/dismiss", post(routes::inbox::dismiss))
        .route("/documents", get(routes::documents::list))
        .route("/documents/{id}/file", post(routes::documents::file))
        .route("/documents/{id}/dismiss", post(routes::documents::dismiss))
        .route("/reports/closure", get(routes::reports::closure))
        .route("/reports/cms50", get(routes::reports::cms50))
        .route("/specialists", get(routes::specialists::list))
        .route("/specialists/{id}", put(routes::specialists::save))
        .route("/openapi.json", get(openapi::document))
        .fallback(not_found);
    let limited = Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/hl7v2", post(routes::hl7v2::receive))
        .route("/webhooks/fhir", post(routes::fhir::subscription_hook))
        .route("/webhooks/sms/status", post(routes::sms::status))
        .route("/webhooks/sms/inbound", post(routes::sms::inbound))
        .route("/b/{code}", get(routes::booking::open))
        .route("/fhir", post(routes::fhir::bundle))
        .route("/fhir/metadata", get(routes::fhir::metadata))
        .route("/fhir/{kind}", post(routes::fhir::create).get(routes::fhir::search))
        .route("/fhir/{kind}/{id}", put(routes::fhir::update).get(routes::fhir::read))
        .nest("/api/v1", api)
        .merge(ui::router())
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(MAX_BODY));
    // An inbound fax may carry its PDF inline: the one route with a larger limit.
    let fax = Router::new()
        .route("/webhooks/fax/inbound", post(routes::fax::inbound))
        .layer(RequestBodyLimitLayer::new(routes::fax::MAX_FAX_BODY));
    limited
        .merge(fax)
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// The request id header, read and answered.
const REQUEST_ID: &str = "x-request-id";

/// Gives every request an id: the caller's `X-Request-Id` when it is a plain token (letters,
/// digits, `-`, `_`, `.`, `:`; at most 64), else a new one. Every log line of the request
/// carries it (the `request` span), and the answer names it.
async fn request_id(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let given = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| {
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    });
    let id = given.map_or_else(|| refloop_app::new_id("req"), str::to_owned);
    // The path without its query: ids only, never a search term.
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    resp
}

/// On every answer: never cached (they carry patient data) unless the handler said otherwise,
/// never sniffed as another content type, and no referrer sent on from our pages.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = resp.headers_mut();
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

async fn not_found() -> (StatusCode, Json<ErrorBody>) {
    let e = ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    (e.status, Json(ErrorBody { error: error::ErrorDetail { code: e.code, message: e.message, field: None } }))
}

/// Limits on HTTP connections, and TLS.
#[derive(Clone)]
pub struct HttpLimits {
    /// A request's headers must arrive within this; also how long a kept-alive connection
    /// may sit idle between requests (and a TLS handshake may take).
    pub header_timeout: Duration,
    pub connections: refloop_app::admission::ConnectionLimits,
    /// HTTPS only, when set (`[server] tls_cert`, `tls_key`); answers then carry HSTS.
    pub tls: Option<refloop_hl7::TlsAcceptor>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), connections: Default::default(), tls: None }
    }
}

/// Browsers remember for a year to come back only over HTTPS.
async fn hsts(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    resp
}

/// Serves one HTTP/1.1 connection until it ends or `stop` (then it finishes its request).
async fn serve_connection<S>(
    stream: S,
    service: axum::Router,
    header_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let service = hyper_util::service::TowerToHyperService::new(service);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Serves HTTP on `listener` until `shutdown` resolves, with the default [`HttpLimits`].
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(state, listener, HttpLimits::default(), shutdown).await
}

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves: each connection is admitted
/// against the connection caps (turned away at once beyond them, counted in
/// `refloop_http_connections_refused_total{reason}`), its request headers must arrive within
/// the header timeout, and on shutdown connections finish the request they are on.
pub async fn serve_with(
    state: AppState,
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = match limits.tls {
        Some(_) => router(state).layer(axum::middleware::map_response(hsts)),
        None => router(state),
    };
    let admission = refloop_app::admission::Admission::new(limits.connections);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            (stream, peer, admitted) = admission.accept(&listener, "HTTP", "refloop_http_connections_refused_total") => {
                let service = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
                let (stop, timeout, tls) = (stop_rx.clone(), limits.header_timeout, limits.tls.clone());
                connections.spawn(async move {
                    let _admitted = admitted;
                    match tls {
                        None => serve_connection(stream, service, timeout, stop).await,
                        Some(tls) => match tokio::time::timeout(timeout, tls.accept(stream)).await {
                            Ok(Ok(stream)) => serve_connection(stream, service, timeout, stop).await,
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                        },
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}
