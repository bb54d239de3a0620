//! `/api/v1/tasks` (the worklist) and `/api/v1/outbox` (what was sent).

use axum::{
    Json,
    extract::{Path, Query, State},
};
use refloop_app::{OutboxFilter, OutboxStatus, Permission, TaskFilter, TaskReport, TaskStatus};
use refloop_domain::ReferralId;

use crate::{
    AppState,
    auth::Auth,
    dto::{ClaimBody, CompleteBody, OutboxList, OutboxQuery, OutboxView, TaskList, TaskQuery, TaskView},
    error::{ApiError, ApiResult, ErrorBody},
    json::MaybeBody,
    routes::referrals::{MAX_SHORT, MAX_TEXT, bounded},
};

fn limit(n: Option<u32>) -> ApiResult<u32> {
    match n {
        None => Ok(100),
        Some(n @ 1..=500) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", "between 1 and 500")),
    }
}

fn referral(raw: Option<String>) -> ApiResult<Option<ReferralId>> {
    raw.map(|r| ReferralId::parse(&r).map_err(|e| ApiError::invalid("referral_id", e.message))).transpose()
}

/// The worklist, by due time.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "worklist", params(TaskQuery),
    responses((status = 200, body = TaskList), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, auth: Auth, Query(q): Query<TaskQuery>) -> ApiResult<Json<TaskList>> {
    auth.require(Permission::Read)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(x) => Some(TaskStatus::parse(x).ok_or_else(|| ApiError::invalid("status", "open, claimed or done"))?),
    };
    let filter = TaskFilter {
        status,
        assignee: q.assignee,
        referral_id: referral(q.referral_id)?,
        completed_after: None,
        inbox_id: None,
        limit: limit(q.limit)?,
    };
    let now = s.app.now();
    let tasks = s.app.tasks(&filter).await?;
    s.app.audit_list(&auth.0, "referral", tasks.iter().map(|t| t.referral_id.as_str())).await?;
    Ok(Json(TaskList { items: tasks.iter().map(|t| TaskView::new(t, now)).collect() }))
}

/// Take an open task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/claim", tag = "worklist",
    params(("id" = String, Path)), request_body(content = ClaimBody, description = "optional"),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn claim(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<ClaimBody>,
) -> ApiResult<Json<TaskView>> {
    let actor = auth.require(Permission::WorkTasks)?;
    let body = body.unwrap_or_default();
    let task = s.app.claim_task(actor, &id, body.assignee.as_deref()).await?;
    Ok(Json(TaskView::new(&task, s.app.now())))
}

/// Mark a task done.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/complete", tag = "worklist",
    params(("id" = String, Path)), request_body(content = CompleteBody, description = "optional"),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn complete(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<CompleteBody>,
) -> ApiResult<Json<TaskView>> {
    let actor = auth.require(Permission::WorkTasks)?;
    let b = body.unwrap_or_default();
    let structured = b.note.is_some() || b.appointment_at.is_some() || b.reason.is_some() || b.phone.is_some();
    let task = if structured || b.outcome.as_deref().is_some_and(is_outcome_code) {
        let report = TaskReport {
            outcome: b.outcome.unwrap_or_else(|| "done".into()),
            note: bounded("note", b.note, MAX_TEXT)?,
            appointment_at: crate::dto::opt_instant("appointment_at", b.appointment_at.as_deref())?,
            reason: bounded("reason", b.reason, MAX_TEXT)?,
            phone: bounded("phone", b.phone, MAX_SHORT)?,
        };
        s.app.report_task(actor, &id, report).await?
    } else {
        s.app.complete_task(actor, &id, b.outcome.as_deref()).await?
    };
    Ok(Json(TaskView::new(&task, s.app.now())))
}

/// Whether `outcome` is a code of the task's outcomes (else a free-text outcome, kept as its note).
fn is_outcome_code(outcome: &str) -> bool {
    refloop_domain::TaskKind::ALL.iter().any(|k| refloop_app::outcomes_for(*k).iter().any(|c| c.code == outcome))
}

/// Claim the open task that has been due longest (none open: 404).
#[utoipa::path(post, path = "/api/v1/tasks/claim-next", tag = "worklist",
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn claim_next(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<TaskView>> {
    let actor = auth.require(Permission::WorkTasks)?;
    match s.app.claim_next(actor).await? {
        Some(task) => Ok(Json(TaskView::new(&task, s.app.now()))),
        None => Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no open task")),
    }
}

/// Outbound messages: pending, sent, failed.
#[utoipa::path(get, path = "/api/v1/outbox", tag = "outbox", params(OutboxQuery),
    responses((status = 200, body = OutboxList), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn outbox(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<OutboxQuery>,
) -> ApiResult<Json<OutboxList>> {
    auth.require(Permission::Read)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(x) => Some(
            OutboxStatus::parse(x)
                .ok_or_else(|| ApiError::invalid("status", "pending, sending, accepted, sent, failed or unknown"))?,
        ),
    };
    let filter = OutboxFilter { status, referral_id: referral(q.referral_id)?, limit: limit(q.limit)? };
    let items = s.app.outbox(&filter).await?;
    s.app.audit_list(&auth.0, "referral", items.iter().map(|o| o.referral_id.as_str())).await?;
    Ok(Json(OutboxList { items: items.iter().map(OutboxView::from).collect() }))
}
