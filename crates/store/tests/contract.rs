//! The storage contract: the same cases, unchanged, on SQLite and on PostgreSQL.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use refloop_app::{
    AUDIT_GENESIS, AuditEntry, AuditQuery, InboxItem, InboxStatus, NewTask, OutboxFilter, OutboxGuard, OutboxItem,
    OutboxStatus, Patient, PatientKeep, Reaped, Role, StoreError, StoredEvent, TaskChange, TaskFilter, TaskLogEntry,
    TaskStatus, TokenRecord, store::*,
};
use refloop_domain::{
    Channel, Context, EventData, Network, NewOrder, Origin, PatientId, Policy, ProviderId, Purpose, Referral,
    ReferralId, Specialty, TaskKind, TimerKind, TimerSpec, Urgency, decide_new,
};
use refloop_store::SqlStore;
use refloop_testkit::{Backend, TestDb, ts};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = refloop_testkit::TestDb::new(refloop_testkit::Backend::Sqlite).await;
                    super::$name(db.store().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = refloop_testkit::TestDb::new(refloop_testkit::Backend::Postgres).await;
                    super::$name(db.store().await).await
                }
            )*
        }
    };
}

fn referral(id: &str, patient: &str, ordered_at: Timestamp) -> Referral {
    let order = NewOrder {
        id: ReferralId::parse(id).unwrap(),
        patient_id: PatientId::parse(patient).unwrap(),
        referring_provider: ProviderId::parse("dr-a").unwrap(),
        specialty: Some(Specialty::parse("cardiology").unwrap()),
        specialist: None,
        urgency: Urgency::Routine,
        origin: Origin::PhysicianOrder,
        network: Network::Unknown,
        reason: None,
        source_ids: vec![],
        historical: false,
        ordered_at,
    };
    let policy = Policy::default();
    let ctx = Context {
        now: ordered_at,
        policy: &policy,
        contact: None,
        time_zone: &TimeZone::UTC,
        duplicate_candidate: None,
    };
    decide_new(order, &ctx).referral
}

async fn insert(store: &SqlStore, r: &Referral) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_referral(r, None, r.ordered_at).await.unwrap();
    tx.commit().await.unwrap();
}

fn message(id: &str, referral: &str, key: &str, due: Timestamp) -> OutboxItem {
    OutboxItem {
        id: id.into(),
        referral_id: ReferralId::parse(referral).unwrap(),
        patient_id: PatientId::parse("p1").unwrap(),
        channel: Channel::Sms,
        purpose: Purpose::PatientNotification,
        key: key.into(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: due,
        created_at: due,
        sent_at: None,
        last_error: None,
        body: None,
        first_attempt_at: None,
        check_first: false,
    }
}

async fn a_referral_round_trips_and_guards_its_version(store: Arc<SqlStore>) {
    let r = referral("ref_a", "p1", ts("2026-03-02T15:00:00Z"));
    insert(&store, &r).await;
    assert_eq!(store.referral(&r.id).await.unwrap(), Some(r.clone()));

    let mut next = r.clone();
    next.version = 2;
    let mut tx = store.begin().await.unwrap();
    tx.update_referral(&next, 1, None, r.ordered_at).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let stale = tx.update_referral(&next, 1, None, r.ordered_at).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    drop(tx);
    assert_eq!(store.referral(&r.id).await.unwrap().unwrap().version, 2);
}

async fn an_uncommitted_transaction_leaves_nothing(store: Arc<SqlStore>) {
    let r = referral("ref_gone", "p1", ts("2026-03-02T15:00:00Z"));
    let mut tx = store.begin().await.unwrap();
    tx.insert_referral(&r, None, r.ordered_at).await.unwrap();
    drop(tx);
    assert_eq!(store.referral(&r.id).await.unwrap(), None);
}

async fn events_are_append_only(store: Arc<SqlStore>) {
    let r = referral("ref_ev", "p1", ts("2026-03-02T15:00:00Z"));
    insert(&store, &r).await;
    let e = StoredEvent {
        referral_id: r.id.clone(),
        version: 1,
        data: EventData::NeedsCoding,
        at: r.ordered_at,
        recorded_at: r.ordered_at,
        source: "test".into(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.append_events(&[e.clone(), e.clone()]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.events(&r.id).await.unwrap(), vec![e.clone(), e]);
    // Neither an update nor a delete gets through the log's guard.
    for sql in ["UPDATE events SET source = 'forged'", "DELETE FROM events"] {
        assert!(store.execute_raw(sql).await.is_err(), "{sql} should be refused");
    }
    assert_eq!(store.events(&r.id).await.unwrap().len(), 2);
}

async fn timers_are_replaced_per_referral_and_come_due_in_order(store: Arc<SqlStore>) {
    let t0 = ts("2026-03-02T15:00:00Z");
    let a = referral("ref_ta", "p1", t0);
    let b = referral("ref_tb", "p2", t0);
    insert(&store, &a).await;
    insert(&store, &b).await;
    let spec = |kind, h| TimerSpec { kind, due_at: t0 + SignedDuration::from_hours(h) };
    let mut tx = store.begin().await.unwrap();
    tx.replace_timers(&a.id, 1, &[spec(TimerKind::NotifyDeadline, 24), spec(TimerKind::SchedulingEscalation, 168)])
        .await
        .unwrap();
    tx.replace_timers(&b.id, 1, &[spec(TimerKind::SchedulingEscalation, 48)]).await.unwrap();
    tx.replace_timers(&a.id, 2, &[spec(TimerKind::SchedulingEscalation, 168)]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(t0 + SignedDuration::from_hours(48)));

    let mut tx = store.begin().await.unwrap();
    let due = tx.due_timers(t0 + SignedDuration::from_hours(200), 10).await.unwrap();
    let got: Vec<(&str, TimerKind, u64)> =
        due.iter().map(|t| (t.referral_id.as_str(), t.kind, t.armed_version)).collect();
    assert_eq!(got, [("ref_tb", TimerKind::SchedulingEscalation, 1), ("ref_ta", TimerKind::SchedulingEscalation, 2)]);
    assert!(tx.due_timers(t0 + SignedDuration::from_hours(47), 10).await.unwrap().is_empty());
    tx.delete_timer(&due[0].id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(t0 + SignedDuration::from_hours(168)));
}

async fn the_outbox_takes_a_key_once_and_claims_only_due_items(store: Arc<SqlStore>) {
    let t0 = ts("2026-03-02T15:00:00Z");
    insert(&store, &referral("ref_o", "p1", t0)).await;
    let later = t0 + SignedDuration::from_hours(10);
    let mut tx = store.begin().await.unwrap();
    tx.enqueue(&message("msg_1", "ref_o", "k1", t0)).await.unwrap();
    tx.enqueue(&message("msg_2", "ref_o", "k1", t0)).await.unwrap();
    tx.enqueue(&message("msg_3", "ref_o", "k3", later)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.enqueue(&message("msg_4", "ref_o", "k3", later)).await.unwrap();
    tx.commit().await.unwrap();
    let all = store.outbox(&OutboxFilter { limit: 10, ..OutboxFilter::default() }).await.unwrap();
    let mut ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["msg_1", "msg_3"], "a key is taken once, in one transaction or across two");

    let lease = t0 + SignedDuration::from_mins(1);
    let claimed = store.claim_outbox(t0, 10, lease, "lease_1").await.unwrap();
    assert_eq!(claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["msg_1"]);
    assert_eq!((claimed[0].status, claimed[0].attempts, claimed[0].check_first), (OutboxStatus::Sending, 0, false));
    assert!(
        store.claim_outbox(t0, 10, lease, "lease_2").await.unwrap().is_empty(),
        "a claimed item is not claimed again"
    );

    // The worker died before its attempt: after the lease the item is due again as it was.
    assert_eq!(store.reap_outbox(t0 + SignedDuration::from_secs(30)).await.unwrap(), Reaped::default());
    let reaped = store.reap_outbox(t0 + SignedDuration::from_mins(2)).await.unwrap();
    assert_eq!((reaped.released, reaped.unconfirmed), (1, 0));
    let again =
        store.claim_outbox(t0 + SignedDuration::from_mins(2), 10, lease + SignedDuration::from_mins(2), "lease_3");
    let again = again.await.unwrap();
    assert_eq!((again.len(), again[0].check_first), (1, false));
    assert!(!store.start_attempt("msg_1", "lease_1", t0).await.unwrap(), "the first lease holds nothing now");
    assert!(store.start_attempt("msg_1", "lease_3", t0 + SignedDuration::from_mins(2)).await.unwrap());
    // A renewed lease is not reaped; one that ran out after the attempt started is unconfirmed.
    assert_eq!(store.extend_leases("lease_3", t0 + SignedDuration::from_mins(10)).await.unwrap(), 1);
    assert_eq!(store.reap_outbox(t0 + SignedDuration::from_mins(5)).await.unwrap(), Reaped::default());
    let reaped = store.reap_outbox(t0 + SignedDuration::from_mins(11)).await.unwrap();
    assert_eq!((reaped.released, reaped.unconfirmed), (0, 1));
    let all = store.outbox(&OutboxFilter { limit: 10, ..OutboxFilter::default() }).await.unwrap();
    let item = |id: &str| all.iter().find(|m| m.id == id).unwrap().clone();
    assert_eq!((item("msg_1").status, item("msg_1").attempts), (OutboxStatus::Unconfirmed, 1));
    assert_eq!(item("msg_1").first_attempt_at, Some(t0 + SignedDuration::from_mins(2)));
    assert_eq!(item("msg_3").status, OutboxStatus::Pending);

    let mut tx = store.begin().await.unwrap();
    let settled = tx.finish_outbox("msg_3", OutboxGuard::Lease("lease_9"), OutboxStatus::Sent, later, None, None);
    assert!(!settled.await.unwrap(), "no lease, no outcome");
    let settled = tx.finish_outbox(
        "msg_3",
        OutboxGuard::Status(OutboxStatus::Pending),
        OutboxStatus::Sent,
        later,
        Some(later),
        None,
    );
    assert!(settled.await.unwrap());
    tx.commit().await.unwrap();
    let sent = store
        .outbox(&OutboxFilter { status: Some(OutboxStatus::Sent), limit: 10, ..OutboxFilter::default() })
        .await
        .unwrap();
    assert_eq!(sent[0].sent_at, Some(later));
}

async fn tasks_open_claim_complete_and_close(store: Arc<SqlStore>) {
    let t0 = ts("2026-03-02T15:00:00Z");
    let r = referral("ref_k", "p1", t0);
    insert(&store, &r).await;
    let mut tx = store.begin().await.unwrap();
    for (id, kind) in
        [("tsk_1", TaskKind::NotifyPatient), ("tsk_2", TaskKind::ScheduleFollowUp), ("tsk_3", TaskKind::FixContact)]
    {
        tx.open_task(&NewTask {
            id: id.into(),
            referral_id: r.id.clone(),
            kind,
            due_at: t0,
            created_at: t0,
            inbox_id: None,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let change = |id: &'static str, c: TaskChange| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let t = tx.change_task(id, &c).await.unwrap();
            tx.commit().await.unwrap();
            t
        }
    };
    let claim = |who: &str, reassign: bool| TaskChange::Claim { assignee: who.into(), reassign };
    let claimed = change("tsk_1", claim("casey", false)).await.unwrap();
    assert_eq!((claimed.status, claimed.assignee.as_deref()), (TaskStatus::Claimed, Some("casey")));
    assert!(change("tsk_1", claim("sam", false)).await.is_none());
    let moved = change("tsk_1", claim("sam", true)).await.unwrap();
    assert_eq!(moved.assignee.as_deref(), Some("sam"));
    let later = t0 + jiff::SignedDuration::from_hours(18);
    let retry = TaskChange::Retry { outcome: "no-answer".into(), note: Some("rang twice".into()), due_at: later };
    let again = change("tsk_1", retry).await.unwrap();
    assert_eq!(
        (again.status, again.assignee.as_deref(), again.due_at, again.attempts, again.note.as_deref()),
        (TaskStatus::Open, None, later, 1, Some("rang twice"))
    );
    let complete =
        |outcome: &str| TaskChange::Complete { by: "sam".into(), outcome: outcome.into(), note: None, at: t0 };
    let done = change("tsk_2", complete("booked")).await.unwrap();
    assert_eq!((done.status, done.outcome.as_deref(), done.completed_at), (TaskStatus::Done, Some("booked"), Some(t0)));
    assert_eq!(done.assignee.as_deref(), Some("sam"), "who completed it");
    assert!(change("tsk_2", complete("again")).await.is_none(), "a done task takes no change");
    let mut tx = store.begin().await.unwrap();
    let line = TaskLogEntry {
        task_id: "tsk_2".into(),
        referral_id: r.id.clone(),
        at: t0,
        actor: "coordinator:sam".into(),
        action: "completed".into(),
        assignee: None,
        outcome: Some("booked".into()),
        note: None,
    };
    tx.log_task(&line).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.task_log(&r.id).await.unwrap(), [line]);
    let today = TaskFilter { completed_after: Some(t0), limit: 10, ..TaskFilter::default() };
    assert_eq!(store.tasks(&today).await.unwrap().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["tsk_2"]);

    let mut tx = store.begin().await.unwrap();
    tx.close_tasks(&r.id, &[TaskKind::NotifyPatient], t0, "resolved").await.unwrap();
    tx.commit().await.unwrap();
    let open =
        store.tasks(&TaskFilter { status: Some(TaskStatus::Open), limit: 10, ..TaskFilter::default() }).await.unwrap();
    assert_eq!(open.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["tsk_3"]);
    assert_eq!(store.task("tsk_2").await.unwrap().unwrap().status, TaskStatus::Done);
}

async fn the_duplicate_candidate_is_the_newest_tracked_order_in_the_window(store: Arc<SqlStore>) {
    let t0 = ts("2026-03-02T15:00:00Z");
    let day = |d: i64| t0 + SignedDuration::from_hours(24 * d);
    insert(&store, &referral("ref_d1", "p1", day(0))).await;
    insert(&store, &referral("ref_d2", "p1", day(3))).await;
    insert(&store, &referral("ref_d3", "p1", day(40))).await;
    insert(&store, &referral("ref_x", "p2", day(4))).await;
    let mut tx = store.begin().await.unwrap();
    let p1 = PatientId::parse("p1").unwrap();
    let cardio = Specialty::parse("cardiology").unwrap();
    let found = tx.duplicate_candidate(&p1, &cardio, day(-10), day(18)).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.ordered_at), ("ref_d2", day(3)));
    let derm = Specialty::parse("dermatology").unwrap();
    assert!(tx.duplicate_candidate(&p1, &derm, day(-10), day(18)).await.unwrap().is_none());
    assert!(tx.duplicate_candidate(&p1, &cardio, day(10), day(30)).await.unwrap().is_none());
}

async fn patients_tokens_and_audit_rows_are_kept(store: Arc<SqlStore>) {
    let t0 = ts("2026-03-02T15:00:00Z");
    let p = Patient {
        id: PatientId::parse("p1").unwrap(),
        name: Some("Pat".into()),
        birth_date: Some("1970-05-04".into()),
        language: Some("es".into()),
        phone: Some("+15555550123".into()),
        phone_text: Some("(555) 555-0123".into()),
        sms_consent: true,
        sms_opted_out: false,
        time_zone: Some("America/Chicago".into()),
        updated_at: t0,
    };
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.upsert_patient(&p, PatientKeep::default()).await.unwrap(), p);
    let changed = Patient { sms_opted_out: true, ..p.clone() };
    assert_eq!(tx.upsert_patient(&changed, PatientKeep::default()).await.unwrap(), changed);
    // A referral that carries no consent keeps the one on file, and never clears an opt-out.
    let from_order =
        Patient { sms_consent: false, sms_opted_out: false, phone: Some("+15555550199".into()), ..p.clone() };
    let kept = tx.upsert_patient(&from_order, PatientKeep { consent: true, opt_out: true }).await.unwrap();
    assert_eq!((kept.sms_consent, kept.sms_opted_out, kept.phone.as_deref()), (true, true, Some("+15555550199")));
    tx.commit().await.unwrap();
    assert_eq!(store.patient(&p.id).await.unwrap(), Some(kept.clone()));
    // A later transaction merges with the stored row, and a patient it never wrote is absent.
    let mut tx = store.begin().await.unwrap();
    let again =
        Patient { sms_consent: false, name: None, updated_at: t0 + jiff::SignedDuration::from_hours(1), ..p.clone() };
    let again = Patient { birth_date: None, language: None, ..again };
    let merged = tx.upsert_patient(&again, PatientKeep { consent: true, opt_out: true }).await.unwrap();
    assert_eq!((merged.sms_consent, merged.sms_opted_out, merged.name.as_deref()), (true, true, None));
    // What an update does not say of the date of birth and language is kept.
    assert_eq!((merged.birth_date.as_deref(), merged.language.as_deref()), (Some("1970-05-04"), Some("es")));
    assert_eq!(tx.patient(&p.id).await.unwrap(), Some(merged.clone()));
    assert_eq!(tx.patient(&PatientId::parse("p-none").unwrap()).await.unwrap(), None);
    tx.commit().await.unwrap();
    assert_eq!(store.patient(&p.id).await.unwrap(), Some(merged));

    let token = TokenRecord {
        id: "tok_1".into(),
        name: "ci".into(),
        role: Role::Viewer,
        hash: "ab".repeat(32),
        created_at: t0,
        expires_at: Some(t0 + jiff::SignedDuration::from_hours(24)),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_token(&token).await.unwrap();
    assert_eq!(store.token_by_hash(&"ab".repeat(32)).await.unwrap(), Some(token.clone()));
    assert_eq!(store.token_by_hash("tok_1").await.unwrap(), None);
    // A use is recorded to the minute; revoking by name (or id) revokes the live ones once.
    let later = t0 + jiff::SignedDuration::from_secs(30);
    store.token_used("tok_1", t0).await.unwrap();
    store.token_used("tok_1", later).await.unwrap();
    assert_eq!(store.tokens().await.unwrap()[0].last_used_at, Some(t0), "within the minute: not written again");
    assert_eq!(store.revoke_tokens("ci", later).await.unwrap(), ["tok_1"]);
    assert!(store.revoke_tokens("tok_1", later).await.unwrap().is_empty(), "already revoked");
    let stored = store.tokens().await.unwrap();
    assert_eq!(stored[0].revoked_at, Some(later));
    assert!(
        !stored[0].is_live(later) && token.is_live(later) && !token.is_live(t0 + jiff::SignedDuration::from_hours(25))
    );

    let entry = AuditEntry {
        at: t0,
        actor: "viewer:ci".into(),
        action: "read".into(),
        resource_type: "referral".into(),
        resource_id: "ref_1".into(),
        remote: Some("127.0.0.1".into()),
    };
    store.audit(&entry).await.unwrap();
    assert_eq!(store.audit_log(5).await.unwrap(), vec![entry]);
}

fn audit_row(writer: usize, i: usize, at: Timestamp) -> AuditEntry {
    AuditEntry {
        at,
        actor: format!("coordinator:w{writer}"),
        action: "list".into(),
        resource_type: "referral".into(),
        resource_id: format!("ref_{writer}a{i},ref_{writer}b{i}"),
        remote: Some("10.0.0.9:4100".into()),
    }
}

/// Walks the sealed chain from `(pos, hash)`: every place follows the last, names its hash,
/// and hashes its own columns. How many rows.
async fn walk_chain(store: &SqlStore, mut pos: i64, mut prev: String) -> usize {
    let mut n = 0;
    for rec in store.audit_chain(pos, 10_000).await.unwrap() {
        let seal = rec.seal.clone().expect("a chain row is sealed");
        assert_eq!((seal.pos, seal.prev_hash.as_str()), (pos + 1, prev.as_str()), "row {}", rec.seq);
        assert_eq!(rec.entry.chain_hash(rec.seq, seal.pos, &seal.prev_hash), seal.hash, "row {}", rec.seq);
        (pos, prev) = (seal.pos, seal.hash);
        n += 1;
    }
    n
}

/// Rows written by four writers while two sealers run end in one unbroken chain; a sealed
/// row can be neither changed nor deleted, an unsealed one only sealed; a search finds a
/// referral inside a list read; the retention purge cuts the chain's head and records where
/// it now starts.
async fn audit_rows_seal_into_one_chain_and_stay_as_sealed(store: Arc<SqlStore>) {
    let t0 = ts("2026-03-02T15:00:00Z");
    let mut work = tokio::task::JoinSet::new();
    for w in 0..4 {
        let s = store.clone();
        work.spawn(async move {
            for i in 0..25 {
                s.audit(&audit_row(w, i, t0 + SignedDuration::from_secs(i as i64))).await.unwrap();
            }
        });
    }
    for _ in 0..2 {
        let s = store.clone();
        work.spawn(async move {
            for _ in 0..20 {
                s.seal_audit(7).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(done) = work.join_next().await {
        done.unwrap();
    }
    while store.seal_audit(50).await.unwrap() > 0 {}
    assert_eq!(store.unsealed_audit().await.unwrap(), 0);
    assert_eq!(walk_chain(&store, 0, AUDIT_GENESIS.to_owned()).await, 100);

    for sql in [
        "UPDATE audit_log SET actor = 'forged' WHERE seq = 3",
        "UPDATE audit_log SET hash = 'forged' WHERE seq = 3",
        "UPDATE audit_log SET chain_pos = NULL, prev_hash = NULL, hash = NULL WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
    ] {
        assert!(store.execute_raw(sql).await.is_err(), "{sql} should be refused");
    }
    store.audit(&audit_row(9, 0, t0 + SignedDuration::from_secs(30))).await.unwrap();
    assert!(store.execute_raw("UPDATE audit_log SET actor = 'forged' WHERE hash IS NULL").await.is_err());
    assert_eq!(store.seal_audit(50).await.unwrap(), 1);

    let q = AuditQuery { ids: vec!["ref_2b7".into()], limit: 10, ..AuditQuery::default() };
    let found = store.audit_search(&q).await.unwrap();
    assert_eq!(found.len(), 1, "a list read names the referral: {found:?}");
    assert_eq!(found[0].entry.resource_id, "ref_2a7,ref_2b7");
    let q = AuditQuery { ids: vec!["ref_2b".into()], limit: 10, ..AuditQuery::default() };
    assert!(store.audit_search(&q).await.unwrap().is_empty(), "an id matches whole, never as a prefix");
    let q = AuditQuery { actor: Some("coordinator:w1".into()), limit: 1000, ..AuditQuery::default() };
    assert_eq!(store.audit_search(&q).await.unwrap().len(), 25);
    let (from, to) = (Some(t0 + SignedDuration::from_secs(5)), Some(t0 + SignedDuration::from_secs(10)));
    let q = AuditQuery { from, to, limit: 3, oldest_after: Some(0), ..AuditQuery::default() };
    let mut pages = Vec::new();
    let mut q = q;
    loop {
        let page = store.audit_search(&q).await.unwrap();
        if page.is_empty() {
            break;
        }
        q.oldest_after = page.last().map(|r| r.seq);
        pages.extend(page.into_iter().map(|r| r.seq));
    }
    assert_eq!(pages.len(), 20, "4 writers × seconds 5..9");
    assert!(pages.windows(2).all(|w| w[0] < w[1]), "oldest first");

    // Everything recorded before second 10 that heads the chain goes; the chain then starts
    // after the last row purged, and new rows follow on.
    let before = t0 + SignedDuration::from_secs(10);
    let gone = store.purge_audit(before, t0 + SignedDuration::from_hours(1)).await.unwrap();
    assert!(gone > 0);
    let anchor = store.audit_anchor().await.unwrap().expect("the purge records where the chain starts");
    assert_eq!(anchor.pos as u64, gone);
    let first = store.audit_chain(0, 1).await.unwrap().remove(0);
    assert!(first.entry.at >= before || first.seal.as_ref().unwrap().pos == anchor.pos + 1);
    assert_eq!(walk_chain(&store, anchor.pos, anchor.hash.clone()).await as u64, 101 - gone);
    assert!(store.execute_raw("DELETE FROM audit_log").await.is_err(), "the guard is back after the purge");
    store.audit(&audit_row(9, 1, t0 + SignedDuration::from_secs(40))).await.unwrap();
    assert_eq!(store.seal_audit(50).await.unwrap(), 1);
    assert_eq!(walk_chain(&store, anchor.pos, anchor.hash).await as u64, 102 - gone);
}

fn inbox_item(id: &str, control: &str, at: Timestamp) -> InboxItem {
    InboxItem {
        id: id.into(),
        protocol: "hl7v2".into(),
        source: "EPIC^NORTH".into(),
        control_id: control.into(),
        transport: "mllp".into(),
        message_type: "REF^I12".into(),
        received_at: at,
        raw: b"MSH|^~\\&|EPIC|NORTH".to_vec(),
        status: InboxStatus::Applied,
        ack: Some(b"MSA|AA".to_vec()),
        application_ack: None,
        error: None,
        referral_id: None,
        attempts: 1,
        updated_at: at,
    }
}

/// A transaction's pending rows go out together at the commit (one query per flush); a
/// second copy of an inbound message among them is a conflict, and nothing of the
/// transaction is kept.
async fn pending_rows_of_many_tables_commit_together_or_not_at_all(store: Arc<SqlStore>) {
    let t0 = ts("2026-03-02T15:00:00Z");
    let r = referral("ref_many", "p9", t0);
    let event = StoredEvent {
        referral_id: r.id.clone(),
        version: 1,
        data: EventData::NeedsCoding,
        at: t0,
        recorded_at: t0,
        source: "test".into(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_referral(&r, None, t0).await.unwrap();
    tx.append_events(std::slice::from_ref(&event)).await.unwrap();
    tx.inbox_put(&inbox_item("inb_1", "C1", t0)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.referral(&r.id).await.unwrap().map(|r| r.id), Some(r.id.clone()));
    assert_eq!(store.events(&r.id).await.unwrap(), vec![event.clone()]);
    assert_eq!(store.inbox_item("inb_1").await.unwrap().map(|m| m.control_id), Some("C1".into()));

    // The same sender and control id under another id: refused as a conflict.
    let other = referral("ref_other", "p8", t0);
    let mut tx = store.begin().await.unwrap();
    tx.insert_referral(&other, None, t0).await.unwrap();
    tx.inbox_put(&inbox_item("inb_2", "C1", t0)).await.unwrap();
    let clash = tx.commit().await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(store.referral(&other.id).await.unwrap(), None);
    assert_eq!(store.inbox_item("inb_2").await.unwrap(), None);
}

/// A data backfill runs at the first start after the migration that brings it, is recorded,
/// and never runs again: a later start does no work that grows with history.
async fn a_data_migration_runs_once_and_is_recorded(store: Arc<SqlStore>) {
    insert(&store, &referral("ref_old", "p1", ts("2026-03-02T15:00:00Z"))).await;
    // As a database from before the report rows: the referral has none, the backfill never ran.
    assert_eq!(store.execute_raw("DELETE FROM referral_stats").await.unwrap(), 1);
    assert_eq!(store.execute_raw("DELETE FROM data_migrations WHERE name = 'report rows'").await.unwrap(), 1);
    let status = store.migration_status().await.unwrap();
    assert_eq!((status.pending.len(), status.data_pending), (0, vec!["report rows".to_owned()]));

    store.migrate().await.unwrap();
    assert!(store.migration_status().await.unwrap().up_to_date());
    assert_eq!(store.execute_raw("DELETE FROM referral_stats").await.unwrap(), 1, "the backfill wrote the row");
    store.migrate().await.unwrap();
    assert_eq!(store.execute_raw("DELETE FROM referral_stats").await.unwrap(), 0, "a second start does not scan again");
}

on_both_backends!(
    a_data_migration_runs_once_and_is_recorded,
    pending_rows_of_many_tables_commit_together_or_not_at_all,
    a_referral_round_trips_and_guards_its_version,
    an_uncommitted_transaction_leaves_nothing,
    events_are_append_only,
    timers_are_replaced_per_referral_and_come_due_in_order,
    the_outbox_takes_a_key_once_and_claims_only_due_items,
    tasks_open_claim_complete_and_close,
    the_duplicate_candidate_is_the_newest_tracked_order_in_the_window,
    patients_tokens_and_audit_rows_are_kept,
    audit_rows_seal_into_one_chain_and_stay_as_sealed,
);

/// On PostgreSQL, two processes claiming due timers at once never get the same referral.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_timer_claims_skip_each_others_referrals() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let t0 = ts("2026-03-02T15:00:00Z");
    let mut tx = store.begin().await.unwrap();
    for i in 0..20 {
        let r = referral(&format!("ref_c{i:02}"), &format!("p{i}"), t0);
        tx.insert_referral(&r, None, t0).await.unwrap();
        tx.replace_timers(&r.id, 1, &[TimerSpec { kind: TimerKind::SchedulingEscalation, due_at: t0 }]).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut first = store.begin().await.unwrap();
    let a = first.due_timers(t0, 12).await.unwrap();
    let mut second = store.begin().await.unwrap();
    let b = second.due_timers(t0, 12).await.unwrap();
    assert_eq!((a.len(), b.len()), (12, 8));
    assert!(a.iter().all(|x| b.iter().all(|y| x.referral_id != y.referral_id)));
}

/// On PostgreSQL, two transactions that lock two referrals in opposite order deadlock; the
/// one the server breaks off fails with a conflict (worth taking again), the other goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_deadlock_is_a_conflict_and_the_other_side_commits() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let t0 = ts("2026-03-02T15:00:00Z");
    let (a, b) = (referral("ref_da", "p1", t0), referral("ref_db", "p2", t0));
    insert(&store, &a).await;
    insert(&store, &b).await;
    let mut first = store.begin().await.unwrap();
    let mut second = store.begin().await.unwrap();
    assert!(first.lock_referral(&a.id, false).await.unwrap().is_some());
    assert!(second.lock_referral(&b.id, false).await.unwrap().is_some());
    let one = async {
        let locked = first.lock_referral(&b.id, false).await;
        if locked.is_ok() {
            first.commit().await.unwrap();
        } else {
            drop(first);
        }
        locked
    };
    let two = async {
        let locked = second.lock_referral(&a.id, false).await;
        if locked.is_ok() {
            second.commit().await.unwrap();
        } else {
            drop(second);
        }
        locked
    };
    let (one, two) = tokio::join!(one, two);
    let failed: Vec<_> = [&one, &two].into_iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failed.len(), 1, "{one:?} {two:?}");
    assert!(matches!(failed[0], StoreError::Conflict(why) if why.contains("deadlock")), "{failed:?}");
}
