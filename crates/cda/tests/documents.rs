//! Every C-CDA in the fixtures (HL7's C-CDA R2.1 examples, see `fixtures/SOURCES.md`) is read:
//! the consultation note is recognised as a note for a referral, the others as not; each
//! renders to HTML with its sections and nothing that runs, links or loads.

use refloop_cda::{CONSULT_NOTE, CdaError, Document, MAX_BYTES};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const ALL: [(&str, &str); 4] = [
    ("Consultation_Note.xml", "11488-4"),
    ("Discharge_Summary.xml", "18842-5"),
    ("Progress_Note.xml", "11506-3"),
    ("Referral_Note.xml", "57113-1"), // as the example has it
];

/// No element, attribute or URL in the HTML that could run, link or load anything: only
/// allowed elements, and no attribute but a class and table spans (text is escaped, so every
/// `<` opens a tag).
fn assert_inert(html: &str, name: &str) {
    const ALLOWED: [&str; 27] = [
        "article", "h2", "h3", "h4", "dl", "dt", "dd", "section", "p", "br", "span", "strong", "em", "small", "ul",
        "ol", "li", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "sub", "sup",
    ];
    for tag in html.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap();
        let mut parts = tag.split_whitespace();
        let element = parts.next().unwrap_or_default().trim_start_matches('/');
        assert!(ALLOWED.contains(&element), "{name}: <{tag}>");
        for attr in parts {
            let ok = ["class=\"", "colspan=\"", "rowspan=\""].iter().any(|a| attr.starts_with(a));
            assert!(ok, "{name}: attribute {attr} in <{tag}>");
        }
    }
    assert!(!html.to_ascii_lowercase().contains("javascript:"), "{name}");
    // A list holds items only (its caption goes before it), as HTML and screen readers need.
    for (i, _) in html.match_indices("<ul>").chain(html.match_indices("<ol>")) {
        let next = &html[i + 4..];
        assert!(next.starts_with("<li>") || next.starts_with("</"), "{name}: a list with more than items: {next:.80}");
    }
    for (i, _) in html.match_indices("</li>") {
        let next = &html[i + 5..];
        assert!(
            next.starts_with("<li>") || next.starts_with("</ul>") || next.starts_with("</ol>"),
            "{name}: {next:.80}"
        );
    }
}

#[test]
fn every_example_is_read_and_only_the_consult_note_is_a_note() {
    for (name, code) in ALL {
        let doc = Document::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let type_code = doc.type_code.as_ref().unwrap();
        assert_eq!(type_code.code, code, "{name}");
        assert_eq!(doc.is_note(&[]), code == CONSULT_NOTE, "{name}");
        assert!(
            doc.template_ids.iter().any(|t| t.starts_with("2.16.840.1.113883.10.20.22.1.1")),
            "{name}: US Realm header"
        );
        assert!(doc.patient.name.is_some() && doc.patient.birth_date.is_some(), "{name}: {:?}", doc.patient);
        assert!(!doc.authors.is_empty(), "{name}");
        assert!(doc.sections.len() >= 5, "{name}: {} sections", doc.sections.len());
        let html = doc.to_html();
        assert_inert(&html, name);
        for s in &doc.sections {
            assert!(html.contains(&refloop_cda::escape(s.title.as_deref().unwrap_or("(untitled section)"))), "{name}");
        }
    }
    // A practice that also takes progress notes as the specialist's answer says so.
    let progress = Document::parse(&fixture("Progress_Note.xml")).unwrap();
    assert!(progress.is_note(&["11506-3".to_owned()]));
}

#[test]
fn the_consult_note_gives_its_patient_author_date_order_and_narrative() {
    let doc = Document::parse(&fixture("Consultation_Note.xml")).unwrap();
    assert_eq!(doc.patient.name.as_deref(), Some("Eve Betterhalf"));
    assert_eq!(doc.patient.birth_date.as_deref(), Some("1975-05-01"));
    assert_eq!(doc.patient.gender.as_deref(), Some("Female"));
    assert!(doc.patient.ids.iter().any(|i| i.extension.as_deref() == Some("444-22-2222")));
    assert_eq!(doc.orders.len(), 1);
    assert_eq!(doc.orders[0].extension.as_deref(), Some("1298989898"), "inFulfillmentOf/order/id");
    assert_eq!(doc.effective.as_deref().map(|d| &d[..4]), Some("2013"));
    let titles: Vec<&str> = doc.sections.iter().filter_map(|s| s.title.as_deref()).collect();
    assert!(titles.contains(&"ASSESSMENT") && titles.contains(&"HISTORY OF PRESENT ILLNESS"), "{titles:?}");
    let html = doc.to_html();
    assert!(html.contains("<dt>Patient</dt><dd>Eve Betterhalf</dd>"), "{html}");
    assert!(html.contains("<table>") && html.contains("<td>"), "tables kept as tables");
}

#[test]
fn a_link_keeps_its_text_and_loses_its_target() {
    let doc = Document::parse(&fixture("Referral_Note.xml")).unwrap();
    let html = doc.to_html();
    assert_inert(&html, "Referral_Note.xml");
    assert!(!html.contains("AdvanceDirective.b50b7910.pdf"), "the link's target is not in the page");
}

/// A document built to attack the page or the parser: script and event handlers in the
/// narrative, a `javascript:` link, markup in the patient's name; a DTD with entities.
#[test]
fn hostile_documents_render_inert_or_are_refused() {
    let hostile = br#"<?xml version="1.0"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:x="http://www.w3.org/1999/xhtml">
  <code code="11488-4" codeSystem="2.16.840.1.113883.6.1" displayName="Consult note"/>
  <title>&lt;script&gt;alert(1)&lt;/script&gt;</title>
  <recordTarget><patientRole><id root="1.2.3" extension="MRN-1"/><patient>
    <name><given>&lt;img src=x onerror=alert(1)&gt;</given><family>Doe</family></name>
    <birthTime value="19800102"/></patient></patientRole></recordTarget>
  <component><structuredBody><component><section>
    <title>Plan</title>
    <text><paragraph onclick="alert(1)" style="x">Start <content styleCode="Bold">metformin</content>.</paragraph>
      <x:script>alert(1)</x:script><script>alert(2)</script>
      <linkHtml href="javascript:alert(1)">see here</linkHtml>
      <table border="1"><tbody><tr><td colspan="2" onmouseover="x">a</td><td rowspan="9999">b</td></tr></tbody></table>
      <renderMultiMedia referencedObject="img1"/></text>
  </section></component></structuredBody></component>
</ClinicalDocument>"#;
    let doc = Document::parse(hostile).unwrap();
    assert!(doc.is_note(&[]));
    let html = doc.to_html();
    assert_inert(&html, "hostile");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the title is text: {html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; Doe"), "the name is text: {html}");
    assert!(html.contains("<p>Start <strong>metformin</strong>.</p>"), "{html}");
    assert!(html.contains("<span>see here</span>"), "{html}");
    assert!(html.contains("<td colspan=\"2\">a</td><td>b</td>"), "only small numeric spans: {html}");
    assert!(
        !html.contains("alert(2)") || html.contains("<span>alert(2)</span>"),
        "a script element is text at most: {html}"
    );

    let entities = br#"<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&b;</title></ClinicalDocument>"#;
    assert!(matches!(Document::parse(entities), Err(CdaError::Xml(_))), "a DTD is refused");
    let external =
        br#"<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><ClinicalDocument xmlns="urn:hl7-org:v3"/>"#;
    assert!(matches!(Document::parse(external), Err(CdaError::Xml(_))));
}

#[test]
fn what_is_not_a_cda_document_gets_a_clear_error() {
    assert!(matches!(Document::parse(b"<html><body>hi</body></html>"), Err(CdaError::NotCda(r)) if r == "html"));
    assert!(matches!(Document::parse(br#"<ClinicalDocument/>"#), Err(CdaError::NotCda(_))), "no HL7 v3 namespace");
    assert!(matches!(Document::parse(b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\">"), Err(CdaError::Xml(_))));
    assert_eq!(Document::parse(&[0xff, 0xfe, 0x00]), Err(CdaError::NotText));
    assert_eq!(Document::parse(&vec![b' '; MAX_BYTES + 1]), Err(CdaError::TooLarge));
    // The error names no value from the document.
    let e = Document::parse(b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><title>Jane Roe</titl></ClinicalDocument>")
        .unwrap_err();
    assert!(!e.to_string().contains("Jane"), "{e}");
}
