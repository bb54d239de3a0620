//! The pages: each handler reads through [`refloop_app::App`], shapes rows for its template,
//! and renders. Forms post back, check the CSRF token, act through the same app methods as the
//! JSON API, and redirect (303) so a reload never repeats an action.

use std::collections::HashMap;

use askama::Template;
use axum::{
    Form,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use refloop_app::{
    Closure, GroupBy, OutboxFilter, Permission, ReferralFilter, SESSION_IDLE, TaskFilter, TaskStatus, is_stale,
};
use refloop_domain::{ReferralId, Specialty, State as RState, Urgency, stage_deadline};

use super::{
    LOGIN_COOKIE, Nav, SESSION_COOKIE, UiError, UiInfo, UiResult, Web,
    chart::{self, Bar},
    cookie, days, local_path, parse_local, pct, render, set_cookie, when,
};
use crate::{AppState, dto::StaffEventBody, routes::referrals::parse_event};

type Params = HashMap<String, String>;

fn get<'a>(p: &'a Params, k: &str) -> &'a str {
    p.get(k).map_or("", |v| v.trim())
}

fn ui(s: &AppState) -> &UiInfo {
    &s.ui
}

// ---------------------------------------------------------------- sign in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
    next: String,
}

pub async fn login_form(State(s): State<AppState>, Query(q): Query<Params>) -> Response {
    login_page(&s, local_path(q.get("next")), None, StatusCode::OK)
}

fn login_page(s: &AppState, next: String, error: Option<String>, status: StatusCode) -> Response {
    let csrf = refloop_app::new_token();
    let page = LoginPage { nav: None, demo: ui(s).demo, notice: None, error, csrf: csrf.clone(), next };
    let mut r = render(&page);
    *r.status_mut() = status;
    r.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &csrf, 1800));
    r
}

pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<Params>,
) -> Result<Response, UiError> {
    let next = local_path(f.get("next"));
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !super::constant_time_eq(expected.as_bytes(), get(&f, "csrf").as_bytes()) {
        return Ok(login_page(&s, next, Some("The sign-in form expired. Try again.".into()), StatusCode::FORBIDDEN));
    }
    match s
        .app
        .login(get(&f, "username"), f.get("password").map_or("", String::as_str), Some(addr.ip().to_string()))
        .await?
    {
        Some(session) => {
            let mut r = Redirect::to(&next).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &session.token, refloop_app::SESSION_MAX.as_secs()),
            );
            h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0));
            Ok(r)
        }
        None => Ok(login_page(&s, next, Some("Wrong username or password.".into()), StatusCode::UNAUTHORIZED)),
    }
}

pub async fn logout(
    State(s): State<AppState>,
    web: Web,
    headers: HeaderMap,
    Form(f): Form<Params>,
) -> UiResult<Response> {
    web.check_form(&f)?;
    if let Some(token) = super::cookie(&headers, SESSION_COOKIE) {
        s.app.logout(token).await?;
    }
    let mut r = see_other("/login");
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    Ok(r)
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

// ---------------------------------------------------------------- dashboard

struct Kpis {
    referrals: usize,
    closed: usize,
    rate: String,
    catch_rate: String,
    caught: usize,
    escalated: usize,
    median_to_note: String,
    p90_to_note: String,
}

impl Kpis {
    fn of(c: &Closure) -> Self {
        let to_note = c.days.get("order-to-note");
        Kpis {
            referrals: c.referrals,
            closed: c.closed_loop,
            rate: pct(c.closed_loop_rate),
            catch_rate: pct(c.unscheduled_catch_rate),
            caught: c.caught_after_escalation,
            escalated: c.escalated_unscheduled,
            median_to_note: days(to_note.and_then(|d| d.median_days)),
            p90_to_note: days(to_note.and_then(|d| d.p90_days)),
        }
    }
}

struct GroupRow {
    key: String,
    referrals: usize,
    closed: usize,
    rate: String,
    median_to_note: String,
    catch_rate: String,
}

struct DaysRow {
    span: &'static str,
    count: usize,
    median: String,
    p90: String,
    mean: String,
}

struct DashboardForm {
    from: String,
    to: String,
    by: String,
    baseline_from: String,
    baseline_to: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    form: DashboardForm,
    by_options: Vec<(&'static str, &'static str)>,
    current: Kpis,
    baseline: Option<Kpis>,
    trend_unit: &'static str,
    trend_svg: String,
    trend: Vec<GroupRow>,
    funnel_svg: String,
    funnel: Vec<(&'static str, usize, String)>,
    leak_svg: String,
    leak_stage: Vec<(String, usize)>,
    leak_reason: Vec<(String, usize)>,
    days: Vec<DaysRow>,
    split_name: &'static str,
    split: Vec<GroupRow>,
    sampled: bool,
}

const BY_OPTIONS: [(&str, &str); 5] = [
    ("specialty", "specialty"),
    ("provider", "referring provider"),
    ("specialist", "specialist"),
    ("network", "network"),
    ("urgency", "urgency"),
];

fn group_rows(groups: &std::collections::BTreeMap<String, Closure>) -> Vec<GroupRow> {
    groups
        .iter()
        .map(|(k, c)| {
            let kp = Kpis::of(c);
            GroupRow {
                key: k.clone(),
                referrals: kp.referrals,
                closed: kp.closed,
                rate: kp.rate,
                median_to_note: kp.median_to_note,
                catch_rate: kp.catch_rate,
            }
        })
        .collect()
}

fn date_of(t: Timestamp, tz: &TimeZone) -> String {
    tz.to_datetime(t).date().to_string()
}

pub async fn dashboard(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let today_end = {
        let d = tz.to_datetime(s.app.now()).date().tomorrow().unwrap_or_default();
        parse_local("to", &d.to_string(), &tz)?.unwrap_or_else(|| s.app.now())
    };
    let to = parse_local("to", get(&q, "to"), &tz)?.unwrap_or(today_end);
    let from = parse_local("from", get(&q, "from"), &tz)?.unwrap_or(to - SignedDuration::from_hours(90 * 24));
    if to <= from {
        return Err(UiError(StatusCode::UNPROCESSABLE_ENTITY, "The period must end after it starts.".into()));
    }
    let by_name = BY_OPTIONS.iter().find(|(v, _)| *v == get(&q, "by")).unwrap_or(&BY_OPTIONS[0]);
    let by = GroupBy::parse(by_name.0).unwrap_or(GroupBy::Specialty);
    let weekly = to - from <= SignedDuration::from_hours(120 * 24);
    let (trend_by, trend_unit) = if weekly { (GroupBy::Week, "week") } else { (GroupBy::Month, "month") };

    let (report, trend) = tokio::join!(s.app.closure_overview(from, to, by), s.app.closure_trend(from, to, trend_by));
    let report = report?;
    let sampled = report.sampled;
    let total = report.total;
    let by_group = group_rows(&report.by.unwrap_or_default());
    let trend: Vec<GroupRow> = trend?
        .into_iter()
        .map(|(key, n, closed)| GroupRow {
            key,
            referrals: n as usize,
            closed: closed as usize,
            rate: pct((n > 0).then(|| closed as f64 / n as f64)),
            median_to_note: String::new(),
            catch_rate: String::new(),
        })
        .collect();

    let baseline_from = parse_local("baseline_from", get(&q, "baseline_from"), &tz)?;
    let baseline_to = parse_local("baseline_to", get(&q, "baseline_to"), &tz)?;
    let baseline = match (baseline_from, baseline_to) {
        (Some(f), Some(t)) if t > f => Some(Kpis::of(&s.app.closure_report(f, t, None).await?.total)),
        _ => None,
    };

    let trend_bars: Vec<Bar> = trend
        .iter()
        .map(|r| Bar {
            label: r.key.clone(),
            value: if r.referrals == 0 { 0.0 } else { r.closed as f64 / r.referrals as f64 },
            text: r.rate.clone(),
        })
        .collect();
    let stages = ["patient-notified", "scheduled", "attended", "note-received"];
    let mut funnel = vec![("ordered", total.referrals, pct(Some(1.0).filter(|_| total.referrals > 0)))];
    for st in stages {
        let n = total.funnel.get(st).copied().unwrap_or(0);
        funnel.push((st, n, pct((total.referrals > 0).then(|| n as f64 / total.referrals as f64))));
    }
    let funnel_bars: Vec<Bar> =
        funnel.iter().map(|(l, n, _)| Bar { label: (*l).into(), value: *n as f64, text: n.to_string() }).collect();
    let leak_stage: Vec<(String, usize)> = total.leakage_by_stage.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let leak_bars: Vec<Bar> =
        leak_stage.iter().map(|(l, n)| Bar { label: l.clone(), value: *n as f64, text: n.to_string() }).collect();
    let mut leak_reason: Vec<(String, usize)> = total.leakage_by_reason.iter().map(|(k, v)| (k.clone(), *v)).collect();
    leak_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let span_order =
        ["ordered-to-notified", "notified-to-scheduled", "scheduled-to-attended", "attended-to-note", "order-to-note"];
    let days_rows = span_order
        .iter()
        .map(|span| {
            let d = total.days.get(span).cloned().unwrap_or_default();
            DaysRow {
                span,
                count: d.count,
                median: days(d.median_days),
                p90: days(d.p90_days),
                mean: days(d.mean_days),
            }
        })
        .collect();

    let page = DashboardPage {
        nav: web.nav("dashboard"),
        demo: ui(&s).demo,
        notice: None,
        form: DashboardForm {
            from: date_of(from, &tz),
            to: date_of(to, &tz),
            by: by_name.0.to_owned(),
            baseline_from: baseline_from.map(|t| date_of(t, &tz)).unwrap_or_default(),
            baseline_to: baseline_to.map(|t| date_of(t, &tz)).unwrap_or_default(),
        },
        by_options: BY_OPTIONS.to_vec(),
        current: Kpis::of(&total),
        baseline,
        trend_unit,
        trend_svg: chart::columns(&format!("Closed-loop rate by {trend_unit}"), &trend_bars, 1.0),
        trend,
        funnel_svg: chart::horizontal("Referrals reaching each state", &funnel_bars, None),
        funnel,
        leak_svg: chart::horizontal("Referrals leaking at each stage", &leak_bars, None),
        leak_stage,
        leak_reason,
        days: days_rows,
        split_name: by_name.1,
        split: by_group,
        sampled,
    };
    Ok(render(&page))
}

pub async fn export_csv(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let from = parse_local("from", get(&q, "from"), &tz)?.unwrap_or(Timestamp::UNIX_EPOCH);
    let to = parse_local("to", get(&q, "to"), &tz)?.unwrap_or_else(|| s.app.now() + SignedDuration::from_hours(24));
    let referrals = s.app.store().referrals_ordered_between(from, to).await.map_err(refloop_app::AppError::from)?;
    let ids: Vec<&str> = referrals.iter().map(|r| r.id.as_str()).collect();
    s.app.audit_read(&web.0.actor, "export", &format!("{} referrals", ids.len())).await?;
    let mut body = Vec::new();
    refloop_app::export::write_csv(&referrals, &mut body)
        .map_err(|e| UiError(StatusCode::INTERNAL_SERVER_ERROR, format!("export failed: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"referrals.csv\""),
        ],
        body,
    )
        .into_response())
}

// ---------------------------------------------------------------- referrals

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
        return Ok(see_other(&format!("/referrals/{}", super::percent_encode(id))));
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
        let query: Vec<String> =
            pairs.iter().map(|(k, v)| format!("{}={}", super::percent_encode(k), super::percent_encode(v))).collect();
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

pub(crate) struct TaskRow {
    id: String,
    title: &'static str,
    referral: String,
    due: String,
    status: &'static str,
    assignee: String,
    overdue: bool,
}

impl TaskRow {
    fn of(t: &refloop_app::Task, tz: &TimeZone, now: Timestamp) -> Self {
        TaskRow {
            id: t.id.clone(),
            title: t.kind.title(),
            referral: t.referral_id.to_string(),
            due: when(Some(t.due_at), tz),
            status: t.status.as_str(),
            assignee: t.assignee.clone().unwrap_or_default(),
            overdue: t.due_at < now,
        }
    }
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

// ---------------------------------------------------------------- worklist

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

// ---------------------------------------------------------------- directory and settings

struct SpecialistRow {
    name: String,
    specialties: String,
    network: &'static str,
    phone: String,
    fax: String,
    direct: String,
    verified: String,
    stale: bool,
}

#[derive(Template)]
#[template(path = "directory.html")]
struct DirectoryPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    stale_count: usize,
    rows: Vec<SpecialistRow>,
}

pub async fn directory(State(s): State<AppState>, web: Web) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let rows: Vec<SpecialistRow> = s
        .app
        .specialists(false)
        .await?
        .iter()
        .map(|x| SpecialistRow {
            name: x.name.clone(),
            specialties: x.specialties.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            network: x.network.as_str(),
            phone: x.phone.clone().unwrap_or_default(),
            fax: x.fax.clone().unwrap_or_default(),
            direct: x.direct_address.clone().unwrap_or_default(),
            verified: when(Some(x.last_verified), &tz),
            stale: is_stale(x, now),
        })
        .collect();
    let page = DirectoryPage {
        nav: web.nav("directory"),
        demo: ui(&s).demo,
        notice: None,
        stale_count: rows.iter().filter(|r| r.stale).count(),
        rows,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    windows: Vec<(&'static str, String, String, String, String, String)>,
    config: String,
}

pub async fn settings(State(s): State<AppState>, web: Web) -> UiResult<Response> {
    web.require(Permission::Read)?;
    let p = s.app.policy();
    let windows = [Urgency::Routine, Urgency::Urgent]
        .into_iter()
        .map(|u| {
            let w = p.windows(None, u);
            (
                u.as_str(),
                w.notify.to_string(),
                w.scheduling.to_string(),
                w.note_look.to_string(),
                w.note_request.to_string(),
                w.note_escalate.to_string(),
            )
        })
        .collect();
    let config = if ui(&s).settings.is_empty() {
        format!("session idle timeout: {} min", SESSION_IDLE.as_secs() / 60)
    } else {
        ui(&s).settings.clone()
    };
    let page = SettingsPage { nav: web.nav("settings"), demo: ui(&s).demo, notice: None, windows, config };
    Ok(render(&page))
}
