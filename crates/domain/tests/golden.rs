//! Rows stored by earlier releases (tests/golden/, never regenerated) still read: a referral
//! `doc` and an event of every type. A new event type must add its line (see `slot`).

use refloop_domain::{EventData, Referral, State, TimerKind};

const REFERRAL: &str = include_str!("golden/referral.json");
const EVENTS: &str = include_str!("golden/events.jsonl");

#[test]
fn a_referral_doc_stored_by_an_earlier_release_still_reads() {
    let r: Referral = serde_json::from_str(REFERRAL).expect("the stored referral reads");
    assert_eq!((r.id.as_str(), r.version, r.state), ("ref_golden01", 7, State::Scheduled));
    assert_eq!(r.source_ids, ["R-1001", "fhir:ServiceRequest/sr-1"]);
    assert_eq!(r.milestones.scheduled, Some("2026-03-04T10:00:00Z".parse().unwrap()));
    assert_eq!(r.appointment_at, Some("2026-03-12T14:30:00Z".parse().unwrap()));
    assert_eq!((r.no_shows, r.progress.note_rung, r.progress.sent_360x), (1, 2, true));
    assert_eq!(r.progress.attendance_asked.map(|(a, _)| a), r.appointment_at);
}

/// Which variant an event is: a new variant does not compile until it is given a slot here
/// (and `VARIANTS` grows), and the test then fails until its golden line is added.
fn slot(e: &EventData) -> usize {
    use EventData::*;
    match e {
        Ordered { .. } => 0,
        DuplicateLinked { .. } => 1,
        NeedsCoding => 2,
        Shadowed => 3,
        ImportedHistory => 4,
        PatientNotified { .. } => 5,
        Scheduled { .. } => 6,
        NoShow => 7,
        AppointmentCancelled => 8,
        SpecialistResponded { .. } => 9,
        CancelConfirmed => 10,
        PatientReplied => 11,
        NoteRequestUnanswered { .. } => 12,
        Attended => 13,
        NoteReceived => 14,
        SpecialistVerified => 15,
        Cancelled { .. } => 16,
        ClosedIncomplete { .. } => 17,
        OrderUpdated { .. } => 18,
        Escalated { .. } => 19,
        MessageQueued { .. } => 20,
        MessageDelivered { .. } => 21,
        DeliveryFailed { .. } => 22,
        ContactFailed { .. } => 23,
        ContactFixed => 24,
        MessageNotSent { .. } => 25,
        TaskOpened { .. } => 26,
        IgnoredAfterClose { .. } => 27,
        BookingLinkOpened => 28,
    }
}
const VARIANTS: usize = 29;

#[test]
fn an_event_of_every_type_stored_by_an_earlier_release_still_reads() {
    let events: Vec<EventData> = EVENTS
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a stored event no longer reads ({e}): {l}")))
        .collect();
    let mut seen = [false; VARIANTS];
    for e in &events {
        seen[slot(e)] = true;
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|i| !seen[*i]).collect();
    assert!(missing.is_empty(), "event types without a golden line (slots): {missing:?}");
    assert!(events.contains(&EventData::Escalated { stage: TimerKind::SchedulingEscalation }));
    assert_eq!(events.last(), Some(&EventData::Scheduled { appointment_at: None, channel: None }), "the older shape");
}
