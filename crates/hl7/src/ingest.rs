//! The HL7 front door: store the raw message, apply what it means, answer with an ACK —
//! all in one transaction, so an AA always means "stored", and a resent message (same
//! sender, same MSH-10) gets the same answer without being applied twice.

use std::{collections::HashMap, sync::Arc};

use jiff::Timestamp;
use refloop_app::{Actor, App, Described, InboxItem, InboxStatus, Mapped, Protocol, StoreError, Tx, Via, new_id};
use refloop_domain::{PatientId, ReferralId};
use tokio::sync::{mpsc, oneshot};

use crate::{
    ack::{AckCode, AckError, ErrorCode, build_ack},
    map::{MapConfig, MapError, check_header, map},
    message::{Message, parse},
    senders::{Origin, Senders},
};

/// The answer to one inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The ACK to send back; `None` when none is due (an ACK, or enhanced mode says so).
    /// In enhanced mode this is the accept acknowledgement (CA/CE/CR).
    pub ack: Option<Vec<u8>>,
    /// Enhanced mode: the application acknowledgement (AA/AE/AR) due after the accept one,
    /// per MSH-16.
    pub application_ack: Option<Vec<u8>>,
    /// MSA-1 of the ACK (also when it is not sent).
    pub code: AckCode,
    pub status: InboxStatus,
    /// The inbox row.
    pub inbox_id: String,
    /// This was a resend of a message already answered.
    pub duplicate: bool,
}

/// Receives HL7 v2 messages for an [`App`].
#[derive(Clone)]
pub struct Ingest {
    app: App,
    cfg: MapConfig,
    /// Who may send (anyone, unless [`Ingest::with_senders`] says otherwise).
    senders: Senders,
    /// The group-commit writer, when started.
    queue: Option<mpsc::Sender<Job>>,
}

/// A message waiting for the group-commit writer.
struct Job {
    raw: Vec<u8>,
    via: Via,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
}

/// The outcome of applying one message inside a transaction.
struct Applied {
    status: InboxStatus,
    code: AckCode,
    error: Option<AckError>,
    note: Option<String>,
    referral: Option<ReferralId>,
}

impl Applied {
    fn ok(status: InboxStatus, referral: Option<ReferralId>, note: Option<String>) -> Self {
        Self { status, code: AckCode::AA, error: None, note, referral }
    }
}

/// How many times a group-commit writer yields to let more messages join a commit.
const LINGER_ROUNDS: usize = 8;

fn ack_id() -> String {
    new_id("A").chars().take(20).collect()
}

impl Ingest {
    pub fn new(app: App, cfg: MapConfig) -> Self {
        Self { app, cfg, senders: Senders::anyone(), queue: None }
    }

    /// Only `senders` may send; a message from anyone else gets AR (see [`Ingest::refuse_unknown`]).
    pub fn with_senders(mut self, senders: Senders) -> Self {
        self.senders = senders;
        self
    }

    /// The AR for a message from a sender that is not known (ERR code 207, "unknown sender"),
    /// or `None` when its sender is known. Nothing is stored either way; the refusal is
    /// counted and logged with where it came from (addresses and MSH-3/MSH-4, never content).
    pub fn refuse_unknown(&self, raw: &[u8], origin: Origin<'_>) -> Option<Vec<u8>> {
        if self.senders.allows_anyone() {
            return None; // nothing to check: no second parse on the hot path
        }
        let m = parse(raw).ok();
        let msh = |n| m.as_ref().and_then(|m| m.msh().get(n, 1)).unwrap_or_default().to_owned();
        let (app, facility) = (msh(3), msh(4));
        if self.senders.identify(&app, &facility, origin).is_some() {
            return None;
        }
        let (transport, from) = match origin {
            Origin::Mllp(ip, subject) => ("mllp", subject.map_or(ip.to_string(), |s| format!("{ip} ({s})"))),
            Origin::Http(token) => ("http", format!("token {token}")),
        };
        metrics::counter!("refloop_hl7_unknown_sender_total", "transport" => transport).increment(1);
        tracing::warn!(%transport, %from, msh3 = %app, msh4 = %facility, "HL7 message from an unknown sender refused; nothing kept");
        let err = AckError::new(ErrorCode::InternalError, "unknown sender");
        let ack = match &m {
            Some(m) => build_ack(Ok(m), AckCode::AR, Some(&err), &ack_id(), &self.timestamp(self.app.now())),
            None => build_ack(Err(raw), AckCode::AR, Some(&err), &ack_id(), &self.timestamp(self.app.now())),
        };
        Some(ack.into_bytes())
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    fn timestamp(&self, now: Timestamp) -> String {
        now.to_zoned_datetime(self.cfg.time_zone.clone()).strftime("%Y%m%d%H%M%S%z").to_string()
    }

    /// Takes one message (the bytes inside an MLLP frame, an HTTP body or a file entry)
    /// in a transaction of its own — or, after [`Ingest::with_group_commit`], in one shared
    /// with the messages that arrive while the previous commit is in flight.
    /// An error means nothing was stored: answer AR and let the sender try again.
    pub async fn receive(&self, raw: &[u8], via: &Via) -> Result<Reply, StoreError> {
        if let Some(queue) = &self.queue {
            let (reply, answer) = oneshot::channel();
            let job = Job { raw: raw.to_vec(), via: via.clone(), reply };
            if queue.send(job).await.is_ok()
                && let Ok(result) = answer.await
            {
                return result;
            }
        }
        self.receive_alone(raw, via).await
    }

    /// One message, one transaction. A concurrent copy of the same message (another
    /// process stored it first) is answered as a resend.
    async fn receive_alone(&self, raw: &[u8], via: &Via) -> Result<Reply, StoreError> {
        for _ in 0..2 {
            let mut tx = self.app.store().begin().await?;
            let handled = match self.handle(tx.as_mut(), raw, via, &mut HashMap::new()).await {
                Ok(reply) => tx.commit().await.map(|()| reply),
                Err(e) => Err(e),
            };
            match handled {
                Ok(reply) => {
                    self.app.wake_workers();
                    return Ok(reply);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict("the same message keeps arriving concurrently".into()))
    }

    /// Several messages in one transaction (one durable commit). If any of them fails at
    /// the storage level, each is taken again on its own.
    pub async fn receive_many(&self, messages: &[(Vec<u8>, Via)]) -> Vec<Result<Reply, StoreError>> {
        let together = async {
            let mut tx = self.app.store().begin().await?;
            let (ids, keys, patients) = self.lookups(messages);
            tx.prefetch(Hl7Protocol::NAME, &ids, &keys, &patients).await?;
            let mut seen = HashMap::new();
            let mut replies = Vec::with_capacity(messages.len());
            for (raw, via) in messages {
                replies.push(self.handle(tx.as_mut(), raw, via, &mut seen).await?);
            }
            tx.commit().await?;
            Ok::<_, StoreError>(replies)
        };
        match together.await {
            Ok(replies) => {
                self.app.wake_workers();
                replies.into_iter().map(Ok).collect()
            }
            Err(e) => {
                tracing::debug!(error = %e, messages = messages.len(), "group commit failed; one by one");
                let mut out = Vec::with_capacity(messages.len());
                for (raw, via) in messages {
                    out.push(self.receive_alone(raw, via).await);
                }
                out
            }
        }
    }

    /// What a batch will look up: each message's (sender, control id) and referral keys.
    #[allow(clippy::type_complexity)]
    fn lookups(&self, messages: &[(Vec<u8>, Via)]) -> (Vec<(String, String)>, Vec<String>, Vec<PatientId>) {
        let now = self.app.now();
        let (mut ids, mut keys, mut patients) = (Vec::new(), Vec::new(), Vec::new());
        for (raw, _) in messages {
            let Ok(m) = parse(raw) else { continue };
            if let Some(control) = m.control_id() {
                ids.push((source_of(&m), control.to_owned()));
            }
            match map(&m, &self.cfg, now) {
                Ok(Mapped::Order(order)) => {
                    keys.extend(order.source_ids.iter().cloned());
                    patients.push(order.patient_id.clone());
                }
                Ok(Mapped::Event { target, .. }) => keys.extend(target.keys.iter().cloned()),
                _ => {}
            }
        }
        (ids, keys, patients)
    }

    /// Commits concurrent messages together: a writer takes every message that arrived while
    /// the previous commit was being made durable and commits them at once. SQLite has one
    /// writer; on PostgreSQL several writers run their transactions side by side.
    pub fn with_group_commit(mut self, max_batch: usize) -> Self {
        let writers = if self.app.store().backend() == "postgres" { 4 } else { 1 };
        let (queue, jobs) = mpsc::channel::<Job>(max_batch * 4);
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..writers {
            let worker = Ingest { queue: None, ..self.clone() };
            let jobs = jobs.clone();
            tokio::spawn(async move {
                loop {
                    let mut batch = {
                        let mut jobs = jobs.lock().await;
                        let Some(first) = jobs.recv().await else { return };
                        let mut batch = vec![first];
                        // Take what is queued; then let the connections run a few times so
                        // messages already on their way join this commit instead of waiting
                        // a whole commit for the next one.
                        for _ in 0..LINGER_ROUNDS {
                            while batch.len() < max_batch {
                                match jobs.try_recv() {
                                    Ok(job) => batch.push(job),
                                    Err(_) => break,
                                }
                            }
                            if batch.len() >= max_batch {
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                        batch
                    };
                    let messages: Vec<(Vec<u8>, Via)> =
                        batch.iter_mut().map(|j| (std::mem::take(&mut j.raw), std::mem::take(&mut j.via))).collect();
                    let results = worker.receive_many(&messages).await;
                    for (job, result) in batch.into_iter().zip(results) {
                        let _ = job.reply.send(result);
                    }
                }
            });
        }
        self.queue = Some(queue);
        self
    }

    /// Handles one message inside `tx`: everything but the commit. `seen` answers a copy
    /// of a message already handled in the same transaction.
    async fn handle(
        &self,
        tx: &mut dyn Tx,
        raw: &[u8],
        via: &Via,
        seen: &mut HashMap<(String, String), Reply>,
    ) -> Result<Reply, StoreError> {
        let now = self.app.now();
        let id = new_id("inb");
        let transport = via.describe();
        let transport = transport.as_str();
        let m = match parse(raw) {
            Ok(m) => m,
            Err(e) => {
                let err = AckError::new(ErrorCode::SegmentSequence, e.to_string());
                let ack = build_ack(Err(raw), AckCode::AR, Some(&err), &ack_id(), &self.timestamp(now));
                let item = InboxItem {
                    status: InboxStatus::Rejected,
                    ack: Some(ack.clone().into_bytes()),
                    error: Some(e.to_string()),
                    ..self.item(&id, "unparsed", &id, transport, "?", raw, now)
                };
                tx.inbox_put(&item).await?;
                metrics::counter!("refloop_hl7_messages_total", "type" => "unparsed", "status" => "rejected", "ack" => "AR")
                    .increment(1);
                tracing::warn!(inbox_id = %id, %transport, error = %e, "HL7 message rejected: it does not parse");
                return Ok(Reply {
                    ack: Some(ack.into_bytes()),
                    application_ack: None,
                    code: AckCode::AR,
                    status: InboxStatus::Rejected,
                    inbox_id: id,
                    duplicate: false,
                });
            }
        };
        let source = source_of(&m);
        let message_type = format!("{}^{}", m.message_type().unwrap_or_default(), m.trigger().unwrap_or_default());
        let control = m.control_id().map(str::to_owned).unwrap_or_else(|| id.clone());
        let is_ack = m.message_type() == Some("ACK");
        let key = (source.clone(), control.clone());
        if let Some(earlier) = seen.get(&key) {
            return Ok(Reply { duplicate: true, ..earlier.clone() });
        }
        if let Some(prev) = tx.inbox_get(Hl7Protocol::NAME, &source, &control).await? {
            tracing::info!(inbox_id = %prev.id, control_id = %control, "HL7 resend answered as before");
            return Ok(self.replay(&m, prev));
        }
        let started = std::time::Instant::now();
        let applied = if is_ack {
            Applied::ok(InboxStatus::Ignored, None, Some("an acknowledgement: never answered".into()))
        } else {
            match check_header(&m).and_then(|()| map(&m, &self.cfg, now)) {
                Err(MapError { code, error }) => Applied {
                    status: InboxStatus::Rejected,
                    code,
                    note: Some(error.message.clone()),
                    error: Some(error),
                    referral: None,
                },
                Ok(mapped) => {
                    self.apply(tx, mapped, &id, &via.actor(&format!("{}/{id}", Hl7Protocol::NAME), &source)).await?
                }
            }
        };
        let code = answer_code(&m, applied.code);
        let ack = build_ack(Ok(&m), code, applied.error.as_ref(), &ack_id(), &self.timestamp(now)).into_bytes();
        let application_ack = enhanced(&m).is_some().then(|| {
            build_ack(Ok(&m), applied.code, applied.error.as_ref(), &ack_id(), &self.timestamp(now)).into_bytes()
        });
        let item = InboxItem {
            status: applied.status,
            ack: Some(ack.clone()),
            application_ack: application_ack.clone(),
            error: applied.note.clone(),
            referral_id: applied.referral.clone(),
            attempts: 1,
            ..self.item(&id, &source, &control, transport, &message_type, raw, now)
        };
        tx.inbox_put(&item).await?;
        let label = metric_type(&message_type);
        metrics::histogram!("refloop_hl7_apply_seconds", "type" => label).record(started.elapsed().as_secs_f64());
        metrics::counter!(
            "refloop_hl7_messages_total",
            "type" => label,
            "status" => applied.status.as_str(),
            "ack" => code.as_str()
        )
        .increment(1);
        tracing::info!(
            inbox_id = %id,
            control_id = %control,
            message_type = %message_type,
            status = applied.status.as_str(),
            ack = code.as_str(),
            referral_id = applied.referral.as_ref().map(|r| r.as_str()).unwrap_or(""),
            "HL7 message received"
        );
        let reply = Reply {
            ack: due(&m, code).then_some(ack),
            application_ack: application_ack.filter(|_| application_due(&m, applied.code)),
            code,
            status: applied.status,
            inbox_id: id,
            duplicate: false,
        };
        seen.insert(key, reply.clone());
        Ok(reply)
    }

    /// A resend gets the answer the first copy got.
    fn replay(&self, m: &Message, prev: InboxItem) -> Reply {
        let code_of = |ack: &[u8]| {
            parse(ack).ok().and_then(|a| a.segment("MSA").and_then(|s| s.get(1, 1)).and_then(AckCode::parse))
        };
        let ack = prev.ack.unwrap_or_default();
        let code = code_of(&ack).unwrap_or(AckCode::AA);
        let application_ack = prev.application_ack.filter(|a| code_of(a).is_some_and(|c| application_due(m, c)));
        Reply {
            ack: due(m, code).then_some(ack),
            application_ack,
            code,
            status: prev.status,
            inbox_id: prev.id,
            duplicate: true,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn item(
        &self,
        id: &str,
        source: &str,
        control: &str,
        transport: &str,
        message_type: &str,
        raw: &[u8],
        now: Timestamp,
    ) -> InboxItem {
        InboxItem {
            id: id.to_owned(),
            protocol: Hl7Protocol::NAME.to_owned(),
            source: source.to_owned(),
            control_id: control.to_owned(),
            transport: transport.to_owned(),
            message_type: message_type.to_owned(),
            received_at: now,
            raw: raw.to_vec(),
            status: InboxStatus::Applied,
            ack: None,
            application_ack: None,
            error: None,
            referral_id: None,
            attempts: 0,
            updated_at: now,
        }
    }

    /// Applies a mapped message inside `tx` (see [`App::apply_mapped`]); every outcome is
    /// acknowledged AA.
    async fn apply(
        &self,
        tx: &mut dyn Tx,
        mapped: Mapped,
        inbox_id: &str,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        let done = self.app.apply_mapped(tx, mapped, inbox_id, actor).await?;
        if done.status == InboxStatus::Rejected {
            let why = done.note.clone().unwrap_or_else(|| "refused".to_owned());
            return Ok(Applied {
                status: done.status,
                code: AckCode::AE,
                error: Some(AckError::new(ErrorCode::DataTypeError, why)),
                note: done.note,
                referral: None,
            });
        }
        Ok(Applied::ok(done.status, done.referral, done.note))
    }
}

/// HL7 v2 as an inbound protocol (registered on the app): stored messages are read again with
/// today's mapping, and shown segment by segment.
pub struct Hl7Protocol {
    cfg: MapConfig,
}

impl Hl7Protocol {
    /// The name the inbox keeps.
    pub const NAME: &'static str = "hl7v2";

    pub fn new(cfg: MapConfig) -> Self {
        Self { cfg }
    }
}

impl Protocol for Hl7Protocol {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn remap(&self, raw: &[u8], now: jiff::Timestamp) -> Result<Mapped, String> {
        let m = parse(raw).map_err(|e| format!("does not parse: {e}"))?;
        check_header(&m).and_then(|()| map(&m, &self.cfg, now)).map_err(|e| e.error.message)
    }

    fn describe(&self, raw: &[u8]) -> Option<Described> {
        crate::describe(raw).map(Described::Segments)
    }
}

/// The sender, as the inbox keys resends: MSH-3^MSH-4.
/// The message types refloop takes, as metric labels; any other is `other` (a label takes
/// only known values, so a sender cannot make new series at will).
const METRIC_TYPES: &[&str] = &[
    "REF^I12", "REF^I13", "REF^I14", "RRI^I12", "ORM^O01", "OMG^O19", "OSU^O51", "SIU^S12", "SIU^S13", "SIU^S14",
    "SIU^S15", "SIU^S17", "SIU^S26", "ADT^A03", "ADT^A04", "MDM^T02", "MDM^T04", "MDM^T06", "MDM^T08", "MDM^T10",
    "ORU^R01",
];

fn metric_type(message_type: &str) -> &'static str {
    if message_type.starts_with("ACK^") {
        return "ACK";
    }
    METRIC_TYPES.iter().find(|t| **t == message_type).copied().unwrap_or("other")
}

fn source_of(m: &Message) -> String {
    format!("{}^{}", m.msh().get(3, 1).unwrap_or_default(), m.msh().get(4, 1).unwrap_or_default())
}

/// Enhanced mode (MSH-15 or MSH-16 valued): the accept-acknowledgement condition of MSH-15
/// (AL when only MSH-16 is given).
fn enhanced(m: &Message) -> Option<&str> {
    let accept = m.msh().get(15, 1);
    (accept.is_some() || m.msh().get(16, 1).is_some()).then(|| accept.unwrap_or("AL"))
}

/// The code to answer with: a commit code (CA/CE/CR) in enhanced mode.
fn answer_code(m: &Message, code: AckCode) -> AckCode {
    if enhanced(m).is_some() { code.to_commit() } else { code }
}

/// Whether an acknowledgement is due: never for an ACK; in enhanced mode per MSH-15
/// (AL always, NE never, ER on error only, SU on success only).
fn due(m: &Message, code: AckCode) -> bool {
    if m.message_type() == Some("ACK") {
        return false;
    }
    match enhanced(m) {
        None => true,
        Some("NE") => false,
        Some("ER") => code != AckCode::CA,
        Some("SU") => code == AckCode::CA,
        Some(_) => true,
    }
}

/// Whether the enhanced-mode application acknowledgement is due, per MSH-16 (AL when
/// empty): AL always, NE never, ER unless accepted, SU only if accepted.
fn application_due(m: &Message, code: AckCode) -> bool {
    if enhanced(m).is_none() || m.message_type() == Some("ACK") {
        return false;
    }
    match m.msh().get(16, 1).unwrap_or("AL") {
        "NE" => false,
        "ER" => code != AckCode::AA,
        "SU" => code == AckCode::AA,
        _ => true,
    }
}
