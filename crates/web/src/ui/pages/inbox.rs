//! The message browser: a review item or dead letter with its raw message (HL7 segment by
//! segment with field names; FHIR as formatted JSON), why it needs a person, its candidate
//! referrals, and the ways to settle it (apply to this referral, to another, retry, dismiss).
//! Review items are for staff who work tasks; every other message is for admins.

use refloop_app::{InboxFilter, InboxItem, InboxStatus};

use super::{
    people::{Candidate, candidates},
    *,
};

#[derive(Template)]
#[template(path = "inbox_item.html")]
struct InboxItemPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    csrf: String,
    m: MessageSummary,
    segments: Vec<refloop_app::SegmentView>,
    json: String,
    raw: String,
    candidates: Vec<Candidate>,
    settleable: bool,
    can_settle: bool,
}

struct MessageSummary {
    id: String,
    protocol: String,
    kind: String,
    source: String,
    transport: String,
    received: String,
    status: &'static str,
    why: String,
    referral: String,
    attempts: u32,
}

struct MessageRow {
    id: String,
    received: String,
    kind: String,
    source: String,
    status: &'static str,
    error: String,
    referral: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    status: String,
    statuses: Vec<&'static str>,
    rows: Vec<MessageRow>,
}

/// Review items are for staff who work tasks; other messages (dead letters, the whole
/// inbound log) for admins.
fn may_see(web: &Web, m: &InboxItem) -> UiResult<()> {
    if m.status == InboxStatus::Review { web.require(Permission::WorkTasks) } else { web.require(Permission::Operate) }
}

pub async fn inbox(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Operate)?;
    let tz = s.app.policy().time_zone.clone();
    let status = match get(&q, "status") {
        "" => None,
        v => Some(
            InboxStatus::parse(v)
                .ok_or_else(|| UiError(StatusCode::UNPROCESSABLE_ENTITY, "Status: choose one from the list.".into()))?,
        ),
    };
    let items = s.app.store().inbox(&InboxFilter { status, limit: 200 }).await.map_err(refloop_app::AppError::from)?;
    let ids: Vec<&str> = items.iter().map(|m| m.id.as_str()).collect();
    if !ids.is_empty() {
        s.app.audit_read(&web.0.actor, "inbound-message-list", &ids.join(",")).await?;
    }
    let page = InboxPage {
        nav: web.nav("inbox"),
        demo: ui(&s).demo,
        notice: None,
        status: status.map_or("", InboxStatus::as_str).to_owned(),
        statuses: InboxStatus::ALL.iter().map(|s| s.as_str()).collect(),
        rows: items
            .iter()
            .map(|m| MessageRow {
                id: m.id.clone(),
                received: when(Some(m.received_at), &tz),
                kind: m.message_type.clone(),
                source: m.source.clone(),
                status: m.status.as_str(),
                error: m.error.clone().unwrap_or_default(),
                referral: m.referral_id.as_ref().map(ToString::to_string).unwrap_or_default(),
            })
            .collect(),
    };
    Ok(render(&page))
}

pub async fn inbox_item(State(s): State<AppState>, web: Web, Path(id): Path<String>) -> UiResult<Response> {
    let m = s
        .app
        .store()
        .inbox_item(&id)
        .await
        .map_err(refloop_app::AppError::from)?
        .ok_or_else(|| UiError(StatusCode::NOT_FOUND, format!("No inbound message {id}.")))?;
    may_see(&web, &m)?;
    s.app.audit_read(&web.0.actor, "inbound-message", &id).await?;
    let tz = s.app.policy().time_zone.clone();
    let (segments, json) = match s.app.describe_inbox(&m) {
        Some(refloop_app::Described::Segments(segments)) => (segments, String::new()),
        Some(refloop_app::Described::Text(text)) => (Vec::new(), text),
        None => (Vec::new(), String::new()),
    };
    // The candidates: the referrals its review tasks were opened on.
    let tasks = s.app.tasks(&TaskFilter { inbox_id: Some(m.id.clone()), limit: 50, ..TaskFilter::default() }).await?;
    let mut ids: Vec<ReferralId> = tasks.iter().map(|t| t.referral_id.clone()).collect();
    ids.extend(m.referral_id.clone());
    ids.sort();
    ids.dedup();
    let referrals = s.app.store().referrals_by_id(&ids).await.map_err(refloop_app::AppError::from)?;
    let candidates = candidates(&s, &web, &referrals, &format!("/inbox/{}", m.id)).await?;
    let settleable = matches!(m.status, InboxStatus::Review | InboxStatus::Dead);
    let page = InboxItemPage {
        nav: web.nav(if m.status == InboxStatus::Review { "worklist" } else { "inbox" }),
        demo: ui(&s).demo,
        notice: None,
        csrf: web.0.csrf.clone(),
        m: MessageSummary {
            id: m.id.clone(),
            protocol: m.protocol.clone(),
            kind: m.message_type.clone(),
            source: m.source.clone(),
            transport: m.transport.clone(),
            received: when(Some(m.received_at), &tz),
            status: m.status.as_str(),
            why: m.error.clone().unwrap_or_default(),
            referral: m.referral_id.as_ref().map(ToString::to_string).unwrap_or_default(),
            attempts: m.attempts,
        },
        raw: if m.raw.is_empty() {
            "(the message body was emptied after its retention period; its outcome and ACK are kept)".to_owned()
        } else if segments.is_empty() && json.is_empty() {
            String::from_utf8_lossy(&m.raw).into_owned()
        } else {
            String::new()
        },
        segments,
        json,
        candidates,
        settleable,
        can_settle: web.0.actor.role.may(Permission::WriteReferrals) && web.0.actor.role.may(Permission::WorkTasks),
    };
    Ok(render(&page))
}

/// Settles a review item or dead letter: `apply` (to `referral_id`, or the one referral a
/// search finds), `retry`, or `dismiss` (with a reason).
pub async fn inbox_action(
    State(s): State<AppState>,
    web: Web,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WriteReferrals)?;
    web.require(Permission::WorkTasks)?;
    let m = s.app.unsettled_inbox(&id).await?;
    may_see(&web, &m)?;
    let actor = &web.0.actor;
    let api = |e: crate::ApiError| UiError(e.status, e.message);
    let item = match action.as_str() {
        "apply" => {
            let target = get(&f, "referral_id");
            let referral = match ReferralId::parse(target) {
                Ok(r) => r,
                Err(_) if target.is_empty() => {
                    return Err(UiError(StatusCode::UNPROCESSABLE_ENTITY, "Enter the referral to apply it to.".into()));
                }
                Err(_) => find_one(&s, &web, target).await?,
            };
            crate::routes::inbox::apply_to(&s, &id, &referral, actor).await.map_err(api)?
        }
        "retry" => crate::routes::inbox::retry_item(&s, &id).await.map_err(api)?,
        "dismiss" => s.app.dismiss_inbox(&id, actor, get(&f, "reason")).await?,
        _ => return Err(UiError(StatusCode::NOT_FOUND, "No such action.".into())),
    };
    match item.referral_id {
        Some(r) if item.status == InboxStatus::Applied => Ok(see_other(&format!("/referrals/{r}"))),
        _ => Ok(see_other(&format!("/inbox/{id}"))),
    }
}

/// The one referral a search finds, else an error that says how many did.
pub(super) async fn find_one(s: &AppState, web: &Web, text: &str) -> UiResult<ReferralId> {
    let f = ReferralFilter { q: Some(text.to_owned()), limit: 2, ..ReferralFilter::default() };
    let page = s.app.referrals(&web.0.actor, &f).await?;
    match page.items.as_slice() {
        [one] if page.total == 1 => Ok(one.id.clone()),
        [] => Err(UiError(StatusCode::UNPROCESSABLE_ENTITY, format!("No referral matches “{text}”."))),
        _ => Err(UiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} referrals match “{text}”: enter the referral id (ref_…).", page.total),
        )),
    }
}
