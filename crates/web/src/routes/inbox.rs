//! `/api/v1/inbox` and `/api/v1/dead-letters`: every inbound message with its outcome;
//! dead letters and the review queue can be applied again.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use refloop_app::{InboxFilter, InboxItem, InboxStatus, Permission};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use refloop_domain::ReferralId;

use crate::{
    AppState,
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody},
    json::Body,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// `applied`, `ignored`, `rejected`, `review` or `dead`.
    pub status: Option<String>,
    pub limit: Option<u32>,
}

/// An inbound message. `raw` (the message itself) is only in the single-item view.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxView {
    pub id: String,
    pub protocol: String,
    pub source: String,
    pub control_id: String,
    pub transport: String,
    pub message_type: String,
    pub received_at: String,
    pub status: String,
    pub error: Option<String>,
    pub referral_id: Option<String>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<String>,
}

impl InboxView {
    fn new(m: &InboxItem, full: bool) -> Self {
        Self {
            id: m.id.clone(),
            protocol: m.protocol.clone(),
            source: m.source.clone(),
            control_id: m.control_id.clone(),
            transport: m.transport.clone(),
            message_type: m.message_type.clone(),
            received_at: refloop_app::export::iso(m.received_at),
            status: m.status.as_str().to_owned(),
            error: m.error.clone(),
            referral_id: m.referral_id.as_ref().map(|r| r.to_string()),
            attempts: m.attempts,
            raw: full.then(|| String::from_utf8_lossy(&m.raw).into_owned()),
            ack: if full { m.ack.as_deref().map(|a| String::from_utf8_lossy(a).into_owned()) } else { None },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxList {
    pub items: Vec<InboxView>,
}

fn limit(n: Option<u32>) -> ApiResult<u32> {
    match n {
        None => Ok(100),
        Some(n @ 1..=500) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", "between 1 and 500")),
    }
}

fn list_of(items: &[InboxItem]) -> Json<InboxList> {
    Json(InboxList { items: items.iter().map(|m| InboxView::new(m, false)).collect() })
}

/// Inbound messages, newest first.
#[utoipa::path(get, path = "/api/v1/inbox", tag = "inbound", params(InboxQuery),
    responses((status = 200, body = InboxList), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, auth: Auth, Query(q): Query<InboxQuery>) -> ApiResult<Json<InboxList>> {
    auth.require(Permission::Messages)?;
    let n = limit(q.limit)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(x) => Some(
            InboxStatus::parse(x)
                .ok_or_else(|| ApiError::invalid("status", "applied, ignored, rejected, review or dead"))?,
        ),
    };
    let items = s.app.store().inbox(&InboxFilter { status, limit: n }).await.map_err(refloop_app::AppError::from)?;
    s.app.audit_list(&auth.0, "inbound-message", items.iter().map(|m| m.id.as_str())).await?;
    Ok(list_of(&items))
}

/// Dead letters (failed to apply) and the review queue (matches that were not certain).
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "inbound", params(InboxQuery),
    responses((status = 200, body = InboxList)), security(("bearer" = [])))]
pub async fn dead_letters(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<InboxQuery>,
) -> ApiResult<Json<InboxList>> {
    auth.require(Permission::Messages)?;
    let items = s.app.dead_letters(limit(q.limit)?).await?;
    s.app.audit_list(&auth.0, "inbound-message", items.iter().map(|m| m.id.as_str())).await?;
    Ok(list_of(&items))
}

/// One inbound message with its raw text and the ACK we answered.
#[utoipa::path(get, path = "/api/v1/inbox/{id}", tag = "inbound", params(("id" = String, Path)),
    responses((status = 200, body = InboxView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<InboxView>> {
    let actor = auth.require(Permission::Messages)?.clone();
    let item =
        s.app.store().inbox_item(&id).await.map_err(refloop_app::AppError::from)?.ok_or_else(|| {
            ApiError::from(refloop_app::AppError::NotFound { what: "inbound message", id: id.clone() })
        })?;
    s.app.audit_read(&actor, "inbound-message", &id).await?;
    Ok(Json(InboxView::new(&item, true)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The referral the message belongs to.
    pub referral_id: String,
}

/// A person decided which referral a review item (or dead letter) belongs to: apply it there.
#[utoipa::path(post, path = "/api/v1/inbox/{id}/apply", tag = "inbound", params(("id" = String, Path)),
    request_body = ApplyBody,
    responses((status = 200, body = InboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn apply(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<ApplyBody>,
) -> ApiResult<Json<InboxView>> {
    let actor = auth.require(Permission::Messages)?.clone();
    let referral = ReferralId::parse(&body.referral_id).map_err(|e| ApiError::invalid("referral_id", e.message))?;
    let item = apply_to(&s, &id, &referral, &actor).await?;
    Ok(Json(InboxView::new(&item, false)))
}

/// Applies a dead letter or review item again (after fixing the configuration or data).
#[utoipa::path(post, path = "/api/v1/inbox/{id}/retry", tag = "inbound", params(("id" = String, Path)),
    responses((status = 200, body = InboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry(State(s): State<AppState>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<InboxView>> {
    auth.require(Permission::Messages)?;
    let item = retry_item(&s, &id).await?;
    Ok(Json(InboxView::new(&item, false)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissBody {
    /// Why the message needs nothing (a test message, a copy already applied by hand).
    pub reason: String,
}

/// A person decided a dead letter or review item needs nothing: settled as ignored with the
/// reason; its review tasks close.
#[utoipa::path(post, path = "/api/v1/inbox/{id}/dismiss", tag = "inbound", params(("id" = String, Path)),
    request_body = DismissBody,
    responses((status = 200, body = InboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn dismiss(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<DismissBody>,
) -> ApiResult<Json<InboxView>> {
    let actor = auth.require(Permission::Messages)?.clone();
    let item = s.app.dismiss_inbox(&id, &actor, &body.reason).await?;
    Ok(Json(InboxView::new(&item, false)))
}

/// Applies a review item or dead letter to `referral` through the protocol it came in by.
pub(crate) async fn apply_to(
    s: &AppState,
    id: &str,
    referral: &ReferralId,
    actor: &refloop_app::Actor,
) -> Result<InboxItem, ApiError> {
    Ok(s.app.apply_inbox_item_to(id, referral, actor).await?)
}

/// Applies a review item or dead letter again through the protocol it came in by.
pub(crate) async fn retry_item(s: &AppState, id: &str) -> Result<InboxItem, ApiError> {
    Ok(s.app.retry_inbox(id).await?)
}
