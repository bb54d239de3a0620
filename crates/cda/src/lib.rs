//! C-CDA documents as specialists send them back (a consult note by Direct, in an XDM package,
//! or filed in the EHR): the header read (document type, patient, author, date, the orders it
//! fulfils), a note for a referral recognised by its document type (LOINC 11488-4, Consult
//! note, or a type the practice lists), and the sections' narrative rendered to HTML that is
//! safe to put in a page: an allow-list of narrative elements, every text escaped, no
//! attribute but table spans, no link, no image, no script, nothing fetched.
//!
//! The XML is parsed with `roxmltree`, which refuses a DTD (so no entity expansion and no
//! external reference) and is held to a node limit; documents above [`MAX_BYTES`] are refused
//! before parsing. Errors name what is wrong, never a value from the document.

use roxmltree::{Document as Xml, Node, ParsingOptions};

/// The HL7 v3 namespace every CDA element is in.
const V3: &str = "urn:hl7-org:v3";
/// LOINC, the code system of C-CDA document types.
pub const LOINC: &str = "2.16.840.1.113883.6.1";
/// The document type of a consult note (LOINC 11488-4, "Consult note").
pub const CONSULT_NOTE: &str = "11488-4";
/// A larger document is refused unread (a consult note is well under a megabyte).
pub const MAX_BYTES: usize = 5 * 1024 * 1024;
/// At most this many XML nodes.
const MAX_NODES: u32 = 500_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CdaError {
    #[error("the document is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("the document is not UTF-8 text")]
    NotText,
    #[error("the document is not well-formed XML (or carries a DTD): {0}")]
    Xml(String),
    #[error("not a CDA document: the root element is {0}, not ClinicalDocument in the HL7 v3 namespace")]
    NotCda(String),
}

/// An instance identifier: `root` (an OID or UUID) and, when given, `extension`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceId {
    pub root: String,
    pub extension: Option<String>,
}

/// A coded value: its code, code system and display name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    pub code: String,
    pub system: Option<String>,
    pub display: Option<String>,
}

/// The patient the document is about (`recordTarget`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patient {
    pub name: Option<String>,
    /// `YYYY-MM-DD` (or as precise as the document says).
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    /// Identifiers (an MRN under the sender's root, an SSN, …).
    pub ids: Vec<InstanceId>,
}

/// One section: its title, code and narrative as safe HTML; `level` 1 for a top section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub level: u8,
    pub title: Option<String>,
    pub code: Option<String>,
    pub html: String,
}

/// A C-CDA document's header and sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub id: Option<InstanceId>,
    pub type_code: Option<Code>,
    pub title: Option<String>,
    /// When the document was made: `YYYY-MM-DD` or with the time as written.
    pub effective: Option<String>,
    /// `root` or `root:extension` of each document-level template.
    pub template_ids: Vec<String>,
    pub patient: Patient,
    /// Each author: the person's name and their organisation, as one line.
    pub authors: Vec<String>,
    /// The orders the document fulfils (`inFulfillmentOf/order/id`): our order id, when the
    /// specialist echoes it.
    pub orders: Vec<InstanceId>,
    pub sections: Vec<Section>,
}

impl Document {
    /// Reads a C-CDA document.
    pub fn parse(bytes: &[u8]) -> Result<Document, CdaError> {
        if bytes.len() > MAX_BYTES {
            return Err(CdaError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| CdaError::NotText)?;
        let options = ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES };
        let xml = Xml::parse_with_options(text, options).map_err(|e| CdaError::Xml(e.to_string()))?;
        let root = xml.root_element();
        if root.tag_name().name() != "ClinicalDocument" || root.tag_name().namespace() != Some(V3) {
            return Err(CdaError::NotCda(root.tag_name().name().to_owned()));
        }
        let record = child(root, "recordTarget").and_then(|r| child(r, "patientRole"));
        let person = record.and_then(|r| child(r, "patient"));
        let patient = Patient {
            name: person.and_then(|p| child(p, "name")).map(person_name).filter(|n| !n.is_empty()),
            birth_date: person.and_then(|p| child(p, "birthTime")).and_then(|t| t.attribute("value")).map(ts_date),
            gender: person
                .and_then(|p| child(p, "administrativeGenderCode"))
                .and_then(|g| g.attribute("displayName").or(g.attribute("code")))
                .map(str::to_owned),
            ids: record.map(|r| children(r, "id").filter_map(instance_id).collect()).unwrap_or_default(),
        };
        let authors = children(root, "author")
            .filter_map(|a| child(a, "assignedAuthor"))
            .map(|a| {
                let who = child(a, "assignedPerson").and_then(|p| child(p, "name")).map(person_name);
                let org = child(a, "representedOrganization").and_then(|o| child(o, "name")).map(text_of);
                [who, org].into_iter().flatten().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ")
            })
            .filter(|s| !s.is_empty())
            .collect();
        let orders = children(root, "inFulfillmentOf")
            .filter_map(|f| child(f, "order"))
            .flat_map(|o| children(o, "id").filter_map(instance_id).collect::<Vec<_>>())
            .collect();
        let mut sections = Vec::new();
        if let Some(body) = child(root, "component").and_then(|c| child(c, "structuredBody")) {
            for c in children(body, "component") {
                if let Some(s) = child(c, "section") {
                    read_section(s, 1, &mut sections);
                }
            }
        }
        Ok(Document {
            id: child(root, "id").and_then(instance_id),
            type_code: child(root, "code").and_then(code_of),
            title: child(root, "title").map(text_of).filter(|t| !t.is_empty()),
            effective: child(root, "effectiveTime").and_then(|t| t.attribute("value")).map(ts_date),
            template_ids: children(root, "templateId").filter_map(instance_id).map(|i| i.to_string()).collect(),
            patient,
            authors,
            orders,
            sections,
        })
    }

    /// Whether this is a note that closes a referral's loop: a consult note (LOINC 11488-4) or
    /// one of the LOINC document types in `also`.
    pub fn is_note(&self, also: &[String]) -> bool {
        self.type_code.as_ref().is_some_and(|c| {
            c.system.as_deref().is_none_or(|s| s == LOINC) && (c.code == CONSULT_NOTE || also.contains(&c.code))
        })
    }

    /// The document as a fragment of safe HTML: a header (title, type, patient, author, date)
    /// and each section's narrative.
    pub fn to_html(&self) -> String {
        let mut out = String::from("<article class=\"cda\">");
        let title = self.title.as_deref().or(self.type_code.as_ref().and_then(|c| c.display.as_deref()));
        out.push_str(&format!("<h2>{}</h2><dl class=\"cda-header\">", escape(title.unwrap_or("Clinical document"))));
        let mut row = |term: &str, value: Option<String>| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.push_str(&format!("<dt>{term}</dt><dd>{}</dd>", escape(&v)));
            }
        };
        row(
            "Document type",
            self.type_code.as_ref().map(|c| format!("{} ({})", c.display.as_deref().unwrap_or(""), c.code)),
        );
        row("Patient", self.patient.name.clone());
        row("Date of birth", self.patient.birth_date.clone());
        row("Author", Some(self.authors.join("; ")));
        row("Date", self.effective.clone());
        out.push_str("</dl>");
        for s in &self.sections {
            let h = if s.level <= 1 { "h3" } else { "h4" };
            out.push_str(&format!(
                "<section><{h}>{}</{h}>{}</section>",
                escape(s.title.as_deref().unwrap_or("(untitled section)")),
                s.html
            ));
        }
        out.push_str("</article>");
        out
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.extension {
            Some(e) => write!(f, "{}:{e}", self.root),
            None => f.write_str(&self.root),
        }
    }
}

fn is_v3(n: &Node<'_, '_>, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(V3)
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| is_v3(c, name))
}

fn children<'a, 'i: 'a>(n: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children().filter(move |c| is_v3(c, name))
}

fn instance_id(n: Node<'_, '_>) -> Option<InstanceId> {
    let root = n.attribute("root")?.to_owned();
    Some(InstanceId { root, extension: n.attribute("extension").map(str::to_owned) })
}

fn code_of(n: Node<'_, '_>) -> Option<Code> {
    Some(Code {
        code: n.attribute("code")?.to_owned(),
        system: n.attribute("codeSystem").map(str::to_owned),
        display: n.attribute("displayName").map(str::to_owned),
    })
}

/// All text below `n`, whitespace collapsed.
fn text_of(n: Node<'_, '_>) -> String {
    let raw: String = n.descendants().filter(|d| d.is_text()).filter_map(|d| d.text()).collect::<Vec<_>>().join(" ");
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A person's name: prefixes, given names, family names, suffixes.
fn person_name(n: Node<'_, '_>) -> String {
    let part = |name: &str| children(n, name).map(text_of).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let parts = [part("prefix"), part("given"), part("family"), part("suffix")].concat();
    if parts.is_empty() { text_of(n) } else { parts.join(" ") }
}

/// An HL7 v3 TS value (`YYYYMMDD[HHMM[SS]][±ZZZZ]`) as `YYYY-MM-DD`, with the time as written.
fn ts_date(v: &str) -> String {
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    match digits.len() {
        0..=3 => v.to_owned(),
        4 | 5 => digits[..4].to_owned(),
        6 | 7 => format!("{}-{}", &digits[..4], &digits[4..6]),
        8 => format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8]),
        _ => format!(
            "{}-{}-{} {}:{}",
            &digits[..4],
            &digits[4..6],
            &digits[6..8],
            &digits[8..10],
            digits.get(10..12).unwrap_or("00")
        ),
    }
}

fn read_section(s: Node<'_, '_>, level: u8, out: &mut Vec<Section>) {
    let mut html = String::new();
    if let Some(text) = child(s, "text") {
        narrative(text, &mut html);
    }
    out.push(Section {
        level,
        title: child(s, "title").map(text_of).filter(|t| !t.is_empty()),
        code: child(s, "code").and_then(|c| c.attribute("code")).map(str::to_owned),
        html,
    });
    for c in children(s, "component") {
        if let Some(sub) = child(c, "section") {
            read_section(sub, level.saturating_add(1), out);
        }
    }
}

/// The narrative block's children as HTML: allowed elements mapped to their HTML kin, text
/// escaped, every attribute dropped but numeric table spans; anything else contributes its
/// text only. A link keeps its text, never its target; media are not shown.
fn narrative(n: Node<'_, '_>, out: &mut String) {
    for c in n.children() {
        node(c, out);
    }
}

/// One node of a narrative block (see [`narrative`]).
fn node(c: Node<'_, '_>, out: &mut String) {
    if c.is_text() {
        out.push_str(&escape(c.text().unwrap_or_default()));
        return;
    }
    if !c.is_element() || c.tag_name().namespace() != Some(V3) {
        return;
    }
    let name = c.tag_name().name();
    let styled = |style: &str| c.attribute("styleCode").is_some_and(|s| s.split_whitespace().any(|x| x == style));
    let tag = match name {
        "paragraph" => "p",
        "br" => {
            out.push_str("<br>");
            return;
        }
        "renderMultiMedia" => {
            out.push_str("<span class=\"muted\">(media not shown)</span>");
            return;
        }
        "list" => {
            list(c, out);
            return;
        }
        "item" => "li",
        "table" | "thead" | "tbody" | "tfoot" | "tr" | "th" | "td" | "caption" | "sub" | "sup" => name,
        "content" if styled("Bold") => "strong",
        "content" if styled("Italics") => "em",
        "footnote" | "footnoteRef" => "small",
        _ => "span",
    };
    out.push('<');
    out.push_str(tag);
    if matches!(tag, "th" | "td") {
        for span in ["colspan", "rowspan"] {
            if let Some(v) =
                c.attribute(span).filter(|v| !v.is_empty() && v.len() < 4 && v.bytes().all(|b| b.is_ascii_digit()))
            {
                out.push_str(&format!(" {span}=\"{v}\""));
            }
        }
    }
    out.push('>');
    narrative(c, out);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// A narrative list: its caption as a paragraph before it (HTML lists have none), then only
/// its items (anything else between them, text or elements, becomes an item of its own).
fn list(l: Node<'_, '_>, out: &mut String) {
    let tag = if l.attribute("listType") == Some("ordered") { "ol" } else { "ul" };
    for caption in l.children().filter(|c| is_v3(c, "caption")) {
        out.push_str("<p><strong>");
        narrative(caption, out);
        out.push_str("</strong></p>");
    }
    out.push_str(&format!("<{tag}>"));
    for c in l.children() {
        let text = c.is_text() && !c.text().unwrap_or_default().trim().is_empty();
        let element = c.is_element() && c.tag_name().namespace() == Some(V3);
        if is_v3(&c, "caption") || !(text || element) {
            continue;
        }
        out.push_str("<li>");
        if is_v3(&c, "item") {
            narrative(c, out);
        } else if c.is_text() {
            out.push_str(&escape(c.text().unwrap_or_default()));
        } else {
            node(c, out);
        }
        out.push_str("</li>");
    }
    out.push_str(&format!("</{tag}>"));
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
