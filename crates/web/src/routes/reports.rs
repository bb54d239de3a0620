//! `/api/v1/reports/closure`: the closed-loop rate and where referrals leak; `/api/v1/reports/cms50`:
//! the CMS50 quality measure for a year (SPEC §4).

use axum::{
    Json,
    extract::{Query, State},
};
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
    /// First day of the period: a date YYYY-MM-DD, local to the practice (`[practice]
    /// time_zone`) and included, or an RFC 3339 timestamp; default: the 90 days ending `to`.
    pub from: Option<String>,
    /// Last day of the period: a local date, included (the whole day), or an RFC 3339
    /// timestamp (the period ends just before it); default: today. The dashboard and
    /// `refloop report closure` read periods the same way.
    pub to: Option<String>,
    /// Split by specialty, provider, specialist, network, urgency, week or month.
    pub by: Option<String>,
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
    let tz = &s.app.policy().time_zone;
    let (from, to) = refloop_app::period::period(q.from.as_deref(), q.to.as_deref(), tz, s.app.now())?;
    let by = match q.by.as_deref() {
        None | Some("") => None,
        Some(b) => Some(GroupBy::parse(b).ok_or_else(|| ApiError::invalid("by", GroupBy::NAMES))?),
    };
    Ok(Json(s.app.closure_report(from, to, by).await?))
}

#[derive(Deserialize, IntoParams)]
pub struct Cms50Query {
    /// The measurement year (Jan 1 – Dec 31 in the practice's time zone).
    pub year: Option<String>,
}

/// CMS50 (MIPS 374) for a year: initial population, denominator, numerator and rate for the
/// practice and per referring provider, with the patients behind each figure.
#[utoipa::path(get, path = "/api/v1/reports/cms50", tag = "reports", params(Cms50Query),
    responses((status = 200, description = "the CMS50 report"), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cms50(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<Cms50Query>,
) -> ApiResult<Json<refloop_app::Cms50Report>> {
    let actor = auth.require(Permission::Read)?;
    let year = q
        .year
        .as_deref()
        .and_then(|y| y.trim().parse::<i16>().ok())
        .ok_or_else(|| ApiError::invalid("year", "a year such as 2026"))?;
    let report = s.app.cms50_report(year).await?;
    s.app.audit_read(actor, "report", &format!("cms50:{year}")).await?;
    Ok(Json(report))
}
