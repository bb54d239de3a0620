//! The Direct mailbox's messages through the one way in (`App::receive` with the registered
//! `direct` protocol): a specialist's reply carrying a C-CDA consult note closes the loop of
//! the referral it answers; the same message again applies nothing; a note nobody can place
//! waits in review and a person files it; other documents and broken ones are told apart.
//! The mailbox itself is a real IMAP server (Dovecot on loopback): each message is kept before
//! it is marked seen, and one fetched again applies nothing.

use refloop_app::{Arrival, Described, InboxStatus, Mapped, Protocol, Via};
use refloop_direct::{DirectProtocol, Letter, MailboxConfig, Pass, poll_once};
use refloop_domain::{Input, State};
use refloop_testkit::{Backend, Dovecot, DovecotOptions, TestApp, cda_example, direct_letter, xdm_package, zip_of};
use serde_json::json;

on_both_backends!(
    a_consult_note_by_direct_closes_the_loop_once_and_an_unplaced_one_waits_for_a_person,
    the_mailbox_is_read_over_imap_and_a_message_is_kept_before_it_is_marked_seen,
    plain_imap_only_on_loopback_and_a_client_certificate_when_asked,
    the_mailbox_is_read_as_mail_arrives_when_the_server_offers_idle,
);

/// Dovecot on loopback (TLS): a reply to our request, its note in an XDM package, is fetched,
/// kept, applied, then marked seen; a
/// copy delivered again, and a message kept by a pass that died before marking it seen, are
/// fetched and apply nothing.
async fn the_mailbox_is_read_over_imap_and_a_message_is_kept_before_it_is_marked_seen(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mail = Dovecot::start().await;
    // Over TLS, trusting the CA that signed the mailbox's certificate.
    let cfg = mail.mailbox();
    let id = t
        .create_referral_id(
            json!({"patient_id": "p-imap", "referring_provider": "dr-adams", "specialty": "cardiology"}),
        )
        .await;
    // The note comes in an XDM package, as 360X and many HISPs send it.
    let package = xdm_package(&[("DOC0001.XML", &cda_example("Consultation_Note.xml"))]);
    let reply = direct_letter(
        "<imap-1@direct.specialists.example>",
        "Re: Request for consult note",
        Some(&format!("<obx_9.{id}@direct.north-clinic.example>")),
        Some(("package.zip", &package)),
    );
    mail.deliver(&reply).await;
    assert_eq!(mail.unseen().await, 1);
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    assert_eq!(t.referral(&id).await["state"], "note-received");
    assert_eq!(mail.unseen().await, 0, "marked seen once kept");
    let events = t.referral(&id).await["events"].as_array().unwrap().len();
    // The note is kept as a document, filed on the referral as its consult note.
    let docs = t.get(&format!("/api/v1/documents?referral_id={id}")).await.body;
    let doc = &docs["items"][0];
    assert_eq!(
        (doc["role"].as_str(), doc["media_type"].as_str()),
        (Some("consult-note"), Some("application/xml")),
        "{docs}"
    );
    assert!(doc["name"].as_str().unwrap().starts_with("package.zip/"), "{docs}");

    // The HISP delivers the same message again: fetched, recognised, nothing applied.
    mail.deliver(&reply).await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 0 });
    assert_eq!(t.referral(&id).await["events"].as_array().unwrap().len(), events);
    assert_eq!(t.get("/api/v1/documents").await.body["items"].as_array().unwrap().len(), 1, "kept once");

    // A pass kept this one and died before marking it seen: the next pass marks it, once.
    let other = direct_letter("<imap-2@x.example>", "Hello", None, None);
    mail.deliver(&other).await;
    // Kept under its Message-ID, as the mailbox keeps every message.
    let control = Letter::read(&other).and_then(|l| l.message_id).unwrap();
    assert_eq!(control, "imap-2@x.example");
    let arrival = Arrival { source: &cfg.user, control_id: &control, message_type: "direct", raw: &other };
    let (kept, new) = t.app.receive("direct", arrival, &via()).await.unwrap();
    assert!(new && kept.status == InboxStatus::Ignored, "{kept:?}");
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 0 });
    assert_eq!(mail.unseen().await, 0);
    let inbox = t.get("/api/v1/inbox?limit=50").await.body;
    let direct: Vec<_> = inbox["items"].as_array().unwrap().iter().filter(|m| m["protocol"] == "direct").collect();
    assert_eq!(direct.len(), 2, "each message kept once: {inbox}");
    assert!(direct.iter().all(|m| m["transport"].as_str().unwrap().starts_with("imap from 127.0.0.1")), "{inbox}");

    // A certificate the public roots do not vouch for is refused.
    let untrusted = MailboxConfig { ca_file: None, ..cfg.clone() };
    let e = poll_once(&t.app, &untrusted).await.unwrap_err().to_string();
    assert!(e.contains("could not be reached") && e.to_lowercase().contains("certificate"), "{e}");
    // imap:// upgrades with STARTTLS when the server offers it: the same certificate check.
    let starttls = MailboxConfig { url: mail.url(), ..cfg.clone() };
    assert_eq!(poll_once(&t.app, &starttls).await.unwrap(), Pass { fetched: 0, kept: 0 });
    let e = poll_once(&t.app, &MailboxConfig { ca_file: None, ..starttls }).await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate"), "STARTTLS, not the clear: {e}");
}

/// A mailbox that offers no TLS is read in the clear only on loopback (a local HISP gateway);
/// one that asks for a client certificate gets the configured one, and refuses a login
/// without it.
async fn plain_imap_only_on_loopback_and_a_client_certificate_when_asked(b: Backend) {
    let t = TestApp::spawn(b).await;
    let plain = Dovecot::start_with(DovecotOptions { tls: false, client_cert: false }).await;
    let cfg = MailboxConfig {
        url: plain.url(),
        user: plain.user.clone(),
        password: plain.password.clone(),
        ca_file: None,
        client_cert: None,
    };
    plain.deliver(&direct_letter("<clear-1@gateway.example>", "Hello", None, None)).await;
    assert_eq!(poll_once(&t.app, &cfg).await.unwrap(), Pass { fetched: 1, kept: 1 });
    let url = refloop_direct::parse_url("imap://mail.example.org/INBOX").unwrap();
    assert!(!url.tls && !url.loopback && url.port == 143, "elsewhere, imap:// must upgrade: {url:?}");

    let guarded = Dovecot::start_with(DovecotOptions { tls: true, client_cert: true }).await;
    let cfg = MailboxConfig {
        url: guarded.tls_url(),
        user: guarded.user.clone(),
        password: guarded.password.clone(),
        ca_file: Some(refloop_testkit::tls::file("ca.pem")),
        client_cert: None,
    };
    assert!(poll_once(&t.app, &cfg).await.is_err(), "no client certificate, no login");
    let with_cert = MailboxConfig {
        client_cert: Some((refloop_testkit::tls::file("client.pem"), refloop_testkit::tls::file("client.key"))),
        ..cfg
    };
    assert_eq!(poll_once(&t.app, &with_cert).await.unwrap(), Pass { fetched: 0, kept: 0 });
}

/// `run_mailbox` waits in IDLE: a message is read as it arrives, long before the interval.
async fn the_mailbox_is_read_as_mail_arrives_when_the_server_offers_idle(b: Backend) {
    let t = TestApp::spawn(b).await;
    let mail = Dovecot::start().await;
    let cfg = mail.mailbox();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hour = std::time::Duration::from_secs(3600);
    let reader = tokio::spawn(refloop_direct::run_mailbox(t.app.clone(), cfg, hour, async {
        let _ = stopped.await;
    }));
    let kept = || async { t.get("/api/v1/inbox?limit=10").await.body["items"].as_array().map_or(0, Vec::len) };
    // Each arrives while the reader waits; only IDLE explains a read within the hour.
    for n in 1..=2 {
        mail.deliver(&direct_letter(&format!("<idle-{n}@x.example>"), "Hello", None, None)).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while kept().await < n {
            assert!(std::time::Instant::now() < deadline, "message {n} not read as it arrived");
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert_eq!(mail.unseen().await, 0);
    stop.send(()).unwrap();
    reader.await.unwrap();
}

fn via() -> Via {
    Via { transport: "imap", remote: Some("127.0.0.1".into()), token: None }
}

fn arrival<'a>(message_id: &'a str, raw: &'a [u8]) -> Arrival<'a> {
    Arrival { source: "referrals@direct.north-clinic.example", control_id: message_id, message_type: "direct", raw }
}

async fn a_consult_note_by_direct_closes_the_loop_once_and_an_unplaced_one_waits_for_a_person(b: Backend) {
    let t = TestApp::spawn(b).await;
    let order = |p: &str| json!({"patient_id": p, "referring_provider": "dr-adams", "specialty": "cardiology", "urgency": "routine"});
    let id = t.create_referral_id(order("p-direct")).await;
    let note = cda_example("Consultation_Note.xml");
    // Our request went out as <obx_….{referral}@…>; the specialist's system answers it.
    let raw = direct_letter(
        "<reply-1@direct.specialists.example>",
        &format!("Re: Request for consult note — referral {id}"),
        Some(&format!("<obx_1.{id}@direct.north-clinic.example>")),
        Some(("consult.xml", &note)),
    );
    let (item, new) = t.app.receive("direct", arrival("reply-1", &raw), &via()).await.unwrap();
    assert!(new);
    assert_eq!(
        (item.status, item.referral_id.as_ref().map(|r| r.to_string())),
        (InboxStatus::Applied, Some(id.clone()))
    );
    let r = t.referral(&id).await;
    assert_eq!(r["state"], "note-received", "{r}");
    let events = r["events"].as_array().unwrap().len();

    // Fetched again (a crash before the mailbox marked it seen): kept once, applied once.
    let (again, new) = t.app.receive("direct", arrival("reply-1", &raw), &via()).await.unwrap();
    assert!(!new && again.id == item.id);
    assert_eq!(t.referral(&id).await["events"].as_array().unwrap().len(), events, "nothing applied twice");

    // A note that names no referral and no patient we know: it waits for a person …
    let other = t.create_referral_id(order("p-other")).await;
    let stray = direct_letter("<stray@x.example>", "Consult note", None, Some(("note.xml", &note)));
    let (waiting, _) = t.app.receive("direct", arrival("stray", &stray), &via()).await.unwrap();
    assert_eq!(waiting.status, InboxStatus::Review, "{:?}", waiting.error);
    assert!(waiting.error.as_deref().unwrap().contains("for a person to file"), "{:?}", waiting.error);
    let shown = t.get(&format!("/api/v1/inbox/{}", waiting.id)).await;
    assert_eq!(shown.body["protocol"], "direct");
    // … who files it on the right referral, through the same protocol.
    let r = t.post(&format!("/api/v1/inbox/{}/apply", waiting.id), json!({"referral_id": other})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.referral(&other).await["state"], "note-received");

    // A note whose patient we know by name and birth date only (its identifier is an SSN):
    // offered to a person on that patient's open referrals, never filed on its own.
    let eve = t
        .create_referral_id(json!({"patient_id": "p-eve", "referring_provider": "dr-adams", "specialty": "cardiology",
            "patient": {"name": "Eve Betterhalf", "birth_date": "1975-05-01"}}))
        .await;
    let by_name = direct_letter("<eve@x.example>", "Consult note", None, Some(("note.xml", &note)));
    let (offered, _) = t.app.receive("direct", arrival("eve", &by_name), &via()).await.unwrap();
    assert_eq!(offered.status, InboxStatus::Review, "{:?}", offered.error);
    assert!(offered.error.as_deref().unwrap().contains("matched by name and birth date only"), "{:?}", offered.error);
    assert_eq!(t.referral(&eve).await["state"], "ordered");
    assert!(t.tasks_of(&eve).await.iter().any(|x| x["kind"] == "review-match"), "a person confirms it");

    // A message whose attachment is not XML a person can use is a dead letter with the reason.
    let broken = direct_letter("<b@x.example>", "Note", None, Some(("note.xml", b"<ClinicalDocument><x></y>")));
    let (dead, _) = t.app.receive("direct", arrival("broken", &broken), &via()).await.unwrap();
    assert_eq!(dead.status, InboxStatus::Dead);
    assert!(
        dead.error.as_deref().unwrap().starts_with("note.xml: the document is not well-formed XML"),
        "{:?}",
        dead.error
    );
}

fn now() -> jiff::Timestamp {
    "2026-03-02T12:00:00Z".parse().unwrap()
}

#[test]
fn a_consult_note_names_its_referral_and_order_but_never_matches_by_an_ssn() {
    let raw = direct_letter(
        "<r@x.example>",
        "Re: Request for consult note — referral ref_01ABC",
        Some("<obx_77.ref_01ABC@direct.north-clinic.example>"),
        Some(("consult.xml", &cda_example("Consultation_Note.xml"))),
    );
    let p = DirectProtocol::new(Vec::new());
    let Ok(Mapped::Event { target, input }) = p.remap(&raw, now()) else { panic!("{:?}", p.remap(&raw, now())) };
    assert_eq!(target.keys, vec!["ref_01ABC".to_owned(), "1298989898".to_owned()], "ours, then the order it fulfils");
    assert!(target.fallback_allowed && target.review_unmatched);
    assert_eq!(target.patient, None, "the example's only patient identifier is an SSN: never matched by");
    assert!(matches!(input, Input::Milestone { state: State::NoteReceived, .. }));
    let Some(Described::Text(text)) = p.describe(&raw) else { panic!() };
    assert!(text.contains("Consult note (11488-4)") && text.contains("a note for a referral"), "{text}");
}

#[test]
fn other_documents_and_messages_are_told_apart() {
    let p = DirectProtocol::new(Vec::new());
    let progress = direct_letter("<p@x>", "Progress", None, Some(("progress.xml", &cda_example("Progress_Note.xml"))));
    assert_eq!(
        p.remap(&progress, now()),
        Ok(Mapped::Ignore("its C-CDA documents are not consult notes: they are in Unfiled documents"))
    );
    // … unless the practice lists progress notes as answers (`[notes] document_types`).
    assert!(matches!(DirectProtocol::new(vec!["11506-3".into()]).remap(&progress, now()), Ok(Mapped::Event { .. })));
    let bare = direct_letter("<h@x>", "Hello", None, None);
    assert_eq!(p.remap(&bare, now()), Ok(Mapped::Ignore("no document in the message")));
    assert!(p.documents(&bare).is_empty());
    // A PDF is kept as a document for a person; a C-CDA with its bytes as they came.
    let pdf = refloop_testkit::fax_pdf(&["Consultation"]);
    let scanned = direct_letter("<pdf@x>", "Note", None, Some(("note.pdf", &pdf)));
    assert_eq!(
        p.remap(&scanned, now()),
        Ok(Mapped::Ignore("no C-CDA document in the message: its documents are in Unfiled documents"))
    );
    let parts = p.documents(&scanned);
    assert_eq!((parts.len(), parts[0].media_type.as_str(), parts[0].content == pdf), (1, "application/pdf", true));
    let parts = p.documents(&progress);
    assert_eq!((parts[0].media_type.as_str(), parts[0].note), ("application/xml", false));
    assert_eq!(parts[0].content, cda_example("Progress_Note.xml"));
    assert_eq!(p.remap(b"\x00\x01 not mail", now()), Err("not a MIME message".to_owned()));
    let read = Letter::read(&direct_letter("<s@x>", "Re: Request for consult note — referral ref_9Z.", None, None));
    assert_eq!(
        read.unwrap().referral_ids(),
        vec!["ref_9Z".to_owned()],
        "the subject's referral id, punctuation trimmed"
    );
}

/// An IHE XDM package (as 360X and many HISPs send): unpacked, each document checked against
/// METADATA.XML (size, SHA-1), names matched whatever their case; a tampered, escaping or
/// broken package is refused with the reason.
#[test]
fn an_xdm_package_is_unpacked_checked_and_its_consult_note_found() {
    let p = DirectProtocol::new(Vec::new());
    let (note, progress) = (cda_example("Consultation_Note.xml"), cda_example("Progress_Note.xml"));
    let pkg = xdm_package(&[("DOC0001.XML", &progress), ("DOC0002.XML", &note)]);
    let raw =
        direct_letter("<x@y>", "Re: Request for consult note — referral ref_01ABC", None, Some(("pkg.zip", &pkg)));
    let Ok(Mapped::Event { target, .. }) = p.remap(&raw, now()) else { panic!("{:?}", p.remap(&raw, now())) };
    assert_eq!(target.keys[0], "ref_01ABC");
    let Some(Described::Text(text)) = p.describe(&raw) else { panic!() };
    assert!(text.contains("C-CDA pkg.zip/IHE_XDM/SUBSET01/DOC0002.XML: Consult note (11488-4)"), "{text}");
    assert!(text.contains("DOC0001.XML: Progress note (11506-3)"), "{text}");

    let meta = |uri: &str, size: usize, hash: &str| {
        format!(
            r#"<SubmitObjectsRequest xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:ExtrinsicObject mimeType="text/xml">
            <rim:Slot name="URI"><rim:ValueList><rim:Value>{uri}</rim:Value></rim:ValueList></rim:Slot>
            <rim:Slot name="size"><rim:ValueList><rim:Value>{size}</rim:Value></rim:ValueList></rim:Slot>
            <rim:Slot name="hash"><rim:ValueList><rim:Value>{hash}</rim:Value></rim:ValueList></rim:Slot>
            </rim:ExtrinsicObject></SubmitObjectsRequest>"#
        )
        .into_bytes()
    };
    let refused = |files: Vec<(String, Vec<u8>)>| {
        let raw = direct_letter("<z@y>", "Note", None, Some(("pkg.zip", &zip_of(&files))));
        p.remap(&raw, now()).unwrap_err()
    };
    // A document swapped after the metadata was written (lower-case names, as some senders write).
    let why = refused(vec![
        ("IHE_XDM/SUBSET01/metadata.xml".into(), meta("doc.xml", note.len(), &"0".repeat(40))),
        ("IHE_XDM/SUBSET01/DOC.XML".into(), note.clone()),
    ]);
    assert!(why.contains("does not match METADATA.XML"), "{why}");
    let why = refused(vec![
        ("IHE_XDM/SUBSET01/METADATA.XML".into(), meta("../../../etc/passwd", 10, "")),
        ("README.TXT".into(), b"x".to_vec()),
    ]);
    assert!(why.contains("leaves the package"), "{why}");
    let why = refused(vec![("IHE_XDM/SUBSET01/DOC.XML".into(), note.clone())]);
    assert!(why.contains("no IHE_XDM/<subset>/METADATA.XML"), "{why}");
    let raw = direct_letter("<w@y>", "Note", None, Some(("pkg.zip", b"PK not really")));
    assert!(p.remap(&raw, now()).unwrap_err().contains("not a zip file"));
}
