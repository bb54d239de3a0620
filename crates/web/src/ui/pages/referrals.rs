//! The referral list, a referral's page, and recording what happened.

use super::*;

struct ReferralRow {
    id: String,
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
    id: String,
    state: String,
    specialty: String,
    provider: String,
    from: String,
    to: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "referrals.html")]
struct ReferralsPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    form: ListForm,
    states: Vec<&'static str>,
    rows: Vec<ReferralRow>,
    next: Option<String>,
}

pub async fn referrals(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let id = get(&q, "id");
    if !id.is_empty() {
        return Ok(see_other(&format!("/referrals/{}", crate::ui::percent_encode(id))));
    }
    let tz = s.app.policy().time_zone.clone();
    let bad = |f: &str, m: &str| UiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{f}: {m}"));
    let state = match get(&q, "state") {
        "" => None,
        v => Some(RState::parse(v).map_err(|_| bad("state", "not a state"))?),
    };
    let specialty = match get(&q, "specialty") {
        "" => None,
        v => Some(Specialty::parse(v).map_err(|e| bad("specialty", &e.message))?),
    };
    let after = match get(&q, "cursor") {
        "" => None,
        c => Some(crate::routes::referrals::decode_cursor(c).ok_or_else(|| bad("cursor", "not a page cursor"))?),
    };
    let overdue = get(&q, "overdue") == "true";
    let now = s.app.now();
    let filter = ReferralFilter {
        state,
        specialty,
        provider: Some(get(&q, "provider").to_owned()).filter(|p| !p.is_empty()),
        overdue_at: overdue.then_some(now),
        after,
        ordered_from: parse_local("from", get(&q, "from"), &tz)?,
        ordered_before: parse_local("to", get(&q, "to"), &tz)?,
        limit: 50,
    };
    let page = s.app.referrals(&web.0.actor, &filter).await?;
    let policy = s.app.policy();
    let rows = page
        .items
        .iter()
        .map(|r| {
            let due = stage_deadline(r, policy);
            ReferralRow {
                id: r.id.to_string(),
                ordered: when(Some(r.ordered_at), &tz),
                state: r.state.as_str(),
                specialty: r.specialty.as_ref().map_or("(needs coding)".into(), |x| x.as_str().to_owned()),
                specialist: r.specialist.clone().unwrap_or_default(),
                provider: r.referring_provider.as_str().to_owned(),
                urgency: r.urgency.as_str(),
                due: when(due, &tz),
                overdue: due.is_some_and(|d| d < now),
            }
        })
        .collect();
    let next = page.next.map(|(t, id)| {
        let mut q2 = q.clone();
        q2.insert("cursor".into(), crate::routes::referrals::encode_cursor(t, &id));
        let mut pairs: Vec<_> = q2.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        pairs.sort();
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", crate::ui::percent_encode(k), crate::ui::percent_encode(v)))
            .collect();
        format!("/referrals?{}", query.join("&"))
    });
    let page = ReferralsPage {
        nav: web.nav("referrals"),
        demo: ui(&s).demo,
        notice: None,
        form: ListForm {
            id: String::new(),
            state: get(&q, "state").to_owned(),
            specialty: get(&q, "specialty").to_owned(),
            provider: get(&q, "provider").to_owned(),
            from: get(&q, "from").to_owned(),
            to: get(&q, "to").to_owned(),
            overdue,
        },
        states: RState::ALL.iter().map(|s| s.as_str()).collect(),
        rows,
        next,
    };
    Ok(render(&page))
}

struct Summary {
    id: String,
    state: &'static str,
    patient: String,
    provider: String,
    specialty: String,
    specialist: String,
    network: &'static str,
    urgency: &'static str,
    appointment: String,
    due: String,
    overdue: bool,
    close_reason: String,
}

struct EventRow {
    at: String,
    kind: &'static str,
    detail: String,
    recorded: String,
    source: String,
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
    can_work: bool,
    can_write: bool,
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

pub async fn referral(State(s): State<AppState>, web: Web, Path(id): Path<String>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let id = ReferralId::parse(&id).map_err(|_| UiError(StatusCode::NOT_FOUND, format!("No referral {id}.")))?;
    let d = s.app.referral_detail(&web.0.actor, &id).await?;
    let outbox =
        s.app.outbox(&OutboxFilter { referral_id: Some(id.clone()), limit: 200, ..OutboxFilter::default() }).await?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let r = &d.referral;
    let m = &r.milestones;
    let summary = Summary {
        id: r.id.to_string(),
        state: r.state.as_str(),
        patient: r.patient_id.as_str().to_owned(),
        provider: r.referring_provider.as_str().to_owned(),
        specialty: r.specialty.as_ref().map_or("(needs coding)".into(), |x| x.as_str().to_owned()),
        specialist: r.specialist.clone().unwrap_or_else(|| "(not named)".into()),
        network: r.network.as_str(),
        urgency: r.urgency.as_str(),
        appointment: when(r.appointment_at, &tz),
        due: when(d.stage_due_at, &tz),
        overdue: d.stage_due_at.is_some_and(|t| t < now),
        close_reason: r.close_reason.clone().unwrap_or_default(),
    };
    let milestones = vec![
        ("ordered", when(Some(r.ordered_at), &tz)),
        ("patient-notified", when(m.patient_notified, &tz)),
        ("scheduled", when(m.scheduled, &tz)),
        ("attended", when(m.attended, &tz)),
        ("note-received", when(m.note_received, &tz)),
        ("cancelled", when(m.cancelled, &tz)),
    ];
    let page = ReferralPage {
        nav: web.nav("referrals"),
        demo: ui(&s).demo,
        notice: None,
        csrf: web.0.csrf.clone(),
        back: format!("/referrals/{}", r.id),
        r: summary,
        milestones,
        tasks: d.tasks.iter().filter(|t| t.status != TaskStatus::Done).map(|t| TaskRow::of(t, &tz, now)).collect(),
        events: d
            .events
            .iter()
            .map(|e| EventRow {
                at: when(Some(e.at), &tz),
                kind: e.data.kind(),
                detail: event_detail(&e.data),
                recorded: when(Some(e.recorded_at), &tz),
                source: e.source.clone(),
            })
            .collect(),
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
        can_work: web.0.actor.role.may(Permission::WorkTasks),
        can_write: web.0.actor.role.may(Permission::WriteReferrals),
    };
    Ok(render(&page))
}

pub async fn record_event(
    State(s): State<AppState>,
    web: Web,
    Path(id): Path<String>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WriteReferrals)?;
    let rid = ReferralId::parse(&id).map_err(|_| UiError(StatusCode::NOT_FOUND, format!("No referral {id}.")))?;
    let tz = s.app.policy().time_zone.clone();
    let stamp = |field: &str| -> UiResult<Option<String>> {
        Ok(parse_local(field, get(&f, field), &tz)?.map(|t| t.to_string()))
    };
    let body = StaffEventBody {
        kind: get(&f, "type").to_owned(),
        at: stamp("at")?,
        appointment_at: stamp("appointment_at")?,
        reason: Some(get(&f, "reason").to_owned()).filter(|r| !r.is_empty()),
        channel: Some("staff".into()).filter(|_| get(&f, "type") == "patient-notified"),
        specialty: None,
        specialist: None,
        urgency: None,
        network: None,
    };
    let input = parse_event(body, s.app.now()).map_err(|e| UiError(e.status, e.message))?;
    s.app.record(&web.0.actor, &rid, input).await?;
    Ok(see_other(&format!("/referrals/{rid}")))
}
