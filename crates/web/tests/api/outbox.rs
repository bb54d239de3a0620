//! The outbox under faults, through the production Twilio connector against a fake Twilio on
//! loopback: a sender that dies before or during an attempt, a provider that answers after
//! the time-out, one that cannot say what it has. Nothing goes out twice; nothing is lost.

use std::time::Duration;

use refloop_testkit::{Backend, FakeTwilio, TestApp};
use serde_json::Value;

use super::sms::order;

on_both_backends!(
    a_claim_cut_off_before_its_attempt_is_sent_once,
    a_send_cut_off_after_the_provider_took_it_is_not_repeated,
    a_send_cut_off_before_the_provider_took_it_is_sent_once,
    an_earlier_text_of_the_same_words_is_not_taken_for_this_one,
    a_provider_answering_after_the_timeout_texts_the_patient_once,
    a_provider_that_cannot_say_leaves_a_confirm_delivery_task,
    an_outcome_under_a_lease_taken_over_is_not_recorded,
    a_late_delivery_report_settles_an_unconfirmed_message,
);

fn kinds(tasks: &[Value]) -> Vec<String> {
    tasks.iter().map(|t| t["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn with_sms(b: Backend) -> (TestApp, FakeTwilio) {
    let fake = FakeTwilio::start().await;
    let t = TestApp::builder(b).sms(&fake).spawn().await;
    (t, fake)
}

/// A worker claims everything due, as a process that then dies would.
async fn claim_all(t: &TestApp, token: &str) -> Vec<refloop_app::OutboxItem> {
    let now = t.app.now();
    t.app.store().claim_outbox(now, 10, now + jiff::SignedDuration::from_mins(1), token).await.unwrap()
}

/// The notification text the connector sends for referral `id`.
async fn notification_text(t: &TestApp, id: &str) -> String {
    let referral = t.app.store().referral(&refloop_domain::ReferralId::parse(id).unwrap()).await.unwrap();
    let texts = refloop_connectors::SmsTexts::with_defaults("North Clinic", "+15555550100");
    texts.fill(&texts.notification, referral.as_ref())
}

async fn a_claim_cut_off_before_its_attempt_is_sent_once(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-crash-early", "+15555550150")).await;
    assert_eq!(claim_all(&t, "lease_dead").await.len(), 1);
    t.advance("30s").await;
    assert_eq!(fake.requests(), 0, "held by the dead sender's lease");
    t.advance("1m").await;
    assert_eq!((fake.requests(), fake.lookups()), (1, 0), "never attempted: sent as usual, nothing to look up");
    t.advance("1d").await;
    assert_eq!(fake.sent().len(), 1, "once");
    assert_eq!(t.outbox_of(&id).await[0]["status"], "accepted");
    assert!(!kinds(&t.tasks_of(&id).await).contains(&"confirm-delivery".to_owned()));
}

async fn a_send_cut_off_after_the_provider_took_it_is_not_repeated(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-crash-late", "+15555550151")).await;
    let claimed = claim_all(&t, "lease_dead").await;
    // The attempt started and reached the provider; the sender died before recording it.
    assert!(t.app.store().start_attempt(&claimed[0].id, "lease_dead", t.app.now()).await.unwrap());
    fake.take("+15555550151", &notification_text(&t, &id).await);
    t.advance("2m").await;
    assert_eq!(fake.lookups(), 1, "the provider was asked");
    t.advance("1d").await;
    assert_eq!((fake.requests(), fake.sent().len()), (0, 1), "found at the provider: never posted again");
    let outbox = t.outbox_of(&id).await;
    assert_eq!(outbox[0]["status"], "accepted", "{outbox:?}");
    let tasks = kinds(&t.tasks_of(&id).await);
    assert!(!tasks.contains(&"confirm-delivery".to_owned()) && !tasks.contains(&"fix-contact".to_owned()), "{tasks:?}");
}

async fn a_send_cut_off_before_the_provider_took_it_is_sent_once(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-crash-mid", "+15555550152")).await;
    let claimed = claim_all(&t, "lease_dead").await;
    assert!(t.app.store().start_attempt(&claimed[0].id, "lease_dead", t.app.now()).await.unwrap());
    t.advance("2m").await;
    assert_eq!((fake.lookups(), fake.requests()), (1, 1), "not at the provider: sent once");
    t.advance("1d").await;
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(t.outbox_of(&id).await[0]["status"], "accepted");
}

async fn an_earlier_text_of_the_same_words_is_not_taken_for_this_one(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-same-words", "+15555550154")).await;
    // The same words went to the same number the day before (another referral, say).
    let text = notification_text(&t, &id).await;
    fake.take_at("+15555550154", &text, t.app.now() - jiff::SignedDuration::from_hours(24));
    let claimed = claim_all(&t, "lease_dead").await;
    assert!(t.app.store().start_attempt(&claimed[0].id, "lease_dead", t.app.now()).await.unwrap());
    t.advance("2m").await;
    assert_eq!((fake.lookups(), fake.requests()), (1, 1), "the earlier text is not this one: sent once");
    assert_eq!(fake.sent().len(), 2);
    assert_eq!(t.outbox_of(&id).await[0]["status"], "accepted");
}

async fn a_provider_answering_after_the_timeout_texts_the_patient_once(b: Backend) {
    let fake = FakeTwilio::start().await;
    let t = TestApp::builder(b).sms(&fake).sms_timeout(Duration::from_millis(300)).spawn().await;
    // The provider takes the message at once but answers after our time-out.
    fake.answer_late(&[Duration::from_secs(2)]);
    let id = t.create_referral_id(order("p-slow", "+15555550153")).await;
    t.advance("30s").await;
    assert_eq!(fake.requests(), 1);
    let outbox = t.outbox_of(&id).await;
    assert_eq!(outbox[0]["status"], "unconfirmed", "a time-out is not a failure: {outbox:?}");
    t.advance("3m").await;
    assert_eq!(fake.lookups(), 1);
    t.advance("2d").await;
    assert_eq!((fake.requests(), fake.sent().len()), (1, 1), "the patient got the text once");
    assert_eq!(t.outbox_of(&id).await[0]["status"], "accepted");
    let tasks = kinds(&t.tasks_of(&id).await);
    assert!(!tasks.contains(&"fix-contact".to_owned()) && !tasks.contains(&"confirm-delivery".to_owned()), "{tasks:?}");
}

async fn a_provider_that_cannot_say_leaves_a_confirm_delivery_task(b: Backend) {
    let fake = FakeTwilio::start().await;
    let t = TestApp::builder(b).sms(&fake).sms_timeout(Duration::from_millis(300)).spawn().await;
    fake.answer_late(&[Duration::from_secs(2)]);
    fake.fail_lookups(true);
    let id = t.create_referral_id(order("p-unsure", "+15555550154")).await;
    t.advance("3d").await;
    assert_eq!(fake.requests(), 1, "never resent while the provider cannot say");
    assert!(fake.lookups() >= 2, "asked again with backoff: {}", fake.lookups());
    let outbox = t.outbox_of(&id).await;
    assert_eq!(outbox[0]["status"], "unknown", "{outbox:?}");
    let tasks = kinds(&t.tasks_of(&id).await);
    assert!(tasks.contains(&"confirm-delivery".to_owned()), "{tasks:?}");
    assert!(!tasks.contains(&"fix-contact".to_owned()), "the number is fine: {tasks:?}");
}

async fn an_outcome_under_a_lease_taken_over_is_not_recorded(b: Backend) {
    use refloop_app::{OutboxGuard, OutboxStatus};
    let (t, _fake) = with_sms(b).await;
    t.create_referral_id(order("p-lease", "+15555550155")).await;
    let store = t.app.store();
    let claimed = claim_all(&t, "lease_a").await;
    let item = &claimed[0];
    assert!(store.start_attempt(&item.id, "lease_a", t.app.now()).await.unwrap());
    // Sender A stalls past its lease; the reaper hands the item on, and B claims it.
    let later = t.app.now() + jiff::SignedDuration::from_mins(2);
    let reaped = store.reap_outbox(later).await.unwrap();
    assert_eq!((reaped.released, reaped.unconfirmed), (0, 1));
    let b_items = store.claim_outbox(later, 10, later + jiff::SignedDuration::from_mins(1), "lease_b").await.unwrap();
    assert!(b_items[0].check_first, "B asks the provider first");
    assert!(!store.start_attempt(&item.id, "lease_a", later).await.unwrap(), "A's token holds nothing");
    let mut tx = store.begin().await.unwrap();
    let a = tx.finish_outbox(&item.id, OutboxGuard::Lease("lease_a"), OutboxStatus::Sent, later, Some(later), None);
    assert!(!a.await.unwrap(), "A cannot overwrite what B holds");
    let b = tx.finish_outbox(&item.id, OutboxGuard::Lease("lease_b"), OutboxStatus::Sent, later, Some(later), None);
    assert!(b.await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.outbox_item(&item.id).await.unwrap().unwrap().status, OutboxStatus::Sent);
}

async fn a_late_delivery_report_settles_an_unconfirmed_message(b: Backend) {
    let fake = FakeTwilio::start().await;
    let t = TestApp::builder(b).sms(&fake).sms_timeout(Duration::from_millis(300)).spawn().await;
    fake.answer_late(&[Duration::from_secs(2)]);
    let id = t.create_referral_id(order("p-report", "+15555550156")).await;
    t.advance("30s").await;
    assert_eq!(t.outbox_of(&id).await[0]["status"], "unconfirmed");
    // The provider's status callback arrives before our lookup.
    let sms = fake.sent()[0].clone();
    assert_eq!(fake.report(&sms, "delivered").await, 204);
    assert_eq!(t.outbox_of(&id).await[0]["status"], "sent");
    assert_eq!(t.referral(&id).await["state"], "patient-notified");
    t.advance("1d").await;
    assert_eq!((fake.requests(), fake.lookups()), (1, 0), "settled: neither looked up nor resent");
}
