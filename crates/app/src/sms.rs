//! The SMS channel's inbound side: delivery reports for messages we sent, and patients'
//! replies (carrier keywords, YES/NO, free text for the staff inbox).

use refloop_domain::{Input, PhoneE164, SmsReply, State, TaskKind, classify_sms};

use crate::{AppError, InboxItem, InboxStatus, NewTask, OutboxStatus, Patient, PatientKeep, new_id, service::App};

/// What an inbound SMS did; the webhook turns it into the reply (if any) to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsOutcome {
    /// Opted out; `first` is false when the patient had already opted out (no second
    /// confirmation).
    OptedOut {
        first: bool,
    },
    OptedIn,
    Help,
    /// Recorded on the referral as patient-reported (scheduled or attended).
    Recorded {
        referral_id: refloop_domain::ReferralId,
        state: State,
    },
    /// For a person to read: a `patient-reply` task when the patient has an open referral.
    ToStaff,
    /// The number belongs to several patients: not guessed, kept for review.
    Ambiguous,
    /// No patient has this number.
    Unknown,
    /// The provider sent this message before: answered already.
    Resent,
}

/// Where a YES reply lands: the channel name marks it as the patient's word, not the EHR's.
pub const PATIENT_REPORTED: &str = "sms-patient-reported";

impl App {
    /// A delivery report for an outbox item (e.g. an SMS status callback): `delivered`, or
    /// failed with `error`. Returns false when the item is unknown or already settled.
    pub async fn delivery_reported(
        &self,
        outbox_id: &str,
        delivered: bool,
        error: Option<String>,
    ) -> Result<bool, AppError> {
        let Some(item) = self.store.outbox_item(outbox_id).await? else { return Ok(false) };
        if item.status != OutboxStatus::Accepted {
            return Ok(false);
        }
        let now = self.now();
        if delivered {
            self.feed_outcome(&item, OutboxStatus::Sent, Some(now), None, None).await?;
        } else {
            let error = error.unwrap_or_else(|| "undelivered".to_owned());
            self.feed_outcome(&item, OutboxStatus::Failed, None, Some(error), None).await?;
        }
        Ok(true)
    }

    /// A patient's SMS from `from` (E.164) with provider message id `message_id`. The text is
    /// kept in the inbox (never logged).
    pub async fn sms_received(&self, from: &str, body: &str, message_id: &str) -> Result<SmsOutcome, AppError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if tx.inbox_get("sms", "provider", message_id).await?.is_some() {
            return Ok(SmsOutcome::Resent);
        }
        let patients = match PhoneE164::parse(from) {
            Some(phone) => self.store.patients_by_phone(phone.as_str()).await?,
            None => Vec::new(),
        };
        let mut referral_id = None;
        let (outcome, status, note) = match patients.as_slice() {
            [] => (SmsOutcome::Unknown, InboxStatus::Ignored, "no patient has this number".to_owned()),
            [_, _, ..] => (
                SmsOutcome::Ambiguous,
                InboxStatus::Review,
                format!("ambiguous: the number is on file for {} patients", patients.len()),
            ),
            [patient] => {
                let reply = classify_sms(body);
                let outcome = match reply {
                    SmsReply::OptOut | SmsReply::OptIn => {
                        let opt_out = reply == SmsReply::OptOut;
                        let first = patient.sms_opted_out != opt_out;
                        if first {
                            let changed = Patient {
                                sms_opted_out: opt_out,
                                sms_consent: if opt_out { patient.sms_consent } else { true },
                                updated_at: now,
                                ..patient.clone()
                            };
                            tx.upsert_patient(&changed, PatientKeep::default()).await?;
                        }
                        if opt_out { SmsOutcome::OptedOut { first } } else { SmsOutcome::OptedIn }
                    }
                    SmsReply::Help => SmsOutcome::Help,
                    SmsReply::Yes | SmsReply::No | SmsReply::Other => {
                        let open = tx.open_referrals(&patient.id, None).await?;
                        let newest = open.first();
                        referral_id = newest.map(|r| r.id.clone());
                        // YES answers the question the workflow last asked: booked?, then attended?
                        let reported = match (reply, newest.map(|r| r.state)) {
                            (SmsReply::Yes, Some(State::Ordered | State::PatientNotified)) => Some(State::Scheduled),
                            (SmsReply::Yes, Some(State::Scheduled))
                                if newest.and_then(|r| r.appointment_at).is_none_or(|at| at <= now) =>
                            {
                                Some(State::Attended)
                            }
                            _ => None,
                        };
                        match (reported, newest) {
                            (Some(state), Some(r)) => {
                                let input = Input::Milestone {
                                    state,
                                    at: now,
                                    appointment_at: None,
                                    channel: Some(PATIENT_REPORTED.into()),
                                };
                                let current = tx.lock_referral(&r.id, false).await?.unwrap_or_else(|| r.clone());
                                let d = self.decide_in(tx.as_mut(), &current, input, now).await?;
                                self.execute(tx.as_mut(), Some(current.version), d, "patient:sms", now).await?;
                                SmsOutcome::Recorded { referral_id: r.id.clone(), state }
                            }
                            (_, Some(r)) => {
                                let task = NewTask {
                                    id: new_id("tsk"),
                                    referral_id: r.id.clone(),
                                    kind: TaskKind::PatientReply,
                                    due_at: now + jiff::SignedDuration::from_hours(4),
                                    created_at: now,
                                    inbox_id: None,
                                };
                                tx.open_task(&task).await?;
                                SmsOutcome::ToStaff
                            }
                            (_, None) => SmsOutcome::ToStaff,
                        }
                    }
                };
                let status = match outcome {
                    SmsOutcome::ToStaff => InboxStatus::Review,
                    _ => InboxStatus::Applied,
                };
                (outcome, status, format!("{reply:?}").to_lowercase())
            }
        };
        let item = InboxItem {
            id: new_id("inb"),
            protocol: "sms".into(),
            source: "provider".into(),
            control_id: message_id.to_owned(),
            transport: "http".into(),
            message_type: "sms".into(),
            received_at: now,
            raw: body.as_bytes().to_vec(),
            status,
            ack: None,
            application_ack: None,
            error: Some(note),
            referral_id,
            attempts: 1,
            updated_at: now,
        };
        tx.inbox_put(&item).await?;
        tx.commit().await?;
        self.wake_workers();
        tracing::info!(inbox_id = %item.id, status = status.as_str(), "SMS received");
        Ok(outcome)
    }
}
