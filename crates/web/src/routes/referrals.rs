//! `/api/v1/referrals`: enter, list, read, and record what happened.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use refloop_app::{NewReferral, PatientInput, Permission, ReferralFilter, ReferralSort};
use refloop_domain::{
    Input, Network, OrderUpdate, Origin, PatientId, ProviderId, ReferralId, Specialty, State as RState, Urgency,
};

use crate::{
    AppState,
    auth::Auth,
    dto::{
        CreateReferralBody, ReferralDetailView, ReferralList, ReferralQuery, ReferralView, StaffEventBody, opt_instant,
    },
    error::{ApiError, ApiResult, ErrorBody},
    json::Body,
};

fn field<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> ApiResult<T> {
    r.map_err(|e| {
        let msg = e.to_string();
        ApiError::invalid(name, msg.split_once(": ").map_or(msg.as_str(), |(_, m)| m).to_owned())
    })
}

fn opt<T, E: std::fmt::Display>(
    name: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> ApiResult<Option<T>> {
    raw.map(|r| field(name, parse(r))).transpose()
}

fn referral_id(raw: &str) -> ApiResult<ReferralId> {
    ReferralId::parse(raw).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "referral not found"))
}

/// Field limits (documented in the OpenAPI schema): beyond them 422, and nothing is stored.
pub(crate) const MAX_NAME: usize = 200;
pub(crate) const MAX_TEXT: usize = 2000;
pub(crate) const MAX_SHORT: usize = 64;
pub(crate) const MAX_SOURCE_IDS: usize = 20;

/// `value`, unless it is longer than `max` characters.
pub(crate) fn bounded(name: &str, value: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(name, format!("at most {max} characters"))),
        v => Ok(v),
    }
}

fn parse_create(b: CreateReferralBody) -> ApiResult<NewReferral> {
    if b.source_ids.len() > MAX_SOURCE_IDS {
        return Err(ApiError::invalid("source_ids", format!("at most {MAX_SOURCE_IDS} ids")));
    }
    for id in &b.source_ids {
        bounded("source_ids", Some(id.clone()), MAX_NAME)?;
    }
    let b = CreateReferralBody {
        referring_provider_name: bounded("referring_provider_name", b.referring_provider_name, MAX_NAME)?,
        specialist: bounded("specialist", b.specialist, MAX_NAME)?,
        reason: bounded("reason", b.reason, MAX_TEXT)?,
        patient: match b.patient {
            Some(p) => Some(crate::dto::PatientBody {
                name: bounded("patient.name", p.name, MAX_NAME)?,
                language: bounded("patient.language", p.language, MAX_SHORT)?,
                phone: bounded("patient.phone", p.phone, MAX_SHORT)?,
                time_zone: bounded("patient.time_zone", p.time_zone, MAX_SHORT)?,
                ..p
            }),
            None => None,
        },
        ..b
    };
    let patient = match b.patient {
        Some(p) => {
            let birth_date = match p.birth_date.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
                Some(d) => Some(field("patient.birth_date", d.parse::<jiff::civil::Date>())?.to_string()),
                None => None,
            };
            Some(PatientInput {
                name: p.name,
                birth_date,
                language: p.language.filter(|l| !l.trim().is_empty()),
                phone: p.phone,
                sms_consent: p.sms_consent,
                time_zone: p.time_zone,
            })
        }
        None => None,
    };
    Ok(NewReferral {
        patient_id: field("patient_id", PatientId::parse(&b.patient_id))?,
        patient,
        referring_provider: field("referring_provider", ProviderId::parse(&b.referring_provider))?,
        referring_provider_name: b.referring_provider_name.filter(|n| !n.trim().is_empty()),
        specialty: opt("specialty", b.specialty.as_deref(), Specialty::parse)?,
        specialist: b.specialist.filter(|s| !s.trim().is_empty()),
        urgency: opt("urgency", b.urgency.as_deref(), Urgency::parse)?.unwrap_or(Urgency::Routine),
        origin: opt("origin", b.origin.as_deref(), Origin::parse)?.unwrap_or(Origin::PhysicianOrder),
        network: opt("network", b.network.as_deref(), Network::parse)?.unwrap_or(Network::Unknown),
        reason: b.reason.filter(|s| !s.trim().is_empty()),
        ordered_at: opt_instant("ordered_at", b.ordered_at.as_deref())?,
        source_ids: b.source_ids,
        historical: false,
    })
}

/// Enter a referral by hand (staff) or from an integration.
#[utoipa::path(post, path = "/api/v1/referrals", tag = "referrals",
    request_body = CreateReferralBody,
    responses((status = 201, body = ReferralView), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    auth: Auth,
    Body(body): Body<CreateReferralBody>,
) -> ApiResult<(StatusCode, Json<ReferralView>)> {
    let actor = auth.require(Permission::WriteReferrals)?;
    let req = parse_create(body)?;
    let r = s.app.create_referral(actor, req).await?;
    Ok((StatusCode::CREATED, Json(ReferralView::from(&r))))
}

/// List referrals, newest order first.
#[utoipa::path(get, path = "/api/v1/referrals", tag = "referrals", params(ReferralQuery),
    responses((status = 200, body = ReferralList), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<ReferralQuery>,
) -> ApiResult<Json<ReferralList>> {
    let actor = auth.require(Permission::Read)?;
    let sort = opt("sort", q.sort.as_deref(), |s| {
        ReferralSort::parse(s).ok_or("sort: one of ordered, ordered-asc, due, patient, state")
    })?
    .unwrap_or_default();
    let (after, offset) = match q.cursor.as_deref() {
        None | Some("") => (None, 0),
        Some(c) => {
            let bad = || ApiError::invalid("cursor", "not a cursor from this API");
            match c.strip_prefix("o") {
                Some(n) if sort != ReferralSort::Ordered => (None, n.parse().map_err(|_| bad())?),
                _ if sort == ReferralSort::Ordered => (Some(decode_cursor(c).ok_or_else(bad)?), 0),
                _ => return Err(bad()),
            }
        }
    };
    let filter = ReferralFilter {
        q: q.q.filter(|t| !t.trim().is_empty()),
        sort,
        offset,
        state: opt("state", q.state.as_deref(), RState::parse)?,
        specialty: opt("specialty", q.specialty.as_deref(), Specialty::parse)?,
        provider: q.provider.filter(|p| !p.is_empty()),
        overdue_at: q.overdue.unwrap_or(false).then(|| s.app.now()),
        after,
        ordered_from: None,
        ordered_before: None,
        limit: match q.limit {
            None => 50,
            Some(n @ 1..=200) => n,
            Some(_) => return Err(ApiError::invalid("limit", "between 1 and 200")),
        },
    };
    let page = s.app.referrals(actor, &filter).await?;
    Ok(Json(ReferralList {
        items: page.items.iter().map(|r| ReferralView::with_people(r, &page.people)).collect(),
        next_cursor: page
            .next
            .map(|(t, id)| encode_cursor(t, &id))
            .or_else(|| page.next_offset.map(|n| format!("o{n}"))),
        total: page.total,
    }))
}

/// A page cursor: the last item's order time (ms) and id.
pub(crate) fn encode_cursor(t: jiff::Timestamp, id: &ReferralId) -> String {
    format!("{}.{}", t.as_millisecond(), id)
}

pub(crate) fn decode_cursor(c: &str) -> Option<(jiff::Timestamp, ReferralId)> {
    let (ms, id) = c.split_once('.')?;
    let t = jiff::Timestamp::from_millisecond(ms.parse().ok()?).ok()?;
    Some((t, ReferralId::parse(id).ok()?))
}

/// One referral with its milestones, timeline and tasks.
#[utoipa::path(get, path = "/api/v1/referrals/{id}", tag = "referrals",
    params(("id" = String, Path, description = "Referral id (ref_…)")),
    responses((status = 200, body = ReferralDetailView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ReferralDetailView>> {
    let actor = auth.require(Permission::Read)?;
    let detail = s.app.referral_detail(actor, &referral_id(&id)?).await?;
    Ok(Json(ReferralDetailView::new(&detail, s.app.now())))
}

pub(crate) fn parse_event(b: StaffEventBody, now: jiff::Timestamp) -> ApiResult<Input> {
    let b = StaffEventBody {
        reason: bounded("reason", b.reason, MAX_TEXT)?,
        channel: bounded("channel", b.channel, MAX_SHORT)?,
        specialist: bounded("specialist", b.specialist, MAX_NAME)?,
        ..b
    };
    let at = opt_instant("at", b.at.as_deref())?.unwrap_or(now);
    let milestone = |state| -> ApiResult<Input> {
        Ok(Input::Milestone {
            state,
            at,
            appointment_at: opt_instant("appointment_at", b.appointment_at.as_deref())?,
            channel: b.channel.clone(),
        })
    };
    match b.kind.as_str() {
        "patient-notified" => milestone(RState::PatientNotified),
        "scheduled" => milestone(RState::Scheduled),
        "attended" => milestone(RState::Attended),
        "note-received" => milestone(RState::NoteReceived),
        "no-show" => Ok(Input::NoShow { at }),
        "cancelled" => Ok(Input::Cancel { at, reason: b.reason }),
        "closed-incomplete" => match b.reason {
            Some(reason) if !reason.trim().is_empty() => Ok(Input::CloseIncomplete { at, reason }),
            _ => Err(ApiError::invalid("reason", "a reason is required to close a referral")),
        },
        "order-updated" => Ok(Input::OrderUpdated(OrderUpdate {
            specialty: opt("specialty", b.specialty.as_deref(), Specialty::parse)?,
            specialist: b.specialist,
            urgency: opt("urgency", b.urgency.as_deref(), Urgency::parse)?,
            network: opt("network", b.network.as_deref(), Network::parse)?,
        })),
        _ => Err(ApiError::invalid(
            "type",
            "one of patient-notified, scheduled, attended, note-received, no-show, cancelled, closed-incomplete, order-updated",
        )),
    }
}

/// Staff record a milestone, a no-show, a correction, or close the referral.
#[utoipa::path(post, path = "/api/v1/referrals/{id}/events", tag = "referrals",
    params(("id" = String, Path, description = "Referral id (ref_…)")),
    request_body = StaffEventBody,
    responses((status = 200, body = ReferralView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_event(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<StaffEventBody>,
) -> ApiResult<Json<ReferralView>> {
    let actor = auth.require(Permission::WriteReferrals)?;
    let id = referral_id(&id)?;
    let input = parse_event(body, s.app.now())?;
    let r = s.app.record(actor, &id, input).await?;
    Ok(Json(ReferralView::from(&r)))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsBody {
    /// The text to the patient (at most 480 characters).
    pub text: String,
}

/// A person's text to the referral's patient: queued in the outbox (202) like every send, and
/// refused (409) without SMS consent, after an opt-out, with no valid number, or with SMS off.
#[utoipa::path(post, path = "/api/v1/referrals/{id}/sms", tag = "referrals",
    params(("id" = String, Path, description = "Referral id (ref_…)")),
    request_body = SmsBody,
    responses((status = 202, body = crate::dto::OutboxView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn send_sms(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<SmsBody>,
) -> ApiResult<(StatusCode, Json<crate::dto::OutboxView>)> {
    let actor = auth.require(Permission::WorkTasks)?;
    let item = s.app.reply_sms(actor, &referral_id(&id)?, &body.text).await?;
    Ok((StatusCode::ACCEPTED, Json(crate::dto::OutboxView::from(&item))))
}
