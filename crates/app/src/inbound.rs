//! What an inbound message or resource means, and applying it: one path for HL7 v2 and FHIR.
//!
//! A front door maps its input to [`Mapped`]; [`App::apply_mapped`] finds the referral it is
//! about (by referral key, else by patient and specialty), and records it inside the caller's
//! transaction. A match that is not certain opens review tasks instead of guessing.

use jiff::SignedDuration;
use refloop_domain::{Input, OrderUpdate, PatientId, ReferralId, Specialty, TaskKind};

use crate::{Actor, App, AppError, InboxStatus, NewReferral, NewTask, StoreError, Tx, new_id};

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
}

/// What an inbound message means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// A new referral order; when one of its keys is already known, an update of that one.
    Order(Box<NewReferral>),
    /// Something that happened to a referral.
    Event { target: Target, input: Input },
    /// Understood, and nothing for referrals (e.g. a preliminary document).
    Ignore(&'static str),
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
    /// Applies a mapped message inside `tx`, acting as `source` (e.g. `hl7v2/inb_…`). Domain
    /// refusals become inbox outcomes; only storage failures are errors.
    pub async fn apply_mapped(
        &self,
        tx: &mut dyn Tx,
        mapped: Mapped,
        inbox_id: &str,
        source: &str,
    ) -> Result<Applied, StoreError> {
        let actor = Actor::system(source);
        match mapped {
            Mapped::Ignore(why) => Ok(Applied::new(InboxStatus::Ignored, None, Some(why.to_owned()))),
            Mapped::Order(order) => {
                for key in &order.source_ids {
                    if let Some(existing) = tx.referral_by_key(key).await? {
                        let update = Input::OrderUpdated(OrderUpdate {
                            specialty: order.specialty.clone(),
                            specialist: order.specialist.clone(),
                            urgency: Some(order.urgency),
                            network: None,
                        });
                        return self.outcome(tx, &actor, &existing, update).await;
                    }
                }
                match self.create_in(tx, &actor, *order, self.now()).await {
                    Ok(r) => Ok(Applied::new(InboxStatus::Applied, Some(r.id), None)),
                    Err(AppError::Store(e)) => Err(e),
                    Err(e) => Ok(Applied::new(InboxStatus::Dead, None, Some(e.to_string()))),
                }
            }
            Mapped::Event { target, input } => match find(tx, &target).await? {
                Found::One(id) => self.outcome(tx, &actor, &id, input).await,
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

/// Finds the referral a message is about: by key, else by patient and specialty.
async fn find(tx: &mut dyn Tx, t: &Target) -> Result<Found, StoreError> {
    for key in &t.keys {
        if let Some(id) = tx.referral_by_key(key).await? {
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
            if others.is_empty() {
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
