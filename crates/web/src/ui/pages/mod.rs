//! The pages, one file per area: each handler reads through [`refloop_app::App`], shapes rows for its template,
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

mod auth;
mod dashboard;
mod directory;
mod people;
mod referrals;
mod work;

pub use auth::{login, login_form, logout};
pub use dashboard::{dashboard, export_csv};
pub use directory::{directory, settings};
pub use referrals::{record_event, referral, referrals, referrals_csv};
pub use work::{task_action, worklist};

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
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
