//! What an inbound message or resource means, and applying it: one path for HL7 v2 and FHIR.
//!
//! A front door maps its input to [`Mapped`]; [`App::apply_mapped`] finds the referral it is
//! about (by referral key, else by patient and specialty), and records it inside the caller's
//! transaction. A match that is not certain opens review tasks instead of guessing.

use jiff::SignedDuration;
use refloop_domain::{Input, OrderUpdate, PatientId, ReferralId, Specialty, TaskKind};

use crate::{
    Actor, App, AppError, InboxItem, InboxStatus, NewReferral, NewTask, Patient, PatientKeep, StoreError, Tx, new_id,
};

/// Where an inbound message points: referral keys first, then patient and specialty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Referral / placer order numbers (HL7 RF1-6, ORC-2, …; FHIR ServiceRequest ids and
    /// identifiers).
    pub keys: Vec<String>,
    pub patient: Option<PatientId>,
    pub specialty: Option<Specialty>,
    /// Without a key, only a message that is about a referral (a consult note, an
    /// appointment) may be matched by patient and specialty alone.
    pub fallback_allowed: bool,
    /// A message that must reach a referral (a note sent to our Direct address): when none is
    /// found it waits in review for a person to file it, instead of being ignored or kept as a
    /// dead letter.
    pub review_unmatched: bool,
    /// The patient's name and birth date (`YYYY-MM-DD`) as the message gives them: when no key
    /// or identifier finds a referral, the open referrals of patients born that day whose name
    /// matches are offered to a person — never matched on their own.
    pub demographics: Option<(String, String)>,
}

/// The words of a name, lower-cased, for comparing `García, María` with `MARÍA GARCÍA`.
fn name_words(name: &str) -> Vec<String> {
    let mut words: Vec<String> =
        name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    words.sort();
    words.dedup();
    words
}

/// Two names are the same person's when they share two words (given and family), or are the
/// same single word.
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (name_words(a), name_words(b));
    let shared = a.iter().filter(|w| b.contains(w)).count();
    shared >= 2 || (shared == 1 && a.len() == 1 && b.len() == 1)
}

/// What an inbound message means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// A new referral order; when one of its keys is already known, an update of that one.
    Order(Box<NewReferral>),
    /// Something that happened to a referral.
    Event { target: Target, input: Input },
    /// New contact data or SMS consent of a patient.
    Contact(ContactUpdate),
    /// A referring provider's name (HL7 PRD / XCN names, FHIR Practitioner).
    Provider { id: refloop_domain::ProviderId, name: String },
    /// Understood, and nothing for referrals (e.g. a preliminary document).
    Ignore(&'static str),
}

/// A change to a patient's contact data; `None` keeps what is on file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactUpdate {
    pub patient_id: PatientId,
    pub name: Option<String>,
    pub birth_date: Option<String>,
    pub language: Option<String>,
    pub phone: Option<String>,
    pub sms_consent: Option<bool>,
}

/// The outcome of applying one inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub status: InboxStatus,
    pub referral: Option<ReferralId>,
    /// Why it was ignored, dead-lettered or sent to review.
    pub note: Option<String>,
}

impl Applied {
    pub fn new(status: InboxStatus, referral: Option<ReferralId>, note: Option<String>) -> Self {
        Self { status, referral, note }
    }
}

/// How an inbound message arrived: over what, from which address and, over HTTP, with which
/// token. The inbox keeps it as words (`mllp from 10.0.0.5`); audit rows name the sender and
/// the address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Via {
    /// `mllp`, `http` or `file`.
    pub transport: &'static str,
    pub remote: Option<String>,
    /// The API token's name (HTTP).
    pub token: Option<String>,
}

impl Via {
    pub fn mllp(remote: Option<String>) -> Self {
        Via { transport: "mllp", remote, token: None }
    }

    pub fn http(remote: Option<String>, token: &str) -> Self {
        Via { transport: "http", remote, token: Some(token.to_owned()) }
    }

    pub fn file() -> Self {
        Via { transport: "file", remote: None, token: None }
    }

    /// As the inbox keeps it.
    pub fn describe(&self) -> String {
        let mut out = self.transport.to_owned();
        if let Some(r) = &self.remote {
            out.push_str(" from ");
            out.push_str(r);
        }
        if let Some(t) = &self.token {
            out.push_str(&format!(" (token {t})"));
        }
        out
    }

    /// The actor applying message `source` (e.g. `hl7v2/inb_…`) that `sender` sent this way:
    /// over HTTP the sender is the token's name.
    pub fn actor(&self, source: &str, sender: &str) -> Actor {
        let sender = self.token.clone().unwrap_or_else(|| sender.to_owned());
        Actor::inbound(source, Some(sender), self.remote.clone())
    }
}

enum Found {
    One(ReferralId),
    /// Nothing to match, and nothing expected to: ignore.
    None(String),
    /// A key that names no referral: keep as a dead letter (the order may come later).
    Unknown(String),
    /// Several candidates, or none certain: a person decides (review tasks on the candidates).
    Ambiguous(String, Vec<ReferralId>),
}

impl App {
    /// Applies a mapped message inside `tx`, acting as `actor` (from [`Actor::inbound`]: the
    /// message, e.g. `hl7v2/inb_…`, its sender and their address). Domain refusals become
    /// inbox outcomes; only storage failures are errors.
    pub async fn apply_mapped(
        &self,
        tx: &mut dyn Tx,
        mapped: Mapped,
        inbox_id: &str,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        match mapped {
            Mapped::Ignore(why) => Ok(Applied::new(InboxStatus::Ignored, None, Some(why.to_owned()))),
            Mapped::Provider { id, name } => {
                tx.put_provider(&id, &name, self.now()).await?;
                Ok(Applied::new(InboxStatus::Applied, None, Some("referring provider's name recorded".into())))
            }
            Mapped::Contact(c) => {
                let now = self.now();
                let old = tx.patient(&c.patient_id).await?;
                let phone = c.phone.as_deref().and_then(|raw| crate::phone_on_file(raw, &self.policy.phone_region));
                let patient = Patient {
                    id: c.patient_id.clone(),
                    name: c.name.or_else(|| old.as_ref().and_then(|p| p.name.clone())),
                    birth_date: c.birth_date,
                    language: c.language,
                    phone_text: match &phone {
                        Some(p) => Some(p.text.clone()),
                        None => old.as_ref().and_then(|p| p.phone_text.clone()),
                    },
                    phone: match phone {
                        Some(p) => Some(p.phone),
                        None => old.as_ref().and_then(|p| p.phone.clone()),
                    },
                    sms_consent: c.sms_consent.unwrap_or(false),
                    sms_opted_out: false,
                    time_zone: old.as_ref().and_then(|p| p.time_zone.clone()),
                    updated_at: now,
                };
                let keep = PatientKeep { consent: c.sms_consent.is_none(), opt_out: true };
                tx.upsert_patient(&patient, keep).await?;
                tx.audit(&self.audit_entry(actor, "update", "patient", c.patient_id.as_str())).await?;
                Ok(Applied::new(InboxStatus::Applied, None, Some("patient contact updated".into())))
            }
            Mapped::Order(order) => {
                // Refused, not kept: the sender's clock (or its time zone) needs fixing.
                if order.ordered_at.is_some_and(|at| self.too_far_ahead(at, self.now())) {
                    let why = "ordered_at: further ahead of our clock than [hl7] future_tolerance allows";
                    return Ok(Applied::new(InboxStatus::Rejected, None, Some(why.into())));
                }
                for key in &order.source_ids {
                    if let Some(existing) = tx.referral_by_key(key).await? {
                        let update = Input::OrderUpdated(OrderUpdate {
                            specialty: order.specialty.clone(),
                            specialist: order.specialist.clone(),
                            urgency: Some(order.urgency),
                            network: None,
                        });
                        return self.outcome(tx, actor, &existing, update).await;
                    }
                }
                match self.create_in(tx, actor, *order, self.now()).await {
                    Ok(r) => Ok(Applied::new(InboxStatus::Applied, Some(r.id), None)),
                    Err(AppError::Store(e)) => Err(e),
                    Err(e) => Ok(Applied::new(InboxStatus::Dead, None, Some(e.to_string()))),
                }
            }
            Mapped::Event { target, input } => match find(tx, &target).await? {
                Found::One(id) => self.outcome(tx, actor, &id, input).await,
                Found::None(why) | Found::Unknown(why) if target.review_unmatched => {
                    Ok(Applied::new(InboxStatus::Review, None, Some(format!("{why}: for a person to file"))))
                }
                Found::None(why) => Ok(Applied::new(InboxStatus::Ignored, None, Some(why))),
                Found::Unknown(why) => Ok(Applied::new(InboxStatus::Dead, None, Some(why))),
                Found::Ambiguous(why, candidates) => {
                    for referral_id in candidates.iter().take(3) {
                        let task = NewTask {
                            id: new_id("tsk"),
                            referral_id: referral_id.clone(),
                            kind: TaskKind::ReviewMatch,
                            due_at: self.now() + SignedDuration::from_hours(24),
                            created_at: self.now(),
                            inbox_id: Some(inbox_id.to_owned()),
                        };
                        tx.open_task(&task).await?;
                    }
                    Ok(Applied::new(InboxStatus::Review, None, Some(why)))
                }
            },
        }
    }

    /// Records the new outcome of a dead letter or review item; once it is no longer in
    /// review its review tasks are closed (with `outcome`). Commits.
    pub async fn settle_inbox(
        &self,
        mut tx: Box<dyn Tx>,
        item: InboxItem,
        applied: Applied,
        outcome: &str,
    ) -> Result<InboxItem, AppError> {
        let now = self.now();
        if applied.status != InboxStatus::Review {
            tx.close_inbox_tasks(&item.id, now, outcome).await?;
            self.settle_documents_of(tx.as_mut(), &item.id, &applied, outcome).await?;
        }
        let updated = InboxItem {
            status: applied.status,
            error: applied.note,
            referral_id: applied.referral.or(item.referral_id.clone()),
            attempts: item.attempts + 1,
            updated_at: now,
            ..item
        };
        tx.inbox_put(&updated).await?;
        tx.commit().await?;
        self.wake_workers();
        tracing::info!(inbox_id = %updated.id, status = updated.status.as_str(), "inbound message settled");
        Ok(updated)
    }

    /// A person decided: records `input` (what the inbox item means) on `referral_id` and
    /// settles the item, closing the review tasks it opened.
    pub async fn apply_inbox_to(
        &self,
        item: InboxItem,
        referral_id: &ReferralId,
        actor: &Actor,
        input: Input,
    ) -> Result<InboxItem, AppError> {
        let mut tx = self.store().begin().await?;
        let referral = self.record_in(tx.as_mut(), actor, referral_id, input).await?;
        let outcome = format!("applied to {} by {}", referral.id, actor.source());
        let applied = Applied::new(InboxStatus::Applied, Some(referral.id), None);
        self.settle_inbox(tx, item, applied, &outcome).await
    }

    /// A person decided a dead letter or review item needs nothing (a test message, a copy
    /// of one already applied by hand): settled as ignored with the reason, its review tasks
    /// closed, nothing applied.
    pub async fn dismiss_inbox(&self, inbox_id: &str, actor: &Actor, reason: &str) -> Result<InboxItem, AppError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::invalid("reason", "say why the message needs nothing"));
        }
        if reason.chars().count() > 500 {
            return Err(AppError::invalid("reason", "at most 500 characters"));
        }
        let item = self.unsettled_inbox(inbox_id).await?;
        let mut tx = self.store().begin().await?;
        tx.audit(&self.audit_entry(actor, "dismiss", "inbound-message", inbox_id)).await?;
        let outcome = format!("dismissed by {}", actor.source());
        let applied = Applied::new(InboxStatus::Ignored, None, Some(format!("dismissed: {reason}")));
        self.settle_inbox(tx, item, applied, &outcome).await
    }

    /// A dead letter or review item, ready to be settled again.
    pub async fn unsettled_inbox(&self, inbox_id: &str) -> Result<InboxItem, AppError> {
        let item = self
            .store()
            .inbox_item(inbox_id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "inbound message", id: inbox_id.to_owned() })?;
        if !matches!(item.status, InboxStatus::Dead | InboxStatus::Review) {
            return Err(AppError::Conflict(format!(
                "message {inbox_id} is {}, not a dead letter or review item",
                item.status.as_str()
            )));
        }
        Ok(item)
    }

    async fn outcome(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        id: &ReferralId,
        input: Input,
    ) -> Result<Applied, StoreError> {
        match self.record_in(tx, actor, id, input).await {
            Ok(r) => Ok(Applied::new(InboxStatus::Applied, Some(r.id), None)),
            Err(AppError::Store(e)) => Err(e),
            Err(AppError::Conflict(why)) => Ok(Applied::new(InboxStatus::Ignored, Some(id.clone()), Some(why))),
            Err(e) => Ok(Applied::new(InboxStatus::Dead, Some(id.clone()), Some(e.to_string()))),
        }
    }
}

/// Finds the referral a message is about: by key, else by patient and specialty, else (for a
/// person to confirm) by name and birth date.
async fn find(tx: &mut dyn Tx, t: &Target) -> Result<Found, StoreError> {
    let found = find_by_key_or_patient(tx, t).await?;
    if !matches!(found, Found::One(_) | Found::Ambiguous(..))
        && t.review_unmatched
        && let Some((name, birth_date)) = &t.demographics
    {
        let mut candidates = Vec::new();
        for p in tx.patients_born(birth_date).await? {
            if p.name.as_deref().is_some_and(|n| same_name(n, name)) {
                candidates.extend(tx.open_referrals(&p.id, t.specialty.as_ref()).await?.into_iter().map(|r| r.id));
            }
        }
        if !candidates.is_empty() {
            let ids = candidates.iter().map(ReferralId::as_str).collect::<Vec<_>>().join(", ");
            return Ok(Found::Ambiguous(format!("matched by name and birth date only; candidates: {ids}"), candidates));
        }
    }
    Ok(found)
}

async fn find_by_key_or_patient(tx: &mut dyn Tx, t: &Target) -> Result<Found, StoreError> {
    for key in &t.keys {
        if let Some(id) = tx.referral_by_key(key).await? {
            return Ok(Found::One(id));
        }
        // Our own referral id (a FHIR client read the referral from us and points to it).
        if key.starts_with("ref_")
            && let Ok(id) = ReferralId::parse(key)
            && tx.lock_referral(&id, false).await?.is_some()
        {
            return Ok(Found::One(id));
        }
    }
    if !t.keys.is_empty() && !t.fallback_allowed {
        return Ok(Found::Unknown(format!("no referral has the number {}", t.keys.join(" or "))));
    }
    let Some(patient) = &t.patient else {
        return Ok(Found::Unknown("no referral number and no patient identifier to match by".into()));
    };
    let candidates = tx.open_referrals(patient, t.specialty.as_ref()).await?;
    let ids = |rs: &[refloop_domain::Referral]| rs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ");
    match (candidates.len(), &t.specialty) {
        (0, _) if t.specialty.is_none() && t.keys.is_empty() => {
            Ok(Found::None("no open referral of this patient".into()))
        }
        (0, _) => {
            let others = tx.open_referrals(patient, None).await?;
            if others.is_empty() && !t.keys.is_empty() {
                // It names a referral we do not have (yet): keep it for a retry.
                Ok(Found::Unknown(format!("no referral has the number {}", t.keys.join(" or "))))
            } else if others.is_empty() {
                Ok(Found::None("no open referral of this patient".into()))
            } else {
                Ok(Found::Ambiguous(
                    format!("the patient has open referrals ({}) but none for this specialty", ids(&others)),
                    others.into_iter().map(|r| r.id).collect(),
                ))
            }
        }
        (1, Some(_)) => Ok(Found::One(candidates[0].id.clone())),
        (_, _) => Ok(Found::Ambiguous(
            format!("matched by patient only; candidates: {}", ids(&candidates)),
            candidates.into_iter().map(|r| r.id).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::same_name;

    #[test]
    fn names_are_the_same_persons_by_their_words() {
        assert!(same_name("María García", "GARCÍA^MARÍA"));
        assert!(same_name("Myra Jones", "Jones, Myra J"));
        assert!(!same_name("Myra Jones", "Tom Jones"));
        assert!(same_name("Cher", "cher"));
        assert!(!same_name("Cher", "Cher Bono Allman"), "one word shared with a longer name is not enough");
    }
}
