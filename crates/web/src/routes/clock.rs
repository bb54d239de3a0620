//! `/api/v1/clock`: read the clock; drive it by hand in manual mode.

use axum::{Json, extract::State};
use refloop_app::Permission;
use refloop_domain::Duration;

use crate::{
    AppState,
    auth::Auth,
    dto::{AdvanceBody, AdvanceView, ClockView},
    error::{ApiError, ApiResult, ErrorBody},
    json::Body,
};

/// The service's current time and clock mode.
#[utoipa::path(get, path = "/api/v1/clock", tag = "clock",
    responses((status = 200, body = ClockView)), security(("bearer" = [])))]
pub async fn show(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<ClockView>> {
    auth.require(Permission::Read)?;
    let mode = if s.app.clock().manual().is_some() { "manual" } else { "system" };
    Ok(Json(ClockView { now: refloop_app::export::iso(s.app.now()), mode: mode.to_owned() }))
}

/// Moves the manual clock forward; every timer and message due on the way acts before
/// this returns. Refused (409) on the system clock.
#[utoipa::path(post, path = "/api/v1/clock/advance", tag = "clock", request_body = AdvanceBody,
    responses((status = 200, body = AdvanceView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn advance(
    State(s): State<AppState>,
    auth: Auth,
    Body(b): Body<AdvanceBody>,
) -> ApiResult<Json<AdvanceView>> {
    let actor = auth.require(Permission::Operate)?;
    let by: Duration =
        b.by.parse().map_err(|e: refloop_domain::DurationError| ApiError::invalid("by", e.to_string()))?;
    s.app.audit_action(actor, "advance", "clock", &b.by).await?;
    let report = s.app.advance(by).await?;
    Ok(Json(AdvanceView {
        now: refloop_app::export::iso(report.now),
        timers_fired: report.work.timers_fired,
        timers_stale: report.work.timers_stale,
        messages_attempted: report.work.messages_attempted,
    }))
}
