//! The worklist made for a shift: compact rows (due, patient, phone, what to do, specialty,
//! urgency, owner), filters (mine, unassigned, a kind, overdue, due today, done today),
//! "claim next", bulk claim and reassign, and each task's outcome form.

use refloop_app::{People, Task, UserRecord};
use refloop_domain::{PatientId, Referral, TaskKind};

use super::{
    people::{PersonCell, href, person, revealed},
    *,
};

struct ReviewRow {
    id: String,
    received: String,
    kind: String,
    source: String,
    status: &'static str,
    error: String,
}

/// A task with what the worklist shows of its referral.
struct WorkRow {
    t: TaskRow,
    /// For a patient's reply: what they wrote last.
    reply: String,
    patient: PersonCell,
    specialty: String,
    urgency: &'static str,
    /// For a call to a patient without texts in their language: "needs an interpreter: …".
    interpreter: String,
    /// For a task to get the patient booked: whether they opened the booking link.
    booking: String,
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct WorklistPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    csrf: String,
    back: String,
    view: String,
    kind: String,
    views: Vec<(&'static str, &'static str)>,
    kinds: Vec<(&'static str, &'static str)>,
    open_count: usize,
    overdue_count: usize,
    rows: Vec<WorkRow>,
    sms: Vec<WorkRow>,
    review: Vec<ReviewRow>,
    unfiled: Vec<super::documents::DocRow>,
    users: Vec<String>,
    can_work: bool,
    done_view: bool,
    typed: Typed,
}

const VIEWS: &[(&str, &str)] = &[
    ("open", "All open"),
    ("mine", "Mine"),
    ("unassigned", "Unassigned"),
    ("overdue", "Overdue"),
    ("today", "Due today"),
    ("done-today", "Done today"),
];

/// The start of today in the practice's time zone.
fn start_of_day(now: Timestamp, tz: &TimeZone) -> Timestamp {
    let z = now.to_zoned_datetime(tz.clone());
    z.date().to_datetime(jiff::civil::Time::midnight()).to_zoned_datetime(tz.clone()).map_or(now, |z| z.timestamp())
}

/// Rows for `tasks` with their referrals' patients (audited as one read).
async fn work_rows(
    s: &AppState,
    web: &Web,
    tasks: &[&Task],
    shown: Option<&(PatientId, String)>,
    here: &str,
) -> UiResult<Vec<WorkRow>> {
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let mut ids: Vec<ReferralId> = tasks.iter().map(|t| t.referral_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let referrals: Vec<Referral> = s.app.store().referrals_by_id(&ids).await.map_err(refloop_app::AppError::from)?;
    let by_id: HashMap<&ReferralId, &Referral> = referrals.iter().map(|r| (&r.id, r)).collect();
    let patients: Vec<PatientId> = referrals.iter().map(|r| r.patient_id.clone()).collect();
    let people: People = s.app.people(&web.0.actor, &patients, &[]).await?;
    // The directory says whether a text carried a booking link: read only for rows that ask.
    let booking_kind = |k: TaskKind| matches!(k, TaskKind::ScheduleFollowUp | TaskKind::NotifyPatient);
    let directory =
        if tasks.iter().any(|t| booking_kind(t.kind)) { s.app.specialists(false).await? } else { Vec::new() };
    Ok(tasks
        .iter()
        .map(|t| {
            let r = by_id.get(&t.referral_id);
            let patient = match r {
                Some(r) => person(&people, &r.patient_id, shown, here),
                None => person(&people, &PatientId::parse("unknown").expect("an id"), None, here),
            };
            let language = r.and_then(|r| people.patient(&r.patient_id)).and_then(|p| p.language.as_deref());
            let interpreter = if t.kind.calls_patient() {
                s.app.interpreter_for(language).unwrap_or_default()
            } else {
                String::new()
            };
            let booking = match r {
                Some(r) if booking_kind(t.kind) => booking_note(r, &directory, &tz),
                _ => String::new(),
            };
            WorkRow {
                interpreter,
                booking,
                reply: String::new(),
                t: TaskRow::of(t, &tz, now),
                patient,
                specialty: r
                    .and_then(|r| r.specialty.as_ref())
                    .map_or("(needs coding)".into(), |x| x.as_str().to_owned()),
                urgency: r.map_or("", |r| r.urgency.as_str()),
            }
        })
        .collect())
}

pub async fn worklist(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    worklist_page(&s, &web, &q, Typed::default()).await
}

/// The worklist for query `q`, with a refused outcome form filled in again (`typed`).
async fn worklist_page(s: &AppState, web: &Web, q: &Params, typed: Typed) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let view = match get(q, "view") {
        "" => "open",
        v if VIEWS.iter().any(|(k, _)| *k == v) => v,
        _ => return Err(UiError(StatusCode::UNPROCESSABLE_ENTITY, "View: choose one from the list.".into())),
    };
    let kind =
        match get(q, "kind") {
            "" => None,
            k => Some(TaskKind::parse(k).ok_or_else(|| {
                UiError(StatusCode::UNPROCESSABLE_ENTITY, "Task kind: choose one from the list.".into())
            })?),
        };
    let today = start_of_day(now, &tz);
    let tomorrow = today + SignedDuration::from_hours(24);
    let mut open = Vec::new();
    for status in [TaskStatus::Open, TaskStatus::Claimed] {
        open.extend(s.app.tasks(&TaskFilter { status: Some(status), limit: 1000, ..TaskFilter::default() }).await?);
    }
    open.sort_by(|a, b| a.due_at.cmp(&b.due_at).then(a.id.cmp(&b.id)));
    let done_view = view == "done-today";
    let listed: Vec<Task> = if done_view {
        let f = TaskFilter {
            status: Some(TaskStatus::Done),
            completed_after: Some(today),
            limit: 1000,
            ..TaskFilter::default()
        };
        s.app.tasks(&f).await?
    } else {
        open.clone()
    };
    let me = web.0.actor.name.as_str();
    let shown_tasks: Vec<&Task> = listed
        .iter()
        .filter(|t| kind.is_none_or(|k| t.kind == k))
        .filter(|t| match view {
            "mine" => t.assignee.as_deref() == Some(me),
            "unassigned" => t.assignee.is_none(),
            "overdue" => t.due_at < now,
            "today" => t.due_at < tomorrow,
            _ => true,
        })
        .collect();
    s.app.audit_list(&web.0.actor, "referral", shown_tasks.iter().map(|t| t.referral_id.as_str())).await?;
    let shown = revealed(s, web, q).await?;
    let here = href("/worklist", q, &["reveal"]);
    // One read of the tasks' referrals and patients for both lists.
    let (mut sms, rows): (Vec<WorkRow>, Vec<WorkRow>) = work_rows(s, web, &shown_tasks, shown.as_ref(), &here)
        .await?
        .into_iter()
        .partition(|w| w.t.kind == TaskKind::PatientReply.as_str() && !done_view);
    if !sms.is_empty() && web.0.actor.role.may(Permission::ReadPatients) {
        let mut read = Vec::new();
        for row in &mut sms {
            let id = ReferralId::parse(&row.t.referral)
                .map_err(|e| UiError(StatusCode::INTERNAL_SERVER_ERROR, e.message))?;
            let texts = s.app.store().inbox_of_referral(&id, "sms").await.map_err(refloop_app::AppError::from)?;
            if let Some(last) = texts.last() {
                row.reply = String::from_utf8_lossy(&last.raw).into_owned();
                read.push(last.id.clone());
            }
        }
        s.app.audit_read(&web.0.actor, "sms-inbox", &read.join(",")).await?;
    }
    let review = s
        .app
        .dead_letters(100)
        .await?
        .iter()
        .map(|m| ReviewRow {
            id: m.id.clone(),
            received: when(Some(m.received_at), &tz),
            kind: m.message_type.clone(),
            source: m.source.clone(),
            status: m.status.as_str(),
            error: m.error.clone().unwrap_or_default(),
        })
        .collect();
    let unfiled = s
        .app
        .documents(
            &web.0.actor,
            &refloop_app::documents::DocumentFilter {
                status: Some(refloop_app::documents::DocumentStatus::Unfiled),
                referral: None,
                limit: 50,
            },
        )
        .await?
        .iter()
        .map(|d| super::documents::doc_row(d, &tz))
        .collect();
    let users: Vec<String> =
        s.app.users().await?.into_iter().filter(|u: &UserRecord| !u.disabled).map(|u| u.username).collect();
    let page = WorklistPage {
        nav: web.nav("worklist"),
        demo: ui(s).demo,
        notice: match get(q, "notice") {
            "none-open" => Some("Nothing is open to claim.".into()),
            _ => None,
        },
        csrf: web.0.csrf.clone(),
        back: href("/worklist", q, &["reveal", "notice"]),
        view: view.to_owned(),
        kind: kind.map_or("", TaskKind::as_str).to_owned(),
        views: VIEWS.to_vec(),
        kinds: TaskKind::ALL.iter().map(|k| (k.as_str(), k.short())).collect(),
        open_count: open.len(),
        overdue_count: open.iter().filter(|t| t.due_at < now).count(),
        rows,
        sms,
        review,
        unfiled,
        users,
        can_work: web.0.actor.role.may(Permission::WorkTasks),
        done_view,
        typed,
    };
    Ok(render(&page))
}

/// One task's action: claim, reassign, or complete with an outcome.
pub async fn task_action(
    State(s): State<AppState>,
    web: Web,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WorkTasks)?;
    let actor = &web.0.actor;
    let tz = s.app.policy().time_zone.clone();
    match action.as_str() {
        "claim" => s.app.claim_task(actor, &id, None).await?,
        "assign" => s.app.reassign_task(actor, &id, get(&f, "assignee")).await?,
        "complete" => {
            let appointment_at = match parse_local("Appointment", get(&f, "appointment_at"), &tz) {
                Ok(t) => t,
                Err(UiError(status, why)) => return again(&s, &web, &id, &f, status, why).await,
            };
            let report = refloop_app::TaskReport {
                outcome: Some(get(&f, "outcome")).filter(|o| !o.is_empty()).unwrap_or("done").to_owned(),
                note: Some(get(&f, "note").to_owned()).filter(|n| !n.is_empty()),
                appointment_at,
                reason: Some(get(&f, "reason").to_owned()).filter(|r| !r.is_empty()),
                phone: Some(get(&f, "phone").to_owned()).filter(|p| !p.is_empty()),
            };
            match s.app.report_task(actor, &id, report).await {
                Ok(t) => t,
                Err(e) => {
                    let (status, why) = refused(e)?;
                    return again(&s, &web, &id, &f, status, why).await;
                }
            }
        }
        _ => return Err(UiError(StatusCode::NOT_FOUND, "No such action.".into())),
    };
    Ok(see_other(&local_path(f.get("back"))))
}

/// The page the outcome form of task `id` was on, again, with what was typed and what to fix.
async fn again(s: &AppState, web: &Web, id: &str, f: &Params, status: StatusCode, why: String) -> UiResult<Response> {
    let typed = Typed { task: id.to_owned(), ..Typed::from_form(f, why) };
    let back = local_path(f.get("back"));
    let path = back.split(['?', '#']).next().unwrap_or_default();
    match path.strip_prefix("/referrals/") {
        Some(rid) => super::referrals::referral_again(s, web, rid, typed, status).await,
        None => {
            let uri: axum::http::Uri = back.parse().unwrap_or_default();
            let q = Query::<Params>::try_from_uri(&uri).map(|Query(q)| q).unwrap_or_default();
            let mut r = worklist_page(s, web, &q, typed).await?;
            *r.status_mut() = status;
            Ok(r)
        }
    }
}

/// "Claim next": the open task due longest, then its referral's page to work it.
pub async fn claim_next(State(s): State<AppState>, web: Web, Form(f): Form<Params>) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WorkTasks)?;
    match s.app.claim_next(&web.0.actor).await? {
        Some(t) => Ok(see_other(&format!("/referrals/{}#task-{}", t.referral_id, t.id))),
        None => Ok(see_other("/worklist?notice=none-open")),
    }
}

/// Bulk claim or reassign of the ticked tasks (`task` repeated).
pub async fn bulk(State(s): State<AppState>, web: Web, Form(pairs): Form<Vec<(String, String)>>) -> UiResult<Response> {
    let f: Params = pairs.iter().filter(|(k, _)| k != "task").cloned().collect();
    web.check_form(&f)?;
    web.require(Permission::WorkTasks)?;
    let ids: Vec<&str> = pairs.iter().filter(|(k, _)| k == "task").map(|(_, v)| v.as_str()).collect();
    if ids.is_empty() {
        return Err(UiError(StatusCode::UNPROCESSABLE_ENTITY, "Tick the tasks to claim or reassign first.".into()));
    }
    let actor = &web.0.actor;
    for id in ids {
        let done = match get(&f, "action") {
            "claim" => s.app.claim_task(actor, id, None).await,
            "assign" => s.app.reassign_task(actor, id, get(&f, "assignee")).await,
            _ => return Err(UiError(StatusCode::UNPROCESSABLE_ENTITY, "Choose claim or reassign.".into())),
        };
        match done {
            // Someone else took it meanwhile, or it is done: the others still go.
            Ok(_) | Err(refloop_app::AppError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(see_other(&local_path(f.get("back"))))
}
