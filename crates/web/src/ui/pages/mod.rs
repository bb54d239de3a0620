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
use refloop_domain::{Referral, ReferralId, Specialty, State as RState, stage_deadline};

use super::{
    LOGIN_COOKIE, Nav, SESSION_COOKIE, Signing, UiError, UiInfo, UiResult, Web,
    chart::{self, Bar},
    cookie, days, local_path, parse_local, pct, render, render_framing_self, set_cookie, when,
};
use crate::{AppState, dto::StaffEventBody, routes::referrals::parse_event};

type Params = HashMap<String, String>;

fn get<'a>(p: &'a Params, k: &str) -> &'a str {
    p.get(k).map_or("", |v| v.trim())
}

fn ui(s: &AppState) -> &UiInfo {
    &s.ui
}

mod admin;
mod auth;
mod dashboard;
mod directory;
mod documents;
mod inbox;
mod people;
mod referrals;
mod work;

pub use admin::{access, access_action, audit, cms50};
pub use auth::{enrol_form, enrol_submit, login, login_form, logout, mfa_form, mfa_submit, sso_callback, sso_start};
pub use dashboard::{dashboard, export_csv};
pub use directory::{directory, save_entry, settings, verify_entry};
pub use documents::{document, document_action, document_content, documents};
pub use inbox::{inbox, inbox_action, inbox_item};
pub use referrals::{record_event, referral, referrals, referrals_csv, send_sms, set_language};
pub use work::{bulk, claim_next, task_action, worklist};

/// What a person typed into a form that needs fixing: the page comes back with it filled in
/// and what to fix, never through a URL (the values may be patient data).
#[derive(Clone, Debug, Default)]
pub(crate) struct Typed {
    /// The task whose outcome form it was.
    task: String,
    outcome: String,
    note: String,
    reason: String,
    /// The listed reason chosen to close a referral.
    close_reason: String,
    phone: String,
    appointment_at: String,
    /// A text to the patient.
    text: String,
    /// The "record what happened" form: what and when.
    kind: String,
    at: String,
    /// What to fix.
    problem: String,
}

impl Typed {
    fn from_form(f: &Params, problem: String) -> Self {
        Typed {
            task: String::new(),
            outcome: get(f, "outcome").to_owned(),
            note: get(f, "note").to_owned(),
            reason: get(f, "reason").to_owned(),
            close_reason: get(f, "close_reason").to_owned(),
            phone: get(f, "phone").to_owned(),
            appointment_at: get(f, "appointment_at").to_owned(),
            text: get(f, "text").to_owned(),
            kind: String::new(),
            at: String::new(),
            problem,
        }
    }
}

/// A refused form's page again: 422 for input to fix, 409 for a state that does not allow it;
/// other errors as usual.
fn refused(e: refloop_app::AppError) -> Result<(StatusCode, String), UiError> {
    match &e {
        refloop_app::AppError::Invalid { .. } | refloop_app::AppError::Conflict(_) => {
            let status = if matches!(e, refloop_app::AppError::Invalid { .. }) {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::CONFLICT
            };
            Ok((status, crate::ApiError::from(e).message))
        }
        _ => Err(e.into()),
    }
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

pub(crate) struct TaskRow {
    id: String,
    kind: &'static str,
    title: &'static str,
    short: &'static str,
    referral: String,
    due: String,
    status: &'static str,
    assignee: String,
    overdue: bool,
    attempts: u32,
    /// (code, label, what it needs: "", "appointment", "reason", "phone")
    outcomes: Vec<(&'static str, &'static str, &'static str)>,
    /// A review task: settled through this inbound message.
    inbox_id: String,
    outcome: String,
    completed: String,
    /// Done by phoning the patient.
    calls_patient: bool,
}

/// What staff chasing a booking should know of the booking link: "booking link opened WHEN",
/// or "booking link not opened" when the patient's text carried one (texted, and the
/// specialist has a booking page); empty otherwise.
pub(crate) fn booking_note(r: &Referral, directory: &[refloop_app::Specialist], tz: &TimeZone) -> String {
    match r.progress.booking_link_opened {
        Some(at) => format!("booking link opened {}", when(Some(at), tz)),
        None if r.progress.notify_by_sms
            && refloop_app::entry_for(directory, r).and_then(|e| e.booking_target()).is_some() =>
        {
            "booking link not opened".to_owned()
        }
        None => String::new(),
    }
}

impl TaskRow {
    fn of(t: &refloop_app::Task, tz: &TimeZone, now: Timestamp) -> Self {
        let needs = |n: refloop_app::Needs| match n {
            refloop_app::Needs::Nothing => "",
            refloop_app::Needs::Appointment => "appointment",
            refloop_app::Needs::Reason => "reason",
            refloop_app::Needs::Phone => "phone",
        };
        TaskRow {
            id: t.id.clone(),
            kind: t.kind.as_str(),
            title: t.kind.title(),
            short: t.kind.short(),
            referral: t.referral_id.to_string(),
            due: when(Some(t.due_at), tz),
            status: t.status.as_str(),
            assignee: t.assignee.clone().unwrap_or_default(),
            overdue: t.completed_at.is_none() && t.due_at < now,
            attempts: t.attempts,
            outcomes: refloop_app::outcomes_for(t.kind).iter().map(|c| (c.code, c.label, needs(c.needs))).collect(),
            inbox_id: t.inbox_id.clone().unwrap_or_default(),
            outcome: t.outcome.clone().unwrap_or_default(),
            completed: when(t.completed_at, tz),
            calls_patient: t.kind.calls_patient(),
        }
    }

    fn needs(&self, what: &str) -> bool {
        self.outcomes.iter().any(|(_, _, n)| *n == what)
    }
}
