//! What the JSON API reads and writes. Requests are parsed here, at the edge, into the
//! domain's types; responses are views of the domain.

use jiff::Timestamp;
use refloop_app::export::iso;
use refloop_app::{OutboxItem, ReferralDetail, StoredEvent, Task};
use refloop_domain::{Referral, ReferralId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Parses an RFC 3339 instant, naming the field on error.
pub fn instant(field: &str, raw: &str) -> Result<Timestamp, ApiError> {
    raw.parse::<Timestamp>()
        .map_err(|_| ApiError::invalid(field, "expected an RFC 3339 instant such as 2026-03-01T14:30:00Z"))
}

pub fn opt_instant(field: &str, raw: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    raw.map(|r| instant(field, r)).transpose()
}

/// The patient's contact data entered with a referral.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientBody {
    pub name: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Preferred language, e.g. `es` or `Spanish`.
    pub language: Option<String>,
    /// E.164, e.g. `+15555550123`. An invalid number opens a "fix contact" task.
    pub phone: Option<String>,
    /// Recorded SMS consent; absent keeps what is on file (none for a new patient).
    pub sms_consent: Option<bool>,
    /// IANA time zone for quiet hours, e.g. `America/Chicago`.
    pub time_zone: Option<String>,
}

/// A referral entered by staff or an integration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReferralBody {
    pub patient_id: String,
    pub patient: Option<PatientBody>,
    pub referring_provider: String,
    /// The referring provider's name, shown beside the id.
    pub referring_provider_name: Option<String>,
    /// Specialty code; absent → accepted and flagged "needs coding".
    pub specialty: Option<String>,
    pub specialist: Option<String>,
    /// `routine` (default), `urgent`, `asap` or `stat`.
    pub urgency: Option<String>,
    /// `physician-order` (default) or `self-referral`.
    pub origin: Option<String>,
    /// `in-network`, `out-of-network` or `unknown` (default).
    pub network: Option<String>,
    /// At most 2,000 characters (names, the specialist and the referring provider's name:
    /// 200; the patient's language, phone and time zone: 64).
    pub reason: Option<String>,
    /// When the order was placed (RFC 3339); now when absent.
    pub ordered_at: Option<String>,
    /// The sender's ids for this order: at most 20, each at most 200 characters.
    #[serde(default)]
    pub source_ids: Vec<String>,
}

/// A staff event: a milestone, a no-show, a correction or a closure.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffEventBody {
    /// `patient-notified`, `scheduled`, `attended`, `note-received`, `no-show`,
    /// `cancelled`, `closed-incomplete` or `order-updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339); now when absent.
    pub at: Option<String>,
    /// For `scheduled`: the appointment's start.
    pub appointment_at: Option<String>,
    /// For `closed-incomplete` (required) and `cancelled`.
    pub reason: Option<String>,
    /// For `patient-notified`: how the patient was reached (`phone`, `portal`, `sms`…).
    pub channel: Option<String>,
    /// For `order-updated`.
    pub specialty: Option<String>,
    pub specialist: Option<String>,
    pub urgency: Option<String>,
    pub network: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Who takes the task; the caller when absent.
    pub assignee: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// One of the task kind's outcomes (`GET /api/v1/tasks` lists them per task), e.g.
    /// `scheduled`, `no-answer`, `wrong-number`; absent: `done` where the kind has it.
    pub outcome: Option<String>,
    /// A note for the referral's timeline.
    pub note: Option<String>,
    /// With `scheduled`: the appointment (RFC 3339).
    pub appointment_at: Option<String>,
    /// With `declined`: why.
    pub reason: Option<String>,
    /// With `phone-fixed`: the patient's number (E.164).
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceBody {
    /// How far to move the manual clock, e.g. `7d`, `36h`, `90m`.
    pub by: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReferralQuery {
    pub state: Option<String>,
    pub specialty: Option<String>,
    /// Referring provider id.
    pub provider: Option<String>,
    /// `true`: only referrals whose current stage is past its window.
    pub overdue: Option<bool>,
    /// Search: a patient name (prefix of any word; case and accents ignored), a patient id /
    /// MRN, a source id (`demo:5`, an HL7 placer number, `ServiceRequest/{id}`) or a referral id
    /// prefix (`ref_…` or `ref-…`).
    pub q: Option<String>,
    /// `ordered` (newest first, default), `ordered-asc`, `due`, `patient` or `state`.
    pub sort: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// `open`, `claimed` or `done`.
    pub status: Option<String>,
    pub assignee: Option<String>,
    pub referral_id: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending`, `sending`, `accepted`, `sent`, `failed` or `unknown`.
    pub status: Option<String>,
    pub referral_id: Option<String>,
    pub limit: Option<u32>,
}

/// A referral as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralView {
    pub id: String,
    pub state: String,
    pub urgency: String,
    pub specialty: Option<String>,
    pub origin: String,
    pub network: String,
    pub patient_id: String,
    pub referring_provider: String,
    pub specialist: Option<String>,
    pub reason: Option<String>,
    pub source_ids: Vec<String>,
    pub ordered_at: String,
    /// One timestamp per state reached, keyed by state name.
    #[schema(value_type = Object)]
    pub milestones: Value,
    pub appointment_at: Option<String>,
    pub duplicate_of: Option<String>,
    /// Counted in measures: a physician order, not a duplicate, not cancelled.
    pub tracked: bool,
    pub needs_coding: bool,
    /// Outside the pilot: tracked silently, never acted on.
    pub shadow: bool,
    pub close_reason: Option<String>,
    pub no_shows: u32,
    pub version: u64,
    /// The patient as a person (roles that may read patient data; each read is audited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientView>,
    /// The referring provider's name, when the EHR sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referring_provider_name: Option<String>,
}

/// A patient as staff see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatientView {
    pub name: Option<String>,
    pub birth_date: Option<String>,
    /// What refloop reads from the number: E.164 when it can take a text.
    pub phone: Option<String>,
    /// The number as it came (e.g. `(937)555-0101` from HL7 PID-13).
    pub phone_text: Option<String>,
    pub language: Option<String>,
}

impl ReferralView {
    /// The referral with its patient and provider from `people` (when there).
    pub fn with_people(r: &Referral, people: &refloop_app::People) -> Self {
        let mut v = Self::from(r);
        v.patient = people.patient(&r.patient_id).map(|p| PatientView {
            name: p.name.clone(),
            birth_date: p.birth_date.clone(),
            phone: p.phone.clone(),
            phone_text: p.phone_text.clone(),
            language: p.language.clone(),
        });
        v.referring_provider_name = people.provider(&r.referring_provider).map(str::to_owned);
        v
    }
}

/// One timestamp per state reached, each in the API's instant format.
fn milestones_iso(m: &refloop_domain::Milestones) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        for value in o.values_mut() {
            if let Some(t) = value.as_str().and_then(|t| t.parse::<Timestamp>().ok()) {
                *value = Value::String(iso(t));
            }
        }
    }
    v
}

impl From<&Referral> for ReferralView {
    fn from(r: &Referral) -> Self {
        Self {
            patient: None,
            referring_provider_name: None,
            id: r.id.to_string(),
            state: r.state.to_string(),
            urgency: r.urgency.to_string(),
            specialty: r.specialty.as_ref().map(|s| s.as_str().to_owned()),
            origin: r.origin.to_string(),
            network: r.network.to_string(),
            patient_id: r.patient_id.to_string(),
            referring_provider: r.referring_provider.to_string(),
            specialist: r.specialist.clone(),
            reason: r.reason.clone(),
            source_ids: r.source_ids.clone(),
            ordered_at: iso(r.ordered_at),
            milestones: milestones_iso(&r.milestones),
            appointment_at: r.appointment_at.map(iso),
            duplicate_of: r.duplicate_of.as_ref().map(ReferralId::to_string),
            tracked: r.is_tracked(),
            needs_coding: r.needs_coding(),
            shadow: r.shadow,
            close_reason: r.close_reason.clone(),
            no_shows: r.no_shows,
            version: r.version,
        }
    }
}

/// One entry of the timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened in the world.
    pub at: String,
    /// When refloop learned it.
    pub recorded_at: String,
    pub source: String,
    pub version: u64,
    /// The event's own fields (e.g. `appointment_at`, `reason`, `channel`).
    #[schema(value_type = Object)]
    pub detail: Map<String, Value>,
}

impl From<&StoredEvent> for EventView {
    fn from(e: &StoredEvent) -> Self {
        let mut detail = match serde_json::to_value(&e.data) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        detail.remove("type");
        Self {
            kind: e.data.kind().to_owned(),
            at: iso(e.at),
            recorded_at: iso(e.recorded_at),
            source: e.source.clone(),
            version: e.version,
            detail,
        }
    }
}

/// A worklist task.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub referral_id: String,
    pub kind: String,
    pub title: String,
    pub status: String,
    pub assignee: Option<String>,
    pub due_at: String,
    pub overdue: bool,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub outcome: Option<String>,
    /// For a review task: the inbound message to confirm (`/api/v1/inbox/{id}`).
    pub inbox_id: Option<String>,
    /// Calls that reached no one so far.
    pub attempts: u32,
    pub note: Option<String>,
    /// The outcomes it can be completed with (none for a review task: settle its message).
    pub outcomes: Vec<String>,
}

impl TaskView {
    pub fn new(t: &Task, now: Timestamp) -> Self {
        Self {
            id: t.id.clone(),
            referral_id: t.referral_id.to_string(),
            kind: t.kind.as_str().to_owned(),
            title: t.kind.title().to_owned(),
            status: t.status.as_str().to_owned(),
            assignee: t.assignee.clone(),
            due_at: iso(t.due_at),
            overdue: t.completed_at.is_none() && t.due_at < now,
            created_at: iso(t.created_at),
            completed_at: t.completed_at.map(iso),
            outcome: t.outcome.clone(),
            inbox_id: t.inbox_id.clone(),
            attempts: t.attempts,
            note: t.note.clone(),
            outcomes: refloop_app::outcomes_for(t.kind).iter().map(|c| c.code.to_owned()).collect(),
        }
    }
}

/// A referral with its timeline and tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralDetailView {
    #[serde(flatten)]
    pub referral: ReferralView,
    /// When the current stage is late (absent once the loop is closed or the referral ended).
    pub stage_due_at: Option<String>,
    pub overdue: bool,
    pub events: Vec<EventView>,
    pub tasks: Vec<TaskView>,
    /// Its tasks' history: `claimed`, `reassigned`, `retry`, `completed` (with the outcome).
    pub task_history: Vec<TaskLogView>,
}

/// One line of a task's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskLogView {
    pub task_id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub assignee: Option<String>,
    pub outcome: Option<String>,
    pub note: Option<String>,
}

impl ReferralDetailView {
    pub fn new(d: &ReferralDetail, now: Timestamp) -> Self {
        Self {
            referral: ReferralView::with_people(&d.referral, &d.people),
            stage_due_at: d.stage_due_at.map(iso),
            overdue: d.stage_due_at.is_some_and(|t| t < now),
            events: d.events.iter().map(EventView::from).collect(),
            tasks: d.tasks.iter().map(|t| TaskView::new(t, now)).collect(),
            task_history: d
                .task_log
                .iter()
                .map(|l| TaskLogView {
                    task_id: l.task_id.clone(),
                    at: iso(l.at),
                    actor: l.actor.clone(),
                    action: l.action.clone(),
                    assignee: l.assignee.clone(),
                    outcome: l.outcome.clone(),
                    note: l.note.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralList {
    pub items: Vec<ReferralView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// How many referrals match (all pages).
    pub total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub items: Vec<TaskView>,
}

/// An outbound message (ids only; the text is rendered when it is sent).
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxView {
    pub id: String,
    pub referral_id: String,
    pub channel: String,
    pub purpose: String,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

impl From<&OutboxItem> for OutboxView {
    fn from(m: &OutboxItem) -> Self {
        Self {
            id: m.id.clone(),
            referral_id: m.referral_id.to_string(),
            channel: m.channel.as_str().to_owned(),
            purpose: m.purpose.as_str().to_owned(),
            status: m.status.as_str().to_owned(),
            attempts: m.attempts,
            next_attempt_at: iso(m.next_attempt_at),
            created_at: iso(m.created_at),
            sent_at: m.sent_at.map(iso),
            last_error: m.last_error.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxList {
    pub items: Vec<OutboxView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClockView {
    pub now: String,
    /// `system` or `manual`.
    pub mode: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdvanceView {
    pub now: String,
    pub timers_fired: u64,
    pub timers_stale: u64,
    pub messages_attempted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// One outbound channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// `sms`, `chat`, `ehr-task`, `ehr-query`, `note-request`, `portal`.
    pub channel: String,
    pub label: String,
    /// `live`, `simulated` (the demo's people) or `off` (only logs: nothing counts as sent).
    pub mode: String,
    /// The workflow falls back to staff work while this channel is off.
    pub needed: bool,
    pub last_success: Option<String>,
    pub last_failure: Option<String>,
}

impl From<refloop_app::ChannelStatus> for ChannelView {
    fn from(c: refloop_app::ChannelStatus) -> Self {
        Self {
            channel: c.channel.as_str().to_owned(),
            label: c.label.to_owned(),
            mode: c.mode.as_str().to_owned(),
            needed: c.needed,
            last_success: c.last_success.map(iso),
            last_failure: c.last_failure.map(iso),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
}
