//! HTTP for refloop: the JSON API under `/api/v1`, health checks and the OpenAPI document.
//!
//! Handlers parse requests into domain types, check the caller's role and call
//! [`refloop_app::App`]; they hold no business logic. One file per resource under `routes/`.

mod auth;
mod dto;
mod error;
mod json;
mod openapi;
mod routes;
mod ui;

use std::{future::Future, net::SocketAddr, time::Duration};

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
pub use routes::{
    reports::instant as parse_instant, sms::SmsWebhooks, specialists::SpecialistBody,
    specialists::parse as parse_specialist,
};
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
    /// The Prometheus recorder, when one is installed.
    pub metrics: Option<PrometheusHandle>,
    pub ui: UiInfo,
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
        .route("/reports/closure", get(routes::reports::closure))
        .route("/reports/cms50", get(routes::reports::cms50))
        .route("/specialists", get(routes::specialists::list))
        .route("/specialists/{id}", put(routes::specialists::save))
        .route("/openapi.json", get(openapi::document))
        .fallback(not_found);
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/hl7v2", post(routes::hl7v2::receive))
        .route("/webhooks/fhir", post(routes::fhir::subscription_hook))
        .route("/webhooks/sms/status", post(routes::sms::status))
        .route("/webhooks/sms/inbound", post(routes::sms::inbound))
        .route("/fhir", post(routes::fhir::bundle))
        .route("/fhir/metadata", get(routes::fhir::metadata))
        .route("/fhir/{kind}", post(routes::fhir::create).get(routes::fhir::search))
        .route("/fhir/{kind}/{id}", put(routes::fhir::update).get(routes::fhir::read))
        .nest("/api/v1", api)
        .merge(ui::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
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

/// Serves HTTP on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}
