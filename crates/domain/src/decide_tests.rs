//! Channels that are off: each rule one row.

use jiff::{Timestamp, tz::TimeZone};

use super::*;
use crate::{
    Network, PatientId, ProviderId, Specialty, Urgency,
    input::{Contact, NewOrder},
    policy::LiveChannels,
};

fn t0() -> Timestamp {
    "2026-03-02T15:00:00Z".parse().unwrap()
}

fn contact(consent: bool, phone: &str) -> Contact {
    Contact { phone: Some(phone.to_owned()), sms_consent: consent, sms_opted_out: false }
}

fn order() -> NewOrder {
    NewOrder {
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
    }
}

fn new_with(policy: &Policy, contact: &Contact) -> Decision {
    let tz = TimeZone::UTC;
    let ctx = Context { now: t0(), policy, contact: Some(contact), time_zone: &tz, duplicate_candidate: None };
    decide_new(order(), &ctx)
}

fn sends(d: &Decision) -> Vec<Channel> {
    d.effects.iter().filter_map(|e| if let Effect::Send(o) = e { Some(o.channel) } else { None }).collect()
}

fn tasks(d: &Decision) -> Vec<TaskKind> {
    d.effects.iter().filter_map(|e| if let Effect::OpenTask { kind, .. } = e { Some(*kind) } else { None }).collect()
}

#[test]
fn channel_indexes_follow_all() {
    for (i, c) in Channel::ALL.iter().enumerate() {
        assert_eq!(c.index(), i, "{c:?}");
        assert_eq!(Channel::parse(c.as_str()), Some(*c));
    }
}

#[test]
fn stage_one_takes_the_no_consent_path_when_its_channel_is_off() {
    let ok = contact(true, "+15555550123");
    let bad = contact(true, "555-0123");
    let none = contact(false, "+15555550123");
    let all = LiveChannels::ALL;
    let no_sms = all.with(Channel::Sms, false);
    let nothing = LiveChannels::NONE;
    // (live channels, portal supported, contact) → (sends, tasks)
    type Row<'a> = (LiveChannels, bool, &'a Contact, &'a [Channel], &'a [TaskKind]);
    let rows: [Row; 8] = [
        (all, false, &ok, &[Channel::Sms], &[]),
        (no_sms, false, &ok, &[], &[TaskKind::NotifyPatient]),
        (no_sms, true, &ok, &[Channel::Portal], &[]),
        (nothing, true, &ok, &[], &[TaskKind::NotifyPatient]),
        (all, false, &bad, &[], &[TaskKind::FixContact]),
        (no_sms, false, &bad, &[], &[TaskKind::NotifyPatient]),
        (all, true, &none, &[Channel::Portal], &[]),
        (all.with(Channel::Portal, false), true, &none, &[], &[TaskKind::NotifyPatient]),
    ];
    for (i, (live, portal, c, want_sends, want_tasks)) in rows.into_iter().enumerate() {
        let policy = Policy { live, portal_messages: portal, ..Policy::default() };
        let d = new_with(&policy, c);
        assert_eq!((sends(&d).as_slice(), tasks(&d).as_slice()), (want_sends, want_tasks), "row {i}");
        assert_eq!(d.referral.state, State::Ordered, "row {i}");
    }
}

#[test]
fn a_message_on_an_off_channel_opens_the_task_a_failure_would() {
    let policy = Policy::default();
    let c = contact(true, "+15555550123");
    let tz = TimeZone::UTC;
    let ctx = Context { now: t0(), policy: &policy, contact: Some(&c), time_zone: &tz, duplicate_candidate: None };
    let ordered = new_with(&policy, &c).referral;
    let mut scheduled = ordered.clone();
    scheduled.state = State::Scheduled;
    scheduled.appointment_at = Some(t0());
    let mut attended = ordered.clone();
    attended.state = State::Attended;
    // (referral, channel, purpose) → task
    let rows: [(&Referral, Channel, Purpose, Option<TaskKind>); 7] = [
        (&ordered, Channel::Sms, Purpose::PatientNotification, Some(TaskKind::NotifyPatient)),
        (&ordered, Channel::Portal, Purpose::PatientNotification, Some(TaskKind::NotifyPatient)),
        (&scheduled, Channel::Sms, Purpose::AttendanceQuestion, Some(TaskKind::AttendanceCall)),
        (&attended, Channel::NoteRequest, Purpose::NoteRequest, Some(TaskKind::DeliveryFailed)),
        (&ordered, Channel::Chat, Purpose::SchedulingEscalation, None),
        (&ordered, Channel::EhrTask, Purpose::SchedulingEscalation, None),
        (&attended, Channel::EhrQuery, Purpose::NoteLookup, None),
    ];
    for (i, (r, channel, purpose, task)) in rows.into_iter().enumerate() {
        let input = Input::NotSent { channel, purpose, reason: "not sent (channel off)".into() };
        let d = decide(r, input, &ctx).unwrap();
        assert_eq!(tasks(&d), task.into_iter().collect::<Vec<_>>(), "row {i}");
        assert_eq!(d.referral.state, r.state, "row {i}: nothing reached anyone");
        assert!(
            matches!(&d.events[0].data, EventData::MessageNotSent { channel: c, .. } if *c == channel),
            "row {i}: {:?}",
            d.events
        );
    }
}

/// 360X: a cancellation goes to the specialist only once their request went out, and their
/// cancellation status after it confirms the cancel instead of reading as a decline.
#[test]
fn a_cancel_after_a_360x_request_is_sent_to_the_specialist_and_confirmed() {
    let policy = Policy::default();
    let tz = TimeZone::UTC;
    let c = contact(true, "+15555550100");
    let ctx = Context { now: t0(), policy: &policy, contact: Some(&c), time_zone: &tz, duplicate_candidate: None };
    let fresh = new_with(&policy, &c).referral;
    let cancel = || Input::Cancel { at: t0(), reason: Some("patient moved".into()) };
    let purposes = |d: &Decision| -> Vec<Purpose> {
        d.effects.iter().filter_map(|e| if let Effect::Send(o) = e { Some(o.purpose) } else { None }).collect()
    };
    assert!(purposes(&decide(&fresh, cancel(), &ctx).unwrap()).is_empty(), "no request went out: nothing to cancel");
    let delivered = Input::Delivered { channel: Channel::NoteRequest, purpose: Purpose::ReferralRequest, at: t0() };
    let sent = decide(&fresh, delivered, &ctx).unwrap().referral;
    assert!(sent.progress.sent_360x);
    let cancelled = decide(&sent, cancel(), &ctx).unwrap();
    assert_eq!(purposes(&cancelled), [Purpose::ReferralCancel]);
    let answer = Input::SpecialistResponded { at: t0(), accepted: false };
    let confirmed = decide(&cancelled.referral, answer.clone(), &ctx).unwrap();
    assert_eq!(confirmed.events.iter().map(|e| e.data.kind()).collect::<Vec<_>>(), ["cancel-confirmed"]);
    // Before any cancel, the same answer is a decline: a person finds another specialist.
    let declined = decide(&sent, answer, &ctx).unwrap();
    assert_eq!(tasks(&declined), [TaskKind::SpecialistDeclined]);
}
