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
