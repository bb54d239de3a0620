//! Admin pages: the audit log search (by user, patient, action and period) a reviewer uses,
//! and the "who looked at this patient" rows the referral page shows admins.

use askama::Template;
use axum::{
    extract::{Query, State},
    response::Response,
};
use jiff::{SignedDuration, tz::TimeZone};
use refloop_app::{AuditQuery, AuditRecord, Permission};

use super::{Nav, Params, UiResult, Web, get, parse_local, render, ui};
use crate::AppState;

/// One audit row as the pages show it.
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub kind: String,
    /// The first ids the row names, and how many more.
    pub ids: Vec<String>,
    pub more: usize,
    pub remote: String,
}

/// Shown ids per row; the rest are counted.
const IDS_SHOWN: usize = 5;

pub(crate) fn audit_rows(rows: &[AuditRecord], tz: &TimeZone) -> Vec<AuditRow> {
    rows.iter()
        .map(|r| {
            let e = &r.entry;
            let all: Vec<&str> = e.resource_id.split(',').filter(|s| !s.is_empty()).collect();
            AuditRow {
                seq: r.seq,
                // To the second: a reviewer orders events by it.
                at: tz.to_datetime(e.at).strftime("%Y-%m-%d %H:%M:%S").to_string(),
                actor: e.actor.clone(),
                action: e.action.clone(),
                kind: e.resource_type.clone(),
                ids: all.iter().take(IDS_SHOWN).map(|s| (*s).to_owned()).collect(),
                more: all.len().saturating_sub(IDS_SHOWN),
                remote: e.remote.clone().unwrap_or_default(),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    user: String,
    patient: String,
    action: String,
    from: String,
    to: String,
    rows: Vec<AuditRow>,
    /// The next page's link (older rows), when there may be more.
    older: String,
}

/// Rows per page.
const PAGE: u32 = 100;

/// `GET /admin/audit`: search the audit log. Admins only; each search is itself audited.
pub async fn audit(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Operate)?;
    let tz = s.app.policy().time_zone.clone();
    let (user, patient, action) = (get(&q, "user"), get(&q, "patient"), get(&q, "action"));
    let (from, to) = (get(&q, "from"), get(&q, "to"));
    let mut query = AuditQuery {
        actor: (!user.is_empty()).then(|| user.to_owned()),
        action: (!action.is_empty()).then(|| action.to_owned()),
        from: parse_local("from", from, &tz)?,
        // A date is the whole day.
        to: parse_local("to", to, &tz)?.map(|t| if to.len() == 10 { t + SignedDuration::from_hours(24) } else { t }),
        limit: PAGE,
        before_seq: get(&q, "before").parse().ok(),
        ..AuditQuery::default()
    };
    if !patient.is_empty() {
        query.ids = vec![patient.to_owned()];
        query.ids.extend(s.app.referral_ids_of_patient(patient).await?);
    }
    let rows = s.app.audit_search(&web.0.actor, &query).await?;
    let older = match rows.last() {
        Some(last) if rows.len() == PAGE as usize => {
            let keep: Vec<String> =
                [("user", user), ("patient", patient), ("action", action), ("from", from), ("to", to)]
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| format!("{k}={}", super::super::percent_encode(v)))
                    .collect();
            format!("/admin/audit?{}&before={}", keep.join("&"), last.seq)
        }
        _ => String::new(),
    };
    let page = AuditPage {
        nav: web.nav("audit"),
        demo: ui(&s).demo,
        notice: None,
        user: user.to_owned(),
        patient: patient.to_owned(),
        action: action.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        rows: audit_rows(&rows, &tz),
        older,
    };
    Ok(render(&page))
}

/// A token as the access page lists it.
pub(crate) struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub status: &'static str,
}

/// A person as the access page lists them.
pub(crate) struct PersonRow {
    pub username: String,
    pub role: &'static str,
    pub status: &'static str,
    pub sign_in: &'static str,
    pub sessions: u32,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    csrf: String,
    tokens: Vec<TokenRow>,
    people: Vec<PersonRow>,
}

/// `GET /admin/access`: API tokens and the people who sign in, with their live sessions.
/// Admins only; the view is audited.
pub async fn access(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::Operate)?;
    s.app.audit_action(&web.0.actor, "view", "access", "tokens,users").await?;
    let tz = s.app.policy().time_zone.clone();
    let now = s.app.now();
    let at = |t: Option<jiff::Timestamp>| super::super::when(t, &tz);
    let tokens = s
        .app
        .tokens()
        .await?
        .into_iter()
        .map(|t| TokenRow {
            status: if t.revoked_at.is_some() {
                "revoked"
            } else if t.is_live(now) {
                "live"
            } else {
                "expired"
            },
            id: t.id,
            name: t.name,
            role: t.role.as_str(),
            created: at(Some(t.created_at)),
            expires: t.expires_at.map_or_else(|| "never".to_owned(), |e| at(Some(e))),
            last_used: t.last_used_at.map_or_else(|| "never".to_owned(), |u| at(Some(u))),
        })
        .collect();
    let sessions = s.app.live_sessions().await?;
    let people = s
        .app
        .users()
        .await?
        .into_iter()
        .map(|u| {
            let live = sessions.iter().find(|(name, _, _)| *name == u.username);
            PersonRow {
                role: u.role.as_str(),
                status: if u.disabled {
                    "disabled"
                } else if u.locked_until.is_some_and(|until| now < until) {
                    "locked"
                } else {
                    "active"
                },
                sign_in: if u.sso {
                    "identity provider"
                } else if u.totp_secret.is_some() {
                    "password + code"
                } else {
                    "password"
                },
                sessions: live.map_or(0, |(_, n, _)| *n),
                last_seen: live.map(|(_, _, at)| super::super::when(Some(*at), &tz)).unwrap_or_default(),
                username: u.username,
            }
        })
        .collect();
    let notice = match get(&q, "done") {
        "revoked" => Some("Token revoked: it is refused from now on.".to_owned()),
        "ended" => Some("Sessions ended: that person must sign in again.".to_owned()),
        "unlocked" => Some("Account unlocked.".to_owned()),
        _ => None,
    };
    let page =
        AccessPage { nav: web.nav("access"), demo: ui(&s).demo, notice, csrf: web.0.csrf.clone(), tokens, people };
    Ok(render(&page))
}

/// `POST /admin/access/{kind}/{id}/{action}`: revoke a token; end a person's sessions or
/// unlock them. Admins only; each is audited by the app.
pub async fn access_action(
    State(s): State<AppState>,
    web: Web,
    axum::extract::Path((kind, id, action)): axum::extract::Path<(String, String, String)>,
    axum::Form(f): axum::Form<Params>,
) -> UiResult<Response> {
    web.require(Permission::Operate)?;
    web.check_form(&f)?;
    let done = match (kind.as_str(), action.as_str()) {
        ("tokens", "revoke") => {
            if s.app.revoke_token(&id, &web.0.actor).await?.is_empty() {
                return Err(super::UiError(axum::http::StatusCode::NOT_FOUND, format!("No live token {id}.")));
            }
            "revoked"
        }
        ("users", "end-sessions") => {
            s.app.end_sessions(&id, &web.0.actor).await?;
            "ended"
        }
        ("users", "unlock") => {
            s.app.unlock_user(&id, &web.0.actor).await?;
            "unlocked"
        }
        _ => return Err(super::UiError(axum::http::StatusCode::NOT_FOUND, "No such action.".into())),
    };
    Ok(super::see_other(&format!("/admin/access?done={done}")))
}

/// One row of the CMS50 page.
pub(crate) struct Cms50Row {
    pub name: String,
    pub practice: bool,
    pub initial: usize,
    pub denominator: usize,
    pub numerator: usize,
    pub rate: String,
}

#[derive(Template)]
#[template(path = "cms50.html")]
struct Cms50Page {
    nav: Option<Nav>,
    demo: bool,
    notice: Option<String>,
    measure: &'static str,
    year: i16,
    years: Vec<i16>,
    rows: Vec<Cms50Row>,
    why_zero: Vec<String>,
    open_patients: Vec<String>,
    closed_patients: Vec<String>,
}

/// `GET /reports/cms50?year=`: the measure for a year, per provider and for the practice,
/// the patients behind it, and why a zero is zero. Reading the patient lists is audited.
pub async fn cms50(State(s): State<AppState>, web: Web, Query(q): Query<Params>) -> UiResult<Response> {
    web.require(Permission::ReadPatients)?;
    let this_year = s.app.policy().time_zone.to_datetime(s.app.now()).year();
    let year = match get(&q, "year") {
        "" => this_year,
        y => y.parse().map_err(|_| {
            super::UiError(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "Year: a year such as 2026.".into())
        })?,
    };
    let report = s.app.cms50_report(year).await?;
    s.app.audit_read(&web.0.actor, "report", &format!("cms50:{year}")).await?;
    let row = |name: &str, practice: bool, c: &refloop_domain::cms50::Counts| Cms50Row {
        name: name.to_owned(),
        practice,
        initial: c.initial_population,
        denominator: c.denominator,
        numerator: c.numerator,
        rate: super::super::pct(c.rate),
    };
    let mut rows = vec![row("Practice", true, &report.result.practice)];
    rows.extend(report.result.providers.iter().map(|(name, c)| row(name, false, c)));
    let counted = &report.result.practice.patients;
    let open_patients =
        counted.denominator.iter().filter(|p| !counted.numerator.contains(p)).cloned().collect::<Vec<_>>();
    let page = Cms50Page {
        nav: web.nav("dashboard"),
        demo: ui(&s).demo,
        notice: None,
        measure: report.measure,
        year,
        years: (this_year - 2..=this_year).rev().collect(),
        rows,
        why_zero: report.why_zero,
        open_patients,
        closed_patients: counted.numerator.clone(),
    };
    Ok(render(&page))
}
