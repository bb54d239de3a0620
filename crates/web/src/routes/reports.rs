//! `/api/v1/reports/closure`: the closed-loop rate and where referrals leak (SPEC §4).

use axum::{
    Json,
    extract::{Query, State},
};
use jiff::Timestamp;
use refloop_app::{GroupBy, Permission};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    AppState,
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody},
};

#[derive(Deserialize, IntoParams)]
pub struct ClosureQuery {
    /// Start of the period (RFC 3339 or YYYY-MM-DD, inclusive); default: 90 days before `to`.
    pub from: Option<String>,
    /// End of the period (exclusive); default: now.
    pub to: Option<String>,
    /// Split by specialty, provider, specialist, network or urgency.
    pub by: Option<String>,
}

/// A timestamp or a date (midnight UTC).
pub fn instant(field: &str, raw: &str) -> ApiResult<Timestamp> {
    let raw = raw.trim();
    let full = if raw.len() == 10 { format!("{raw}T00:00:00Z") } else { raw.to_owned() };
    full.parse().map_err(|_| ApiError::invalid(field, "an RFC 3339 timestamp or a date YYYY-MM-DD"))
}

/// Closed-loop rate, funnel, leakage by stage and reason, days at each stage, unscheduled
/// catch rate — for tracked referrals ordered in the period.
#[utoipa::path(get, path = "/api/v1/reports/closure", tag = "reports", params(ClosureQuery),
    responses((status = 200, description = "the closure report"), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn closure(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<ClosureQuery>,
) -> ApiResult<Json<refloop_app::ClosureReport>> {
    auth.require(Permission::Read)?;
    let to = q.to.as_deref().map(|t| instant("to", t)).transpose()?.unwrap_or_else(|| s.app.now());
    let from = match q.from.as_deref() {
        Some(f) => instant("from", f)?,
        None => to - jiff::SignedDuration::from_hours(90 * 24),
    };
    let by = match q.by.as_deref() {
        None | Some("") => None,
        Some(b) => Some(GroupBy::parse(b).ok_or_else(|| ApiError::invalid("by", GroupBy::NAMES))?),
    };
    Ok(Json(s.app.closure_report(from, to, by).await?))
}
