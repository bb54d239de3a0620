//! `decide`: the referral lifecycle as a pure function.

use jiff::{Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};

pub use crate::kinds::{Channel, Purpose, TaskKind};
use crate::{
    duration::Duration,
    ids::ReferralId,
    input::{Contact, DuplicateCandidate, Input, NewOrder, OrderUpdate},
    phone::PhoneE164,
    policy::Policy,
    referral::{Milestones, Origin, ParseError, Progress, Referral, State},
    timers::{TimerKind, TimerSpec, timers_for},
};

/// A message to send through the outbox. `key` is its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub channel: Channel,
    pub purpose: Purpose,
    pub not_before: Timestamp,
    pub key: String,
}

/// What the application must carry out, in the same transaction as the state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Send(Outbound),
    OpenTask {
        kind: TaskKind,
        due_at: Timestamp,
    },
    /// Close the open tasks of these kinds: the referral moved past them.
    CloseTasks {
        kinds: Vec<TaskKind>,
    },
}

/// What happened, as recorded in the append-only log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventData {
    Ordered {
        origin: Origin,
    },
    DuplicateLinked {
        of: ReferralId,
    },
    NeedsCoding,
    Shadowed,
    /// Entered from a baseline import of past referrals: the workflow never acts on it.
    ImportedHistory,
    PatientNotified {
        channel: Option<String>,
    },
    Scheduled {
        appointment_at: Option<Timestamp>,
        /// How it became known (e.g. `sms-patient-reported`, `hl7v2`, `fhir`): a patient's
        /// word is kept apart from an EHR's confirmation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    NoShow,
    AppointmentCancelled,
    SpecialistResponded {
        accepted: bool,
    },
    /// The specialist confirmed our cancellation of a 360X referral.
    CancelConfirmed,
    /// A text message from the patient was filed on this referral.
    PatientReplied,
    /// The patient opened the booking link in their text.
    BookingLinkOpened,
    /// The last note request went unanswered: the next way (`rung`) is tried.
    NoteRequestUnanswered {
        rung: u32,
    },
    Attended,
    NoteReceived,
    SpecialistVerified,
    Cancelled {
        reason: Option<String>,
    },
    ClosedIncomplete {
        reason: String,
    },
    OrderUpdated {
        fields: Vec<String>,
    },
    Escalated {
        stage: TimerKind,
    },
    MessageQueued {
        channel: Channel,
        purpose: Purpose,
    },
    MessageDelivered {
        channel: Channel,
        purpose: Purpose,
    },
    DeliveryFailed {
        channel: Channel,
        purpose: Purpose,
        error: String,
    },
    /// Staff could not reach the patient at the number on file.
    ContactFailed {
        reason: String,
    },
    /// Staff fixed the patient's number.
    ContactFixed,
    /// The channel is off (it only logs): the message reached no one.
    MessageNotSent {
        channel: Channel,
        purpose: Purpose,
        reason: String,
    },
    TaskOpened {
        kind: TaskKind,
    },
    /// A milestone reported after the referral ended; kept in the log, state unchanged.
    IgnoredAfterClose {
        reported: State,
    },
}

impl EventData {
    /// The `type` of the event as the API shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::Ordered { .. } => "ordered",
            EventData::DuplicateLinked { .. } => "duplicate-linked",
            EventData::NeedsCoding => "needs-coding",
            EventData::Shadowed => "shadowed",
            EventData::ImportedHistory => "imported-history",
            EventData::PatientNotified { .. } => "patient-notified",
            EventData::Scheduled { .. } => "scheduled",
            EventData::NoShow => "no-show",
            EventData::AppointmentCancelled => "appointment-cancelled",
            EventData::SpecialistResponded { .. } => "specialist-responded",
            EventData::CancelConfirmed => "cancel-confirmed",
            EventData::PatientReplied => "patient-replied",
            EventData::BookingLinkOpened => "booking-link-opened",
            EventData::NoteRequestUnanswered { .. } => "note-request-unanswered",
            EventData::Attended => "attended",
            EventData::SpecialistVerified => "specialist-verified",
            EventData::NoteReceived => "note-received",
            EventData::Cancelled { .. } => "cancelled",
            EventData::ClosedIncomplete { .. } => "closed-incomplete",
            EventData::OrderUpdated { .. } => "order-updated",
            EventData::Escalated { .. } => "escalated",
            EventData::MessageQueued { .. } => "message-queued",
            EventData::MessageDelivered { .. } => "message-delivered",
            EventData::DeliveryFailed { .. } => "delivery-failed",
            EventData::MessageNotSent { .. } => "message-not-sent",
            EventData::ContactFailed { .. } => "contact-failed",
            EventData::ContactFixed => "contact-fixed",
            EventData::TaskOpened { .. } => "task-opened",
            EventData::IgnoredAfterClose { .. } => "ignored-after-close",
        }
    }
}

/// An event with the time it happened in the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Timestamp,
    pub data: EventData,
}

/// Everything `decide` needs besides the referral and the input.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub now: Timestamp,
    pub policy: &'a Policy,
    pub contact: Option<&'a Contact>,
    /// The patient's time zone (the practice's when none is recorded), for quiet hours.
    pub time_zone: &'a TimeZone,
    /// For a new order: the latest open referral of the same patient and specialty.
    pub duplicate_candidate: Option<&'a DuplicateCandidate>,
}

/// The outcome of a decision: carry it out atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub referral: Referral,
    pub events: Vec<Event>,
    pub effects: Vec<Effect>,
    /// The timers that must be pending afterwards, replacing all others of the referral.
    pub timers: Vec<TimerSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("the timer was armed for version {armed} but the referral is at version {current}")]
    StaleTimer { armed: u64, current: u64 },
    #[error("a referral that is {from} cannot become {to}")]
    InvalidTransition { from: State, to: State },
    #[error(transparent)]
    Invalid(#[from] ParseError),
}

/// Builds the decision for a new order.
pub fn decide_new(order: NewOrder, ctx: &Context<'_>) -> Decision {
    let at = order.ordered_at;
    let duplicate_of = ctx.duplicate_candidate.and_then(|c| {
        let window = ctx.policy.dedupe_window.to_signed();
        let gap = at.duration_since(c.ordered_at).abs();
        (order.origin == Origin::PhysicianOrder && order.specialty.is_some() && gap <= window).then(|| c.id.clone())
    });
    let historical = order.historical;
    let shadow = historical || !ctx.policy.in_pilot(&order.referring_provider);
    let referral = Referral {
        id: order.id,
        version: 1,
        state: State::Ordered,
        patient_id: order.patient_id,
        referring_provider: order.referring_provider,
        specialty: order.specialty,
        specialist: order.specialist,
        urgency: order.urgency,
        origin: order.origin,
        network: order.network,
        reason: order.reason,
        source_ids: order.source_ids,
        ordered_at: at,
        milestones: Milestones { ordered: Some(at), ..Milestones::default() },
        appointment_at: None,
        duplicate_of,
        shadow,
        close_reason: None,
        no_shows: 0,
        last_no_show_at: None,
        awaiting_since: None,
        progress: Progress::default(),
    };
    let mut d = Draft::new(referral, ctx);
    d.event(at, EventData::Ordered { origin: d.r.origin });
    if historical {
        d.event(ctx.now, EventData::ImportedHistory);
    } else if let Some(of) = d.r.duplicate_of.clone() {
        d.event(ctx.now, EventData::DuplicateLinked { of });
    } else if d.r.needs_coding() {
        d.event(ctx.now, EventData::NeedsCoding);
    } else if d.r.shadow && d.r.origin == Origin::PhysicianOrder {
        d.event(ctx.now, EventData::Shadowed);
    }
    d.notify_stage();
    d.finish()
}

/// Decides what an input does to an existing referral.
pub fn decide(current: &Referral, input: Input, ctx: &Context<'_>) -> Result<Decision, DecideError> {
    let mut d = Draft::new(current.clone(), ctx);
    d.r.version += 1;
    match input {
        Input::Milestone { state, at, appointment_at, channel } => d.milestone(state, at, appointment_at, channel)?,
        Input::NoShow { at } => d.no_show(at),
        Input::AppointmentCancelled { at } => {
            d.event(at, EventData::AppointmentCancelled);
            d.unschedule(at);
        }
        Input::BookingLinkOpened { at } => {
            d.event(at, EventData::BookingLinkOpened);
            d.r.progress.booking_link_opened = Some(at);
        }
        Input::PatientReplied { at } => {
            d.event(at, EventData::PatientReplied);
            d.r.progress.patient_replied = true;
            if d.r.state.is_open() {
                d.task(TaskKind::PatientReply, ctx.now.checked_add(Duration::hours(4).to_signed()).unwrap_or(ctx.now));
            }
        }
        Input::SpecialistResponded { at, accepted: false }
            if d.r.state == State::Cancelled && d.r.progress.sent_360x =>
        {
            d.event(at, EventData::CancelConfirmed);
        }
        Input::SpecialistResponded { at, accepted } => {
            d.event(at, EventData::SpecialistResponded { accepted });
            if !accepted && d.r.is_actionable() {
                d.task(
                    TaskKind::SpecialistDeclined,
                    ctx.now.checked_add(Duration::days(1).to_signed()).unwrap_or(ctx.now),
                );
            }
        }
        Input::SpecialistVerified { at } => {
            d.event(at, EventData::SpecialistVerified);
            d.request_note_again();
        }
        Input::Cancel { at, reason } => {
            if d.r.state.is_terminal() {
                return Err(DecideError::InvalidTransition { from: d.r.state, to: State::Cancelled });
            }
            d.r.state = State::Cancelled;
            d.r.close_reason = reason.clone();
            d.r.milestones.reach(State::Cancelled, at);
            d.event(at, EventData::Cancelled { reason });
            d.close_resolved_tasks();
            if d.r.progress.sent_360x {
                d.send(Channel::NoteRequest, Purpose::ReferralCancel, "1");
            }
        }
        Input::CloseIncomplete { at, reason } => {
            if reason.trim().is_empty() {
                return Err(ParseError::new("reason", "a reason is required to close a referral").into());
            }
            let reason = crate::close_reason(&reason);
            if !d.r.state.is_open() {
                return Err(DecideError::InvalidTransition { from: d.r.state, to: State::ClosedIncomplete });
            }
            d.r.state = State::ClosedIncomplete;
            d.r.close_reason = Some(reason.clone());
            d.r.milestones.reach(State::ClosedIncomplete, at);
            d.event(at, EventData::ClosedIncomplete { reason });
            d.close_resolved_tasks();
        }
        Input::OrderUpdated(update) => d.update(update),
        Input::TimerElapsed { kind, armed_version } => {
            if armed_version != current.version {
                return Err(DecideError::StaleTimer { armed: armed_version, current: current.version });
            }
            let due = timers_for(current, ctx.policy).into_iter().any(|t| t.kind == kind);
            if !due {
                return Err(DecideError::StaleTimer { armed: armed_version, current: current.version });
            }
            d.fire(kind);
        }
        Input::Delivered { channel, purpose, at } => {
            d.event(at, EventData::MessageDelivered { channel, purpose });
            if purpose == Purpose::ReferralRequest {
                d.r.progress.sent_360x = true;
            }
            if purpose == Purpose::PatientNotification {
                d.milestone(State::PatientNotified, at, None, Some(channel.as_str().to_owned()))?;
            }
        }
        Input::ContactFailed { at, reason } => {
            d.event(at, EventData::ContactFailed { reason });
            if d.r.state.is_open() {
                d.task(TaskKind::FixContact, ctx.now.checked_add(Duration::days(1).to_signed()).unwrap_or(ctx.now));
            }
        }
        Input::ContactFixed { at } => {
            d.event(at, EventData::ContactFixed);
            d.notify_again();
        }
        Input::NotSent { channel, purpose, reason } => {
            d.event(ctx.now, EventData::MessageNotSent { channel, purpose, reason });
            d.not_sent(channel, purpose);
        }
        Input::DeliveryFailed { channel, purpose, error, task } => {
            d.event(ctx.now, EventData::DeliveryFailed { channel, purpose, error });
            if purpose == Purpose::NoteRequest {
                // A person has the request now: no further rung.
                d.r.progress.note_rung = crate::referral::NOTE_RUNGS;
            }
            if d.r.state.is_open() {
                let by_channel = if channel == Channel::Sms { TaskKind::FixContact } else { TaskKind::DeliveryFailed };
                let kind = task.unwrap_or(by_channel);
                d.task(kind, ctx.now.checked_add(Duration::days(1).to_signed()).unwrap_or(ctx.now));
            }
        }
    }
    Ok(d.finish())
}

/// A decision being built.
struct Draft<'c, 'p> {
    r: Referral,
    ctx: &'c Context<'p>,
    events: Vec<Event>,
    effects: Vec<Effect>,
}

impl<'c, 'p> Draft<'c, 'p> {
    fn new(r: Referral, ctx: &'c Context<'p>) -> Self {
        Self { r, ctx, events: Vec::new(), effects: Vec::new() }
    }

    fn finish(self) -> Decision {
        let timers = timers_for(&self.r, self.ctx.policy);
        Decision { referral: self.r, events: self.events, effects: self.effects, timers }
    }

    fn event(&mut self, at: Timestamp, data: EventData) {
        self.events.push(Event { at, data });
    }

    fn windows(&self) -> &'p crate::StageWindows {
        self.ctx.policy.windows(self.r.specialty.as_ref(), self.r.urgency)
    }

    fn after(&self, at: Timestamp, d: Duration) -> Timestamp {
        at.checked_add(d.to_signed()).unwrap_or(Timestamp::MAX)
    }

    /// Opens a staff task meant for `due_at`; it falls due inside the practice's business hours.
    fn task(&mut self, kind: TaskKind, due_at: Timestamp) {
        let due_at = self.ctx.policy.task_due(due_at);
        self.effects.push(Effect::OpenTask { kind, due_at });
        self.event(self.ctx.now, EventData::TaskOpened { kind });
    }

    fn send(&mut self, channel: Channel, purpose: Purpose, key_suffix: &str) {
        let now = self.ctx.now;
        let not_before = if channel == Channel::Sms {
            self.ctx.policy.quiet_hours.next_allowed(now, self.ctx.time_zone)
        } else {
            now
        };
        if channel == Channel::Sms {
            let week_ago = self.week_ago();
            let sent = &mut self.r.progress.texts_sent;
            sent.retain(|t| *t > week_ago);
            sent.push(now);
        }
        let key = format!("{}:{}:{}:{key_suffix}", self.r.id, channel.as_str(), purpose.as_str());
        self.effects.push(Effect::Send(Outbound { channel, purpose, not_before, key }));
        self.event(now, EventData::MessageQueued { channel, purpose });
    }

    /// After the specialist's contact data was verified: the note request goes out again, under
    /// a new idempotency key, when one was due and the note has not come back.
    fn request_note_again(&mut self) {
        let p = &self.r.progress;
        if self.r.state == State::Attended && p.note_requested && self.r.network != crate::Network::InNetwork {
            self.r.progress.note_request_rounds = p.note_request_rounds.max(1) + 1;
            self.r.progress.note_requested_at = Some(self.ctx.now);
            let round = self.r.progress.note_request_rounds.to_string();
            self.send(Channel::NoteRequest, Purpose::NoteRequest, &round);
        }
    }

    fn live(&self, channel: Channel) -> bool {
        self.ctx.policy.live.is_live(channel)
    }

    /// SMS is allowed and can go out: the SMS channel is live, consent recorded, no opt-out,
    /// a valid E.164 number, and this week's texts to the patient under the limit.
    fn sms_ok(&self) -> bool {
        self.under_weekly_limit()
            && self.live(Channel::Sms)
            && self.ctx.contact.is_some_and(|c| {
                c.sms_consent && !c.sms_opted_out && c.phone.as_deref().and_then(PhoneE164::parse).is_some()
            })
    }

    /// Fewer of the workflow's texts than `Policy::texts_per_week` went to the patient in the
    /// last 7 days.
    fn under_weekly_limit(&self) -> bool {
        let (limit, week_ago) = (self.ctx.policy.texts_per_week, self.week_ago());
        limit == 0 || self.r.progress.texts_sent.iter().filter(|t| **t > week_ago).count() < limit as usize
    }

    /// Seven days before now: the weekly cap's window.
    fn week_ago(&self) -> Timestamp {
        self.ctx.now.checked_sub(jiff::SignedDuration::from_hours(7 * 24)).unwrap_or(self.ctx.now)
    }

    /// The patient consented to SMS, the channel is live, but the number cannot be used.
    fn contact_broken(&self) -> bool {
        self.live(Channel::Sms)
            && self.ctx.contact.is_some_and(|c| {
                c.sms_consent && !c.sms_opted_out && c.phone.as_deref().and_then(PhoneE164::parse).is_none()
            })
    }

    /// A message went to a channel that is off: the task a failure would open, so a person
    /// does what the message could not. None where a staff task already stands for it: the
    /// chat and EHR-task messages of a scheduling escalation go with its front-desk task, and
    /// the EHR note lookup is followed by the note request.
    fn not_sent(&mut self, channel: Channel, purpose: Purpose) {
        let soon = self.after(self.ctx.now, Duration::days(1));
        match (channel, purpose) {
            (Channel::Sms | Channel::Portal, Purpose::PatientNotification) if self.r.state == State::Ordered => {
                let deadline = self.ctx.policy.after(self.r.ordered_at, self.windows().notify).max(self.ctx.now);
                self.task(TaskKind::NotifyPatient, deadline);
            }
            (Channel::Sms, Purpose::AttendanceQuestion) if self.r.state == State::Scheduled => {
                self.r.progress.attendance_escalated_for = self.r.appointment_at;
                self.task(TaskKind::AttendanceCall, soon);
            }
            (Channel::NoteRequest, _) if self.r.state.is_open() => {
                self.task(TaskKind::DeliveryFailed, soon);
            }
            _ => {}
        }
    }

    /// The number was fixed before the patient was reached: stage 1 goes out again (a new
    /// round, its own idempotency key), or a call task where SMS is not possible.
    fn notify_again(&mut self) {
        if !self.r.is_actionable() || self.r.state != State::Ordered {
            return;
        }
        self.r.progress.contact_fixes += 1;
        let round = format!("fix{}", self.r.progress.contact_fixes);
        if self.sms_ok() {
            self.r.progress.notify_by_sms = true;
            self.send(Channel::Sms, Purpose::PatientNotification, &round);
        } else {
            let deadline = self.after(self.ctx.now, Duration::days(1));
            self.task(TaskKind::NotifyPatient, deadline);
        }
    }

    /// Stage 1: message the patient (or open a call task) once the referral can act.
    fn notify_stage(&mut self) {
        if !self.r.is_actionable() || self.r.progress.notify_done || self.r.state != State::Ordered {
            return;
        }
        self.r.progress.notify_done = true;
        let deadline = self.ctx.policy.after(self.r.ordered_at, self.windows().notify);
        if self.sms_ok() {
            self.r.progress.notify_by_sms = true;
            self.send(Channel::Sms, Purpose::PatientNotification, "1");
        } else if self.contact_broken() {
            self.task(TaskKind::FixContact, deadline);
        } else if self.ctx.policy.portal_messages && self.live(Channel::Portal) {
            self.send(Channel::Portal, Purpose::PatientNotification, "1");
        } else {
            self.task(TaskKind::NotifyPatient, deadline);
        }
    }

    fn milestone(
        &mut self,
        state: State,
        at: Timestamp,
        appointment_at: Option<Timestamp>,
        channel: Option<String>,
    ) -> Result<(), DecideError> {
        let Some(rank) = state.rank().filter(|r| *r >= 1) else {
            return Err(ParseError::new(
                "type",
                "a milestone is one of patient-notified, scheduled, attended, note-received",
            )
            .into());
        };
        if self.r.state.is_terminal() {
            self.event(at, EventData::IgnoredAfterClose { reported: state });
            return Ok(());
        }
        self.r.milestones.reach(state, at);
        if state == State::Scheduled && appointment_at.is_some() {
            self.r.appointment_at = appointment_at;
        }
        let data = match state {
            State::PatientNotified => EventData::PatientNotified { channel },
            State::Scheduled => EventData::Scheduled { appointment_at, channel },
            State::Attended => EventData::Attended,
            _ => EventData::NoteReceived,
        };
        self.event(at, data);
        if rank > self.r.state.rank().unwrap_or(0) {
            self.r.state = state;
            self.close_resolved_tasks();
        }
        Ok(())
    }

    fn no_show(&mut self, at: Timestamp) {
        self.event(at, EventData::NoShow);
        self.r.no_shows += 1;
        if self.r.state == State::Scheduled {
            self.r.last_no_show_at = Some(at);
        }
        self.unschedule(at);
    }

    /// Back from `scheduled` to awaiting scheduling; the scheduling window restarts at `at`.
    fn unschedule(&mut self, at: Timestamp) {
        if self.r.state == State::Scheduled {
            self.r.state = State::PatientNotified;
            self.r.appointment_at = None;
            self.r.awaiting_since = Some(at);
        }
    }

    fn update(&mut self, u: OrderUpdate) {
        let mut fields = Vec::new();
        if let Some(s) = u.specialty {
            fields.push("specialty".to_owned());
            self.r.specialty = Some(s);
        }
        if let Some(s) = u.specialist {
            fields.push("specialist".to_owned());
            self.r.specialist = Some(s);
        }
        if let Some(x) = u.urgency {
            fields.push("urgency".to_owned());
            self.r.urgency = x;
        }
        if let Some(n) = u.network {
            fields.push("network".to_owned());
            self.r.network = n;
        }
        self.event(self.ctx.now, EventData::OrderUpdated { fields });
        self.notify_stage();
    }

    fn close_resolved_tasks(&mut self) {
        let state = self.r.state;
        let kinds: Vec<TaskKind> = TaskKind::ALL.iter().copied().filter(|k| k.resolved_by(state)).collect();
        if !kinds.is_empty() {
            self.effects.push(Effect::CloseTasks { kinds });
        }
    }

    /// A due timer acts.
    fn fire(&mut self, kind: TimerKind) {
        let now = self.ctx.now;
        let soon = self.after(now, Duration::days(1));
        self.event(now, EventData::Escalated { stage: kind });
        match kind {
            TimerKind::NotifyDeadline => {
                self.r.progress.notify_escalated = true;
                self.task(TaskKind::NotifyPatient, soon);
            }
            TimerKind::SchedulingEscalation => {
                let base = self.r.scheduling_base();
                self.r.progress.scheduling_escalated_for = Some(base);
                let round = base.as_millisecond().to_string();
                self.task(TaskKind::ScheduleFollowUp, soon);
                self.send(Channel::Chat, Purpose::SchedulingEscalation, &round);
                self.send(Channel::EhrTask, Purpose::SchedulingEscalation, &round);
            }
            TimerKind::AttendanceCheck => {
                let appt = self.r.appointment_at.unwrap_or(now);
                self.r.progress.attendance_asked = Some((appt, now));
                if self.sms_ok() {
                    self.send(Channel::Sms, Purpose::AttendanceQuestion, &appt.as_millisecond().to_string());
                } else {
                    self.r.progress.attendance_escalated_for = Some(appt);
                    self.task(TaskKind::AttendanceCall, soon);
                }
            }
            TimerKind::AttendanceReply => {
                self.r.progress.attendance_escalated_for = self.r.appointment_at;
                self.task(TaskKind::AttendanceCall, soon);
            }
            TimerKind::NoteLook => {
                self.r.progress.note_looked = true;
                self.send(Channel::EhrQuery, Purpose::NoteLookup, "1");
            }
            TimerKind::NoteRequest => {
                self.r.progress.note_requested = true;
                self.r.progress.note_request_rounds = 1;
                self.r.progress.note_rung = 1;
                self.r.progress.note_requested_at = Some(now);
                if self.r.network == crate::Network::InNetwork {
                    self.task(TaskKind::NoteReview, soon);
                } else {
                    self.send(Channel::NoteRequest, Purpose::NoteRequest, "1");
                }
            }
            TimerKind::NoteEscalation => {
                self.r.progress.note_escalated = true;
                self.task(TaskKind::PhysicianEscalation, self.after(now, Duration::days(7)));
            }
            TimerKind::NotifyReminder => {
                self.r.progress.reminded = true;
                // Only while still unbooked and unanswered, and within the weekly limit; else
                // nothing: the scheduling escalation follows.
                if self.sms_ok() {
                    self.send(Channel::Sms, Purpose::Reminder, "1");
                }
            }
            TimerKind::NoteLadder => {
                let rung = self.r.progress.note_rung + 1;
                self.r.progress.note_rung = rung;
                self.r.progress.note_requested_at = Some(now);
                self.event(now, EventData::NoteRequestUnanswered { rung });
                self.send(Channel::NoteRequest, Purpose::NoteRequest, &format!("rung-{rung}"));
            }
        }
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
