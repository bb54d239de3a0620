//! Working the worklist: claiming (the next task, or many at once), reassigning to a person
//! who can sign in, and completing a task with an outcome that fits its kind. An outcome that
//! is a milestone (reached and scheduled, declined, attended, note found) goes through the one
//! write path in the same transaction as the task's change, its history line and its audit
//! row; a call that reached no one puts the task back for a later attempt.

use jiff::Timestamp;
use refloop_domain::{Input, State, TaskKind};

use crate::{Actor, App, AppError, Patient, PatientKeep, Task, TaskChange, TaskFilter, TaskLogEntry, TaskStatus};

/// What a person must give with an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// The appointment's date and time.
    Appointment,
    /// Why (a patient's reason to decline).
    Reason,
    /// The patient's correct phone number.
    Phone,
}

/// One outcome a task of some kind can end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutcomeChoice {
    pub code: &'static str,
    pub label: &'static str,
    pub needs: Needs,
}

const fn choice(code: &'static str, label: &'static str, needs: Needs) -> OutcomeChoice {
    OutcomeChoice { code, label, needs }
}

const SCHEDULED: OutcomeChoice = choice("scheduled", "Reached: scheduled (enter the date)", Needs::Appointment);
const WILL_BOOK: OutcomeChoice = choice("will-book", "Reached: will book themselves", Needs::Nothing);
const DECLINED: OutcomeChoice = choice("declined", "Reached: declined (enter the reason)", Needs::Reason);
const VOICEMAIL: OutcomeChoice = choice("voicemail", "Left a voicemail (try again later)", Needs::Nothing);
const NO_ANSWER: OutcomeChoice = choice("no-answer", "No answer (try again later)", Needs::Nothing);
const WRONG_NUMBER: OutcomeChoice = choice("wrong-number", "Wrong number (fix the contact)", Needs::Nothing);
const ATTENDED: OutcomeChoice = choice("attended", "Reached: attended the visit", Needs::Nothing);
const NO_SHOW: OutcomeChoice = choice("no-show", "Reached: did not attend (no-show)", Needs::Nothing);
const PHONE_FIXED: OutcomeChoice =
    choice("phone-fixed", "Number fixed (enter it; the text goes out again)", Needs::Phone);
const NOTE_FOUND: OutcomeChoice = choice("note-found", "Found the consult note", Needs::Nothing);
const DONE: OutcomeChoice = choice("done", "Done", Needs::Nothing);

/// The outcomes a task of `kind` can be completed with, the usual one first. A review task
/// has none: it is settled through its inbound message (apply, retry or dismiss).
pub fn outcomes_for(kind: TaskKind) -> &'static [OutcomeChoice] {
    match kind {
        TaskKind::NotifyPatient => &[SCHEDULED, WILL_BOOK, DECLINED, VOICEMAIL, NO_ANSWER, WRONG_NUMBER],
        TaskKind::ScheduleFollowUp => &[SCHEDULED, DECLINED, VOICEMAIL, NO_ANSWER, WRONG_NUMBER],
        TaskKind::AttendanceCall => &[ATTENDED, NO_SHOW, VOICEMAIL, NO_ANSWER, WRONG_NUMBER],
        TaskKind::FixContact => &[PHONE_FIXED, DONE],
        TaskKind::ConfirmDelivery => &[DONE, NO_ANSWER, WRONG_NUMBER],
        TaskKind::PatientReply => &[DONE, SCHEDULED, DECLINED],
        TaskKind::NoteReview => &[NOTE_FOUND, DONE],
        TaskKind::ReviewMatch => &[],
        TaskKind::PhysicianEscalation
        | TaskKind::DeliveryFailed
        | TaskKind::SpecialistDeclined
        | TaskKind::VerifySpecialist
        | TaskKind::RecordsRequest => &[DONE],
    }
}

/// What a person reports when completing a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskReport {
    /// One of [`outcomes_for`] the task's kind.
    pub outcome: String,
    pub note: Option<String>,
    pub appointment_at: Option<Timestamp>,
    pub reason: Option<String>,
    pub phone: Option<String>,
}

impl App {
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, AppError> {
        Ok(self.store.tasks(filter).await?)
    }

    /// Claims task `id` for `assignee` (the actor when none).
    pub async fn claim_task(&self, actor: &Actor, id: &str, assignee: Option<&str>) -> Result<Task, AppError> {
        let who = assignee.unwrap_or(&actor.name).to_owned();
        self.change_task(actor, id, TaskChange::Claim { assignee: who, reassign: false }, "claimed", None).await
    }

    /// Claims the open task that has been due longest; `None` when nothing is open.
    pub async fn claim_next(&self, actor: &Actor) -> Result<Option<Task>, AppError> {
        for _ in 0..8 {
            let open = TaskFilter { status: Some(TaskStatus::Open), limit: 20, ..TaskFilter::default() };
            let candidates: Vec<Task> =
                self.store.tasks(&open).await?.into_iter().filter(|t| t.kind != TaskKind::ReviewMatch).collect();
            let Some(first) = candidates.first() else { return Ok(None) };
            match self.claim_task(actor, &first.id, None).await {
                Ok(t) => return Ok(Some(t)),
                // Someone else took it first: the next one.
                Err(AppError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(AppError::Conflict("every task tried was claimed by someone else first; try again".into()))
    }

    /// Gives an open or claimed task to another person, who must exist and be enabled.
    pub async fn reassign_task(&self, actor: &Actor, id: &str, assignee: &str) -> Result<Task, AppError> {
        let assignee = assignee.trim();
        match self.store.user(assignee).await? {
            Some(u) if !u.disabled => {}
            _ => return Err(AppError::invalid("assignee", "choose a person who can sign in (an enabled user)")),
        }
        let change = TaskChange::Claim { assignee: assignee.to_owned(), reassign: true };
        self.change_task(actor, id, change, "reassigned", None).await
    }

    /// Completes a task with a free-text outcome (the API's plain `complete`): one of the
    /// kind's outcomes that needs nothing more, else `done` with the text kept as the note.
    /// A review task is settled through its message instead.
    pub async fn complete_task(&self, actor: &Actor, id: &str, outcome: Option<&str>) -> Result<Task, AppError> {
        let text = outcome.map(str::trim).filter(|o| !o.is_empty());
        let task = self.store.task(id).await?.ok_or_else(|| AppError::NotFound { what: "task", id: id.to_owned() })?;
        let listed = text.filter(|o| outcomes_for(task.kind).iter().any(|c| c.code == *o && c.needs == Needs::Nothing));
        let report = match listed {
            Some(code) => TaskReport { outcome: code.to_owned(), ..TaskReport::default() },
            None => {
                TaskReport { outcome: DONE.code.to_owned(), note: text.map(str::to_owned), ..TaskReport::default() }
            }
        };
        self.report_task(actor, id, report).await
    }

    /// Completes task `id` with `report`, or puts it back for a later call (no answer,
    /// voicemail): the task's change, its history, its audit row and the milestone the outcome
    /// is commit together.
    pub async fn report_task(&self, actor: &Actor, id: &str, report: TaskReport) -> Result<Task, AppError> {
        let task = self.store.task(id).await?.ok_or_else(|| AppError::NotFound { what: "task", id: id.to_owned() })?;
        let choices = outcomes_for(task.kind);
        // Any task but a review task may be closed as plainly done (the API's `complete`).
        let plain = (!choices.is_empty() && report.outcome == DONE.code).then_some(&DONE);
        let Some(choice) = choices.iter().find(|c| c.code == report.outcome).or(plain) else {
            if choices.is_empty() {
                return Err(no_plain_outcome(task.kind));
            }
            let codes: Vec<&str> = choices.iter().map(|c| c.code).collect();
            return Err(AppError::invalid("outcome", format!("one of {}", codes.join(", "))));
        };
        let now = self.now();
        let note = report.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
            return Err(AppError::invalid("note", "at most 2,000 characters"));
        }
        let input = match choice.code {
            "scheduled" => {
                let Some(appointment_at) = report.appointment_at else {
                    return Err(AppError::invalid("appointment_at", "enter the appointment's date and time"));
                };
                let channel = Some("staff-call".to_owned());
                Some(Input::Milestone {
                    state: State::Scheduled,
                    at: now,
                    appointment_at: Some(appointment_at),
                    channel,
                })
            }
            "will-book" => Some(Input::Milestone {
                state: State::PatientNotified,
                at: now,
                appointment_at: None,
                channel: Some("staff-call".into()),
            }),
            "declined" => {
                let reason = report.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
                let Some(reason) = reason else {
                    return Err(AppError::invalid("reason", "say why the patient declined"));
                };
                Some(Input::CloseIncomplete { at: now, reason: format!("patient declined: {reason}") })
            }
            "attended" => {
                Some(Input::Milestone { state: State::Attended, at: now, appointment_at: None, channel: None })
            }
            "no-show" => Some(Input::NoShow { at: now }),
            "wrong-number" => Some(Input::ContactFailed { at: now, reason: "wrong number (staff call)".into() }),
            "phone-fixed" => Some(Input::ContactFixed { at: now }),
            "note-found" => {
                Some(Input::Milestone { state: State::NoteReceived, at: now, appointment_at: None, channel: None })
            }
            _ if task.kind == TaskKind::VerifySpecialist => Some(Input::SpecialistVerified { at: now }),
            _ => None,
        };
        let phone = match choice.needs {
            Needs::Phone => {
                let raw = report.phone.as_deref().map(str::trim).unwrap_or_default();
                let Some(p) = crate::textable(raw, &self.policy.phone_region) else {
                    return Err(AppError::invalid(
                        "phone",
                        "a mobile number that can take a text, e.g. (937) 555-0101 or +15555550123",
                    ));
                };
                Some(p.as_str().to_owned())
            }
            _ => None,
        };
        let retry = matches!(choice.code, "voicemail" | "no-answer");
        let change = if retry {
            let due_at = self.policy.call_retry.next(now, &self.policy.calendar, &self.policy.time_zone);
            TaskChange::Retry { outcome: choice.code.to_owned(), note: note.clone(), due_at }
        } else {
            TaskChange::Complete {
                by: actor.name.clone(),
                outcome: choice.code.to_owned(),
                note: note.clone(),
                at: now,
            }
        };
        let not_found = || AppError::NotFound { what: "referral", id: task.referral_id.to_string() };
        // The patient's row is locked before the referral's (the lock order, ARCHITECTURE.md):
        // the referral is read first to learn whose it is.
        let patient_id = match phone {
            Some(_) => Some(self.store.referral(&task.referral_id).await?.ok_or_else(not_found)?.patient_id),
            None => None,
        };
        let mut tx = self.store.begin().await?;
        if let (Some(phone), Some(patient_id)) = (phone, patient_id) {
            let old = tx.lock_patient(&patient_id).await?;
            let fixed = Patient {
                phone_text: Some(phone.clone()),
                phone: Some(phone),
                updated_at: now,
                ..old.unwrap_or_else(|| Patient {
                    id: patient_id.clone(),
                    name: None,
                    birth_date: None,
                    language: None,
                    phone: None,
                    phone_text: None,
                    sms_consent: false,
                    sms_opted_out: false,
                    time_zone: None,
                    updated_at: now,
                })
            };
            tx.upsert_patient(&fixed, PatientKeep { consent: true, opt_out: true }).await?;
            let referral = tx.lock_referral(&task.referral_id, false).await?.ok_or_else(not_found)?;
            if referral.patient_id != patient_id {
                return Err(AppError::Conflict("the referral's patient changed meanwhile; try again".into()));
            }
            tx.audit(&self.audit_entry(actor, "update", "patient", patient_id.as_str())).await?;
        }
        let Some(changed) = tx.change_task(id, &change).await? else {
            return Err(self.task_conflict(id, "completed").await);
        };
        let action = if retry { "retry" } else { "completed" };
        tx.log_task(&self.task_log_entry(actor, &changed, action, None, Some(choice.code), note)).await?;
        tx.audit(&self.audit_entry(actor, if retry { "retry" } else { "complete" }, "task", id)).await?;
        if let Some(input) = input {
            self.record_in(tx.as_mut(), actor, &task.referral_id, input).await?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        tracing::info!(task_id = id, referral_id = %task.referral_id, outcome = choice.code, "task reported");
        Ok(changed)
    }

    async fn change_task(
        &self,
        actor: &Actor,
        id: &str,
        change: TaskChange,
        action: &str,
        note: Option<String>,
    ) -> Result<Task, AppError> {
        let mut tx = self.store.begin().await?;
        let Some(t) = tx.change_task(id, &change).await? else {
            return Err(self.task_conflict(id, "claimed").await);
        };
        tx.log_task(&self.task_log_entry(actor, &t, action, t.assignee.clone(), None, note)).await?;
        let verb = if action == "reassigned" { "reassign" } else { "claim" };
        tx.audit(&self.audit_entry(actor, verb, "task", id)).await?;
        tx.commit().await?;
        Ok(t)
    }

    fn task_log_entry(
        &self,
        actor: &Actor,
        t: &Task,
        action: &str,
        assignee: Option<String>,
        outcome: Option<&str>,
        note: Option<String>,
    ) -> TaskLogEntry {
        TaskLogEntry {
            task_id: t.id.clone(),
            referral_id: t.referral_id.clone(),
            at: self.now(),
            actor: actor.source(),
            action: action.to_owned(),
            assignee,
            outcome: outcome.map(str::to_owned),
            note,
        }
    }
}

fn no_plain_outcome(kind: TaskKind) -> AppError {
    if kind == TaskKind::ReviewMatch {
        AppError::Conflict(
            "a review task is settled through its message: apply it to a referral, retry it, or dismiss it".into(),
        )
    } else {
        let codes: Vec<&str> = outcomes_for(kind).iter().map(|c| c.code).collect();
        AppError::invalid("outcome", format!("one of {}", codes.join(", ")))
    }
}
