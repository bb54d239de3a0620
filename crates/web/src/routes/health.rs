//! Health checks: the only endpoints without a credential.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use refloop_app::Permission;

use crate::{AppState, auth::Auth, dto::Health, error::ApiResult};

/// Prometheus metrics (text format): inbound HL7 messages by type, outcome and ACK code,
/// and how long applying them takes; read at each scrape, the backlog (referrals by state,
/// overdue tasks, dead letters and review items, unfiled documents, the outbox by status and
/// the age of its oldest unsent item), when each channel last worked and last failed, and the
/// database disk's free space; and when each poller last worked.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")),
    security(("bearer" = [])))]
pub async fn metrics(State(s): State<AppState>, auth: Auth) -> ApiResult<Response> {
    auth.require(Permission::Read)?;
    // Read at scrape time: what is open, late and waiting now.
    let g = s.app.store().gauges(s.app.now()).await.map_err(refloop_app::AppError::from)?;
    for state in refloop_domain::State::ALL {
        let n = g.referrals_by_state.iter().find(|(st, _)| st == state.as_str()).map_or(0, |(_, n)| *n);
        metrics::gauge!("refloop_referrals", "state" => state.as_str()).set(n as f64);
    }
    metrics::gauge!("refloop_tasks_overdue").set(g.overdue_tasks as f64);
    metrics::gauge!("refloop_outbox_backlog").set(g.outbox_backlog() as f64);
    for status in ["review", "dead"] {
        let n = g.inbox_waiting.iter().find(|(st, _)| st == status).map_or(0, |(_, n)| *n);
        metrics::gauge!("refloop_inbox_waiting", "status" => status).set(n as f64);
    }
    metrics::gauge!("refloop_documents_unfiled").set(g.documents_unfiled as f64);
    for status in refloop_app::OutboxStatus::ALL {
        let n = g.outbox_by_status.iter().find(|(st, _)| st == status.as_str()).map_or(0, |(_, n)| *n);
        metrics::gauge!("refloop_outbox", "status" => status.as_str()).set(n as f64);
    }
    let age = g.oldest_unsent.map_or(0.0, |at| (s.app.now() - at).as_secs_f64().max(0.0));
    metrics::gauge!("refloop_outbox_oldest_unsent_seconds").set(age);
    let seconds = |t: jiff::Timestamp| t.as_millisecond() as f64 / 1000.0;
    let activity = s.app.store().channel_activity().await.map_err(refloop_app::AppError::from)?;
    // 0: never (so that both series exist for a channel with any history).
    for a in activity {
        let channel = a.channel.clone();
        metrics::gauge!("refloop_channel_last_success_timestamp_seconds", "channel" => channel.clone())
            .set(a.last_success.map_or(0.0, seconds));
        metrics::gauge!("refloop_channel_last_failure_timestamp_seconds", "channel" => channel)
            .set(a.last_failure.map_or(0.0, seconds));
    }
    if let Some(space) = s.app.store().disk_space() {
        metrics::gauge!("refloop_database_disk_free_ratio").set(space.free_ratio());
        metrics::gauge!("refloop_database_disk_free_bytes").set(space.free as f64);
    }
    let body = s.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    // Within a second either way: a database that does not answer is not ready.
    let probe = tokio::time::timeout(std::time::Duration::from_secs(1), s.app.store().ready(s.app.now())).await;
    match probe {
        Ok(Ok(())) => (StatusCode::OK, Json(Health { status: "ready".to_owned() })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "database unavailable".to_owned() }))
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within 1 s");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "database unavailable".to_owned() }))
        }
    }
}
