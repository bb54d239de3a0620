//! The use cases: enter a referral, record what happened, read what people need.

use std::sync::Arc;

use jiff::{Timestamp, tz::TimeZone};
use refloop_domain::{
    Contact, Decision, DuplicateCandidate, Effect, Input, Network, NewOrder, Origin, PatientId, Policy, ProviderId,
    Referral, ReferralId, Specialty, Urgency, decide, decide_new, stage_deadline,
};
use tokio::sync::Notify;

use crate::{
    auth::Actor,
    clock::Clock,
    connector::Connector,
    error::{AppError, StoreError},
    ids::new_id,
    ports::{
        AuditEntry, InboxFilter, InboxItem, InboxStatus, NewTask, OutboxFilter, OutboxItem, Patient, PatientKeep,
        ReferralFilter, ReferralPage, Store, StoredEvent, Task, TaskFilter, Tx,
    },
};

/// The patient's contact data as entered with a referral.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientInput {
    pub name: Option<String>,
    /// `YYYY-MM-DD`; `None` keeps what is on file.
    pub birth_date: Option<String>,
    /// Preferred language; `None` keeps what is on file.
    pub language: Option<String>,
    pub phone: Option<String>,
    /// `None` keeps what is on file (false for a new patient).
    pub sms_consent: Option<bool>,
    pub time_zone: Option<String>,
}

/// A referral entered by staff or an integration, parsed at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReferral {
    pub patient_id: PatientId,
    pub patient: Option<PatientInput>,
    pub referring_provider: ProviderId,
    /// The referring provider's name, when the order carries it.
    pub referring_provider_name: Option<String>,
    pub specialty: Option<Specialty>,
    pub specialist: Option<String>,
    pub urgency: Urgency,
    pub origin: Origin,
    pub network: Network,
    pub reason: Option<String>,
    /// When the order was placed; now when absent.
    pub ordered_at: Option<Timestamp>,
    pub source_ids: Vec<String>,
    /// History (a baseline import): counted in reports, never acted on.
    pub historical: bool,
}

/// A referral with its timeline and open work.
#[derive(Clone, Debug)]
pub struct ReferralDetail {
    pub referral: Referral,
    /// Its tasks' history: claimed, reassigned, tried again, completed with an outcome.
    pub task_log: Vec<crate::TaskLogEntry>,
    /// The patient and the referring provider's name, for roles that may read patient data.
    pub people: crate::People,
    pub events: Vec<StoredEvent>,
    pub tasks: Vec<Task>,
    pub stage_due_at: Option<Timestamp>,
}

/// The application: one write path and the queries around it.
/// How long data is kept (`[retention]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The raw body of a settled inbound message (its id, sender, outcome and ACK stay).
    pub raw_messages: jiff::SignedDuration,
    /// Audit rows (HIPAA asks for six years of documentation).
    pub audit: jiff::SignedDuration,
    /// The content of filed and dismissed documents (their id, hash, size and filing stay).
    pub documents: jiff::SignedDuration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw_messages: jiff::SignedDuration::from_hours(400 * 24),
            audit: jiff::SignedDuration::from_hours(6 * 366 * 24),
            documents: jiff::SignedDuration::from_hours(3650 * 24),
        }
    }
}

#[derive(Clone)]
pub struct App {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The real time, even when `clock` is manual: audit rows are stamped with it.
    pub(crate) wall: Arc<dyn Clock>,
    pub(crate) policy: Arc<Policy>,
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) outbox: crate::OutboxSettings,
    pub(crate) auth: crate::AuthSettings,
    pub(crate) throttle: crate::throttle::Throttle,
    pub(crate) retention: Retention,
    /// When old raw messages were last purged (the app's clock).
    pub(crate) last_purge: Arc<std::sync::Mutex<Option<Timestamp>>>,
    /// Set on shutdown: the workers claim nothing more and start no new attempt.
    pub(crate) stopping: Arc<std::sync::atomic::AtomicBool>,
    /// The inbound protocols, by the name the inbox keeps.
    pub(crate) protocols: Arc<crate::protocol::Protocols>,
    /// Operational problems: where notices go and the pollers this process runs.
    pub(crate) problems: Arc<crate::problems::Problems>,
    /// The practice's texts to patients, in every language it has them in.
    pub(crate) texts: Arc<crate::SmsTexts>,
}

impl App {
    /// The policy's live channels are those `connector` says reach someone: a channel that
    /// only logs never counts as reaching a patient.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        mut policy: Policy,
        connector: Arc<dyn Connector>,
    ) -> Self {
        policy.live = refloop_domain::LiveChannels::from_fn(|c| connector.mode(c).reaches_someone());
        Self {
            store,
            clock,
            wall: Arc::new(crate::SystemClock),
            policy: Arc::new(policy),
            connector,
            wake: Arc::new(Notify::new()),
            outbox: crate::OutboxSettings::default(),
            auth: crate::AuthSettings::default(),
            throttle: Default::default(),
            retention: Retention::default(),
            last_purge: Arc::default(),
            stopping: Arc::default(),
            protocols: Arc::default(),
            problems: Arc::default(),
            texts: Arc::new(crate::SmsTexts::with_defaults("", "")),
        }
    }

    /// The same app stamping audit rows from `wall` (tests; production reads the system clock).
    pub fn with_wall_clock(mut self, wall: Arc<dyn Clock>) -> Self {
        self.wall = wall;
        self
    }

    /// The same app with these outbox worker settings.
    pub fn with_outbox(mut self, settings: crate::OutboxSettings) -> Self {
        self.outbox = settings;
        self
    }

    pub fn with_auth(mut self, settings: crate::AuthSettings) -> Self {
        self.auth = settings;
        self
    }

    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How each outbound channel is connected, and for those that reach someone their last
    /// success and last failure.
    pub async fn channel_status(&self) -> Result<Vec<crate::ChannelStatus>, AppError> {
        let activity = self.store.channel_activity().await?;
        Ok(refloop_domain::Channel::ALL
            .iter()
            .map(|&channel| {
                let mode = self.connector.mode(channel);
                let seen = activity.iter().find(|a| a.channel == channel.as_str()).filter(|_| mode.reaches_someone());
                crate::ChannelStatus {
                    channel,
                    label: crate::ChannelStatus::label_of(channel),
                    mode,
                    needed: crate::ChannelStatus::needed_by_workflow(channel),
                    last_success: seen.and_then(|a| a.last_success),
                    last_failure: seen.and_then(|a| a.last_failure),
                }
            })
            .collect())
    }

    /// The channels the workflow needs that are off (the dashboard's warning).
    pub fn channels_off(&self) -> Vec<refloop_domain::Channel> {
        refloop_domain::Channel::ALL
            .iter()
            .copied()
            .filter(|c| crate::ChannelStatus::needed_by_workflow(*c) && !self.connector.mode(*c).reaches_someone())
            .collect()
    }

    /// Whether an order dated `at` is further ahead of `now` than the policy's tolerance.
    pub(crate) fn too_far_ahead(&self, at: Timestamp, now: Timestamp) -> bool {
        at > now + self.policy.future_tolerance.to_signed()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn audit_entry(&self, actor: &Actor, action: &str, kind: &str, id: &str) -> AuditEntry {
        AuditEntry {
            // The wall clock, even when the app's clock is manual: a reviewer reads real times.
            at: self.wall.now(),
            // An inbound message's rows name who sent it.
            actor: match &actor.sender {
                Some(sender) => format!("{} from {sender}", actor.source()),
                None => actor.source(),
            },
            action: action.to_owned(),
            resource_type: kind.to_owned(),
            resource_id: id.to_owned(),
            remote: actor.remote.clone(),
        }
    }

    fn time_zone(&self, patient: Option<&Patient>) -> TimeZone {
        patient
            .and_then(|p| p.time_zone.as_deref())
            .and_then(|tz| TimeZone::get(tz).ok())
            .unwrap_or_else(|| self.policy.time_zone.clone())
    }

    /// Enters a new referral: dedupe, pilot and coding checks, then stage 1.
    pub async fn create_referral(&self, actor: &Actor, req: NewReferral) -> Result<Referral, AppError> {
        let mut created = self.create_referrals(actor, vec![req]).await?;
        Ok(created.remove(0))
    }

    /// Enters several referrals in one transaction (imports, benchmarks): all or none.
    pub async fn create_referrals(&self, actor: &Actor, reqs: Vec<NewReferral>) -> Result<Vec<Referral>, AppError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut created = Vec::with_capacity(reqs.len());
        for req in reqs {
            created.push(self.create_in(tx.as_mut(), actor, req, now).await?);
        }
        tx.commit().await?;
        for r in &created {
            tracing::info!(referral_id = %r.id, state = %r.state, "referral created");
        }
        self.wake.notify_one();
        Ok(created)
    }

    /// Enters a referral inside `tx` (the caller commits).
    pub async fn create_in(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        req: NewReferral,
        now: Timestamp,
    ) -> Result<Referral, AppError> {
        let ordered_at = req.ordered_at.unwrap_or(now);
        if self.too_far_ahead(ordered_at, now) {
            return Err(AppError::invalid("ordered_at", "is further ahead of our clock than [hl7] future_tolerance"));
        }
        if let Some(tz) = req.patient.as_ref().and_then(|p| p.time_zone.as_deref()) {
            TimeZone::get(tz).map_err(|_| AppError::invalid("patient.time_zone", "not an IANA time zone"))?;
        }
        let patient = match &req.patient {
            Some(input) => {
                let phone = input.phone.as_deref().and_then(|raw| crate::phone_on_file(raw, &self.policy.phone_region));
                let patient = Patient {
                    id: req.patient_id.clone(),
                    name: input.name.clone(),
                    birth_date: input.birth_date.clone(),
                    language: input.language.clone(),
                    phone_text: phone.as_ref().map(|p| p.text.clone()),
                    phone: phone.map(|p| p.phone),
                    sms_consent: input.sms_consent.unwrap_or(false),
                    sms_opted_out: false,
                    time_zone: input.time_zone.clone(),
                    updated_at: now,
                };
                let keep = PatientKeep { consent: input.sms_consent.is_none(), opt_out: true };
                Some(tx.upsert_patient(&patient, keep).await?)
            }
            None => tx.patient(&req.patient_id).await?,
        };
        if let Some(name) = req.referring_provider_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            tx.put_provider(&req.referring_provider, name, now).await?;
        }
        let candidate = match (&req.specialty, req.origin) {
            (Some(s), Origin::PhysicianOrder) => {
                let w = self.policy.dedupe_window.to_signed();
                tx.duplicate_candidate(&req.patient_id, s, ordered_at - w, ordered_at + w).await?
            }
            _ => None,
        };
        let order = NewOrder {
            id: ReferralId::parse(&new_id("ref"))?,
            patient_id: req.patient_id,
            referring_provider: req.referring_provider,
            specialty: req.specialty,
            specialist: req.specialist,
            urgency: req.urgency,
            origin: req.origin,
            network: req.network,
            reason: req.reason,
            source_ids: req.source_ids,
            ordered_at,
            historical: req.historical,
        };
        let decision = self.with_context(patient.as_ref(), now, candidate.as_ref(), |ctx| decide_new(order, ctx));
        let referral = decision.referral.clone();
        self.execute(tx, None, decision, &actor.source(), now).await?;
        tx.audit(&self.audit_entry(actor, "create", "referral", referral.id.as_str())).await?;
        if self.policy.referrals_360x && referral.is_tracked() && referral.specialist.is_some() {
            self.request_360x(tx, &referral, now).await?;
        }
        Ok(referral)
    }

    /// Applies an input to a referral through the one write path.
    pub async fn record(&self, actor: &Actor, id: &ReferralId, input: Input) -> Result<Referral, AppError> {
        let mut tx = self.store.begin().await?;
        let referral = self.record_in(tx.as_mut(), actor, id, input).await?;
        tx.commit().await?;
        tracing::info!(referral_id = %id, state = %referral.state, version = referral.version, "referral updated");
        self.wake.notify_one();
        Ok(referral)
    }

    /// Applies many inputs in one transaction, in order. An input the referral cannot take
    /// (e.g. a milestone after it closed) is answered with its error and the others go on; a
    /// storage failure undoes them all.
    pub async fn record_all(
        &self,
        actor: &Actor,
        inputs: Vec<(ReferralId, Input)>,
    ) -> Result<Vec<Result<Referral, AppError>>, AppError> {
        let mut tx = self.store.begin().await?;
        let mut out = Vec::with_capacity(inputs.len());
        for (id, input) in inputs {
            match self.record_in(tx.as_mut(), actor, &id, input).await {
                Err(AppError::Store(e)) => return Err(e.into()),
                other => out.push(other),
            }
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(out)
    }

    /// Applies an input to a referral inside `tx` (the caller commits).
    pub async fn record_in(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        id: &ReferralId,
        input: Input,
    ) -> Result<Referral, AppError> {
        let now = self.now();
        let current = tx
            .lock_referral(id, false)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "referral", id: id.to_string() })?;
        let decision = self.decide_in(tx, &current, input, now).await?;
        let referral = decision.referral.clone();
        self.execute(tx, Some(current.version), decision, &actor.source(), now).await?;
        tx.audit(&self.audit_entry(actor, "update", "referral", id.as_str())).await?;
        Ok(referral)
    }

    /// Wakes the background workers after a commit made outside [`App`]'s own methods.
    pub fn wake_workers(&self) {
        self.wake.notify_one();
    }

    /// Runs `decide` with the patient's contact data loaded in the same transaction.
    pub(crate) async fn decide_in(
        &self,
        tx: &mut dyn Tx,
        current: &Referral,
        input: Input,
        now: Timestamp,
    ) -> Result<Decision, AppError> {
        let patient = tx.patient(&current.patient_id).await?;
        Ok(self.with_context(patient.as_ref(), now, None, |ctx| decide(current, input, ctx))?)
    }

    /// Builds the domain's context (policy, contact, time zone) for one decision.
    fn with_context<R>(
        &self,
        patient: Option<&Patient>,
        now: Timestamp,
        duplicate_candidate: Option<&DuplicateCandidate>,
        f: impl FnOnce(&refloop_domain::Context<'_>) -> R,
    ) -> R {
        let contact = patient.map(contact_of);
        let tz = self.time_zone(patient);
        f(&refloop_domain::Context {
            now,
            policy: &self.policy,
            contact: contact.as_ref(),
            time_zone: &tz,
            duplicate_candidate,
        })
    }

    /// Carries a decision out inside `tx`: projection, events, timers, outbox, tasks.
    pub(crate) async fn execute(
        &self,
        tx: &mut dyn Tx,
        expected_version: Option<u64>,
        decision: Decision,
        source: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let r = &decision.referral;
        let due = stage_deadline(r, &self.policy);
        match expected_version {
            None => tx.insert_referral(r, due, now).await?,
            Some(v) => tx.update_referral(r, v, due, now).await?,
        }
        let events: Vec<StoredEvent> = decision
            .events
            .into_iter()
            .map(|e| StoredEvent {
                referral_id: r.id.clone(),
                version: r.version,
                data: e.data,
                at: e.at,
                recorded_at: now,
                source: source.to_owned(),
            })
            .collect();
        tx.append_events(&events).await?;
        match expected_version {
            None => tx.arm_timers(&r.id, r.version, &decision.timers).await?,
            Some(_) => tx.replace_timers(&r.id, r.version, &decision.timers).await?,
        }
        for effect in decision.effects {
            match effect {
                Effect::Send(out) => {
                    let item = OutboxItem {
                        next_attempt_at: out.not_before,
                        ..OutboxItem::pending(r, out.channel, out.purpose, out.key, now)
                    };
                    tx.enqueue(&item).await?;
                }
                Effect::OpenTask { kind, due_at } => {
                    let task = NewTask {
                        id: new_id("tsk"),
                        referral_id: r.id.clone(),
                        kind,
                        due_at,
                        created_at: now,
                        inbox_id: None,
                    };
                    tx.open_task(&task).await?;
                    tracing::info!(referral_id = %r.id, task_id = %task.id, kind = kind.as_str(), "task opened");
                }
                Effect::CloseTasks { kinds } => {
                    let outcome = format!("resolved: referral is {}", r.state);
                    tx.close_tasks(&r.id, &kinds, now, &outcome).await?;
                }
            }
        }
        Ok(())
    }

    /// A referral with its timeline and tasks; the read is audited.
    pub async fn referral_detail(&self, actor: &Actor, id: &ReferralId) -> Result<ReferralDetail, AppError> {
        let referral = self
            .store
            .referral(id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "referral", id: id.to_string() })?;
        let events = self.store.events(id).await?;
        let tasks = self
            .store
            .tasks(&TaskFilter { referral_id: Some(id.clone()), limit: 500, ..TaskFilter::default() })
            .await?;
        self.store.audit(&self.audit_entry(actor, "read", "referral", id.as_str())).await?;
        let people = self
            .people(
                actor,
                std::slice::from_ref(&referral.patient_id),
                std::slice::from_ref(&referral.referring_provider),
            )
            .await?;
        let stage_due_at = stage_deadline(&referral, &self.policy);
        let task_log = self.store.task_log(id).await?;
        Ok(ReferralDetail { referral, task_log, people, events, tasks, stage_due_at })
    }

    /// A page of referrals with their patients and providers as people (for roles that may
    /// read patient data); the referral and patient ids read are audited.
    pub async fn referrals(&self, actor: &Actor, filter: &ReferralFilter) -> Result<ReferralPage, AppError> {
        let mut page = self.store.referrals(filter).await?;
        if !page.items.is_empty() {
            let ids: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
            self.store.audit(&self.audit_entry(actor, "list", "referral", &ids.join(","))).await?;
            let patients: Vec<PatientId> = page.items.iter().map(|r| r.patient_id.clone()).collect();
            let providers: Vec<ProviderId> = page.items.iter().map(|r| r.referring_provider.clone()).collect();
            page.people = self.people(actor, &patients, &providers).await?;
        }
        Ok(page)
    }

    /// These patients (names, dates of birth, phones, languages) and providers' names, for an
    /// actor who may read patient data (else none); the patients shown are audited as one
    /// read, as pages show them.
    pub async fn people(
        &self,
        actor: &Actor,
        patients: &[PatientId],
        providers: &[ProviderId],
    ) -> Result<crate::People, AppError> {
        if !actor.role.may(crate::Permission::ReadPatients) {
            return Ok(crate::People::default());
        }
        let mut patients = patients.to_vec();
        patients.sort();
        patients.dedup();
        let mut providers = providers.to_vec();
        providers.sort();
        providers.dedup();
        let people = self.store.people(&patients, &providers).await?;
        if !people.patients.is_empty() {
            let ids: Vec<&str> = people.patients.keys().map(PatientId::as_str).collect();
            self.store.audit(&self.audit_entry(actor, "list", "patient", &ids.join(","))).await?;
        }
        Ok(people)
    }

    /// A patient's phone number in full — and as it came, when that was written otherwise —
    /// audited as a reveal (a staff page masks it until asked; the caller checks the actor
    /// may read patient data).
    pub async fn reveal_phone(&self, actor: &Actor, patient: &PatientId) -> Result<Option<String>, AppError> {
        let phone = self.store.patient(patient).await?.and_then(|p| match (p.phone, p.phone_text) {
            (Some(phone), Some(text)) if text != phone => Some(format!("{phone} (written {text})")),
            (phone, _) => phone,
        });
        self.store.audit(&self.audit_entry(actor, "reveal-phone", "patient", patient.as_str())).await?;
        Ok(phone)
    }

    /// The specialties and referring providers (with names when known) the referrals name.
    pub async fn referral_facets(&self) -> Result<(Vec<String>, Vec<(ProviderId, Option<String>)>), AppError> {
        Ok(self.store.referral_facets().await?)
    }

    /// Dead letters and the review queue, newest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<InboxItem>, AppError> {
        let mut items = Vec::new();
        for status in [InboxStatus::Dead, InboxStatus::Review] {
            items.extend(self.store.inbox(&InboxFilter { status: Some(status), limit }).await?);
        }
        items.sort_by_key(|m| std::cmp::Reverse(m.received_at));
        items.truncate(limit as usize);
        Ok(items)
    }

    /// Records that `actor` read a record holding patient data.
    pub async fn audit_read(&self, actor: &Actor, kind: &str, id: &str) -> Result<(), AppError> {
        self.audit_action(actor, "read", kind, id).await
    }

    /// Records that `actor` was shown a list of these `kind` records (their ids); nothing for
    /// an empty list.
    pub async fn audit_list<'a>(
        &self,
        actor: &Actor,
        kind: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), AppError> {
        let mut ids: Vec<&str> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        self.audit_action(actor, "list", kind, &ids.join(",")).await
    }

    /// Records that `actor` exported these referrals (their ids, not a count).
    pub async fn audit_export(&self, actor: &Actor, ids: &[&str]) -> Result<(), AppError> {
        self.audit_action(actor, "export", "referral", &ids.join(",")).await
    }

    /// Writes an audit row: `actor` did `action` to the `kind` `id`.
    pub async fn audit_action(&self, actor: &Actor, action: &str, kind: &str, id: &str) -> Result<(), AppError> {
        Ok(self.store.audit(&self.audit_entry(actor, action, kind, id)).await?)
    }

    pub(crate) async fn task_conflict(&self, id: &str, verb: &str) -> AppError {
        match self.store.task(id).await {
            Ok(Some(t)) => AppError::Conflict(format!("task {id} is {} and cannot be {verb}", t.status.as_str())),
            Ok(None) => AppError::NotFound { what: "task", id: id.to_owned() },
            Err(e) => e.into(),
        }
    }

    pub async fn outbox(&self, filter: &OutboxFilter) -> Result<Vec<OutboxItem>, AppError> {
        Ok(self.store.outbox(filter).await?)
    }
}

fn contact_of(p: &Patient) -> Contact {
    Contact { phone: p.phone.clone(), sms_consent: p.sms_consent, sms_opted_out: p.sms_opted_out }
}
