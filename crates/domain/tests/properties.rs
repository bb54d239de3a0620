//! Invariants of the lifecycle, checked over random sequences of inputs.

use jiff::{Timestamp, tz::TimeZone};
use proptest::prelude::*;
use refloop_domain::{
    Channel, Contact, Context, Input, Network, NewOrder, OrderUpdate, Origin, PatientId, Policy, ProviderId, Purpose,
    Referral, ReferralId, Specialty, State, TimerKind, Urgency, decide, decide_new, timers_for,
};

fn t0() -> Timestamp {
    "2026-03-02T15:00:00Z".parse().unwrap()
}

fn hours(h: i64) -> Timestamp {
    t0() + jiff::SignedDuration::from_hours(h)
}

fn new_referral(policy: &Policy, contact: &Contact) -> Referral {
    let order = NewOrder {
        id: ReferralId::parse("ref_test").unwrap(),
        patient_id: PatientId::parse("p1").unwrap(),
        referring_provider: ProviderId::parse("dr-a").unwrap(),
        specialty: Some(Specialty::parse("cardiology").unwrap()),
        specialist: None,
        urgency: Urgency::Routine,
        origin: Origin::PhysicianOrder,
        network: Network::OutOfNetwork,
        reason: None,
        source_ids: vec![],
        historical: false,
        ordered_at: t0(),
    };
    let tz = TimeZone::UTC;
    let ctx = Context { now: t0(), policy, contact: Some(contact), time_zone: &tz, duplicate_candidate: None };
    decide_new(order, &ctx).referral
}

const TIMERS: [TimerKind; TimerKind::ALL.len()] = TimerKind::ALL;

/// An input, with the current version filled in later for timers (`fresh`).
#[derive(Clone, Debug)]
enum Step {
    Milestone(State, i64, Option<i64>),
    NoShow(i64),
    Cancel(i64),
    Close(i64),
    Timer(TimerKind, bool),
    Delivered(i64),
    Failed,
    Update(Urgency),
}

fn step() -> impl Strategy<Value = Step> {
    let milestone = prop_oneof![
        Just(State::PatientNotified),
        Just(State::Scheduled),
        Just(State::Attended),
        Just(State::NoteReceived)
    ];
    prop_oneof![
        4 => (milestone, 0..2000i64, proptest::option::of(0..2000i64)).prop_map(|(s, h, a)| Step::Milestone(s, h, a)),
        1 => (0..2000i64).prop_map(Step::NoShow),
        1 => (0..2000i64).prop_map(Step::Cancel),
        1 => (0..2000i64).prop_map(Step::Close),
        4 => (0..7usize, any::<bool>()).prop_map(|(k, fresh)| Step::Timer(TIMERS[k], fresh)),
        1 => (0..2000i64).prop_map(Step::Delivered),
        1 => Just(Step::Failed),
        1 => prop_oneof![Just(Urgency::Routine), Just(Urgency::Urgent)].prop_map(Step::Update),
    ]
}

fn input(s: &Step, r: &Referral) -> Input {
    match s.clone() {
        Step::Milestone(state, h, a) => {
            Input::Milestone { state, at: hours(h), appointment_at: a.map(hours), channel: None }
        }
        Step::NoShow(h) => Input::NoShow { at: hours(h) },
        Step::Cancel(h) => Input::Cancel { at: hours(h), reason: None },
        Step::Close(h) => Input::CloseIncomplete { at: hours(h), reason: "moved away".into() },
        Step::Timer(kind, fresh) => {
            Input::TimerElapsed { kind, armed_version: if fresh { r.version } else { r.version.saturating_sub(1) } }
        }
        Step::Delivered(h) => {
            Input::Delivered { channel: Channel::Sms, purpose: Purpose::PatientNotification, at: hours(h) }
        }
        Step::Failed => Input::DeliveryFailed {
            channel: Channel::Sms,
            purpose: Purpose::PatientNotification,
            error: "bounced".into(),
            task: None,
        },
        Step::Update(u) => Input::OrderUpdated(OrderUpdate { urgency: Some(u), ..OrderUpdate::default() }),
    }
}

fn milestone_slots(r: &Referral) -> [Option<Timestamp>; 7] {
    let m = &r.milestones;
    [m.ordered, m.patient_notified, m.scheduled, m.attended, m.note_received, m.cancelled, m.closed_incomplete]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn milestones_never_go_backwards(steps in proptest::collection::vec(step(), 1..40)) {
        let policy = Policy::default();
        let contact = Contact { phone: Some("+15555550123".into()), sms_consent: true, sms_opted_out: false };
        let tz = TimeZone::UTC;
        let mut r = new_referral(&policy, &contact);
        for (i, s) in steps.iter().enumerate() {
            let ctx = Context { now: hours(i as i64 * 24), policy: &policy, contact: Some(&contact), time_zone: &tz, duplicate_candidate: None };
            let before = r.clone();
            let Ok(d) = decide(&r, input(s, &r), &ctx) else { continue };
            let after = d.referral;
            prop_assert_eq!(after.version, before.version + 1);
            // A milestone once reached keeps its first timestamp.
            for (old, new) in milestone_slots(&before).iter().zip(milestone_slots(&after).iter()) {
                if old.is_some() {
                    prop_assert_eq!(old, new);
                }
            }
            // The state only moves forward, but for a no-show from scheduled.
            match (before.state.rank(), after.state.rank()) {
                (Some(a), Some(b)) if b < a => {
                    prop_assert!(matches!(s, Step::NoShow(_)), "{:?} moved {} back to {}", s, before.state, after.state);
                    prop_assert_eq!((before.state, after.state), (State::Scheduled, State::PatientNotified));
                }
                (None, _) => prop_assert_eq!(before.state, after.state, "an ended referral changed state"),
                _ => {}
            }
            r = after;
        }
    }

    #[test]
    fn a_closed_or_cancelled_referral_never_reopens_from_a_timer(
        close in any::<bool>(),
        prefix in proptest::collection::vec(step(), 0..10),
        timers in proptest::collection::vec((0..7usize, 0..5u64), 1..20),
    ) {
        let policy = Policy::default();
        let contact = Contact::default();
        let tz = TimeZone::UTC;
        let mut r = new_referral(&policy, &contact);
        let ctx = Context { now: t0(), policy: &policy, contact: Some(&contact), time_zone: &tz, duplicate_candidate: None };
        for s in &prefix {
            if let Ok(d) = decide(&r, input(s, &r), &ctx) { r = d.referral; }
        }
        let end = if close { Input::CloseIncomplete { at: t0(), reason: "declined".into() } } else { Input::Cancel { at: t0(), reason: None } };
        if let Ok(d) = decide(&r, end, &ctx) { r = d.referral; }
        prop_assume!(r.state.is_terminal());
        prop_assert!(timers_for(&r, &policy).is_empty());
        for (k, back) in timers {
            let later = Context { now: hours(24 * 400), ..ctx.clone() };
            let fired = decide(&r, Input::TimerElapsed { kind: TIMERS[k], armed_version: r.version.saturating_sub(back) }, &later);
            prop_assert!(fired.is_err(), "a timer acted on an ended referral");
        }
    }
}

#[test]
fn a_stale_timer_is_refused() {
    let policy = Policy::default();
    let contact = Contact::default();
    let tz = TimeZone::UTC;
    let r = new_referral(&policy, &contact);
    let ctx = Context {
        now: hours(24 * 8),
        policy: &policy,
        contact: Some(&contact),
        time_zone: &tz,
        duplicate_candidate: None,
    };
    let fired =
        decide(&r, Input::TimerElapsed { kind: TimerKind::SchedulingEscalation, armed_version: r.version }, &ctx);
    assert!(fired.is_ok());
    let stale =
        decide(&r, Input::TimerElapsed { kind: TimerKind::SchedulingEscalation, armed_version: r.version - 1 }, &ctx);
    assert!(stale.is_err());
}
