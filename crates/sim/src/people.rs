//! The simulated people: they answer what the engine does — a delivered message, a staff
//! task, a note request — and, without the workflow, staff chase some leaks by hand. A
//! queue of what happens next, in time order, applied day by day through the real engine.

use super::*;

/// What the simulated people do next, at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Notified,
    Scheduled,
    Visit,
    Note,
}

/// Where one referral stands for the simulated people.
#[derive(Clone, Debug, Default)]
pub(crate) struct Track {
    pub(crate) id: Option<ReferralId>,
    pub(crate) notified: bool,
    pub(crate) scheduled: bool,
    pub(crate) no_show: bool,
    pub(crate) visits: u32,
    pub(crate) noted: bool,
    /// When the specialist sent the note (it waits to be filed or found).
    pub(crate) note_sent: Option<Timestamp>,
    /// When the pending booking and the pending note come (a prompt may bring them forward).
    pub(crate) schedule_at: Option<Timestamp>,
    pub(crate) note_at: Option<Timestamp>,
    pub(crate) first_scheduled: Option<Timestamp>,
    /// Someone chased it while it had no appointment: staff by hand, or a worklist task.
    pub(crate) followed_up: bool,
}

pub(crate) struct Run {
    pub(crate) app: App,
    pub(crate) fates: Vec<Fate>,
    pub(crate) tracks: Vec<Track>,
    pub(crate) by_id: HashMap<ReferralId, usize>,
    pub(crate) queue: BTreeMap<(Timestamp, u64), (usize, Next)>,
    pub(crate) seq: u64,
    pub(crate) workflow: bool,
    pub(crate) actor: Actor,
    pub(crate) tasks_by_kind: BTreeMap<&'static str, u64>,
    pub(crate) chases_by_hand: u64,
    pub(crate) seen_tasks: std::collections::HashSet<String>,
    /// Tasks opened after this are answered but left open, for people to work (the demo).
    pub(crate) keep_tasks_after: Option<Timestamp>,
    pub(crate) source_prefix: &'static str,
    pub(crate) next_order: usize,
    /// The what-ifs' bookings (see `Fate::link_books`, `Fate::language_books`).
    pub(crate) booked_from_link: u64,
    pub(crate) booked_in_language: u64,
}

impl Run {
    pub(crate) fn new(app: App, fates: Vec<Fate>, workflow: bool, source_prefix: &'static str) -> Self {
        Run {
            app,
            tracks: vec![Track::default(); fates.len()],
            fates,
            by_id: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            workflow,
            actor: Actor::system("simulator"),
            tasks_by_kind: BTreeMap::new(),
            chases_by_hand: 0,
            seen_tasks: Default::default(),
            keep_tasks_after: None,
            source_prefix,
            next_order: 0,
            booked_from_link: 0,
            booked_in_language: 0,
        }
    }

    pub(crate) fn at(&mut self, t: Timestamp, i: usize, next: Next) {
        self.seq += 1;
        self.queue.insert((t, self.seq), (i, next));
    }

    /// The end of one of referral `i`'s windows (`pick` names which) started at `at`, on the
    /// practice's calendar.
    pub(crate) fn window_end(&self, i: usize, at: Timestamp, pick: fn(&StageWindows) -> Window) -> Timestamp {
        let policy = self.app.policy();
        let urgency = if self.fates[i].urgent { Urgency::Urgent } else { Urgency::Routine };
        policy.after(at, pick(policy.windows.for_urgency(urgency)))
    }

    /// The patient books at `t`, unless a booking is already coming sooner.
    pub(crate) fn book(&mut self, i: usize, t: Timestamp) {
        if self.tracks[i].schedule_at.is_none_or(|at| t < at) {
            self.tracks[i].schedule_at = Some(t);
            self.at(t, i, Next::Scheduled);
        }
    }

    /// The specialist sends the note at `t`, unless it is already coming sooner (or came).
    pub(crate) fn send_note(&mut self, i: usize, t: Timestamp) {
        let track = &mut self.tracks[i];
        if !track.noted && track.note_at.is_none_or(|at| t < at) {
            track.note_at = Some(t);
            self.at(t, i, Next::Note);
        }
    }

    /// Without the workflow, staff working by hand find a leak some days after its window ran
    /// out (`due`) and chase it when the fate says they do: when it works, the stage happens then.
    pub(crate) fn chase_by_hand(&mut self, i: usize, stage: Stage, due: Timestamp) -> Option<Timestamp> {
        if self.workflow || !stage.chased {
            return None;
        }
        self.chases_by_hand += 1;
        stage.by_hand.then(|| due + days(self.fates[i].days_to_find_by_hand))
    }

    /// The patient was reached at `t`: they book on their own if their fate says so, else staff
    /// working by hand may find them unbooked later.
    pub(crate) fn notified(&mut self, i: usize, t: Timestamp) {
        if std::mem::replace(&mut self.tracks[i].notified, true) {
            return;
        }
        let f = &self.fates[i];
        let (schedule, ordered_at, own) = (f.schedule, f.ordered_at, t + days(f.days_to_schedule));
        if !schedule.leaks {
            self.book(i, own);
            return;
        }
        // The what-ifs: the workflow's text reached them, with a link to book or in their language.
        if self.workflow && f.texted() && (f.link_books || f.language_books) {
            if f.link_books {
                self.booked_from_link += 1;
            } else {
                self.booked_in_language += 1;
            }
            self.book(i, own);
            return;
        }
        let due = t.max(self.window_end(i, ordered_at, |w| w.scheduling));
        self.tracks[i].followed_up |= !self.workflow && schedule.chased;
        if let Some(t) = self.chase_by_hand(i, schedule, due) {
            self.book(i, t);
        }
    }

    /// Enters every order placed by `now`, together, and starts the people's side.
    pub(crate) async fn enter_orders(&mut self, now: Timestamp, connector: &SimConnector) -> Result<(), AppError> {
        let first = self.next_order;
        while self.next_order < self.fates.len() && self.fates[self.next_order].ordered_at <= now {
            self.next_order += 1;
        }
        if self.next_order == first {
            return Ok(());
        }
        let reqs = (first..self.next_order).map(|i| new_referral(&self.fates[i], i, self.source_prefix)).collect();
        let created = self.app.create_referrals(&self.actor, reqs).await?;
        for (k, referral) in created.into_iter().enumerate() {
            let i = first + k;
            self.by_id.insert(referral.id.clone(), i);
            if let Ok(mut m) = connector.reachable.lock() {
                m.insert(referral.id.clone(), self.fates[i].notify.workflow());
            }
            self.tracks[i].id = Some(referral.id);
            if self.workflow {
                continue;
            }
            // Without the workflow, the front desk tells the patient (a printed sheet, a call)
            // unless the fate says it does not; staff may find the gap later.
            let f = &self.fates[i];
            let (notify, ordered_at, own) = (f.notify, f.ordered_at, f.ordered_at + days(f.days_to_notify));
            if !notify.leaks {
                self.at(own, i, Next::Notified);
            } else {
                self.tracks[i].followed_up |= notify.chased;
                let due = self.window_end(i, ordered_at, |w| w.notify);
                if let Some(t) = self.chase_by_hand(i, notify, due) {
                    self.at(t, i, Next::Notified);
                }
            }
        }
        Ok(())
    }

    /// One simulated day ending at `end`: orders come in, the workflow acts (timers, messages)
    /// and the people answer, until all is quiet.
    pub(crate) async fn step(&mut self, end: Timestamp, connector: &SimConnector) -> Result<(), AppError> {
        self.enter_orders(end, connector).await?;
        for _ in 0..20 {
            self.apply_due(end).await?;
            self.app.run_due().await?;
            let log = std::mem::take(&mut *connector.log.lock().expect("lock"));
            self.answer(end, log).await?;
            // The people answer on later days; another pass only if something is due today.
            if self.queue.first_key_value().is_none_or(|((t, _), _)| *t > end) {
                break;
            }
        }
        Ok(())
    }

    /// Applies what the people do up to `now`, in time order, in one transaction.
    pub(crate) async fn apply_due(&mut self, now: Timestamp) -> Result<(), AppError> {
        let mut inputs = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((t, _), (i, next)) = entry.remove_entry();
            let f = &self.fates[i];
            let milestone = |state, appointment_at, channel: Option<&str>| Input::Milestone {
                state,
                at: t,
                appointment_at,
                channel: channel.map(str::to_owned),
            };
            match next {
                Next::Notified if !self.tracks[i].notified => {
                    inputs.push((i, milestone(State::PatientNotified, None, Some("phone"))));
                    self.notified(i, t);
                }
                Next::Notified => {}
                // A booking brought forward by a prompt leaves its later twin behind.
                Next::Scheduled if self.tracks[i].schedule_at == Some(t) => {
                    let visit = t + days(f.days_to_visit);
                    let track = &mut self.tracks[i];
                    track.schedule_at = None;
                    track.scheduled = true;
                    track.first_scheduled.get_or_insert(t);
                    inputs.push((i, milestone(State::Scheduled, Some(visit), None)));
                    self.at(visit, i, Next::Visit);
                }
                Next::Scheduled => {}
                Next::Visit => {
                    self.tracks[i].visits += 1;
                    // A second visit is one that was rebooked after a no-show.
                    if !f.attend.leaks || self.tracks[i].visits > 1 {
                        inputs.push((i, milestone(State::Attended, None, None)));
                        let (note, sent) = (f.note, t + days(f.days_to_note));
                        if !note.leaks {
                            // Sent, then filed into the chart by hand unless refloop finds it first.
                            self.tracks[i].note_sent = Some(sent);
                            self.send_note(i, sent + days(f.days_to_file_by_hand));
                        } else if let Some(at) = self.chase_by_hand(i, note, self.window_end(i, t, |w| w.note_request))
                        {
                            self.send_note(i, at);
                        }
                    } else {
                        self.tracks[i].no_show = true;
                        self.tracks[i].scheduled = false;
                        inputs.push((i, Input::NoShow { at: t }));
                        let attend = f.attend;
                        if let Some(at) = self.chase_by_hand(i, attend, self.window_end(i, t, |w| w.scheduling)) {
                            self.book(i, at);
                        }
                    }
                }
                Next::Note if self.tracks[i].note_at == Some(t) => {
                    self.tracks[i].note_at = None;
                    self.tracks[i].noted = true;
                    inputs.push((i, milestone(State::NoteReceived, None, None)));
                }
                Next::Note => {}
            }
        }
        let inputs: Vec<(ReferralId, Input)> =
            inputs.into_iter().filter_map(|(i, input)| Some((self.tracks[i].id.clone()?, input))).collect();
        if !inputs.is_empty() {
            // A referral may have moved past what a late event reports; the engine says so and
            // the simulation goes on.
            self.app.record_all(&self.actor, inputs).await?;
        }
        Ok(())
    }

    /// The people answer what the workflow did: delivered messages and new staff tasks. A
    /// prompt brings forward what would have come later anyway.
    pub(crate) async fn answer(
        &mut self,
        now: Timestamp,
        log: Vec<(ReferralId, Channel, Purpose)>,
    ) -> Result<(), AppError> {
        for (id, channel, purpose) in log {
            let Some(&i) = self.by_id.get(&id) else { continue };
            match (channel, purpose) {
                (Channel::Sms | Channel::Portal, Purpose::PatientNotification) => self.notified(i, now),
                (Channel::NoteRequest, _) => self.note_chased(i, now),
                // refloop looks in the EHR's document inbox: a note that came back is found.
                (Channel::EhrQuery, Purpose::NoteLookup) if self.tracks[i].note_sent.is_some_and(|s| s <= now) => {
                    self.send_note(i, now)
                }
                _ => {}
            }
        }
        let open = TaskFilter { status: Some(TaskStatus::Open), limit: 100_000, ..TaskFilter::default() };
        for task in self.app.tasks(&open).await? {
            if !self.seen_tasks.insert(task.id.clone()) {
                continue;
            }
            *self.tasks_by_kind.entry(task.kind.as_str()).or_default() += 1;
            if let Some(&i) = self.by_id.get(&task.referral_id) {
                let f = &self.fates[i];
                let respond = now + days(f.days_to_respond);
                let chasing =
                    matches!(task.kind, TaskKind::NotifyPatient | TaskKind::FixContact | TaskKind::ScheduleFollowUp);
                if chasing && self.tracks[i].first_scheduled.is_none() {
                    self.tracks[i].followed_up = true;
                }
                match task.kind {
                    // Staff call the patient; those the workflow would reach are reached.
                    TaskKind::NotifyPatient | TaskKind::FixContact
                        if !self.tracks[i].notified && f.notify.workflow() =>
                    {
                        self.at(now + days(1.0), i, Next::Notified)
                    }
                    TaskKind::ScheduleFollowUp if self.tracks[i].notified && !self.tracks[i].scheduled => {
                        let books = if self.tracks[i].no_show { f.attend.workflow() } else { f.schedule.workflow() };
                        if books {
                            self.book(i, respond);
                        }
                    }
                    TaskKind::NoteReview => self.note_chased(i, now),
                    _ => {}
                }
            }
            // Staff close every task they picked up, whatever came of it.
            if self.keep_tasks_after.is_none_or(|t| task.created_at <= t) {
                self.app.complete_task(&self.actor, &task.id, Some("simulated")).await?;
            }
        }
        Ok(())
    }

    /// The note was asked for: one already sent is found at once; a specialist the workflow
    /// would move sends it within days.
    pub(crate) fn note_chased(&mut self, i: usize, now: Timestamp) {
        let f = &self.fates[i];
        if self.tracks[i].note_sent.is_some_and(|s| s <= now) {
            self.send_note(i, now);
        } else if f.note.workflow() {
            let t = now + days(f.days_to_respond);
            self.send_note(i, t);
        }
    }

    /// The seed article's catch: referrals with no appointment when their first scheduling
    /// window ran out, and those someone followed up.
    pub(crate) fn unscheduled_catch(&self) -> (usize, usize) {
        let mut unscheduled = 0;
        let mut followed = 0;
        for (i, (f, t)) in self.fates.iter().zip(&self.tracks).enumerate() {
            if t.id.is_none() {
                continue;
            }
            let due = self.window_end(i, f.ordered_at, |w| w.scheduling);
            if t.first_scheduled.is_none_or(|s| s > due) {
                unscheduled += 1;
                followed += usize::from(t.followed_up);
            }
        }
        (unscheduled, followed)
    }

    /// Staff hours per week of orders: chases by hand and worklist tasks at their minutes.
    pub(crate) fn staff_hours_per_week(&self, p: &Params) -> f64 {
        let tasks: f64 = self
            .tasks_by_kind
            .iter()
            .map(|(kind, n)| {
                let minutes = p.task_minutes.iter().find(|(k, _)| k.as_str() == *kind).map_or(0.0, |(_, m)| *m);
                minutes * *n as f64
            })
            .sum();
        let minutes = tasks + p.minutes_per_chase_by_hand * self.chases_by_hand as f64;
        minutes / 60.0 / (f64::from(p.days) / 7.0)
    }
}

/// Made-up names for the simulated people (some with accents, as real patient lists have).
pub(crate) const GIVEN: &[&str] = &[
    "Ana", "Ben", "Chloé", "David", "Elena", "Farah", "George", "Hana", "Ivan", "Joy", "Kofi", "Lucía", "Mei", "Noah",
    "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tomás", "Uma", "Victor", "Wen", "Yusuf", "Zoë",
];
pub(crate) const FAMILY: &[&str] = &[
    "Adams", "Baker", "Castillo", "Dubois", "Evans", "Fischer", "García", "Haddad", "Ito", "Jensen", "Kowalski",
    "López", "Müller", "Nguyen", "Okafor", "Patel", "Quintero", "Rossi", "Schmidt", "Tanaka", "Umar", "Varga", "Walsh",
    "Yilmaz", "Zhang",
];
pub(crate) const PROVIDER_NAMES: &[&str] = &[
    "Dr Anne Carter",
    "Dr Luis Ortega",
    "Dr Priya Shah",
    "Dr Tom Becker",
    "Dr Grace Kim",
    "Dr Omar Aziz",
    "Dr Helen Moore",
    "Dr Raj Menon",
    "Dr Sara Lind",
    "Dr Paul Novak",
    "Dr Irene Costa",
    "Dr Ken Watanabe",
];

/// The simulated patient `i` as a person: a name, a date of birth, and a preferred language for some.
pub(crate) fn sim_patient(i: usize, prefix: &str) -> (String, String, Option<String>) {
    let name = if prefix == SOURCE_PREFIX {
        format!("Sim Patient {i}")
    } else {
        format!("{} {}", GIVEN[i % GIVEN.len()], FAMILY[(i / GIVEN.len() + i * 7) % FAMILY.len()])
    };
    let birth = format!("{}-{:02}-{:02}", 1935 + i % 70, 1 + i % 12, 1 + (i / 12) % 28);
    let language = match i % 9 {
        0 => Some("Spanish".to_owned()),
        4 => Some("Vietnamese".to_owned()),
        _ => None,
    };
    (name, birth, language)
}

pub(crate) fn new_referral(f: &Fate, i: usize, prefix: &str) -> NewReferral {
    let (name, birth_date, language) = sim_patient(i, prefix);
    let provider_name = f
        .provider
        .strip_prefix("dr-")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| PROVIDER_NAMES[(n + PROVIDER_NAMES.len() - 1) % PROVIDER_NAMES.len()].to_owned());
    NewReferral {
        patient_id: PatientId::parse(&format!("sim-p{i:06}")).expect("a valid id"),
        patient: Some(PatientInput {
            name: Some(name),
            birth_date: Some(birth_date),
            language,
            phone: Some(f.phone.clone()),
            sms_consent: Some(f.consent),
            time_zone: Some(f.time_zone.to_owned()),
        }),
        referring_provider: ProviderId::parse(&f.provider).expect("a valid id"),
        referring_provider_name: provider_name,
        specialty: Specialty::parse(&f.specialty).ok(),
        specialist: Some(f.specialist.clone()),
        urgency: if f.urgent { Urgency::Urgent } else { Urgency::Routine },
        origin: Origin::PhysicianOrder,
        network: f.network,
        reason: None,
        ordered_at: Some(f.ordered_at),
        source_ids: vec![format!("{prefix}{i}")],
        historical: false,
    }
}
