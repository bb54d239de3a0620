//! Health checks: the only endpoints without a credential.

use axum::{Json, extract::State, http::StatusCode};

use crate::{AppState, dto::Health};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    match s.app.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(Health { status: "ready".to_owned() })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "database unavailable".to_owned() }))
        }
    }
}
