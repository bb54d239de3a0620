//! The worklist and the task buttons.

use super::*;

struct ReviewRow {
    received: String,
    kind: String,
    source: String,
    status: &'static str,
    error: String,
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct WorklistPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    csrf: String,
    back: String,
    open_count: usize,
    overdue_count: usize,
    tasks: Vec<TaskRow>,
    sms: Vec<TaskRow>,
    review: Vec<ReviewRow>,
    can_work: bool,
}

pub async fn worklist(State(s): State<AppState>, web: Web) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let mut tasks = Vec::new();
    for status in [TaskStatus::Open, TaskStatus::Claimed] {
        tasks.extend(s.app.tasks(&TaskFilter { status: Some(status), limit: 500, ..TaskFilter::default() }).await?);
    }
    tasks.sort_by(|a, b| a.due_at.cmp(&b.due_at).then(a.id.cmp(&b.id)));
    let (sms, work): (Vec<_>, Vec<_>) = tasks.iter().partition(|t| t.kind == refloop_domain::TaskKind::PatientReply);
    let review = s
        .app
        .dead_letters(100)
        .await?
        .iter()
        .map(|m| ReviewRow {
            received: when(Some(m.received_at), &tz),
            kind: m.message_type.clone(),
            source: m.source.clone(),
            status: m.status.as_str(),
            error: m.error.clone().unwrap_or_default(),
        })
        .collect();
    let page = WorklistPage {
        nav: web.nav("worklist"),
        demo: ui(&s).demo,
        notice: None,
        csrf: web.0.csrf.clone(),
        back: "/worklist".into(),
        open_count: tasks.len(),
        overdue_count: tasks.iter().filter(|t| t.due_at < now).count(),
        tasks: work.iter().map(|t| TaskRow::of(t, &tz, now)).collect(),
        sms: sms.iter().map(|t| TaskRow::of(t, &tz, now)).collect(),
        review,
        can_work: web.0.actor.role.may(Permission::WorkTasks),
    };
    Ok(render(&page))
}

pub async fn task_action(
    State(s): State<AppState>,
    web: Web,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    web.require(Permission::WorkTasks)?;
    let actor = &web.0.actor;
    match action.as_str() {
        "claim" => s.app.claim_task(actor, &id, None).await?,
        "complete" => s.app.complete_task(actor, &id, Some(get(&f, "outcome")).filter(|o| !o.is_empty())).await?,
        "assign" => s.app.reassign_task(actor, &id, get(&f, "assignee")).await?,
        _ => return Err(UiError(StatusCode::NOT_FOUND, "No such action.".into())),
    };
    Ok(see_other(&local_path(f.get("back"))))
}
