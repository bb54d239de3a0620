//! `/api/v1/specialists`: the specialist directory (where note requests go) and its stale
//! entries (contact data not verified for 90 days).

use axum::{
    Json,
    extract::{Path, Query, State},
};
use jiff::Timestamp;
use refloop_app::{Permission, Specialist, is_stale};
use refloop_domain::{Network, Specialty};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    auth::Auth,
    error::{ApiError, ApiResult, ErrorBody},
    json::Body,
};

#[derive(Deserialize, IntoParams)]
pub struct SpecialistQuery {
    /// Only entries whose contact data was last verified more than 90 days ago.
    pub stale: Option<bool>,
}

/// A directory entry as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct SpecialistView {
    pub id: String,
    pub name: String,
    pub specialties: Vec<String>,
    pub network: String,
    pub phone: Option<String>,
    pub fax: Option<String>,
    pub direct_address: Option<String>,
    pub accepts_360x: bool,
    pub booking_url: Option<String>,
    pub fhir_base: Option<String>,
    pub scheduling_manifest: Option<String>,
    /// The booking link a free slot in the manifest gave at its last read.
    pub manifest_booking_link: Option<String>,
    pub manifest_booking_phone: Option<String>,
    pub last_verified: String,
    pub stale: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SpecialistList {
    pub items: Vec<SpecialistView>,
}

/// A directory entry to save.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecialistBody {
    pub name: String,
    pub specialties: Vec<String>,
    /// in-network, out-of-network or unknown
    pub network: Option<String>,
    pub phone: Option<String>,
    pub fax: Option<String>,
    pub direct_address: Option<String>,
    /// Takes 360X closed-loop referrals over Direct (default false).
    pub accepts_360x: Option<bool>,
    /// Where patients book online (https).
    pub booking_url: Option<String>,
    /// Their FHIR endpoint (https): note requests go there first, as a Task.
    pub fhir_base: Option<String>,
    /// Their SMART Scheduling Links `$bulk-publish` manifest (https): a free slot's booking
    /// link stands in when there is no `booking_url`.
    pub scheduling_manifest: Option<String>,
    /// When the contact data was last confirmed (RFC 3339); now when absent.
    pub last_verified: Option<String>,
}

fn view(s: &Specialist, now: Timestamp) -> SpecialistView {
    SpecialistView {
        id: s.id.clone(),
        name: s.name.clone(),
        specialties: s.specialties.iter().map(|x| x.as_str().to_owned()).collect(),
        network: s.network.as_str().to_owned(),
        phone: s.phone.clone(),
        fax: s.fax.clone(),
        direct_address: s.direct_address.clone(),
        accepts_360x: s.accepts_360x,
        booking_url: s.booking_url.clone(),
        fhir_base: s.fhir_base.clone(),
        scheduling_manifest: s.scheduling_manifest.clone(),
        manifest_booking_link: s.manifest.as_ref().and_then(|m| m.link.clone()),
        manifest_booking_phone: s.manifest.as_ref().and_then(|m| m.phone.clone()),
        last_verified: refloop_app::export::iso(s.last_verified),
        stale: is_stale(s, now),
    }
}

/// The directory by name; `?stale=true` for the entries to verify.
#[utoipa::path(get, path = "/api/v1/specialists", tag = "directory", params(SpecialistQuery),
    responses((status = 200, body = SpecialistList)), security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<SpecialistQuery>,
) -> ApiResult<Json<SpecialistList>> {
    auth.require(Permission::Read)?;
    let now = s.app.now();
    let items = s.app.specialists(q.stale.unwrap_or(false)).await?.iter().map(|x| view(x, now)).collect();
    Ok(Json(SpecialistList { items }))
}

/// Adds or replaces a directory entry.
#[utoipa::path(put, path = "/api/v1/specialists/{id}", tag = "directory", params(("id" = String, Path)),
    request_body = SpecialistBody,
    responses((status = 200, body = SpecialistView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn save(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(b): Body<SpecialistBody>,
) -> ApiResult<Json<SpecialistView>> {
    let actor = auth.require(Permission::EditDirectory)?.clone();
    let specialist = parse(id, b, s.app.now())?;
    let saved = s.app.save_specialist(&actor, specialist).await?;
    Ok(Json(view(&saved, s.app.now())))
}

/// Checks the parts of an entry a type can check; the app checks the rest.
pub fn parse(id: String, b: SpecialistBody, now: Timestamp) -> ApiResult<Specialist> {
    let specialties = b
        .specialties
        .iter()
        .map(|x| Specialty::parse(x))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid("specialties", e.message))?;
    let network = match b.network.as_deref().unwrap_or("unknown") {
        "in-network" => Network::InNetwork,
        "out-of-network" => Network::OutOfNetwork,
        "unknown" | "" => Network::Unknown,
        _ => return Err(ApiError::invalid("network", "in-network, out-of-network or unknown")),
    };
    let last_verified = match b.last_verified.as_deref() {
        None | Some("") => now,
        Some(t) => t.parse().map_err(|_| ApiError::invalid("last_verified", "an RFC 3339 timestamp"))?,
    };
    let empty_none = |v: Option<String>| v.filter(|x| !x.trim().is_empty());
    Ok(Specialist {
        id,
        name: b.name,
        specialties,
        network,
        phone: empty_none(b.phone),
        fax: empty_none(b.fax),
        direct_address: empty_none(b.direct_address),
        accepts_360x: b.accepts_360x.unwrap_or(false),
        booking_url: empty_none(b.booking_url),
        fhir_base: empty_none(b.fhir_base),
        scheduling_manifest: empty_none(b.scheduling_manifest),
        manifest: None,
        last_verified,
        updated_at: now,
    })
}
