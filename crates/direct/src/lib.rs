//! The Direct mailbox, inbound: a specialist's answer to our note request comes back as a
//! Direct message (S/MIME unwrapped by the HISP) carrying a C-CDA document. [`DirectProtocol`]
//! reads the MIME message, finds the C-CDA documents among its parts, and maps a consult note
//! (or a document type the practice lists) to `note-received` on the referral it answers:
//! first by our own references — the referral id in the `In-Reply-To`/`References` of our
//! request's Message-ID (`<obx_….ref_…@domain>`) or in its subject, the order ids the note
//! says it fulfils (`inFulfillmentOf/order/id`) — else by the patient's identifier, which a
//! person confirms in the review queue. Registered on the app like HL7 v2 and FHIR, so the
//! message is kept in the inbox before it is applied, deduplicated by Message-ID, retried and
//! shown in the message browser the same way.

mod fax;
mod mailbox;
pub mod x360;
pub mod xdm;

pub use fax::{FaxProtocol, pdf_text};

pub use mailbox::{MailboxConfig, MailboxError, MailboxUrl, Pass, check_mailbox, parse_url, poll_once, run_mailbox};

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use refloop_app::{Described, Mapped, Protocol, Target, documents::DocumentPart};
use refloop_cda::Document;
use refloop_domain::{Input, PatientId, State};

/// The SSN's OID: never a patient identifier to match by.
const SSN: &str = "2.16.840.1.113883.4.1";

/// The Direct mailbox as an inbound protocol.
pub struct DirectProtocol {
    /// LOINC document types besides the consult note that answer a referral.
    note_types: Vec<String>,
    /// How HL7 v2 messages in a package are read (a 360X appointment or no-show, `SIU`).
    hl7: refloop_hl7::MapConfig,
}

impl DirectProtocol {
    /// The name the inbox keeps.
    pub const NAME: &'static str = "direct";

    /// With the built-in HL7 v2 reading (UTC for timestamps without an offset).
    pub fn new(note_types: Vec<String>) -> Self {
        Self::with_hl7(note_types, refloop_hl7::MapConfig::with_defaults(jiff::tz::TimeZone::UTC))
    }

    /// With the practice's HL7 v2 reading (its time zone and specialty map).
    pub fn with_hl7(note_types: Vec<String>, hl7: refloop_hl7::MapConfig) -> Self {
        Self { note_types, hl7 }
    }

    /// Whether the message's consult note is an interim one (360X PCC-59): sent beside a status
    /// (`OSU^O51`) rather than the referral's outcome (`OMG^O19`). Only a final note closes
    /// the loop; an interim one says the patient was seen.
    fn interim(&self, letter: &Letter) -> bool {
        let types: Vec<String> = letter
            .documents
            .iter()
            .filter(|a| a.is_hl7())
            .filter_map(|a| refloop_hl7::parse(&a.bytes).ok())
            .filter_map(|m| m.message_type().map(str::to_owned))
            .collect();
        types.iter().any(|t| t == "OSU") && !types.iter().any(|t| t == "OMG")
    }
}

/// Something that happened to the referral one of `keys` names; when none does, a person
/// files it (it never goes by patient alone).
pub(crate) fn event(keys: Vec<String>, input: Input) -> Mapped {
    Mapped::Event {
        target: Target {
            keys,
            patient: None,
            specialty: None,
            fallback_allowed: false,
            review_unmatched: true,
            demographics: None,
        },
        input,
    }
}

/// A document of a message (an XML or PDF part, or a document of an XDM package part): its
/// name (`consult.xml`, `pkg.zip/IHE_XDM/SUBSET01/DOC0001.XML`), media type and bytes, and for
/// XML the C-CDA document, or why it (or its package) could not be read.
pub struct Attached {
    pub name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// `None` for a PDF.
    pub cda: Option<Result<Document, String>>,
}

impl Attached {
    fn xml(name: String, bytes: &[u8]) -> Self {
        Self { name, media_type: "application/xml".into(), cda: Some(read_cda(bytes)), bytes: bytes.to_vec() }
    }

    fn pdf(name: String, bytes: &[u8]) -> Self {
        Self { name, media_type: "application/pdf".into(), cda: None, bytes: bytes.to_vec() }
    }

    fn hl7(name: String, bytes: &[u8]) -> Self {
        Self { name, media_type: x360::HL7_V2.into(), cda: None, bytes: bytes.to_vec() }
    }

    /// An HL7 v2 message (a 360X status or order), not a document for a person.
    pub fn is_hl7(&self) -> bool {
        self.media_type == x360::HL7_V2
    }

    fn unreadable(name: String, why: String) -> Self {
        Self { name, media_type: "application/octet-stream".into(), cda: Some(Err(why)), bytes: Vec::new() }
    }

    /// The C-CDA document, when it is one that was read.
    pub fn document(&self) -> Option<&Document> {
        self.cda.as_ref().and_then(|d| d.as_ref().ok())
    }

    /// Why it could not be read, when it could not.
    pub fn error(&self) -> Option<&str> {
        self.cda.as_ref().and_then(|d| d.as_ref().err()).map(String::as_str)
    }
}

/// A Direct message, read.
pub struct Letter {
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// The Message-IDs it answers (`In-Reply-To`, then `References`).
    pub answers: Vec<String>,
    /// Its parts' names and types, in order.
    pub parts: Vec<String>,
    pub documents: Vec<Attached>,
}

fn read_cda(bytes: &[u8]) -> Result<Document, String> {
    Document::parse(bytes).map_err(|e| e.to_string())
}

impl Letter {
    /// Reads a MIME message (with its XDM packages unpacked); `None` when it is not one.
    pub fn read(raw: &[u8]) -> Option<Letter> {
        let m = MessageParser::default().parse(raw)?;
        // A mail message says who sent it or what it is called.
        if m.from().is_none() && m.message_id().is_none() {
            return None;
        }
        let ids = |v: &HeaderValue<'_>| -> Vec<String> {
            match v {
                HeaderValue::Text(t) => vec![t.to_string()],
                HeaderValue::TextList(l) => l.iter().map(ToString::to_string).collect(),
                _ => Vec::new(),
            }
        };
        let mut answers = ids(m.in_reply_to());
        answers.extend(ids(m.references()));
        let mut parts = Vec::new();
        let mut documents = Vec::new();
        for part in &m.parts {
            if part.is_multipart() {
                continue;
            }
            let ctype = part.content_type().map(|c| match c.subtype() {
                Some(sub) => format!("{}/{sub}", c.ctype()),
                None => c.ctype().to_owned(),
            });
            let name = part.attachment_name().map(str::to_owned);
            let label = name.clone().or(ctype.clone()).unwrap_or_else(|| "text/plain".to_owned());
            parts.push(label.clone());
            let lower_name = name.as_deref().map(str::to_ascii_lowercase).unwrap_or_default();
            let xml = ctype.as_deref().is_some_and(|c| c.ends_with("/xml") || c.ends_with("+xml"))
                || lower_name.ends_with(".xml");
            let package = ctype.as_deref().is_some_and(|c| c.ends_with("/zip")) || lower_name.ends_with(".zip");
            let pdf = ctype.as_deref() == Some("application/pdf") || lower_name.ends_with(".pdf");
            if xml {
                documents.push(Attached::xml(label, part.contents()));
            } else if pdf {
                documents.push(Attached::pdf(label, part.contents()));
            } else if package {
                match xdm::unpack(part.contents()) {
                    Ok(docs) => documents.extend(docs.into_iter().filter_map(|d| {
                        let name = format!("{label}/{}", d.path);
                        match d.mime_type.as_deref() {
                            Some("application/pdf") => Some(Attached::pdf(name, &d.bytes)),
                            Some(m) if m.contains("hl7-v2") => Some(Attached::hl7(name, &d.bytes)),
                            Some(m) if !m.ends_with("xml") => None,
                            _ => Some(Attached::xml(name, &d.bytes)),
                        }
                    })),
                    Err(why) => documents.push(Attached::unreadable(label, why)),
                }
            }
        }
        Some(Letter {
            message_id: m.message_id().map(str::to_owned),
            from: m.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_owned),
            subject: m.subject().map(str::to_owned),
            answers,
            parts,
            documents,
        })
    }

    /// Our referral ids this message names: in the Message-IDs it answers (ours are
    /// `obx_….ref_…@domain`) and in its subject ("Re: Request for consult note — referral ref_…").
    pub fn referral_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let local = self.answers.iter().map(|a| a.trim_matches(['<', '>']).split('@').next().unwrap_or_default());
        let from_ids = local.flat_map(|l| l.split('.').map(str::to_owned).collect::<Vec<_>>());
        let from_subject =
            self.subject.iter().flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
        for word in from_ids.chain(from_subject) {
            let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
            if word.starts_with("ref_") && word.len() > 4 && !out.iter().any(|o| o == word) {
                out.push(word.to_owned());
            }
        }
        out
    }
}

impl Protocol for DirectProtocol {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn remap(&self, raw: &[u8], now: jiff::Timestamp) -> Result<Mapped, String> {
        let letter = Letter::read(raw).ok_or_else(|| "not a MIME message".to_owned())?;
        let note = letter.documents.iter().find_map(|a| a.document().filter(|d| d.is_note(&self.note_types)));
        if note.is_none()
            && let Some(v2) = letter.documents.iter().find(|a| a.is_hl7())
        {
            let message = refloop_hl7::parse(&v2.bytes).map_err(|e| format!("{}: {e}", v2.name))?;
            if message.message_type() == Some("SIU") {
                // A 360X appointment (S12) or no-show (S26), read as the HL7 v2 front door does;
                // our referral also by the Message-ID it answers.
                return match refloop_hl7::map(&message, &self.hl7, now)
                    .map_err(|e| format!("{}: {}", v2.name, e.error.message))?
                {
                    Mapped::Event { mut target, input } => {
                        target.keys.extend(letter.referral_ids());
                        target.review_unmatched = true;
                        Ok(Mapped::Event { target, input })
                    }
                    _ => Ok(Mapped::Ignore("an HL7 v2 scheduling message that says nothing of a referral")),
                };
            }
            // A 360X status (OSU^O51): the specialist accepted or declined our referral.
            let status = x360::status_of(&v2.bytes).map_err(|e| format!("{}: {e}", v2.name))?;
            let mut keys = vec![status.placer];
            keys.extend(letter.referral_ids());
            return Ok(event(keys, Input::SpecialistResponded { at: now, accepted: status.accepted }));
        }
        let Some(note) = note else {
            if let Some(bad) = letter.documents.iter().find(|a| a.error().is_some()) {
                return Err(format!("{}: {}", bad.name, bad.error().unwrap_or_default()));
            }
            return Ok(Mapped::Ignore(if letter.documents.iter().all(Attached::is_hl7) {
                "no document in the message"
            } else if letter.documents.iter().all(|a| a.cda.is_none()) {
                "no C-CDA document in the message: its documents are in Unfiled documents"
            } else {
                "its C-CDA documents are not consult notes: they are in Unfiled documents"
            }));
        };
        let mut keys = letter.referral_ids();
        keys.extend(note.orders.iter().filter_map(|o| o.extension.clone()));
        if self.interim(&letter) {
            // The patient was seen; the loop closes with the final note.
            keys.extend(
                letter
                    .documents
                    .iter()
                    .filter(|a| a.is_hl7())
                    .filter_map(|a| x360::status_of(&a.bytes).ok())
                    .map(|s| s.placer),
            );
            let seen = Input::Milestone {
                state: State::Attended,
                at: now,
                appointment_at: None,
                channel: Some(Self::NAME.to_owned()),
            };
            return Ok(event(keys, seen));
        }
        let patient = note
            .patient
            .ids
            .iter()
            .filter(|i| i.root != SSN)
            .find_map(|i| i.extension.as_deref().and_then(|e| PatientId::parse(e).ok()));
        // Its patient's name and birth date: candidates for a person when nothing else finds one.
        let demographics = match (&note.patient.name, &note.patient.birth_date) {
            (Some(name), Some(born)) if born.len() == 10 => Some((name.clone(), born.clone())),
            _ => None,
        };
        let input = Input::Milestone {
            state: State::NoteReceived,
            at: now,
            appointment_at: None,
            channel: Some(Self::NAME.to_owned()),
        };
        Ok(Mapped::Event {
            target: Target {
                keys,
                patient,
                specialty: None,
                fallback_allowed: true,
                review_unmatched: true,
                demographics,
            },
            input,
        })
    }

    fn describe(&self, raw: &[u8]) -> Option<Described> {
        let letter = Letter::read(raw)?;
        let mut lines = vec![
            format!("From: {}", letter.from.as_deref().unwrap_or("(none)")),
            format!("Subject: {}", letter.subject.as_deref().unwrap_or("(none)")),
            format!("Message-ID: {}", letter.message_id.as_deref().unwrap_or("(none)")),
            format!(
                "Answers: {}",
                if letter.answers.is_empty() { "(nothing)".to_owned() } else { letter.answers.join(" ") }
            ),
            format!("Parts: {}", letter.parts.join(", ")),
        ];
        for a in &letter.documents {
            lines.push(match &a.cda {
                None if a.is_hl7() => match x360::status_of(&a.bytes) {
                    Ok(s) => format!(
                        "360X status {}: referral {} {}{}",
                        a.name,
                        s.placer,
                        if s.accepted { "accepted" } else { "declined" },
                        s.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                    Err(e) => format!("HL7 v2 {}: {e}", a.name),
                },
                None => format!("PDF {}: {} bytes", a.name, a.bytes.len()),
                Some(Ok(d)) => {
                    let kind = d.type_code.as_ref().map_or("unknown type".to_owned(), |c| {
                        format!("{} ({})", c.display.as_deref().unwrap_or("document"), c.code)
                    });
                    let note = if d.is_note(&self.note_types) { ", a note for a referral" } else { "" };
                    format!("C-CDA {}: {kind}, {} sections{note}", a.name, d.sections.len())
                }
                Some(Err(e)) => format!("C-CDA {}: {e}", a.name),
            });
        }
        Some(Described::Text(lines.join("\n")))
    }

    fn documents(&self, raw: &[u8]) -> Vec<DocumentPart> {
        let Some(letter) = Letter::read(raw) else { return Vec::new() };
        let interim = self.interim(&letter);
        letter
            .documents
            .into_iter()
            .filter(|a| a.error().is_none() && !a.is_hl7())
            .map(|a| DocumentPart {
                note: !interim && a.document().is_some_and(|d| d.is_note(&self.note_types)),
                name: a.name,
                media_type: a.media_type,
                content: a.bytes,
            })
            .collect()
    }
}
