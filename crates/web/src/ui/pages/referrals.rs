//! The referral list (search, filters, sort, export), a referral's page, and recording what
//! happened.

use refloop_app::ReferralSort;

use super::{
    people::{PersonCell, href, person, provider, revealed},
    *,
};

struct ReferralRow {
    id: String,
    patient: PersonCell,
    ordered: String,
    state: &'static str,
    specialty: String,
    specialist: String,
    provider: String,
    urgency: &'static str,
    due: String,
    overdue: bool,
}

struct ListForm {
    q: String,
    state: String,
    specialty: String,
    provider: String,
    from: String,
    to: String,
    overdue: bool,
    sort: String,
}

#[derive(Template)]
#[template(path = "referrals.html")]
struct ReferralsPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    form: ListForm,
    states: Vec<&'static str>,
    specialties: Vec<String>,
    providers: Vec<(String, String)>,
    sorts: Vec<(&'static str, &'static str)>,
    rows: Vec<ReferralRow>,
    total: u64,
    filtered: bool,
    export: String,
    next: Option<String>,
}

const SORTS: &[(ReferralSort, &str)] = &[
    (ReferralSort::Ordered, "Newest order"),
    (ReferralSort::OrderedAsc, "Oldest order"),
    (ReferralSort::Due, "Stage due"),
    (ReferralSort::Patient, "Patient"),
    (ReferralSort::State, "State"),
];

/// The list's filter from its query (`limit` rows a page).
pub(super) fn list_filter(q: &Params, tz: &TimeZone, now: Timestamp, limit: u32) -> UiResult<ReferralFilter> {
    let bad = |f: &str, m: &str| UiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{f}: {m}"));
    let state = match get(q, "state") {
        "" => None,
        v => Some(RState::parse(v).map_err(|_| bad("State", "not a state"))?),
    };
    let specialty = match get(q, "specialty") {
        "" => None,
        v => Some(Specialty::parse(v).map_err(|e| bad("Specialty", &e.message))?),
    };
    let sort = match get(q, "sort") {
        "" => ReferralSort::Ordered,
        v => ReferralSort::parse(v).ok_or_else(|| bad("Sort", "choose one from the list"))?,
    };
    let (after, offset) = match get(q, "cursor") {
        "" => (None, 0),
        c if sort == ReferralSort::Ordered => {
            (Some(crate::routes::referrals::decode_cursor(c).ok_or_else(|| bad("cursor", "not a page cursor"))?), 0)
        }
        c => {
            (None, c.strip_prefix('o').and_then(|n| n.parse().ok()).ok_or_else(|| bad("cursor", "not a page cursor"))?)
        }
    };
    // A search box of older pages was called `id`.
    let text = [get(q, "q"), get(q, "id")].into_iter().find(|t| !t.is_empty());
    Ok(ReferralFilter {
        state,
        specialty,
        provider: Some(get(q, "provider").to_owned()).filter(|p| !p.is_empty()),
        overdue_at: (get(q, "overdue") == "true").then_some(now),
        after,
        ordered_from: parse_local("Ordered from", get(q, "from"), tz)?,
        ordered_before: parse_local("Ordered to", get(q, "to"), tz)?,
        q: text.map(str::to_owned),
        sort,
        offset,
        limit,
    })
}

pub async fn referrals(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let filter = list_filter(&q, &tz, now, 50)?;
    let page = s.app.referrals(&web.0.actor, &filter).await?;
    // One match for a search: straight to it.
    if filter.q.is_some()
        && page.total == 1
        && filter.offset == 0
        && filter.after.is_none()
        && let Some(r) = page.items.first()
    {
        return Ok(see_other(&format!("/referrals/{}", r.id)));
    }
    let shown = revealed(&s, &web, &q).await?;
    let here = href("/referrals", &q, &["reveal"]);
    let policy = s.app.policy();
    let rows = page
        .items
        .iter()
        .map(|r| {
            let due = stage_deadline(r, policy);
            ReferralRow {
                id: r.id.to_string(),
                patient: person(&page.people, &r.patient_id, shown.as_ref(), &here),
                ordered: when(Some(r.ordered_at), &tz),
                state: r.state.as_str(),
                specialty: r.specialty.as_ref().map_or("(needs coding)".into(), |x| x.as_str().to_owned()),
                specialist: r.specialist.clone().unwrap_or_default(),
                provider: provider(&page.people, &r.referring_provider),
                urgency: r.urgency.as_str(),
                due: when(due, &tz),
                overdue: due.is_some_and(|d| d < now),
            }
        })
        .collect();
    let next_cursor = page
        .next
        .map(|(t, id)| crate::routes::referrals::encode_cursor(t, &id))
        .or_else(|| page.next_offset.map(|n| format!("o{n}")));
    let next = next_cursor.map(|c| {
        let mut q2 = q.clone();
        q2.insert("cursor".into(), c);
        href("/referrals", &q2, &["reveal"])
    });
    let (specialties, providers) = s.app.referral_facets().await?;
    let filtered = ["q", "id", "state", "specialty", "provider", "from", "to", "overdue", "sort"]
        .iter()
        .any(|k| !get(&q, k).is_empty());
    let page = ReferralsPage {
        nav: web.nav("referrals"),
        demo: ui(&s).demo,
        notice: None,
        form: ListForm {
            q: filter.q.clone().unwrap_or_default(),
            state: get(&q, "state").to_owned(),
            specialty: get(&q, "specialty").to_owned(),
            provider: get(&q, "provider").to_owned(),
            from: get(&q, "from").to_owned(),
            to: get(&q, "to").to_owned(),
            overdue: filter.overdue_at.is_some(),
            sort: filter.sort.as_str().to_owned(),
        },
        states: RState::ALL.iter().map(|s| s.as_str()).collect(),
        specialties,
        providers: providers
            .into_iter()
            .map(|(id, name)| {
                let text = name.map_or_else(|| id.to_string(), |n| format!("{n} ({id})"));
                (id.to_string(), text)
            })
            .collect(),
        sorts: SORTS.iter().map(|(s, text)| (s.as_str(), *text)).collect(),
        rows,
        total: page.total,
        filtered,
        export: href("/referrals.csv", &q, &["reveal", "cursor"]),
        next,
    };
    Ok(render(&page))
}

/// The list's rows as CSV (the columns of `refloop export`), every page of the filter.
pub async fn referrals_csv(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let mut filter = list_filter(&q, &tz, s.app.now(), 1000)?;
    if filter.sort == ReferralSort::Ordered {
        filter.sort = ReferralSort::OrderedAsc;
    }
    filter.offset = 0;
    let mut all = Vec::new();
    loop {
        let page = s.app.store().referrals(&filter).await.map_err(refloop_app::AppError::from)?;
        all.extend(page.items);
        match page.next_offset {
            Some(n) => filter.offset = n,
            None => break,
        }
    }
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    s.app.audit_export(&web.0.actor, &ids).await?;
    super::dashboard::csv_response(&s, &all, "referrals.csv")
}

struct Summary {
    id: String,
    state: &'static str,
    patient: PersonCell,
    provider: String,
    specialty: String,
    specialist: String,
    network: &'static str,
    urgency: &'static str,
    appointment: String,
    due: String,
    overdue: bool,
    close_reason: String,
    /// "needs an interpreter: …" when the practice has no texts in the patient's language.
    interpreter: String,
    /// The preferred language as recorded (code or words), for the form that changes it.
    language: String,
    /// Whether the patient opened the booking link in their text.
    booking: String,
}

struct EventRow {
    at: String,
    kind: &'static str,
    detail: String,
    recorded: String,
    source: String,
    /// The inbound message it came from (a link to it), when it came from one.
    message: String,
    /// For ordering the merged timeline.
    sort_at: Timestamp,
}

/// The inbound message an event's source names (`system:hl7v2/inb_…`, `system:fhir/inb_…`).
fn message_of(source: &str) -> String {
    source.rsplit_once('/').map(|(_, id)| id).filter(|id| id.starts_with("inb_")).unwrap_or_default().to_owned()
}

fn task_log_kind(action: &str) -> &'static str {
    match action {
        "claimed" => "task-claimed",
        "reassigned" => "task-reassigned",
        "retry" => "task-tried-again",
        _ => "task-completed",
    }
}

struct SmsRow {
    at: String,
    inbound: bool,
    text: String,
    status: String,
    error: String,
}

struct MessageRow {
    channel: &'static str,
    purpose: &'static str,
    status: &'static str,
    not_before: String,
    attempts: u32,
    error: String,
}

#[derive(Template)]
#[template(path = "referral.html")]
struct ReferralPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    csrf: String,
    back: String,
    r: Summary,
    milestones: Vec<(&'static str, String)>,
    tasks: Vec<TaskRow>,
    events: Vec<EventRow>,
    messages: Vec<MessageRow>,
    documents: Vec<super::documents::DocRow>,
    sms: Vec<SmsRow>,
    can_text: bool,
    typed: Typed,
    users: Vec<String>,
    can_work: bool,
    can_write: bool,
    close_reasons: [&'static str; 7],
    /// Admins: the latest audit rows naming this patient or their referrals.
    looked: Option<Vec<super::admin::AuditRow>>,
    patient_id: String,
}

fn event_detail(data: &refloop_domain::EventData) -> String {
    let v = serde_json::to_value(data).unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(o) = v.as_object() {
        for (k, v) in o {
            if k == "type" {
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            parts.push(format!("{}: {text}", k.replace('_', " ")));
        }
    }
    parts.join("; ")
}

pub async fn referral(
    State(s): State<AppState>,
    web: Web,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> UiResult<Response> {
    referral_page(&s, &web, &id, &q, Typed::default()).await
}

/// A referral's page for query `q`, with a refused form filled in again (`typed`).
pub(super) async fn referral_page(s: &AppState, web: &Web, id: &str, q: &Params, typed: Typed) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let id = referral_id(id)?;
    let d = s.app.referral_detail(&web.0.actor, &id).await?;
    let shown = revealed(s, web, q).await?;
    let sms = if web.0.actor.role.may(Permission::ReadPatients) {
        s.app.sms_thread(&web.0.actor, &d.referral, s.sms.as_ref().map(|h| &h.texts)).await?
    } else {
        Vec::new()
    };
    let outbox =
        s.app.outbox(&OutboxFilter { referral_id: Some(id.clone()), limit: 200, ..OutboxFilter::default() }).await?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let r = &d.referral;
    let m = &r.milestones;
    let language = d.people.patient(&r.patient_id).and_then(|p| p.language.clone());
    let summary = Summary {
        id: r.id.to_string(),
        state: r.state.as_str(),
        patient: person(&d.people, &r.patient_id, shown.as_ref(), &format!("/referrals/{}", r.id)),
        provider: provider(&d.people, &r.referring_provider),
        specialty: r.specialty.as_ref().map_or("(needs coding)".into(), |x| x.as_str().to_owned()),
        specialist: r.specialist.clone().unwrap_or_else(|| "(not named)".into()),
        network: r.network.as_str(),
        urgency: r.urgency.as_str(),
        appointment: when(r.appointment_at, &tz),
        due: when(d.stage_due_at, &tz),
        overdue: d.stage_due_at.is_some_and(|t| t < now),
        close_reason: r.close_reason.clone().unwrap_or_default(),
        interpreter: s.app.interpreter_for(language.as_deref()).unwrap_or_default(),
        language: language.unwrap_or_default(),
        booking: booking_note(r, &s.app.specialists(false).await?, &tz),
    };
    let milestones = vec![
        ("ordered", when(Some(r.ordered_at), &tz)),
        ("patient-notified", when(m.patient_notified, &tz)),
        ("scheduled", when(m.scheduled, &tz)),
        ("attended", when(m.attended, &tz)),
        ("note-received", when(m.note_received, &tz)),
        ("cancelled", when(m.cancelled, &tz)),
    ];
    let documents = s
        .app
        .documents(
            &web.0.actor,
            &refloop_app::documents::DocumentFilter { status: None, referral: Some(r.id.clone()), limit: 50 },
        )
        .await?
        .iter()
        .map(|doc| super::documents::doc_row(doc, &tz))
        .collect();
    // After this page's own read is recorded, so the list includes it.
    let looked = if web.0.actor.role.may(Permission::Operate) {
        let rows = s.app.who_looked(&web.0.actor, r.patient_id.as_str(), 20).await?;
        Some(super::admin::audit_rows(&rows, &tz))
    } else {
        None
    };
    let page = ReferralPage {
        nav: web.nav("referrals"),
        demo: ui(s).demo,
        notice: None,
        csrf: web.0.csrf.clone(),
        back: format!("/referrals/{}", r.id),
        r: summary,
        milestones,
        tasks: d.tasks.iter().filter(|t| t.status != TaskStatus::Done).map(|t| TaskRow::of(t, &tz, now)).collect(),
        events: timeline(&d, &tz),
        documents,
        messages: outbox
            .iter()
            .map(|o| MessageRow {
                channel: o.channel.as_str(),
                purpose: o.purpose.as_str(),
                status: o.status.as_str(),
                not_before: when(Some(o.sent_at.unwrap_or(o.next_attempt_at)), &tz),
                attempts: o.attempts,
                error: o.last_error.clone().unwrap_or_default(),
            })
            .collect(),
        sms: sms
            .into_iter()
            .map(|l| SmsRow {
                at: when(Some(l.at), &tz),
                inbound: l.inbound,
                text: l.text.unwrap_or_else(|| "(the standard text; SMS is off)".into()),
                status: l.status,
                error: l.error.unwrap_or_default(),
            })
            .collect(),
        can_text: web.0.actor.role.may(Permission::WorkTasks)
            && s.app.policy().live.is_live(refloop_domain::Channel::Sms),
        typed,
        users: s.app.users().await?.into_iter().filter(|u| !u.disabled).map(|u| u.username).collect(),
        can_work: web.0.actor.role.may(Permission::WorkTasks),
        can_write: web.0.actor.role.may(Permission::WriteReferrals),
        looked,
        close_reasons: refloop_domain::CLOSE_REASONS,
        patient_id: r.patient_id.to_string(),
    };
    Ok(render(&page))
}

/// The referral's events and its tasks' history (claimed, reassigned, tried again,
/// completed with an outcome), in the order they were recorded.
fn timeline(d: &refloop_app::ReferralDetail, tz: &TimeZone) -> Vec<EventRow> {
    let mut rows: Vec<EventRow> = d
        .events
        .iter()
        .map(|e| EventRow {
            at: when(Some(e.at), tz),
            kind: e.data.kind(),
            detail: event_detail(&e.data),
            recorded: when(Some(e.recorded_at), tz),
            source: e.source.clone(),
            message: message_of(&e.source),
            sort_at: e.recorded_at,
        })
        .collect();
    for l in &d.task_log {
        let title = d.tasks.iter().find(|t| t.id == l.task_id).map_or("", |t| t.kind.title());
        let mut detail = vec![title.to_owned()];
        detail.extend(l.assignee.as_ref().map(|a| format!("to {a}")));
        detail.extend(l.outcome.as_ref().map(|o| format!("outcome: {o}")));
        detail.extend(l.note.as_ref().map(|n| format!("note: {n}")));
        rows.push(EventRow {
            at: when(Some(l.at), tz),
            kind: task_log_kind(&l.action),
            detail: detail.join("; "),
            recorded: when(Some(l.at), tz),
            source: l.actor.clone(),
            message: String::new(),
            sort_at: l.at,
        });
    }
    // Stable: events of one instant keep their log order, task lines after them.
    rows.sort_by_key(|r| r.sort_at);
    rows
}

/// A referral's page again after a refused form, with what was typed and what to fix.
pub(super) async fn referral_again(
    s: &AppState,
    web: &Web,
    id: &str,
    typed: Typed,
    status: StatusCode,
) -> UiResult<Response> {
    let mut r = referral_page(s, web, id, &Params::new(), typed).await?;
    *r.status_mut() = status;
    Ok(r)
}

/// A referral id from a page's path (none that parses: no such referral).
fn referral_id(raw: &str) -> UiResult<ReferralId> {
    ReferralId::parse(raw).map_err(|_| UiError(StatusCode::NOT_FOUND, format!("No referral {raw}.")))
}

/// A person's text to the referral's patient (through the outbox).
pub async fn send_sms(
    State(s): State<AppState>,
    web: Web,
    Path(id): Path<String>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WorkTasks)?;
    let rid = referral_id(&id)?;
    let done = s.app.reply_sms(&web.0.actor, &rid, get(&f, "text")).await;
    after_form(&s, &web, &rid, &f, ("sms", "#sms"), done).await
}

/// After a referral page's form (`form`: its name and the page's anchor to go back to): the
/// page again, or — refused — the page with what was typed and why.
async fn after_form<T>(
    s: &AppState,
    web: &Web,
    rid: &ReferralId,
    f: &Params,
    form: (&str, &str),
    done: Result<T, refloop_app::AppError>,
) -> UiResult<Response> {
    match done {
        Ok(_) => Ok(see_other(&format!("/referrals/{rid}{}", form.1))),
        Err(e) => {
            let (status, why) = refused(e)?;
            let typed = Typed { task: form.0.into(), ..Typed::from_form(f, why) };
            referral_again(s, web, rid.as_str(), typed, status).await
        }
    }
}

pub async fn record_event(
    State(s): State<AppState>,
    web: Web,
    Path(id): Path<String>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WriteReferrals)?;
    let rid = referral_id(&id)?;
    let tz = s.app.policy().time_zone.clone();
    let stamp = |field: &str| -> UiResult<Option<String>> {
        Ok(parse_local(field, get(&f, field), &tz)?.map(|t| t.to_string()))
    };
    let recorded = async {
        let body = StaffEventBody {
            kind: get(&f, "type").to_owned(),
            at: stamp("at")?,
            appointment_at: stamp("appointment_at")?,
            // A listed reason and the details, as "listed: details" (the domain keeps the list).
            reason: match (get(&f, "close_reason"), get(&f, "reason")) {
                ("", "") => None,
                ("", details) => Some(details.to_owned()),
                (listed, "") => Some(listed.to_owned()),
                (listed, details) => Some(format!("{listed}: {details}")),
            },
            channel: Some("staff".into()).filter(|_| get(&f, "type") == "patient-notified"),
            specialty: None,
            specialist: None,
            urgency: None,
            network: None,
        };
        let input = parse_event(body, s.app.now()).map_err(|e| UiError(e.status, e.message))?;
        match s.app.record(&web.0.actor, &rid, input).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let (status, why) = refused(e)?;
                Err(UiError(status, why))
            }
        }
    };
    match recorded.await {
        Ok(()) => Ok(see_other(&format!("/referrals/{rid}"))),
        Err(UiError(status, why)) if status.is_client_error() => {
            let typed = Typed {
                task: "event".into(),
                kind: get(&f, "type").to_owned(),
                at: get(&f, "at").to_owned(),
                ..Typed::from_form(&f, why)
            };
            referral_again(&s, &web, rid.as_str(), typed, status).await
        }
        Err(e) => Err(e),
    }
}

/// Staff set the patient's preferred language from the referral page.
pub async fn set_language(
    State(s): State<AppState>,
    web: Web,
    Path(id): Path<String>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WriteReferrals)?;
    let rid = referral_id(&id)?;
    let done = s.app.set_patient_language(&web.0.actor, &rid, get(&f, "language")).await;
    after_form(&s, &web, &rid, &f, ("language", ""), done).await
}
