//! 360X closed-loop referrals over Direct, refloop as the initiator, against a fake specialist:
//! a new referral to a specialist the directory marks as taking 360X goes to their Direct
//! address as an XDM package (an `OMG^O19` that hl7apy validates as v2.5.1, and a C-CDA R2.1
//! Referral Note whose header templates are those of HL7's own example); the specialist
//! answers through our Direct mailbox (Dovecot on loopback) with `OSU^O51` accepted, then the
//! final consult note: the referral is accepted, then `note-received`. A decline opens the
//! "find another specialist" task.

use refloop_direct::{
    Letter, Pass, poll_once,
    x360::{HL7_V2, REFERRAL_NOTE},
    xdm::{Packed, pack},
};
use refloop_domain::Policy;
use refloop_testkit::{Backend, Dovecot, FakeSmtp, TestApp, cda_example, direct_letter, peers};
use serde_json::{Value, json};

on_both_backends!(a_360x_referral_is_accepted_then_closed_by_the_specialists_consult_note);

/// The specialist's answer, as their EHR sends it: a Direct message in reply to ours, with an
/// XDM package of `docs`.
fn answer(id: &str, in_reply_to: &str, docs: &[Packed<'_>]) -> Vec<u8> {
    let zip = pack(docs, "20260303100000", "Heart Clinic");
    direct_letter(id, "Re: 360X referral request", Some(in_reply_to), Some(("answer.zip", &zip)))
}

fn osu(placer: &str, status: &str, reason: &str) -> String {
    format!(
        "MSH|^~\\&|HEARTEHR|Heart Clinic|REFLOOP|North Clinic|20260303100000+0000||OSU^O51^OSU_O51|osu-{status}|P|2.5.1|||NE|NE|||||360X\r\
         ORC|SC|{placer}^REFLOOP|||{status}|||||||||||{reason}\r"
    )
}

async fn a_360x_referral_is_accepted_then_closed_by_the_specialists_consult_note(b: Backend) {
    let smtp = FakeSmtp::start().await;
    let mail = Dovecot::start().await;
    let policy = Policy { referrals_360x: true, ..Policy::default() };
    let t = TestApp::builder(b).direct(&smtp).policy(policy).spawn().await;
    t.save_specialist(
        "sp-360x",
        json!({"name": "Dr Heart", "specialties": ["cardiology"], "accepts_360x": true,
            "direct_address": "dr.heart@direct.heart-clinic.example", "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let order = |patient: &str, name: &str| {
        json!({"patient_id": patient, "referring_provider": "dr-adams", "referring_provider_name": "Ann Adams",
            "specialty": "cardiology", "specialist": "Dr Heart", "reason": "Chest pain on exertion",
            "patient": {"name": name, "birth_date": "1961-04-09", "phone": "+15555550190", "sms_consent": false}})
    };
    let id = t.create_referral_id(order("p-360x", "Rosa Díaz")).await;
    t.advance("1m").await;

    // The fake specialist's HISP received our request.
    let mails = smtp.mails();
    let sent: Vec<_> = mails.iter().filter(|m| m.data.contains("360X referral request")).collect();
    assert_eq!(sent.len(), 1, "one request");
    assert_eq!(sent[0].to, ["dr.heart@direct.heart-clinic.example"]);
    let letter = Letter::read(sent[0].data.as_bytes()).expect("a MIME message");
    let ours = letter.message_id.clone().unwrap();
    assert!(ours.contains(&id), "our Message-ID names the referral: {ours}");
    let v2 = letter.documents.iter().find(|a| a.is_hl7()).expect("the OMG^O19 in the package");
    let omg = String::from_utf8(v2.bytes.clone()).unwrap();
    assert_eq!(peers::validate_hl7(std::slice::from_ref(&omg)), ["OMG_O19"], "{omg}");
    let msh = omg.split('\r').next().unwrap();
    assert!(msh.ends_with("|360X") && msh.contains("|OMG^O19^OMG_O19|") && msh.contains("|2.5.1|"), "{msh}");
    assert!(omg.contains(&format!("\rORC|NW|{id}^REFLOOP|")), "{omg}");
    assert!(omg.contains(&format!("|{REFERRAL_NOTE}^Referral note^LN|")) && omg.contains("Chest pain on exertion"));
    let tq1 = omg.split('\r').find(|s| s.starts_with("TQ1|")).unwrap();
    assert!(tq1.split('|').nth(8).is_some_and(|needed_by| needed_by.len() == 19), "a needed-by time: {tq1}");
    // The Referral Note: well-formed C-CDA whose header says what HL7's own example does (the
    // Referral Note and the US Realm Header), each in its C-CDA R2.1 version (2015-08-01) and,
    // for readers of R1.1, without one — as 360X asks (C-CDA 1.1 or 2.1, not 2.0, which is the
    // version of the example).
    let note = letter.documents.iter().find_map(|a| a.document()).expect("the Referral Note");
    let example = refloop_cda::Document::parse(&cda_example("Referral_Note.xml")).unwrap();
    let root = |t: &String| t.split(':').next().unwrap_or_default().to_owned();
    for template in example.template_ids.iter().map(root) {
        assert!(note.template_ids.contains(&template), "{template} missing from {:?}", note.template_ids);
        assert!(
            note.template_ids.contains(&format!("{template}:2015-08-01")),
            "{template}, R2.1: {:?}",
            note.template_ids
        );
    }
    assert_eq!(note.type_code.as_ref().map(|c| c.code.as_str()), Some(REFERRAL_NOTE));
    assert_eq!(note.patient.name.as_deref(), Some("Rosa Díaz"));
    assert!(note.orders.iter().any(|o| o.extension.as_deref() == Some(id.as_str())), "inFulfillmentOf our order");
    assert!(note.to_html().contains("Chest pain on exertion"));

    // They accept (OSU^O51, ORC-5 IP), through our Direct mailbox.
    let cfg = mail.mailbox();
    let accepted = osu(&id, "IP", "");
    mail.deliver(&answer(
        "<osu-1@heart-clinic.example>",
        &format!("<{ours}>"),
        &[Packed { name: "DOC0001.HL7", mime_type: HL7_V2, bytes: accepted.as_bytes() }],
    ))
    .await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    let r = t.referral(&id).await;
    let responded: Vec<&Value> =
        r["events"].as_array().unwrap().iter().filter(|e| e["type"] == "specialist-responded").collect();
    assert_eq!(responded.len(), 1, "{r}");
    assert_eq!(responded[0]["detail"]["accepted"], true);
    assert_ne!(r["state"], "note-received");

    // They book the patient (SIU^S12, 360X's appointment notification): scheduled.
    let mut sch = vec![String::new(); 27];
    sch[0] = "SCH".into();
    sch[1] = "A77".into();
    sch[26] = format!("{id}^REFLOOP");
    let siu = format!(
        "MSH|^~\\&|HEARTEHR|Heart Clinic|REFLOOP|North Clinic|20260303110000+0000||SIU^S12^SIU_S12|siu-1|P|2.5.1\r{}\rTQ1|||||||20260310143000+0000\r",
        sch.join("|")
    );
    mail.deliver(&answer(
        "<siu-1@heart-clinic.example>",
        &format!("<{ours}>"),
        &[Packed { name: "DOC0001.HL7", mime_type: HL7_V2, bytes: siu.as_bytes() }],
    ))
    .await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    let r = t.referral(&id).await;
    assert_eq!(
        (r["state"].as_str(), r["appointment_at"].as_str()),
        (Some("scheduled"), Some("2026-03-10T14:30:00.000Z"))
    );

    // An interim consult note (beside a status, not the outcome): the patient was seen; the
    // loop stays open, and the note is kept on the referral as another document.
    let consult = cda_example("Consultation_Note.xml");
    let in_progress = osu(&id, "IP", "");
    mail.deliver(&answer(
        "<interim-1@heart-clinic.example>",
        &format!("<{ours}>"),
        &[
            Packed { name: "DOC0001.HL7", mime_type: HL7_V2, bytes: in_progress.as_bytes() },
            Packed { name: "DOC0002.XML", mime_type: "text/xml", bytes: &consult },
        ],
    ))
    .await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    assert_eq!(t.referral(&id).await["state"], "attended");
    let docs = t.get(&format!("/api/v1/documents?referral_id={id}")).await.body;
    assert_eq!(docs["items"][0]["role"], "other", "{docs}");

    // Then the final consult note: the loop closes.
    mail.deliver(&answer(
        "<note-1@heart-clinic.example>",
        &format!("<{ours}>"),
        &[Packed { name: "DOC0001.XML", mime_type: "text/xml", bytes: &consult }],
    ))
    .await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    assert_eq!(t.referral(&id).await["state"], "note-received");

    // Another referral is declined: a person finds another specialist.
    let other = t.create_referral_id(order("p-360y", "Tom Reyes")).await;
    t.advance("1m").await;
    let request = smtp.mails().into_iter().rfind(|m| m.data.contains(&other)).expect("its request");
    let theirs = Letter::read(request.data.as_bytes()).unwrap().message_id.unwrap();
    let declined = osu(&other, "CA", "^Not taking new patients");
    mail.deliver(&answer(
        "<osu-2@heart-clinic.example>",
        &format!("<{theirs}>"),
        &[Packed { name: "DOC0001.HL7", mime_type: HL7_V2, bytes: declined.as_bytes() }],
    ))
    .await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    let tasks = t.tasks_of(&other).await;
    assert!(tasks.iter().any(|x| x["kind"] == "specialist-declined" && x["status"] == "open"), "{tasks:?}");
    // We cancel a third: the specialist is told (ORC CA) and confirms; nobody is asked to find
    // another specialist.
    let third = t.create_referral_id(order("p-360z", "Ana Ruiz")).await;
    t.advance("1m").await;
    let request = smtp.mails().into_iter().rfind(|m| m.data.contains(&third)).expect("its request");
    let theirs = Letter::read(request.data.as_bytes()).unwrap().message_id.unwrap();
    t.event(&third, json!({"type": "cancelled", "reason": "the patient moved away"})).await;
    t.advance("1m").await;
    let cancels: Vec<_> = smtp.mails().into_iter().filter(|m| m.data.contains("360X referral cancellation")).collect();
    assert_eq!(cancels.len(), 1, "one cancellation, only for the request that went out");
    let cancel = Letter::read(cancels[0].data.as_bytes()).unwrap();
    let omg = String::from_utf8(cancel.documents.iter().find(|a| a.is_hl7()).unwrap().bytes.clone()).unwrap();
    assert_eq!(peers::validate_hl7(std::slice::from_ref(&omg)), ["OMG_O19"], "{omg}");
    assert!(omg.contains(&format!("\rORC|CA|{third}^REFLOOP|")), "{omg}");
    assert!(cancel.documents.iter().all(|a| a.cda.is_none()), "no Referral Note with a cancellation");
    let confirmed = osu(&third, "CA", "");
    mail.deliver(&answer(
        "<osu-3@heart-clinic.example>",
        &format!("<{theirs}>"),
        &[Packed { name: "DOC0001.HL7", mime_type: HL7_V2, bytes: confirmed.as_bytes() }],
    ))
    .await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    let r = t.referral(&third).await;
    let types: Vec<&str> = r["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.ends_with(&["cancel-confirmed"]), "{types:?}");
    assert!(t.tasks_of(&third).await.iter().all(|x| x["kind"] != "specialist-declined"));

    // The message browser tells what came in.
    let inbox = t.get("/api/v1/inbox?limit=10").await.body;
    let osu_item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["control_id"] == "osu-2@heart-clinic.example")
        .cloned()
        .unwrap();
    assert_eq!(osu_item["status"], "applied", "{osu_item}");
}
