//! Inbound fax (`POST /webhooks/fax/inbound`): the provider's signed callback with the PDF,
//! inline or at a URL. A fax whose text carries the short code our note request printed is
//! that referral's consult note and closes the loop without a person; the same fax sent
//! again applies nothing; any other fax is kept as a document in Unfiled documents, where a
//! person files it (closing the loop) or dismisses it. A bad signature, a body that is no
//! inbound fax and a file that is no PDF change nothing.

use jiff::SignedDuration;
use refloop_app::{
    Actor, Retention, Role,
    documents::{DocumentFilter, DocumentRole, DocumentStatus, short_code},
};
use refloop_domain::ReferralId;
use refloop_testkit::{Backend, FAX_WEBHOOK_SECRET, FakeEhr, FakeFax, TestApp, fax_pdf, post_signed};
use serde_json::{Value, json};

on_both_backends!(
    a_fax_that_carries_our_code_closes_the_loop_once,
    a_fax_without_a_code_waits_unfiled_until_a_person_files_it,
    a_fax_that_is_not_signed_or_not_a_pdf_changes_nothing,
    a_note_filed_from_a_fax_is_written_back_to_the_ehr_once,
);

fn url(t: &TestApp) -> String {
    format!("{}/webhooks/fax/inbound", t.base)
}

fn coordinator() -> Actor {
    Actor::person("ana", Role::Coordinator, None)
}

async fn documents(t: &TestApp, status: Option<DocumentStatus>) -> Vec<refloop_app::documents::DocumentRecord> {
    t.app.documents(&coordinator(), &DocumentFilter { status, referral: None, limit: 50 }).await.unwrap()
}

/// A referral seen by a specialist on fax, its note request faxed on day 31.
async fn requested(t: &TestApp, fax: &FakeFax, patient: &str) -> String {
    t.save_specialist(
        "sp-fax",
        json!({"name": "Dr Fax", "specialties": ["cardiology"], "fax": "+15555550181",
            "last_verified": "2026-02-20T00:00:00Z"}),
    )
    .await;
    let id = t
        .create_referral_id(json!({"patient_id": patient, "referring_provider": "dr-adams",
            "specialty": "cardiology", "specialist": "Dr Fax"}))
        .await;
    t.event(&id, json!({"type": "scheduled", "appointment_at": "2026-03-03T15:00:00Z"})).await;
    t.event(&id, json!({"type": "attended", "at": "2026-03-03T15:30:00Z"})).await;
    t.advance("32d").await;
    assert_eq!(fax.sent().len(), 1, "the note request went out by fax");
    id
}

async fn a_fax_that_carries_our_code_closes_the_loop_once(b: Backend) {
    let fax = FakeFax::start().await;
    let t = TestApp::builder(b).fax(&fax).spawn().await;
    let id = requested(&t, &fax, "p-fax-1").await;
    // The letter carries the short code; the specialist's office types it on their cover sheet.
    let code = short_code(&ReferralId::parse(&id).unwrap());
    assert!(fax.sent()[0].html.contains(&code), "{}", fax.sent()[0].html);
    let written = code.to_lowercase();
    let pdf = fax_pdf(&["FAX COVER SHEET", "To: North Clinic", &format!("Re: referral {written}"), "Pages: 3"]);
    let r = fax.deliver_inbound(&url(&t), FAX_WEBHOOK_SECRET, "fx-100", &pdf, false).await;
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["referral_id"].as_str()), (Some("applied"), Some(id.as_str())), "{body}");
    let referral = t.referral(&id).await;
    assert_eq!(referral["state"], "note-received");
    let events = referral["events"].as_array().unwrap().len();
    let filed = documents(&t, Some(DocumentStatus::Filed)).await;
    assert_eq!(filed.len(), 1);
    assert_eq!(filed[0].referral_id.as_ref().map(ReferralId::as_str), Some(id.as_str()));
    assert_eq!((filed[0].role, filed[0].media_type.as_str()), (Some(DocumentRole::ConsultNote), "application/pdf"));
    assert_eq!(filed[0].size as usize, pdf.len());
    let doc = t.app.document(&coordinator(), &filed[0].id).await.unwrap();
    assert_eq!(doc.content, pdf, "kept as it came");

    // The provider sends the callback again: answered with the fax kept, nothing fetched or applied.
    let fetched = fax.media_fetches();
    let again = fax.deliver_inbound(&url(&t), FAX_WEBHOOK_SECRET, "fx-100", &pdf, false).await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(fax.media_fetches(), fetched, "not fetched again");
    assert_eq!(t.referral(&id).await["events"].as_array().unwrap().len(), events);
    assert_eq!(documents(&t, None).await.len(), 1, "one document");

    // A code that names no referral of ours (another practice's, a typo): a person decides.
    let stray = fax_pdf(&["Re: RL-ZZZZ-ZZZZ"]);
    let r = fax.deliver_inbound(&url(&t), FAX_WEBHOOK_SECRET, "fx-101", &stray, true).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "review");
    assert_eq!(documents(&t, Some(DocumentStatus::Unfiled)).await.len(), 1);

    // What waits for a person is on /metrics, for alerts.
    let metrics =
        t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.admin).send().await.unwrap().text().await.unwrap();
    for line in [
        "refloop_documents_unfiled 1",
        "refloop_inbox_waiting{status=\"review\"} 1",
        "refloop_inbox_waiting{status=\"dead\"} 0",
        "refloop_outbox{status=\"sent\"} ",
        "refloop_outbox{status=\"unknown\"} 0",
        "refloop_outbox_oldest_unsent_seconds 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

async fn a_fax_without_a_code_waits_unfiled_until_a_person_files_it(b: Backend) {
    let fax = FakeFax::start().await;
    let retention = Retention { documents: SignedDuration::from_hours(90 * 24), ..Retention::default() };
    let t = TestApp::builder(b).fax(&fax).retention(retention).spawn().await;
    let id = t
        .create_referral_id(
            json!({"patient_id": "p-fax-2", "referring_provider": "dr-adams", "specialty": "cardiology"}),
        )
        .await;
    // A scanned note (no code, no text at all) and a typed one without our code.
    for (fax_id, pdf) in [("fx-200", fax_pdf(&[])), ("fx-201", fax_pdf(&["Consultation note", "Plan: follow up"]))] {
        let r = fax.deliver_inbound(&url(&t), FAX_WEBHOOK_SECRET, fax_id, &pdf, true).await;
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ignored");
    }
    let unfiled = documents(&t, Some(DocumentStatus::Unfiled)).await;
    assert_eq!(unfiled.len(), 2);
    assert!(unfiled.iter().all(|d| d.content.is_empty()), "lists carry no content");
    assert_eq!(t.referral(&id).await["state"], "ordered");

    // A person files one as the consult note: the loop closes through the one write path.
    let referral = ReferralId::parse(&id).unwrap();
    let filed =
        t.app.file_document(&unfiled[0].id, &referral, DocumentRole::ConsultNote, &coordinator()).await.unwrap();
    assert_eq!(filed.status, DocumentStatus::Filed);
    assert_eq!(filed.settled_by.as_deref(), Some("coordinator:ana"));
    let shown = t.referral(&id).await;
    assert_eq!(shown["state"], "note-received");
    assert!(shown["events"].as_array().unwrap().iter().any(|e| e["source"] == "coordinator:ana"), "{shown}");
    let again = t.app.file_document(&unfiled[0].id, &referral, DocumentRole::Other, &coordinator()).await;
    assert!(again.unwrap_err().to_string().contains("filed already"));
    // The other is dismissed, with a reason.
    let empty = t.app.dismiss_document(&unfiled[1].id, " ", &coordinator()).await;
    assert!(empty.is_err(), "a dismissal says why");
    let dismissed = t.app.dismiss_document(&unfiled[1].id, "for another practice", &coordinator()).await.unwrap();
    assert_eq!(
        (dismissed.status, dismissed.reason.as_deref()),
        (DocumentStatus::Dismissed, Some("for another practice"))
    );
    assert!(documents(&t, Some(DocumentStatus::Unfiled)).await.is_empty());
    // Each read and settlement is audited.
    let audit = t.app.store().audit_log(500).await.unwrap();
    let did = |action: &str, id: &str| {
        audit.iter().any(|e| e.action == action && e.resource_type == "document" && e.resource_id.contains(id))
    };
    assert!(did("file", &unfiled[0].id) && did("dismiss", &unfiled[1].id), "{audit:?}");
    assert!(did("read", &unfiled[0].id) || did("list", &unfiled[0].id), "{audit:?}");

    // Past `[retention] documents` (here 90 days), a settled document's content is emptied;
    // its hash and size stay.
    t.advance("89d").await;
    t.app.purge_old_messages().await.unwrap();
    assert!(!t.app.document(&coordinator(), &unfiled[0].id).await.unwrap().content.is_empty());
    t.advance("2d").await;
    t.app.purge_old_messages().await.unwrap();
    let doc = t.app.document(&coordinator(), &unfiled[0].id).await.unwrap();
    assert!(doc.content.is_empty() && doc.sha256.len() == 64 && doc.size > 0, "{doc:?}");
}

async fn a_fax_that_is_not_signed_or_not_a_pdf_changes_nothing(b: Backend) {
    let t = TestApp::spawn(b).await;
    let pdf = fax_pdf(&["hello"]);
    let body = |file: &[u8]| {
        use base64::Engine;
        serde_json::to_vec(&json!({"id": "fx-300", "file": base64::engine::general_purpose::STANDARD.encode(file)}))
            .unwrap()
    };
    let signed = post_signed(&url(&t), "not-the-secret", body(&pdf)).await;
    assert_eq!(signed.status().as_u16(), 403);
    let unsigned = t.http.post(url(&t)).body(body(&pdf)).send().await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    let not_pdf = post_signed(&url(&t), FAX_WEBHOOK_SECRET, body(b"<html>hello</html>")).await;
    assert_eq!(not_pdf.status().as_u16(), 422);
    let not_fax = post_signed(&url(&t), FAX_WEBHOOK_SECRET, b"{\"id\": 5}".to_vec()).await;
    assert_eq!(not_fax.status().as_u16(), 422);
    let broken = post_signed(&url(&t), FAX_WEBHOOK_SECRET, body(b"%PDF-1.4 not really a pdf")).await;
    assert_eq!(broken.status().as_u16(), 201, "kept for a person, as it came");
    assert_eq!(broken.json::<Value>().await.unwrap()["status"], "dead");
    let inbox = t.get("/api/v1/inbox?limit=50").await.body;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "only the signed PDF was kept: {inbox}");
    assert_eq!(documents(&t, Some(DocumentStatus::Unfiled)).await.len(), 1);
}

/// `[ehr] write_back`: the note a person filed from a fax goes back to the EHR as a FHIR
/// `DocumentReference` on the referral's ServiceRequest — the PDF inline with its size and
/// SHA-1 — once, however often the outbox runs.
async fn a_note_filed_from_a_fax_is_written_back_to_the_ehr_once(b: Backend) {
    use base64::Engine;
    let ehr = FakeEhr::start().await;
    let t = TestApp::builder(b).ehr_write_back(&ehr).spawn().await;
    let sr = json!({"resourceType": "ServiceRequest", "id": "sr-note", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p-wb"}, "requester": {"reference": "Practitioner/dr1"},
        "performerType": {"text": "cardiology"}, "authoredOn": "2026-03-02T15:00:00Z"});
    let made = t.fhir("PUT", "/fhir/ServiceRequest/sr-note", Some(sr), &[]).await;
    let id = made.body["_location"].as_str().unwrap()["ServiceRequest/".len()..].replacen('-', "_", 1);
    let pdf = fax_pdf(&["Cardiology consultation", "Plan: echocardiogram"]);
    let body =
        serde_json::to_vec(&json!({"id": "fx-wb", "file": base64::engine::general_purpose::STANDARD.encode(&pdf)}))
            .unwrap();
    assert_eq!(post_signed(&url(&t), FAX_WEBHOOK_SECRET, body).await.status().as_u16(), 201);
    let doc = documents(&t, Some(DocumentStatus::Unfiled)).await.remove(0);
    let filed =
        t.post(&format!("/api/v1/documents/{}/file", doc.id), json!({"referral_id": id, "role": "consult-note"})).await;
    assert_eq!(filed.status, 200, "{:?}", filed.body);
    t.advance("1m").await;
    t.advance("1m").await;
    let written = ehr.documents();
    let outbox = t.get("/api/v1/outbox").await.body;
    assert_eq!(written.len(), 1, "{outbox}");
    let d = &written[0];
    assert_eq!(d["context"]["related"][0]["reference"], "ServiceRequest/sr-note");
    assert_eq!(d["subject"]["reference"], "Patient/p-wb");
    assert_eq!(d["type"]["coding"][0]["code"], "11488-4");
    let attachment = &d["content"][0]["attachment"];
    assert_eq!(attachment["contentType"], "application/pdf");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(attachment["data"].as_str().unwrap()).unwrap(), pdf);
    assert_eq!(attachment["size"], pdf.len());
    // A valid FHIR R4 DocumentReference, by the independent validator (`fhir.resources`).
    let mut checked = d.clone();
    checked.as_object_mut().unwrap().remove("id");
    refloop_testkit::peers::validate_fhir(&[checked]);
    // The outbox runs again: nothing is written twice.
    t.advance("1h").await;
    assert_eq!(ehr.documents().len(), 1);
    let shown = t.referral(&id).await;
    assert_eq!(shown["state"], "note-received");
    assert!(
        shown["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "message-delivered" && e["detail"]["purpose"] == "note-write-back"),
        "{shown}"
    );
}
