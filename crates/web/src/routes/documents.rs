//! `/api/v1/documents`: documents that came in (inbound faxes, a Direct message's C-CDA and
//! PDF parts) — listed without content, filed on a referral (as its consult note, which
//! closes the loop, or as another document) or dismissed with a reason. Every read is audited.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use refloop_app::{
    Permission,
    documents::{DocumentFilter, DocumentRecord, DocumentRole, DocumentStatus},
};
use refloop_domain::ReferralId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody},
    json::Body,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// `unfiled`, `filed` or `dismissed`; any when absent.
    pub status: Option<String>,
    pub referral_id: Option<String>,
    pub limit: Option<u32>,
}

/// A document, without its content (the staff page shows it).
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    /// The inbound message it came in.
    pub inbox_id: Option<String>,
    /// `fax` or `direct`.
    pub source: String,
    pub name: String,
    pub media_type: String,
    pub sha256: String,
    pub size: u64,
    pub received_at: String,
    /// `unfiled`, `filed` or `dismissed`.
    pub status: String,
    pub referral_id: Option<String>,
    /// Filed: `consult-note` or `other`; unfiled: `consult-note` when it was read as a note.
    pub role: Option<String>,
    pub settled_by: Option<String>,
    pub settled_at: Option<String>,
    pub reason: Option<String>,
}

impl DocumentView {
    fn new(d: &DocumentRecord) -> Self {
        Self {
            id: d.id.clone(),
            inbox_id: d.inbox_id.clone(),
            source: d.source.clone(),
            name: d.name.clone(),
            media_type: d.media_type.clone(),
            sha256: d.sha256.clone(),
            size: d.size,
            received_at: refloop_app::export::iso(d.received_at),
            status: d.status.as_str().to_owned(),
            referral_id: d.referral_id.as_ref().map(ToString::to_string),
            role: d.role.map(|r| r.as_str().to_owned()),
            settled_by: d.settled_by.clone(),
            settled_at: d.settled_at.map(refloop_app::export::iso),
            reason: d.reason.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub items: Vec<DocumentView>,
}

/// Documents, newest first.
#[utoipa::path(get, path = "/api/v1/documents", tag = "documents", params(DocumentQuery),
    responses((status = 200, body = DocumentList), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<DocumentQuery>,
) -> ApiResult<Json<DocumentList>> {
    let actor = auth.require(Permission::WorkTasks)?.clone();
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(x) => {
            Some(DocumentStatus::parse(x).ok_or_else(|| ApiError::invalid("status", "unfiled, filed or dismissed"))?)
        }
    };
    let referral = match q.referral_id.as_deref() {
        None | Some("") => None,
        Some(r) => Some(ReferralId::parse(r).map_err(|e| ApiError::invalid("referral_id", e.message))?),
    };
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=500) => n,
        Some(_) => return Err(ApiError::invalid("limit", "between 1 and 500")),
    };
    let docs = s.app.documents(&actor, &DocumentFilter { status, referral, limit }).await?;
    Ok(Json(DocumentList { items: docs.iter().map(DocumentView::new).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileBody {
    pub referral_id: String,
    /// `consult-note` (records `note-received`) or `other`.
    pub role: String,
}

/// Files an unfiled document on a referral.
#[utoipa::path(post, path = "/api/v1/documents/{id}/file", tag = "documents", params(("id" = String, Path)),
    request_body = FileBody,
    responses((status = 200, body = DocumentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn file(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<FileBody>,
) -> ApiResult<Json<DocumentView>> {
    let actor = auth.require(Permission::WorkTasks)?.clone();
    auth.require(Permission::WriteReferrals)?;
    let referral = ReferralId::parse(&body.referral_id).map_err(|e| ApiError::invalid("referral_id", e.message))?;
    let role = DocumentRole::parse(&body.role).ok_or_else(|| ApiError::invalid("role", "consult-note or other"))?;
    Ok(Json(DocumentView::new(&s.app.file_document(&id, &referral, role, &actor).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissDocumentBody {
    /// Why the document needs nothing (for another practice, a duplicate).
    pub reason: String,
}

/// Dismisses an unfiled document, with the reason.
#[utoipa::path(post, path = "/api/v1/documents/{id}/dismiss", tag = "documents", params(("id" = String, Path)),
    request_body = DismissDocumentBody,
    responses((status = 200, body = DocumentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn dismiss(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<DismissDocumentBody>,
) -> ApiResult<Json<DocumentView>> {
    let actor = auth.require(Permission::WorkTasks)?.clone();
    auth.require(Permission::WriteReferrals)?;
    Ok(Json(DocumentView::new(&s.app.dismiss_document(&id, &body.reason, &actor).await?)))
}
