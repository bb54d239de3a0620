//! One way in: every inbound protocol (HL7 v2, FHIR, …) behind one trait, registered once on
//! the [`App`]. A front door stores what arrives in the inbox and applies it; later, a dead
//! letter or review item is read again, applied again or applied to a referral a person
//! chose, and shown in the message browser — all through the protocol it came in by, looked
//! up by the name the inbox keeps. A protocol nobody registered cannot be applied again: an
//! error says so, never a guess.

use std::{collections::BTreeMap, sync::Arc};

use jiff::Timestamp;
use refloop_domain::ReferralId;

use crate::{Actor, App, AppError, InboxItem, InboxStatus, Mapped};

/// One field of a stored message as the message browser shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldView {
    /// `PID-5`
    pub position: String,
    pub name: &'static str,
    pub value: String,
}

/// A segment (or part) of a stored message with its non-empty fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentView {
    pub id: String,
    pub fields: Vec<FieldView>,
}

/// A stored message as the message browser shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Described {
    /// Part by part, each field with its position and name (HL7 v2 segments).
    Segments(Vec<SegmentView>),
    /// Indented text (a FHIR resource's JSON).
    Text(String),
}

/// An inbound protocol: what a stored message means, and how to show it.
pub trait Protocol: Send + Sync {
    /// The name the inbox keeps (`hl7v2`, `fhir`).
    fn name(&self) -> &'static str;
    /// What a stored message means with today's configuration, or why it cannot be applied.
    fn remap(&self, raw: &[u8], now: Timestamp) -> Result<Mapped, String>;
    /// The message for the browser; `None` when it does not parse.
    fn describe(&self, raw: &[u8]) -> Option<Described>;
    /// The documents a message carries, to keep beside it (a Direct message's C-CDA and PDF
    /// parts, a fax); none by default.
    fn documents(&self, _raw: &[u8]) -> Vec<crate::documents::DocumentPart> {
        Vec::new()
    }
}

/// The registered protocols, by name.
#[derive(Clone, Default)]
pub(crate) struct Protocols(BTreeMap<&'static str, Arc<dyn Protocol>>);

impl Protocols {
    pub(crate) fn add(&mut self, p: Arc<dyn Protocol>) {
        self.0.insert(p.name(), p);
    }
}

impl App {
    /// Registers an inbound protocol (once, at the composition root).
    pub fn with_protocol(mut self, protocol: Arc<dyn Protocol>) -> Self {
        Arc::make_mut(&mut self.protocols).add(protocol);
        self
    }

    fn protocol(&self, name: &str) -> Option<&Arc<dyn Protocol>> {
        self.protocols.0.get(name)
    }

    fn protocol_of(&self, item: &InboxItem) -> Result<&Arc<dyn Protocol>, AppError> {
        self.protocol(&item.protocol).ok_or_else(|| {
            AppError::Conflict(format!(
                "message {} came in by {}, which cannot be applied again",
                item.id, item.protocol
            ))
        })
    }

    /// What a stored message means now, through its protocol.
    fn remap_inbox(&self, item: &InboxItem) -> Result<Result<Mapped, String>, AppError> {
        Ok(self.protocol_of(item)?.remap(&item.raw, self.now()))
    }

    /// A stored message for the message browser, through its protocol (`None`: shown as text).
    pub fn describe_inbox(&self, item: &InboxItem) -> Option<Described> {
        self.protocol(&item.protocol)?.describe(&item.raw)
    }

    /// Applies a dead letter or review item again (after a fix of config or data), as its
    /// sender sent it (the address is not kept).
    pub async fn retry_inbox(&self, inbox_id: &str) -> Result<InboxItem, AppError> {
        let item = self.unsettled_inbox(inbox_id).await?;
        let mapped = self.remap_inbox(&item)?;
        let mut tx = self.store().begin().await?;
        let applied = match mapped {
            Err(why) => crate::Applied::new(InboxStatus::Dead, None, Some(why)),
            Ok(mapped) => {
                let actor = Actor::inbound(&format!("{}/{}", item.protocol, item.id), Some(item.source.clone()), None);
                self.apply_mapped(tx.as_mut(), mapped, &item.id, &actor).await?
            }
        };
        let outcome = format!("resolved by a retry: {}", applied.status.as_str());
        self.settle_inbox(tx, item, applied, &outcome).await
    }

    /// A person decided: applies a review item or dead letter to `referral_id` and closes the
    /// review tasks it opened. Only a message about an existing referral can be.
    pub async fn apply_inbox_item_to(
        &self,
        inbox_id: &str,
        referral_id: &ReferralId,
        actor: &Actor,
    ) -> Result<InboxItem, AppError> {
        let item = self.unsettled_inbox(inbox_id).await?;
        let input = match self.remap_inbox(&item)? {
            Ok(Mapped::Event { input, .. }) => input,
            Ok(_) => return Err(AppError::Conflict(format!("message {inbox_id} is not about an existing referral"))),
            Err(why) => return Err(AppError::Conflict(why)),
        };
        self.apply_inbox_to(item, referral_id, actor, input).await
    }
}

/// A message that arrived by a protocol without a front door of its own (the Direct mailbox,
/// …): who sent it, its own id, its kind, and the bytes as they came.
#[derive(Clone, Copy, Debug)]
pub struct Arrival<'a> {
    pub source: &'a str,
    pub control_id: &'a str,
    pub message_type: &'a str,
    pub raw: &'a [u8],
}

impl App {
    /// The message kept already under this protocol, sender and id, if any (to answer a
    /// resend without fetching its content again).
    pub async fn kept(&self, protocol: &str, source: &str, control_id: &str) -> Result<Option<InboxItem>, AppError> {
        Ok(self.store().inbox_by_key(protocol, source, control_id).await?)
    }

    /// Keeps a message in the inbox and applies it through `protocol`, in one transaction: it
    /// is kept before anyone is told it arrived, and a message kept already (the same protocol,
    /// sender and id) is answered with that one and applies nothing (`false`). One that cannot
    /// be read is kept as a dead letter for a person.
    pub async fn receive(
        &self,
        protocol: &str,
        arrival: Arrival<'_>,
        via: &crate::Via,
    ) -> Result<(InboxItem, bool), AppError> {
        let p = self
            .protocol(protocol)
            .ok_or_else(|| AppError::Conflict(format!("no inbound protocol {protocol} is registered")))?
            .clone();
        let mut tx = self.store().begin().await?;
        if let Some(kept) = tx.inbox_get(protocol, arrival.source, arrival.control_id).await? {
            return Ok((kept, false));
        }
        let (id, now) = (crate::new_id("inb"), self.now());
        let applied = match p.remap(arrival.raw, now) {
            Err(why) => crate::Applied::new(InboxStatus::Dead, None, Some(why)),
            Ok(mapped) => {
                let actor = via.actor(&format!("{protocol}/{id}"), arrival.source);
                self.apply_mapped(tx.as_mut(), mapped, &id, &actor).await?
            }
        };
        self.keep_documents(tx.as_mut(), protocol, &id, &p.documents(arrival.raw), &applied).await?;
        let item = InboxItem {
            id,
            protocol: protocol.to_owned(),
            source: arrival.source.to_owned(),
            control_id: arrival.control_id.to_owned(),
            transport: via.describe(),
            message_type: arrival.message_type.to_owned(),
            received_at: now,
            raw: arrival.raw.to_vec(),
            status: applied.status,
            ack: None,
            application_ack: None,
            error: applied.note,
            referral_id: applied.referral,
            attempts: 1,
            updated_at: now,
        };
        tx.inbox_put(&item).await?;
        tx.commit().await?;
        self.wake_workers();
        tracing::info!(inbox_id = %item.id, protocol, status = item.status.as_str(), "inbound message kept");
        Ok((item, true))
    }
}
