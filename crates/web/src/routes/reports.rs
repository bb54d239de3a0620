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

/// The closure report as the API answers it (documentation of `refloop_app::ClosureReport`).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct ClosureReportDoc {
    /// The period's first instant (the start of `from`, local).
    pub from: String,
    /// Just after the period's last instant (the start of the day after `to`).
    pub to: String,
    pub generated_at: String,
    /// Tracked referrals ordered in the period (physician orders, not duplicates).
    pub referrals: u64,
    /// How many reached each milestone: `patient-notified`, `scheduled`, `attended`, `note-received`.
    pub funnel: std::collections::BTreeMap<String, u64>,
    /// Referrals whose loop closed (the specialist's note came back).
    pub closed_loop: u64,
    /// closed_loop / referrals over all of them, those still in progress included (0–1).
    pub closed_loop_rate: Option<f64>,
    /// Open referrals whose current stage's window has not run out at `generated_at`: not
    /// leaked (yet).
    pub in_progress: u64,
    /// … by the stage they are in (`not notified`, `not scheduled`, `not attended`, `no note`).
    pub in_progress_by_stage: std::collections::BTreeMap<String, u64>,
    /// Referrals ordered at least `[workflow] mature_after` (90 days) before `generated_at`,
    /// whose whole path has had time to finish …
    pub mature_referrals: u64,
    /// … how many of them closed the loop …
    pub mature_closed_loop: u64,
    /// … and their share (0–1): the rate to judge the practice by.
    pub mature_closed_loop_rate: Option<f64>,
    /// Where the leaked ones stopped (window run out, closed incomplete or cancelled).
    pub leakage_by_stage: std::collections::BTreeMap<String, u64>,
    /// Why they leaked: an open one names its stage and how long it is overdue (`still open,
    /// not scheduled, 2–6 weeks overdue`; buckets `up to 2 weeks`, `2–6 weeks`, `over 6
    /// weeks`; `open after a no-show, …` likewise), else `cancelled`, `closed: <reason>`,
    /// `closed without a reason`.
    pub leakage_by_reason: std::collections::BTreeMap<String, u64>,
    /// Days from each milestone to the next and from order to note: count, median, p90, mean.
    #[schema(value_type = Object)]
    pub days: serde_json::Value,
    pub escalated_unscheduled: u64,
    pub caught_after_escalation: u64,
    /// Of the referrals escalated for no appointment, the share scheduled afterwards.
    pub unscheduled_catch_rate: Option<f64>,
    /// With `by`: the same figures per group.
    #[schema(value_type = Option<Object>)]
    pub by: Option<serde_json::Value>,
}

/// Closed-loop rate, funnel, leakage by stage and reason, days at each stage, unscheduled
/// catch rate — for tracked referrals ordered in the period.
#[utoipa::path(get, path = "/api/v1/reports/closure", tag = "reports", params(ClosureQuery),
    responses((status = 200, description = "the closure report", body = ClosureReportDoc), (status = 422, body = ErrorBody)),
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
