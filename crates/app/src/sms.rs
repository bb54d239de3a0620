//! The SMS channel's inbound side: delivery reports for messages we sent, and patients'
//! replies (carrier keywords, YES/NO, free text for the staff inbox).

use refloop_domain::{Input, PhoneE164, SmsReply, State, TaskKind};

use crate::{
    Actor, AppError, InboxItem, InboxStatus, NewTask, OutboxStatus, Patient, PatientKeep, new_id, service::App,
};

/// What an inbound SMS did; the webhook turns it into the reply (if any) to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsOutcome {
    /// Opted out; `first` is false when the patient had already opted out (no second
    /// confirmation).
    OptedOut {
        first: bool,
        /// The language to confirm in: the keyword's (`PARAR`), else the patient's.
        language: Option<String>,
    },
    OptedIn {
        language: Option<String>,
    },
    Help {
        language: Option<String>,
    },
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

/// Patients' text messages as an inbound protocol (`sms`): a reply the webhook could not place
/// (a number several patients share, a patient with no open referral) waits in review; a
/// person who files it on a referral records it there for staff to read and answer (a
/// `patient-reply` task) — never as a milestone, since nobody knows which question it answers.
pub struct SmsReplies;

impl crate::Protocol for SmsReplies {
    fn name(&self) -> &'static str {
        "sms"
    }

    fn remap(&self, _raw: &[u8], now: jiff::Timestamp) -> Result<crate::Mapped, String> {
        // The text names no referral: it stays with a person until they choose one.
        let target = crate::Target { review_unmatched: true, ..crate::Target::default() };
        Ok(crate::Mapped::Event { target, input: Input::PatientReplied { at: now } })
    }

    fn describe(&self, raw: &[u8]) -> Option<crate::Described> {
        Some(crate::Described::Text(format!("A patient's text message:\n{}", String::from_utf8_lossy(raw))))
    }
}

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
        // An `unconfirmed` item's report settles it too: the provider took it after all.
        if !matches!(item.status, OutboxStatus::Accepted | OutboxStatus::Unconfirmed) {
            return Ok(false);
        }
        let guard = crate::OutboxGuard::Status(item.status);
        let now = self.now();
        if delivered {
            self.feed_outcome(&item, guard, OutboxStatus::Sent, Some(now), None).await
        } else {
            let error = error.unwrap_or_else(|| "undelivered".to_owned());
            self.feed_outcome(&item, guard, OutboxStatus::Failed, None, Some(error)).await
        }
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
                let (reply, keyword_language) = refloop_domain::classify_sms_in(body);
                let language = keyword_language.map(str::to_owned).or_else(|| patient.language.clone());
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
                            let action = if opt_out { "sms-opt-out" } else { "sms-opt-in" };
                            let by = Actor::system("sms-reply");
                            tx.audit(&self.audit_entry(&by, action, "patient", patient.id.as_str())).await?;
                        }
                        if opt_out {
                            SmsOutcome::OptedOut { first, language }
                        } else {
                            SmsOutcome::OptedIn { language }
                        }
                    }
                    SmsReply::Help => SmsOutcome::Help { language },
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

/// One text of a referral's conversation with its patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsLine {
    pub at: jiff::Timestamp,
    /// `true`: the patient wrote it.
    pub inbound: bool,
    /// The text (outbound: as rendered from the practice's templates, or the staff reply).
    pub text: Option<String>,
    /// Outbound: the outbox status (`pending`, `accepted`, `sent`, `failed`…); inbound: `received`.
    pub status: String,
    /// Outbound: why it failed or was not sent.
    pub error: Option<String>,
}

/// The longest staff reply taken (a few SMS segments).
const REPLY_MAX: usize = 480;

impl App {
    /// A referral's SMS conversation, oldest first: what the workflow and staff sent (with
    /// its delivery status) and what the patient wrote. `texts` renders the workflow's own
    /// messages; without it (SMS off) they show without text. Audited as a read.
    pub async fn sms_thread(
        &self,
        actor: &crate::Actor,
        referral: &refloop_domain::Referral,
        texts: Option<&crate::SmsTexts>,
    ) -> Result<Vec<SmsLine>, AppError> {
        let out = self
            .store
            .outbox(&crate::OutboxFilter { referral_id: Some(referral.id.clone()), limit: 500, ..Default::default() })
            .await?;
        let mut lines: Vec<SmsLine> = out
            .iter()
            .filter(|m| m.channel == refloop_domain::Channel::Sms)
            .map(|m| SmsLine {
                at: m.sent_at.unwrap_or(m.created_at),
                inbound: false,
                text: texts.and_then(|t| t.text_of(m, Some(referral))).or_else(|| m.body.clone()),
                status: m.status.as_str().to_owned(),
                error: m.last_error.clone(),
            })
            .collect();
        for m in self.store.inbox_of_referral(&referral.id, "sms").await? {
            lines.push(SmsLine {
                at: m.received_at,
                inbound: true,
                text: Some(String::from_utf8_lossy(&m.raw).into_owned()),
                status: "received".into(),
                error: None,
            });
        }
        lines.sort_by_key(|l| l.at);
        self.store.audit(&self.audit_entry(actor, "read", "sms-thread", referral.id.as_str())).await?;
        Ok(lines)
    }

    /// A person's text to the referral's patient, through the outbox like every other send:
    /// refused without SMS consent, after an opt-out, or with no valid number; it waits for
    /// the end of quiet hours unless the practice lets replies out then and the patient texted
    /// in the last 24 hours.
    pub async fn reply_sms(
        &self,
        actor: &crate::Actor,
        referral_id: &refloop_domain::ReferralId,
        text: &str,
    ) -> Result<crate::OutboxItem, AppError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AppError::invalid("text", "write the message"));
        }
        if text.chars().count() > REPLY_MAX {
            return Err(AppError::invalid("text", format!("at most {REPLY_MAX} characters")));
        }
        if !self.policy.live.is_live(refloop_domain::Channel::Sms) {
            return Err(AppError::Conflict("SMS is off ([sms] mode = \"log\"): nothing can be texted".into()));
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let referral = tx
            .lock_referral(referral_id, false)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "referral", id: referral_id.to_string() })?;
        let patient = tx.patient(&referral.patient_id).await?;
        let Some(patient) = patient.filter(|p| p.phone.as_deref().and_then(PhoneE164::parse).is_some()) else {
            return Err(AppError::Conflict("the patient has no valid phone number on file".into()));
        };
        if patient.sms_opted_out {
            return Err(AppError::Conflict("the patient opted out of texts (replied STOP)".into()));
        }
        if !patient.sms_consent {
            return Err(AppError::Conflict("the patient has not agreed to texts".into()));
        }
        let tz = patient
            .time_zone
            .as_deref()
            .and_then(|z| jiff::tz::TimeZone::get(z).ok())
            .unwrap_or_else(|| self.policy.time_zone.clone());
        let texted_lately = self
            .store
            .inbox_of_referral(referral_id, "sms")
            .await?
            .iter()
            .any(|m| m.received_at >= now - jiff::SignedDuration::from_hours(24));
        let not_before = if self.policy.replies_in_quiet_hours && texted_lately {
            now
        } else {
            self.policy.quiet_hours.next_allowed(now, &tz)
        };
        let (channel, purpose) = (refloop_domain::Channel::Sms, refloop_domain::Purpose::StaffReply);
        // Each reply is its own message, keyed by its own id.
        let id = new_id("msg");
        let key = format!("{}:sms:staff-reply:{id}", referral.id);
        let item = crate::OutboxItem {
            id: id.clone(),
            next_attempt_at: not_before,
            body: Some(text.to_owned()),
            ..crate::OutboxItem::pending(&referral, channel, purpose, key, now)
        };
        tx.enqueue(&item).await?;
        tx.audit(&self.audit_entry(actor, "text", "patient", referral.patient_id.as_str())).await?;
        tx.commit().await?;
        self.wake_workers();
        tracing::info!(message_id = %id, referral_id = %referral.id, "staff reply queued");
        Ok(item)
    }
}
