//! A link to book: the stage-1 text carries refloop's short link `/b/{code}` when the
//! specialist has a booking page (the directory's, or a free slot's from their SMART
//! Scheduling Links manifest, read from a slot publisher on loopback); opening it records a
//! signal on the timeline and the scheduling escalation's task says so. Reminders: a second
//! stage-1 text on day 3 when asked for, and never past the weekly limit.

use refloop_app::Role;
use refloop_testkit::{Backend, FakeSlots, FakeTwilio, TestApp, slot};
use serde_json::json;

use crate::{
    sms::order,
    ui::{Person, with_user_on},
};

on_both_backends!(
    a_booking_link_in_the_text_records_the_click_and_the_escalation_task_says_so,
    a_scheduling_manifest_on_loopback_gives_the_link,
    a_second_reminder_goes_on_day_3_only_when_asked_for_and_within_the_weekly_limit,
);

/// The `/b/…` link in a text.
fn link_in(body: &str) -> String {
    let at = body.find("http://").unwrap_or_else(|| panic!("a link in {body}"));
    body[at..].split([' ', ';']).next().unwrap().to_owned()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn events(detail: &serde_json::Value, kind: &str) -> usize {
    detail["events"].as_array().unwrap().iter().filter(|e| e["type"] == kind).count()
}

async fn a_booking_link_in_the_text_records_the_click_and_the_escalation_task_says_so(b: Backend) {
    let fake = FakeTwilio::start().await;
    let t = with_user_on(TestApp::builder(b).sms(&fake), Role::Coordinator).await;
    t.save_specialist(
        "sp-chen",
        json!({"name": "Dr Chen", "specialties": ["cardiology"], "booking_url": "https://book.heart.example/chen"}),
    )
    .await;
    let mut body = order("p-book", "+15555550140");
    body["specialist"] = json!("Dr Chen");
    let id = t.create_referral_id(body).await;
    // One without a booking page gets the text without a link.
    let plain = t.create_referral_id(order("p-plain", "+15555550141")).await;
    t.advance("1m").await;
    let sent = fake.sent();
    let with = sent.iter().find(|s| s.to == "+15555550140").expect("the text with a link");
    assert!(with.body.contains("or book online: http://"), "{}", with.body);
    let without = sent.iter().find(|s| s.to == "+15555550141").unwrap();
    assert!(!without.body.contains("/b/") && without.body.contains("Please call to book a visit; questions"));
    let link = link_in(&with.body);
    let code = link.rsplit('/').next().unwrap();
    assert_eq!(code.len(), 12);
    assert!(!link.contains("p-book") && !link.contains(&id), "no patient or referral id in the link: {link}");

    let open = no_redirects().get(&link).send().await.unwrap();
    assert_eq!(open.status().as_u16(), 302);
    assert_eq!(open.headers()["location"], "https://book.heart.example/chen");
    assert_eq!(open.headers()["referrer-policy"], "no-referrer");
    let again = no_redirects().get(&link).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 302);
    let r = t.referral(&id).await;
    assert_eq!(events(&r, "booking-link-opened"), 1, "a second click in the same visit is not a second signal");
    assert_eq!(r["state"], "ordered", "a click is not a milestone");
    let wrong = no_redirects().get(format!("{}/b/0000000000zz", t.base)).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 404);
    assert!(wrong.text().await.unwrap().contains("This booking link does not work"));

    // Day 7, nobody booked: the front desk's task says the link was opened (and for the
    // other referral, whose text had no link, says nothing of one).
    t.advance("7d").await;
    let mut p = Person::new(&t);
    p.sign_in("casey", "correct horse battery").await;
    let work = p.get("/worklist?kind=schedule-follow-up").await;
    let row = |rid: &str| {
        work.html.split(&format!("href=\"/referrals/{rid}\"")).nth(1).unwrap().split("</tr>").next().unwrap().to_owned()
    };
    assert!(row(&id).contains("booking link opened"), "{}", row(&id));
    assert!(!row(&plain).contains("booking link"), "{}", row(&plain));
    let page = p.get(&format!("/referrals/{id}")).await;
    assert!(page.html.contains("booking-link-opened") && page.html.contains("booking link opened"));
}

async fn a_scheduling_manifest_on_loopback_gives_the_link(b: Backend) {
    let fake = FakeTwilio::start().await;
    let t = TestApp::builder(b).sms(&fake).start("2026-10-08T14:00:00Z").spawn().await;
    let slots = FakeSlots::start(vec![
        slot("past", "2026-10-01T14:00:00Z", "free", Some("https://book.example/past"), None),
        slot("busy", "2026-10-09T14:00:00Z", "busy", Some("https://book.example/busy"), None),
        slot("later", "2026-10-20T14:00:00Z", "free", Some("https://book.example/later"), Some("+1-555-555-0188")),
        slot("soon", "2026-10-13T14:00:00Z", "free", Some("https://book.example/soon"), None),
    ])
    .await;
    t.save_specialist(
        "sp-lee",
        json!({"name": "Dr Lee", "specialties": ["cardiology"], "scheduling_manifest": slots.manifest_url}),
    )
    .await;
    let http = refloop_connectors::scheduling::manifest_client();
    let read = refloop_connectors::scheduling::refresh_manifests(&t.app, &http).await;
    use refloop_connectors::scheduling::ManifestOutcome;
    let soon =
        ManifestOutcome::Read { link: Some("https://book.example/soon".into()), phone: Some("+1-555-555-0188".into()) };
    assert_eq!(read, vec![("sp-lee".to_owned(), Ok(soon))], "the earliest free slot still ahead");
    let listed = t.get("/api/v1/specialists").await;
    assert_eq!(listed.body["items"][0]["manifest_booking_link"], "https://book.example/soon");
    // Unchanged: asked with If-Modified-Since, answered 304, nothing rewritten.
    let again = refloop_connectors::scheduling::refresh_manifests(&t.app, &http).await;
    assert_eq!(again, vec![("sp-lee".to_owned(), Ok(ManifestOutcome::Unchanged))]);
    assert_eq!(slots.asked_since(), vec![None, Some("Mon, 05 Oct 2026 08:00:00 GMT".to_owned())]);

    let mut body = order("p-lee", "+15555550142");
    body["specialist"] = json!("Dr Lee");
    let id = t.create_referral_id(body).await;
    t.advance("1m").await;
    let text = &fake.sent()[0].body;
    let open = no_redirects().get(link_in(text)).send().await.unwrap();
    assert_eq!(open.headers()["location"], "https://book.example/soon");
    assert_eq!(events(&t.referral(&id).await, "booking-link-opened"), 1);

    // The publisher changes its slots: the next read takes the new link.
    slots.publish(
        vec![slot("next", "2026-10-14T14:00:00Z", "free", Some("https://book.example/next"), None)],
        "Tue, 06 Oct 2026 08:00:00 GMT",
    );
    let changed = refloop_connectors::scheduling::refresh_manifests(&t.app, &http).await;
    let next = ManifestOutcome::Read { link: Some("https://book.example/next".into()), phone: None };
    assert_eq!(changed, vec![("sp-lee".to_owned(), Ok(next))]);
    let open = no_redirects().get(link_in(text)).send().await.unwrap();
    assert_eq!(open.headers()["location"], "https://book.example/next", "the same short link, the new slot");
}

async fn a_second_reminder_goes_on_day_3_only_when_asked_for_and_within_the_weekly_limit(b: Backend) {
    use refloop_domain::{Policy, Window};
    let fake = FakeTwilio::start().await;
    let policy = Policy { reminder_after: Some(Window::days(3)), texts_per_week: 2, ..Policy::default() };
    let t = TestApp::builder(b).sms(&fake).policy(policy).spawn().await;
    let quiet = t.create_referral_id(order("p-quiet", "+15555550143")).await;
    let booked = t.create_referral_id(order("p-booked", "+15555550144")).await;
    let answered = t.create_referral_id(order("p-answered", "+15555550145")).await;
    let mut spanish = order("p-es", "+15555550146");
    spanish["patient"]["language"] = json!("es");
    t.create_referral_id(spanish).await;
    t.advance("1m").await;
    assert_eq!(fake.sent().len(), 4);
    t.event(&booked, json!({"type": "scheduled", "appointment_at": "2026-03-20T15:00:00Z"})).await;
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    let (status, _) = fake.reply(&inbound, "+15555550145", "can I come on Tuesday?", "SM-in-r1").await;
    assert_eq!(status, 200);
    // The reply waits for a person, who files it on the referral.
    let review = t.get("/api/v1/inbox?status=review").await;
    let item = review.body["items"][0]["id"].as_str().unwrap().to_owned();
    let filed = t.post(&format!("/api/v1/inbox/{item}/apply"), json!({"referral_id": answered})).await;
    assert_eq!(filed.status, 200, "{:?}", filed.body);

    t.advance("2d").await;
    assert_eq!(fake.sent().len(), 4, "nothing before day 3");
    t.advance("1d").await;
    let reminders: Vec<_> = fake.sent().into_iter().skip(4).collect();
    let to: Vec<&str> = reminders.iter().map(|s| s.to.as_str()).collect();
    assert_eq!(to.len(), 2, "the unanswered, unbooked patients only: {to:?}");
    let english = reminders.iter().find(|s| s.to == "+15555550143").expect("the quiet patient's reminder");
    assert!(english.body.starts_with("North Clinic: a reminder to book your cardiology visit"), "{}", english.body);
    let es = reminders.iter().find(|s| s.to == "+15555550146").expect("the Spanish reminder");
    assert!(es.body.contains("recuerde hacer su cita de cardiología"), "in Spanish, with the specialty: {}", es.body);
    let outbox = t.outbox_of(&quiet).await;
    assert!(outbox.iter().any(|m| m["purpose"] == "reminder"), "{outbox:?}");
    assert_eq!(t.referral(&quiet).await["state"], "ordered", "a reminder is no milestone of its own");

    // With one text a week, the reminder is not sent: the escalation follows on day 7.
    let fake1 = FakeTwilio::start().await;
    let one = Policy { reminder_after: Some(Window::days(3)), texts_per_week: 1, ..Policy::default() };
    let t1 = TestApp::builder(b).sms(&fake1).policy(one).spawn().await;
    let id = t1.create_referral_id(order("p-once", "+15555550147")).await;
    t1.advance("3d").await;
    assert_eq!(fake1.sent().len(), 1, "over the weekly limit: no reminder");
    t1.advance("4d").await;
    let kinds: Vec<String> = t1.tasks_of(&id).await.iter().map(|k| k["kind"].as_str().unwrap().to_owned()).collect();
    assert!(kinds.contains(&"schedule-follow-up".to_owned()), "{kinds:?}");
}
