//! Patient SMS through the production Twilio connector against a fake Twilio on loopback:
//! the notification text, delivery reports, retries, signatures, and patients' replies.

use refloop_testkit::{Backend, FakeTwilio, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    the_notification_sms_is_sent_and_its_delivery_notifies_the_patient,
    a_bounced_sms_opens_a_fix_contact_task,
    a_500_from_the_sms_api_is_retried_and_sent_once,
    a_bad_signature_changes_nothing,
    stop_opts_out_once_and_later_stages_send_no_sms,
    yes_is_recorded_as_patient_reported_and_free_text_goes_to_staff,
    a_number_shared_by_two_patients_is_not_guessed,
    the_attendance_question_goes_by_sms_and_yes_closes_it,
    no_consent_no_sms_and_a_duplicate_order_sends_once,
    an_order_at_night_is_texted_after_quiet_hours,
    only_pilot_providers_patients_are_texted,
    staff_reply_to_a_patient_through_the_outbox,
    numbers_as_they_come_are_texted_in_e164_and_landlines_open_fix_contact,
    spanish_speaking_patients_are_texted_and_answered_in_spanish,
);

/// A routine cardiology order for a patient who consents to SMS at `phone`.
pub(crate) fn order(patient: &str, phone: &str) -> Value {
    json!({
        "patient_id": patient,
        "patient": {"name": "Pat Example", "phone": phone, "sms_consent": true, "time_zone": "America/New_York"},
        "referring_provider": "dr-adams",
        "specialty": "cardiology",
        "urgency": "routine",
        "reason": "R07.9 chest pain",
    })
}

async fn with_sms(b: Backend) -> (TestApp, FakeTwilio) {
    let fake = FakeTwilio::start().await;
    let t = TestApp::builder(b).sms(&fake).spawn().await;
    (t, fake)
}

fn kinds(tasks: &[Value]) -> Vec<String> {
    tasks.iter().map(|t| t["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn the_notification_sms_is_sent_and_its_delivery_notifies_the_patient(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-sms", "+15555550123")).await;
    t.advance("1m").await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    let sms = &sent[0];
    assert_eq!((sms.to.as_str(), sms.from.as_str()), ("+15555550123", "+15555550999"));
    assert!(sms.body.starts_with("North Clinic: your doctor referred you to cardiology."), "{}", sms.body);
    assert!(!sms.body.contains("R07") && !sms.body.contains("chest"), "no diagnosis in an SMS: {}", sms.body);
    assert_eq!(t.referral(&id).await["state"], "ordered", "accepted by the provider is not delivered");
    assert_eq!(t.outbox_of(&id).await[0]["status"], "accepted");

    assert_eq!(fake.report(sms, "sent").await, 204);
    assert_eq!(t.referral(&id).await["state"], "ordered");
    assert_eq!(fake.report(sms, "delivered").await, 204);
    let r = t.referral(&id).await;
    assert_eq!(r["state"], "patient-notified");
    assert_eq!(t.outbox_of(&id).await[0]["status"], "sent");
    // A repeated callback changes nothing.
    assert_eq!(fake.report(sms, "delivered").await, 204);
    assert_eq!(t.referral(&id).await["version"], r["version"]);
}

async fn a_bounced_sms_opens_a_fix_contact_task(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-bounce", "+15555550124")).await;
    t.advance("1m").await;
    assert_eq!(fake.report(&fake.sent()[0], "undelivered").await, 204);
    assert_eq!(t.referral(&id).await["state"], "ordered");
    assert!(kinds(&t.tasks_of(&id).await).contains(&"fix-contact".to_owned()));
    let outbox = t.outbox_of(&id).await;
    assert_eq!(outbox[0]["status"], "failed");
    assert!(!outbox[0]["last_error"].as_str().unwrap().contains("5555"), "no phone numbers in errors");

    // An invalid number never reaches the API.
    let bad = t.create_referral_id(order("p-badphone", "555-0199")).await;
    t.advance("1m").await;
    assert_eq!(fake.requests(), 1);
    assert!(kinds(&t.tasks_of(&bad).await).contains(&"fix-contact".to_owned()));
}

async fn a_500_from_the_sms_api_is_retried_and_sent_once(b: Backend) {
    let (t, fake) = with_sms(b).await;
    fake.fail_next(2);
    let id = t.create_referral_id(order("p-retry", "+15555550125")).await;
    t.advance("1m").await;
    assert_eq!((fake.requests(), fake.sent().len()), (1, 0));
    t.advance("2h").await;
    assert_eq!((fake.requests(), fake.sent().len()), (3, 1), "retried with backoff, then sent");
    assert_eq!(fake.lookups(), 2, "each 500 may have been taken: the provider is asked before a resend");
    t.advance("1d").await;
    assert_eq!(fake.sent().len(), 1, "sent once");
    assert_eq!(t.outbox_of(&id).await[0]["status"], "accepted");
}

async fn a_bad_signature_changes_nothing(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-sig", "+15555550126")).await;
    t.advance("1m").await;
    let sms = &fake.sent()[0];
    let url = sms.status_callback.clone().unwrap();
    let (status, _) =
        fake.post_signed(&url, &[("MessageSid", &sms.sid), ("MessageStatus", "delivered")], "wrong-token").await;
    assert_eq!(status, 403);
    let forged = reqwest::Client::new().post(&url).form(&[("MessageStatus", "delivered")]).send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert_eq!(t.referral(&id).await["state"], "ordered");
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    let (status, _) =
        fake.post_signed(&inbound, &[("MessageSid", "SMx"), ("From", "+15555550126"), ("Body", "STOP")], "nope").await;
    assert_eq!(status, 403);
}

async fn stop_opts_out_once_and_later_stages_send_no_sms(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-stop", "+15555550127")).await;
    t.advance("1m").await;
    fake.report(&fake.sent()[0], "delivered").await;
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    let (status, xml) = fake.reply(&inbound, "+15555550127", "Stop", "SM-in-1").await;
    assert_eq!(status, 200);
    assert!(xml.contains("<Message>North Clinic: you will get no more text messages"), "{xml}");
    let (_, again) = fake.reply(&inbound, "+15555550127", "STOP", "SM-in-2").await;
    assert!(!again.contains("<Message>"), "the confirmation goes once: {again}");
    let consent: Vec<(String, String)> = t
        .app
        .store()
        .audit_log(50)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action.starts_with("sms-opt"))
        .map(|a| (a.action, a.resource_id))
        .collect();
    assert_eq!(consent, [("sms-opt-out".to_owned(), "p-stop".to_owned())], "the consent change, audited once");
    let (_, resent) = fake.reply(&inbound, "+15555550127", "Stop", "SM-in-1").await;
    assert!(!resent.contains("<Message>"), "a resent webhook is not answered twice");
    let (_, help) = fake.reply(&inbound, "+15555550127", "help", "SM-in-3").await;
    assert!(help.contains("Call +15555550100"), "{help}");

    // Booked, seen: the day-after "did you attend?" is not sent by SMS.
    t.event(&id, json!({"type": "scheduled", "appointment_at": "2026-03-05T15:00:00.000Z"})).await;
    t.advance("5d").await;
    assert_eq!(fake.sent().len(), 1, "no SMS after STOP");
    assert!(kinds(&t.tasks_of(&id).await).contains(&"attendance-call".to_owned()), "{:?}", t.tasks_of(&id).await);
}

async fn yes_is_recorded_as_patient_reported_and_free_text_goes_to_staff(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-yes", "+15555550128")).await;
    t.advance("1m").await;
    fake.report(&fake.sent()[0], "delivered").await;
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    let (_, xml) = fake.reply(&inbound, "+15555550128", "can I go on Tuesday instead?", "SM-q").await;
    assert!(!xml.contains("<Message>"), "never an automated answer to free text");
    assert!(kinds(&t.tasks_of(&id).await).contains(&"patient-reply".to_owned()));
    let (_, xml) = fake.reply(&inbound, "+15555550128", "YES", "SM-y").await;
    assert!(!xml.contains("<Message>"));
    let r = t.referral(&id).await;
    assert_eq!(r["state"], "scheduled");
    let scheduled = r["events"].as_array().unwrap().iter().find(|e| e["type"] == "scheduled").unwrap();
    assert_eq!(scheduled["detail"]["channel"], "sms-patient-reported", "{scheduled}");
}

async fn a_number_shared_by_two_patients_is_not_guessed(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let a = t.create_referral_id(order("p-twin-a", "+15555550129")).await;
    let b2 = t.create_referral_id(order("p-twin-b", "+15555550129")).await;
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    let (status, _) = fake.reply(&inbound, "+15555550129", "YES", "SM-twin").await;
    assert_eq!(status, 200);
    assert_eq!(t.referral(&a).await["state"], "ordered");
    assert_eq!(t.referral(&b2).await["state"], "ordered");
    let inbox = t.get("/api/v1/inbox?status=review").await.body;
    let item = &inbox["items"][0];
    assert!(item["error"].as_str().unwrap().starts_with("ambiguous"), "{item}");
    // Read again through its own protocol (never as HL7 v2), it still names no referral: it
    // stays with a person …
    let id = item["id"].as_str().unwrap();
    let r = t.post(&format!("/api/v1/inbox/{id}/retry"), json!({})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("review")), "{:?}", r.body);
    assert_eq!(t.referral(&a).await["state"], "ordered", "nothing applied");
    // … who files it on the patient it came from: staff read and answer it there (its YES is
    // not taken as a booking, since nobody knows which question it answers).
    let r = t.post(&format!("/api/v1/inbox/{id}/apply"), json!({"referral_id": a})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.referral(&a).await["state"], "ordered");
    assert!(kinds(&t.tasks_of(&a).await).contains(&"patient-reply".to_owned()));
    assert!(!kinds(&t.tasks_of(&b2).await).contains(&"patient-reply".to_owned()));
    let shown = t.get(&format!("/api/v1/inbox/{id}")).await.body;
    assert_eq!((shown["status"].as_str(), shown["referral_id"].as_str()), (Some("applied"), Some(a.as_str())));
}

async fn the_attendance_question_goes_by_sms_and_yes_closes_it(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let asked = t.create_referral_id(order("p-att", "+15555550130")).await;
    let silent = t.create_referral_id(order("p-quiet", "+15555550131")).await;
    t.advance("1m").await;
    for sms in fake.sent() {
        fake.report(&sms, "delivered").await;
    }
    for id in [&asked, &silent] {
        t.event(id, json!({"type": "scheduled", "appointment_at": "2026-03-04T15:00:00.000Z"})).await;
    }
    t.advance("3d").await;
    let questions: Vec<_> = fake.sent().into_iter().skip(2).collect();
    assert_eq!(questions.len(), 2, "a day after the appointment");
    assert!(questions[0].body.contains("did you go to your cardiology appointment?"), "{}", questions[0].body);
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    let to_asked = questions.iter().find(|q| q.to == "+15555550130").unwrap();
    fake.report(to_asked, "delivered").await;
    fake.reply(&inbound, "+15555550130", "yes", "SM-att").await;
    let r = t.referral(&asked).await;
    assert_eq!(r["state"], "attended");
    let attended = r["events"].as_array().unwrap().iter().find(|e| e["type"] == "attended").unwrap();
    assert_eq!(attended["source"], "patient:sms");

    t.advance("2d").await;
    let kinds_of = |tasks: Vec<Value>| kinds(&tasks);
    assert!(kinds_of(t.tasks_of(&silent).await).contains(&"attendance-call".to_owned()), "no reply in 48 h");
    assert!(!kinds_of(t.tasks_of(&asked).await).contains(&"attendance-call".to_owned()), "answered: no call");
}

async fn no_consent_no_sms_and_a_duplicate_order_sends_once(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let mut no_consent = order("p-nc", "+15555550132");
    no_consent["patient"]["sms_consent"] = json!(false);
    let nc = t.create_referral_id(no_consent).await;
    let first = t.create_referral_id(order("p-dup", "+15555550133")).await;
    let second = t.create_referral_id(order("p-dup", "+15555550133")).await;
    t.advance("1h").await;
    let to: Vec<String> = fake.sent().iter().map(|s| s.to.clone()).collect();
    assert_eq!(to, ["+15555550133"], "one SMS: none without consent, one for the duplicate pair");
    assert!(kinds(&t.tasks_of(&nc).await).contains(&"notify-patient".to_owned()), "a phone task instead");
    assert_eq!(t.referral(&second).await["duplicate_of"], json!(first));
}

async fn an_order_at_night_is_texted_after_quiet_hours(b: Backend) {
    let fake = FakeTwilio::start().await;
    // 02:00 in New York.
    let t = TestApp::builder(b).sms(&fake).start("2026-03-03T07:00:00.000Z").spawn().await;
    t.create_referral_id(order("p-night", "+15555550134")).await;
    t.advance("5h").await;
    assert!(fake.sent().is_empty(), "quiet until 08:00 local");
    t.advance("1h").await;
    assert_eq!(fake.sent().len(), 1, "sent at 08:00 New York time");
}

async fn only_pilot_providers_patients_are_texted(b: Backend) {
    let fake = FakeTwilio::start().await;
    let policy = refloop_domain::Policy {
        pilot_providers: vec![refloop_domain::ProviderId::parse("dr-pilot").unwrap()],
        ..refloop_domain::Policy::default()
    };
    let t = TestApp::builder(b).sms(&fake).policy(policy).spawn().await;
    let mut pilot = order("p-in-pilot", "+15555550136");
    pilot["referring_provider"] = json!("dr-pilot");
    t.create_referral_id(pilot).await;
    let shadow = t.create_referral_id(order("p-shadow", "+15555550137")).await;
    t.advance("1d").await;
    let to: Vec<String> = fake.sent().iter().map(|s| s.to.clone()).collect();
    assert_eq!(to, ["+15555550136"], "the shadow referral's SMS is recorded, not sent");
    let r = t.referral(&shadow).await;
    assert!(r["events"].as_array().unwrap().iter().any(|e| e["type"] == "shadowed"), "{}", r["events"]);
}

async fn staff_reply_to_a_patient_through_the_outbox(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-talk", "+15555550140")).await;
    t.advance("1m").await;
    fake.report(&fake.sent()[0], "delivered").await;
    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    fake.reply(&inbound, "+15555550140", "which floor is the clinic on?", "SM-talk").await;
    // A reply goes out through the outbox to the patient's number, once.
    let r = t.post(&format!("/api/v1/referrals/{id}/sms"), json!({"text": "Third floor, room 310."})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!((r.body["purpose"].as_str(), r.body["status"].as_str()), (Some("staff-reply"), Some("pending")));
    t.advance("1m").await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[1].to.as_str(), sent[1].body.as_str()), ("+15555550140", "Third floor, room 310."));
    t.advance("1d").await;
    assert_eq!(fake.sent().len(), 2, "never twice");
    // Bad input and a patient who opted out are refused and send nothing.
    let empty = t.post(&format!("/api/v1/referrals/{id}/sms"), json!({"text": "  "})).await;
    assert_eq!((empty.status, empty.body["error"]["field"].as_str()), (422, Some("text")));
    let long = t.post(&format!("/api/v1/referrals/{id}/sms"), json!({"text": "x".repeat(481)})).await;
    assert_eq!(long.status, 422);
    fake.reply(&inbound, "+15555550140", "STOP", "SM-stop").await;
    let stopped = t.post(&format!("/api/v1/referrals/{id}/sms"), json!({"text": "Are you coming?"})).await;
    assert_eq!(stopped.status, 409, "{:?}", stopped.body);
    let sent = fake.sent().len();
    t.advance("1d").await;
    assert_eq!(fake.sent().len(), sent, "nothing more after STOP but its confirmation");
    // A reply at night waits for the end of quiet hours (20:00–08:00 New York).
    let night = t.create_referral_id(order("p-night-talk", "+15555550141")).await;
    t.advance("17h").await; // 03:02 the next day in New York
    let r = t.post(&format!("/api/v1/referrals/{night}/sms"), json!({"text": "Call us in the morning."})).await;
    assert_eq!(r.status, 202);
    assert!(r.body["next_attempt_at"].as_str().unwrap().ends_with("T13:00:00.000Z"), "{:?}", r.body);
    let thread = t
        .app
        .sms_thread(
            &refloop_app::Actor::system("t"),
            &t.app.store().referral(&refloop_domain::ReferralId::parse(&id).unwrap()).await.unwrap().unwrap(),
            None,
        )
        .await
        .unwrap();
    let texts: Vec<(bool, Option<String>)> = thread.iter().map(|l| (l.inbound, l.text.clone())).collect();
    assert!(texts.contains(&(true, Some("which floor is the clinic on?".into()))), "{texts:?}");
    assert!(texts.contains(&(false, Some("Third floor, room 310.".into()))), "{texts:?}");
}

/// Numbers as the EHR and staff write them (`[practice] phone_region`, US by default): a
/// national-format number is texted at its E.164 form and shown as written; HL7 PID-13
/// `(937)555-0103` is kept as `+19375550103`; a landline is never texted (fix-contact), and
/// staff fix it with a national-format mobile number.
async fn numbers_as_they_come_are_texted_in_e164_and_landlines_open_fix_contact(b: Backend) {
    let (t, fake) = with_sms(b).await;
    let id = t.create_referral_id(order("p-national", "(937) 555-0101")).await;
    t.advance("1m").await;
    assert_eq!(fake.sent().iter().map(|m| m.to.clone()).collect::<Vec<_>>(), ["+19375550101"]);
    let r = t.referral(&id).await;
    assert_eq!(
        (&r["patient"]["phone"], &r["patient"]["phone_text"]),
        (&json!("+19375550101"), &json!("(937) 555-0101"))
    );

    let id = t.create_referral_id(order("p-landline", "+44 20 7946 0000")).await;
    t.advance("1m").await;
    assert_eq!(fake.sent().len(), 1, "a landline is never texted");
    let tasks = t.tasks_of(&id).await;
    assert_eq!(kinds(&tasks), ["fix-contact"]);
    assert_eq!(t.referral(&id).await["patient"]["phone"], "020 7946 0000", "kept for a person to call");
    let path = format!("/api/v1/tasks/{}/complete", tasks[0]["id"].as_str().unwrap());
    let done = |phone: &str| t.post(&path, json!({"outcome": "phone-fixed", "phone": phone}));
    let r = done("+44 20 7946 0001").await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some("phone")), "a landline cannot be the fix");
    assert_eq!(done("(937) 555-0102").await.status, 200);
    t.advance("1m").await;
    assert_eq!(fake.sent().last().map(|m| m.to.clone()).as_deref(), Some("+19375550102"));

    let mut mllp = refloop_testkit::MllpClient::connect(t.mllp).await;
    let ack = mllp
        .send(
            "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000-0500||REF^I12^REF_I12|P13|P|2.5.1\r\
             RF1|P|R|CAR^Cardiology||O|R-P13^EPIC|20260302\rPRD|RP|ADAMS^ANN|||||NPI123^NPI\r\
             PID|1||MRN-P13^^^NORTH^MR||DOE^JANE||19700101|F|||||(937)555-0103\r",
        )
        .await;
    assert_eq!(refloop_testkit::ack_code(&ack), "AA", "{ack}");
    let found = t.get("/api/v1/referrals?q=MRN-P13").await.body["items"][0]["id"].as_str().unwrap().to_owned();
    let r = t.referral(&found).await;
    assert_eq!(
        (&r["patient"]["phone"], &r["patient"]["phone_text"]),
        (&json!("+19375550103"), &json!("(937)555-0103"))
    );
}

/// A patient whose preferred language is Spanish — from HL7 PID-15 `SPA`, or from FHIR
/// `Patient.communication` — gets the Spanish texts; `PARAR` opts out with a Spanish
/// confirmation; `AYUDA` is answered in Spanish; an English speaker still gets English.
async fn spanish_speaking_patients_are_texted_and_answered_in_spanish(b: Backend) {
    let (t, fake) = with_sms(b).await;
    // HL7: the patient consented on an earlier order; the new order's PID-15 says Spanish.
    t.create_referral_id(order("MRN-ES1", "+15555550141")).await;
    t.advance("1m").await;
    assert!(fake.sent()[0].body.starts_with("North Clinic: your doctor referred you"), "no language yet: English");
    let mut mllp = refloop_testkit::MllpClient::connect(t.mllp).await;
    let ack = mllp
        .send(
            "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000-0500||REF^I12^REF_I12|ES1|P|2.5.1\r\
             RF1|P|R|DERM^Dermatology||O|R-ES1^EPIC|20260302\rPRD|RP|ADAMS^ANN|||||NPI123^NPI\r\
             PID|1||MRN-ES1^^^NORTH^MR||GARCIA^MARIA||19700101|F|||||+15555550141||SPA\r",
        )
        .await;
    assert_eq!(refloop_testkit::ack_code(&ack), "AA", "{ack}");
    t.advance("1m").await;
    let spanish = fake.sent().last().unwrap().clone();
    assert_eq!(spanish.to, "+15555550141");
    assert!(
        spanish.body.starts_with("North Clinic: su médico le refirió a dermatología."),
        "the specialty in Spanish too: {}",
        spanish.body
    );
    assert!(spanish.body.contains("Responda PARAR"), "{}", spanish.body);

    // FHIR: the Patient's preferred communication is Spanish.
    let patient = json!({"resourceType": "Patient", "id": "p-fhir-es",
        "telecom": [{"system": "sms", "value": "+15555550142"}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": true}]});
    assert!(t.fhir("PUT", "/fhir/Patient/p-fhir-es", Some(patient), &[]).await.status < 300);
    t.create_referral_id(order("p-fhir-es", "+15555550142")).await;
    t.advance("1m").await;
    let text = fake.sent().last().unwrap().clone();
    assert_eq!(text.to, "+15555550142");
    assert!(text.body.contains("su médico le refirió a cardiología"), "{}", text.body);

    let inbound = format!("{}/webhooks/sms/inbound", t.base);
    let (_, help) = fake.reply(&inbound, "+15555550142", "Ayuda", "SM-es-1").await;
    assert!(help.contains("<Message>North Clinic: recordatorios de su referido."), "{help}");
    let (status, xml) = fake.reply(&inbound, "+15555550141", "PARAR", "SM-es-2").await;
    assert_eq!(status, 200);
    assert!(xml.contains("<Message>North Clinic: ya no recibirá mensajes de texto nuestros."), "{xml}");
    // An English speaker's STOP is confirmed in English.
    t.create_referral_id(order("p-en", "+15555550143")).await;
    t.advance("1m").await;
    let (_, xml) = fake.reply(&inbound, "+15555550143", "STOP", "SM-es-3").await;
    assert!(xml.contains("<Message>North Clinic: you will get no more text messages"), "{xml}");
}
