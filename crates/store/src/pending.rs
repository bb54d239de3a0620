//! Write-behind for a transaction's inserts.
//!
//! New referrals, patient upserts, events, audit rows, new tasks, armed timers, inbox rows
//! and (on SQLite) the deletion of a referral's replaced timers are collected and written with
//! one multi-row statement per table — before the commit, and before any statement of the same
//! transaction that reads or changes those tables (the `Tx` methods flush first). Patients and
//! referrals ("parents", which the other rows reference) are always written first. A flush is
//! one query ([`flush_pending`]), so a group commit of many messages costs a few statements
//! instead of a few per message. Nothing here outlives the transaction: dropping it drops the
//! rows with it.

use jiff::Timestamp;
use refloop_app::{AuditEntry, InboxItem, NewTask, OutboxItem, Patient, PatientKeep, StoredEvent};
use refloop_domain::{Referral, ReferralId, TimerSpec};

#[derive(Default)]
pub(crate) struct Pending {
    /// Patient upserts, at most one per patient, with what each keeps of a stored row.
    pub patients: Vec<(Patient, PatientKeep)>,
    /// New referrals: the projection, when its stage is late, and when it was written.
    pub referrals: Vec<(Referral, Option<Timestamp>, Timestamp)>,
    pub events: Vec<StoredEvent>,
    pub audits: Vec<AuditEntry>,
    pub tasks: Vec<NewTask>,
    pub timers: Vec<(ReferralId, u64, TimerSpec)>,
    /// SQLite: referrals whose stored timers to delete, just before `timers` are written.
    pub timer_clears: Vec<ReferralId>,
    /// Inserted or replaced by id; the last write of an id wins.
    pub inbox: Vec<InboxItem>,
    /// Referral keys; the first referral to claim a key keeps it.
    pub keys: Vec<(String, ReferralId)>,
    /// Referrals whose report row (`referral_stats`) to write; the last version of an id wins.
    /// Report rows to write: each referral with when its current stage runs out.
    pub stats: Vec<(Referral, Option<Timestamp>)>,
    /// New outbox items; at the flush a key already taken keeps its first item.
    pub outbox: Vec<OutboxItem>,
    /// Referring providers' names: (id, name, when); one per id, the last write wins.
    pub providers: Vec<(String, String, Timestamp)>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
            && self.referrals.is_empty()
            && self.events.is_empty()
            && self.audits.is_empty()
            && self.tasks.is_empty()
            && self.timers.is_empty()
            && self.timer_clears.is_empty()
            && self.inbox.is_empty()
            && self.keys.is_empty()
            && self.stats.is_empty()
            && self.outbox.is_empty()
            && self.providers.is_empty()
    }

    pub fn put_provider(&mut self, id: &str, name: &str, at: Timestamp) {
        self.providers.retain(|(p, _, _)| p != id);
        self.providers.push((id.to_owned(), name.to_owned(), at));
    }

    /// The referrals whose report rows to write, the last version of each.
    pub fn take_stats(&mut self) -> Vec<(Referral, Option<Timestamp>)> {
        let mut all = std::mem::take(&mut self.stats);
        let mut seen = std::collections::HashSet::new();
        all.reverse();
        all.retain(|(r, _)| seen.insert(r.id.clone()));
        all
    }

    pub fn put_key(&mut self, key: &str, id: &ReferralId) {
        if !self.keys.iter().any(|(k, _)| k == key) {
            self.keys.push((key.to_owned(), id.clone()));
        }
    }

    pub fn find_key(&self, key: &str) -> Option<ReferralId> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, id)| id.clone())
    }

    pub fn put_inbox(&mut self, item: &InboxItem) {
        self.inbox.retain(|m| m.id != item.id);
        self.inbox.push(item.clone());
    }

    pub fn find_inbox(&self, protocol: &str, source: &str, control_id: &str) -> Option<InboxItem> {
        self.inbox.iter().find(|m| m.protocol == protocol && m.source == source && m.control_id == control_id).cloned()
    }

    /// Takes out what a flush of `only` writes (parents, patients and referrals, always);
    /// the rows live in what is returned until the statements have run.
    pub fn take(&mut self, only: Only) -> Pending {
        let (all, p) = (only == Only::All, self);
        Pending {
            patients: std::mem::take(&mut p.patients),
            referrals: std::mem::take(&mut p.referrals),
            stats: if all { p.take_stats() } else { Vec::new() },
            outbox: take_if(all, &mut p.outbox),
            events: take_if(all, &mut p.events),
            audits: take_if(all, &mut p.audits),
            tasks: take_if(all || only == Only::Tasks, &mut p.tasks),
            timers: take_if(all || only == Only::Timers, &mut p.timers),
            timer_clears: take_if(all || only == Only::Timers, &mut p.timer_clears),
            keys: take_if(all, &mut p.keys),
            inbox: take_if(all, &mut p.inbox),
            providers: take_if(all, &mut p.providers),
        }
    }

    /// The writes, parents first, each at most [`CHUNK_ROWS`] rows; a referral's stored timers
    /// are deleted just before its new ones are written.
    pub fn parts(&self) -> Vec<Part<'_>> {
        let mut parts = Vec::new();
        // Upserts grouped by what they keep, so one statement's CASE serves the whole group.
        for keep in [(false, false), (false, true), (true, false), (true, true)] {
            let group: Vec<&Patient> =
                self.patients.iter().filter(|(_, k)| (k.consent, k.opt_out) == keep).map(|(p, _)| p).collect();
            for chunk in group.chunks(CHUNK_ROWS) {
                parts.push(Part::Patients(chunk.to_vec(), keep));
            }
        }
        parts.extend(self.referrals.chunks(CHUNK_ROWS).map(Part::Referrals));
        parts.extend(self.stats.chunks(CHUNK_ROWS).map(Part::Stats));
        parts.extend(self.outbox.chunks(CHUNK_ROWS).map(Part::Outbox));
        parts.extend(self.events.chunks(CHUNK_ROWS).map(Part::Events));
        parts.extend(self.audits.chunks(CHUNK_ROWS).map(Part::Audits));
        parts.extend(self.tasks.chunks(CHUNK_ROWS).map(Part::Tasks));
        parts.extend(self.timer_clears.chunks(CHUNK_ROWS).map(Part::ClearTimers));
        parts.extend(self.timers.chunks(CHUNK_ROWS).map(Part::Timers));
        parts.extend(self.keys.chunks(CHUNK_ROWS).map(Part::Keys));
        parts.extend(self.inbox.chunks(CHUNK_ROWS).map(Part::Inbox));
        parts.extend(self.providers.chunks(CHUNK_ROWS).map(Part::Providers));
        parts
    }
}

/// Which pending rows to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Only {
    All,
    /// Patients and referrals only; every other choice writes them first too.
    Parents,
    Timers,
    Tasks,
}

/// One multi-row INSERT of pending rows (at most [`CHUNK_ROWS`]).
pub(crate) enum Part<'a> {
    /// Patient upserts sharing what they keep of a stored row (consent, opt-out).
    Patients(Vec<&'a Patient>, (bool, bool)),
    Referrals(&'a [(Referral, Option<Timestamp>, Timestamp)]),
    Stats(&'a [(Referral, Option<Timestamp>)]),
    Outbox(&'a [OutboxItem]),
    Events(&'a [StoredEvent]),
    Audits(&'a [AuditEntry]),
    Tasks(&'a [NewTask]),
    Timers(&'a [(ReferralId, u64, TimerSpec)]),
    /// SQLite only (see `Pending::timer_clears`).
    ClearTimers(&'a [ReferralId]),
    Keys(&'a [(String, ReferralId)]),
    Inbox(&'a [InboxItem]),
    Providers(&'a [(String, String, Timestamp)]),
}

impl Part<'_> {
    pub fn rows(&self) -> usize {
        match self {
            Part::Patients(r, _) => r.len(),
            Part::Referrals(r) => r.len(),
            Part::Stats(r) => r.len(),
            Part::Outbox(r) => r.len(),
            Part::Events(r) => r.len(),
            Part::Audits(r) => r.len(),
            Part::Tasks(r) => r.len(),
            Part::Timers(r) => r.len(),
            Part::ClearTimers(r) => r.len(),
            Part::Keys(r) => r.len(),
            Part::Inbox(r) => r.len(),
            Part::Providers(r) => r.len(),
        }
    }
}

fn take_if<T>(yes: bool, v: &mut Vec<T>) -> Vec<T> {
    if yes { std::mem::take(v) } else { Vec::new() }
}

/// Most rows one combined query carries (at most 16 parameters a row: well under
/// PostgreSQL's 65,535 a statement; SQLite counts per statement).
pub(crate) const COMBINED_ROWS: usize = 2000;

/// Whether a failed write is two copies of one inbound message stored at once (the
/// inbox's unique key: PostgreSQL names the constraint, SQLite the columns).
pub(crate) fn inbox_clash(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            d.constraint().is_some_and(|c| c.starts_with("inbox")) || d.message().contains(" inbox.")
        }
        _ => false,
    }
}

/// Appends one part's INSERT to `q`.
macro_rules! push_part {
    ($q:expr, $part:expr) => {{
        use $crate::pending::Part;
        match $part {
            Part::Patients(rows, keep) => $crate::pending::patients_query!($q, rows, *keep),
            Part::Referrals(rows) => $crate::pending::referrals_query!($q, *rows),
            Part::Stats(rows) => $crate::pending::stats_query!($q, *rows),
            Part::Outbox(rows) => $crate::pending::outbox_query!($q, *rows),
            Part::Events(rows) => $crate::pending::events_query!($q, *rows),
            Part::Audits(rows) => $crate::pending::audits_query!($q, *rows),
            Part::Tasks(rows) => $crate::pending::tasks_query!($q, *rows),
            Part::Timers(rows) => $crate::pending::timers_query!($q, *rows),
            Part::Keys(rows) => {
                $q.push("INSERT INTO referral_keys (key, referral_id) ");
                $q.push_values(*rows, |mut b, (key, id)| {
                    b.push_bind(key.as_str()).push_bind(id.as_str());
                });
                $q.push(" ON CONFLICT (key) DO NOTHING");
            }
            Part::Inbox(rows) => $crate::pending::inbox_query!($q, *rows),
            Part::Providers(rows) => {
                $q.push("INSERT INTO providers (id, name, updated_at) ");
                $q.push_values(*rows, |mut b, (id, name, at)| {
                    b.push_bind(id.as_str()).push_bind(name.as_str()).push_bind($crate::row::ms(*at));
                });
                $q.push(" ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at");
            }
            Part::ClearTimers(ids) => {
                $q.push("DELETE FROM timers WHERE referral_id IN (");
                let mut list = $q.separated(", ");
                for id in *ids {
                    list.push_bind(id.as_str());
                }
                $q.push(")");
            }
        }
    }};
}
pub(crate) use push_part;

/// How a flush's INSERTs travel together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Combine {
    /// PostgreSQL: one statement, each INSERT a data-modifying `WITH` part; foreign keys
    /// are checked at the statement's end.
    WithParts,
    /// SQLite: the INSERTs as one multi-statement query, run in order in one call.
    Statements,
}

/// Writes pending rows through `$c` (a connection of either backend): all of them, or only
/// the table a following statement reads or changes — as one query of up to
/// [`COMBINED_ROWS`] rows, so a flush costs one round trip instead of one per table.
/// Parents precede the rows that reference them.
macro_rules! flush_pending {
    ($p:expr, $c:ident, $only:expr, $combine:expr) => {{
        let p: &mut $crate::pending::Pending = $p;
        let taken = p.take($only);
        let parts = taken.parts();
        let combine: $crate::pending::Combine = $combine;
        let mut start = 0;
        while start < parts.len() {
            let (mut end, mut rows) = (start, 0);
            while end < parts.len() && (end == start || rows + parts[end].rows() <= $crate::pending::COMBINED_ROWS) {
                rows += parts[end].rows();
                end += 1;
            }
            let mut q = sqlx::QueryBuilder::new("");
            let with = combine == $crate::pending::Combine::WithParts && end - start > 1;
            for (i, part) in parts[start..end].iter().enumerate() {
                match (with, i) {
                    (true, 0) => q.push("WITH w0 AS ("),
                    (true, _) => q.push(format_args!("), w{i} AS (")),
                    (false, 0) => &mut q,
                    (false, _) => q.push("; "),
                };
                $crate::pending::push_part!(q, part);
            }
            if with {
                q.push(") SELECT 1");
            }
            match q.build().execute(&mut *$c).await {
                Ok(_) => {}
                Err(e) if $crate::pending::inbox_clash(&e) => {
                    return Err(refloop_app::StoreError::Conflict("an inbound message arrived twice at once".into()));
                }
                Err(e) => return Err($crate::row::db(e)),
            }
            start = end;
        }
    }};
}
pub(crate) use flush_pending;

/// Rows per INSERT statement (well under both backends' parameter limits).
pub(crate) const CHUNK_ROWS: usize = 200;

macro_rules! patients_query {
    ($q:expr, $rows:expr, $keep:expr) => {{
        let (keep_consent, keep_opt_out) = $keep;
        let q = &mut $q;
        q.push(
            "INSERT INTO patients (id, name, birth_date, language, name_key, phone, phone_text, sms_consent, sms_opted_out, time_zone, updated_at) ",
        );
        q.push_values($rows, |mut b, p| {
            b.push_bind(p.id.as_str())
                .push_bind(p.name.as_deref())
                .push_bind(p.birth_date.as_deref())
                .push_bind(p.language.as_deref())
                .push_bind(p.name.as_deref().map($crate::row::name_key))
                .push_bind(p.phone.as_deref())
                .push_bind(p.phone_text.as_deref())
                .push_bind(p.sms_consent)
                .push_bind(p.sms_opted_out)
                .push_bind(p.time_zone.as_deref())
                .push_bind($crate::row::ms(p.updated_at));
        });
        q.push(" ON CONFLICT (id) DO UPDATE SET name = excluded.name, birth_date = excluded.birth_date, language = excluded.language, name_key = excluded.name_key, phone = excluded.phone, phone_text = excluded.phone_text, time_zone = excluded.time_zone, updated_at = excluded.updated_at");
        if !keep_consent {
            q.push(", sms_consent = excluded.sms_consent");
        }
        if !keep_opt_out {
            q.push(", sms_opted_out = excluded.sms_opted_out");
        }
    }};
}
pub(crate) use patients_query;

macro_rules! referrals_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push(
            "INSERT INTO referrals (id, version, state, patient_id, referring_provider, specialty, urgency, \
             origin, network, duplicate_of, tracked, ordered_at, stage_due_at, updated_at, doc) ",
        );
        q.push_values($rows, |mut b, (r, due, now)| {
            b.push_bind(r.id.as_str())
                .push_bind(r.version as i64)
                .push_bind(r.state.as_str())
                .push_bind(r.patient_id.as_str())
                .push_bind(r.referring_provider.as_str())
                .push_bind(r.specialty.as_ref().map(|s| s.as_str()))
                .push_bind(r.urgency.as_str())
                .push_bind(r.origin.as_str())
                .push_bind(r.network.as_str())
                .push_bind(r.duplicate_of.as_ref().map(|d| d.as_str()))
                .push_bind(r.is_tracked())
                .push_bind($crate::row::ms(r.ordered_at))
                .push_bind(due.map($crate::row::ms))
                .push_bind($crate::row::ms(*now))
                .push_bind($crate::row::referral_doc(r));
        });
    }};
}
pub(crate) use referrals_query;

/// Upserts the report rows (`referral_stats`) of referrals.
macro_rules! stats_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push(
            "INSERT INTO referral_stats (ordered_at, id, tracked, specialty, provider, specialist, network, urgency, \
             code, leak_reason, sample, m_notify, m_schedule, m_attend, m_note, m_total, stage_due) ",
        );
        q.push_values($rows, |mut b, (r, due): &(refloop_domain::Referral, Option<jiff::Timestamp>)| {
            let s = refloop_app::stats_of(r);
            b.push_bind($crate::row::ms(r.ordered_at))
                .push_bind(r.id.as_str())
                .push_bind(i16::from(s.tracked))
                .push_bind(r.specialty.as_ref().map(|x| x.as_str()))
                .push_bind(r.referring_provider.as_str())
                .push_bind(r.specialist.as_deref())
                .push_bind(r.network.as_str())
                .push_bind(r.urgency.as_str())
                .push_bind(s.code())
                .push_bind(s.stored_reason())
                .push_bind($crate::row::sample_of(r.id.as_str()));
            for m in s.minutes {
                b.push_bind(m);
            }
            b.push_bind(due.map($crate::row::ms));
        });
        q.push(
            " ON CONFLICT (ordered_at, id) DO UPDATE SET tracked = excluded.tracked, specialty = excluded.specialty, \
             provider = excluded.provider, specialist = excluded.specialist, network = excluded.network, \
             urgency = excluded.urgency, code = excluded.code, leak_reason = excluded.leak_reason, \
             m_notify = excluded.m_notify, m_schedule = excluded.m_schedule, m_attend = excluded.m_attend, \
             m_note = excluded.m_note, m_total = excluded.m_total, stage_due = excluded.stage_due",
        );
    }};
}
pub(crate) use stats_query;

macro_rules! outbox_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push(
            "INSERT INTO outbox (id, referral_id, patient_id, channel, purpose, key, status, attempts, \
             next_attempt_at, lease_until, created_at, sent_at, last_error, body) ",
        );
        q.push_values($rows, |mut b, m: &refloop_app::OutboxItem| {
            b.push_bind(m.id.as_str())
                .push_bind(m.referral_id.as_str())
                .push_bind(m.patient_id.as_str())
                .push_bind($crate::row::text_of(&m.channel))
                .push_bind($crate::row::text_of(&m.purpose))
                .push_bind(m.key.as_str())
                .push_bind(m.status.as_str())
                .push_bind(i64::from(m.attempts))
                .push_bind($crate::row::ms(m.next_attempt_at))
                .push_bind(None::<i64>)
                .push_bind($crate::row::ms(m.created_at))
                .push_bind(None::<i64>)
                .push_bind(None::<String>)
                .push_bind(m.body.as_deref());
        });
        q.push(" ON CONFLICT (key) DO NOTHING");
    }};
}
pub(crate) use outbox_query;

macro_rules! events_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push("INSERT INTO events (referral_id, version, type, at, recorded_at, source, data) ");
        q.push_values($rows, |mut b, e| {
            b.push_bind(e.referral_id.as_str())
                .push_bind(e.version as i64)
                .push_bind(e.data.kind())
                .push_bind($crate::row::ms(e.at))
                .push_bind($crate::row::ms(e.recorded_at))
                .push_bind(e.source.as_str())
                .push_bind($crate::row::event_data(e));
        });
    }};
}
pub(crate) use events_query;

macro_rules! audits_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push("INSERT INTO audit_log (at, actor, action, resource_type, resource_id, remote) ");
        q.push_values($rows, |mut b, e| {
            b.push_bind($crate::row::ms(e.at))
                .push_bind(e.actor.as_str())
                .push_bind(e.action.as_str())
                .push_bind(e.resource_type.as_str())
                .push_bind(e.resource_id.as_str())
                .push_bind(e.remote.as_deref());
        });
    }};
}
pub(crate) use audits_query;

macro_rules! tasks_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push("INSERT INTO tasks (id, referral_id, kind, status, due_at, created_at, inbox_id) ");
        q.push_values($rows, |mut b, t| {
            b.push_bind(t.id.as_str())
                .push_bind(t.referral_id.as_str())
                .push_bind(t.kind.as_str())
                .push_bind("open")
                .push_bind($crate::row::ms(t.due_at))
                .push_bind($crate::row::ms(t.created_at))
                .push_bind(t.inbox_id.as_deref());
        });
    }};
}
pub(crate) use tasks_query;

macro_rules! timers_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push("INSERT INTO timers (id, referral_id, kind, due_at, armed_version) ");
        q.push_values($rows, |mut b, (id, version, t)| {
            b.push_bind(format!("{id}:{}", t.kind.as_str()))
                .push_bind(id.as_str())
                .push_bind(t.kind.as_str())
                .push_bind($crate::row::ms(t.due_at))
                .push_bind(*version as i64);
        });
    }};
}
pub(crate) use timers_query;

macro_rules! inbox_query {
    ($q:expr, $rows:expr) => {{
        let q = &mut $q;
        q.push(
            "INSERT INTO inbox (id, protocol, source, control_id, transport, message_type, received_at, raw, \
             status, ack, application_ack, error, referral_id, attempts, updated_at) ",
        );
        q.push_values($rows, |mut b, m| {
            b.push_bind(m.id.as_str())
                .push_bind(m.protocol.as_str())
                .push_bind(m.source.as_str())
                .push_bind(m.control_id.as_str())
                .push_bind(m.transport.as_str())
                .push_bind(m.message_type.as_str())
                .push_bind($crate::row::ms(m.received_at))
                .push_bind(m.raw.as_slice())
                .push_bind(m.status.as_str())
                .push_bind(m.ack.as_deref())
                .push_bind(m.application_ack.as_deref())
                .push_bind(m.error.as_deref())
                .push_bind(m.referral_id.as_ref().map(|r| r.as_str()))
                .push_bind(i64::from(m.attempts))
                .push_bind($crate::row::ms(m.updated_at));
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET status = excluded.status, ack = excluded.ack, \
             application_ack = excluded.application_ack, error = excluded.error, \
             referral_id = excluded.referral_id, attempts = excluded.attempts, updated_at = excluded.updated_at",
        );
    }};
}
pub(crate) use inbox_query;
