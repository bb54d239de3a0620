//! Documents that came in: the C-CDA and PDF parts of a Direct message, an inbound fax. Each
//! is kept with its media type, SHA-256 and size, the message it came in and, once known, the
//! referral it belongs to. One that no referral claims waits in **Unfiled documents**, where
//! a person files it (as the referral's consult note, which closes the loop through the one
//! write path, or as another document) or dismisses it with a reason. Every read is audited.
//!
//! Our note requests carry a short code per referral (`RL-7KQ4-M2XD`): no patient data, easy
//! to write on a cover sheet, and a key of the referral once a request carried it, so a fax
//! whose text says it is matched without a person.

use jiff::Timestamp;
use refloop_domain::{Input, ReferralId, State};
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, Applied, InboxStatus, StoreError, store::*};

/// The largest document kept (a long consult note as a scanned PDF fits).
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentStatus {
    /// No referral claims it yet: in Unfiled documents.
    Unfiled,
    Filed,
    Dismissed,
}

impl DocumentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unfiled => "unfiled",
            Self::Filed => "filed",
            Self::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Unfiled, Self::Filed, Self::Dismissed].into_iter().find(|v| v.as_str() == s)
    }
}

/// What a filed document is to its referral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentRole {
    /// The specialist's consult note: filing it closes the loop.
    ConsultNote,
    Other,
}

impl DocumentRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConsultNote => "consult-note",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::ConsultNote, Self::Other].into_iter().find(|v| v.as_str() == s)
    }
}

/// A kept document. Lists carry no content (`content` is empty); its `size` and `sha256` stay
/// after retention empties the content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentRecord {
    pub id: String,
    /// The inbound message it came in (`inb_…`).
    pub inbox_id: Option<String>,
    /// `direct`, `fax`.
    pub source: String,
    /// Its name in the message (`consult.xml`, `pkg.zip/IHE_XDM/SUBSET01/DOC0001.XML`,
    /// `fax fax_123`): never patient data.
    pub name: String,
    pub media_type: String,
    pub sha256: String,
    pub size: u64,
    pub received_at: Timestamp,
    pub status: DocumentStatus,
    pub referral_id: Option<ReferralId>,
    /// Filed: what it is to the referral. Unfiled: how its protocol read it (a note or not).
    pub role: Option<DocumentRole>,
    /// Who filed or dismissed it (`coordinator:ana`, `system:direct`), when, and why (a
    /// dismissal's reason).
    pub settled_by: Option<String>,
    pub settled_at: Option<Timestamp>,
    pub reason: Option<String>,
    pub content: Vec<u8>,
}

/// A document a protocol found in a message, before it is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentPart {
    pub name: String,
    pub media_type: String,
    pub content: Vec<u8>,
    /// The protocol read it as the note for a referral.
    pub note: bool,
}

/// Which documents to list.
#[derive(Clone, Debug, Default)]
pub struct DocumentFilter {
    pub status: Option<DocumentStatus>,
    pub referral: Option<ReferralId>,
    pub limit: u32,
}

/// A settlement of documents (filing or dismissal), as the store writes it.
#[derive(Clone, Debug)]
pub struct DocumentSettlement {
    pub status: DocumentStatus,
    pub referral: Option<ReferralId>,
    pub role: Option<DocumentRole>,
    pub by: String,
    pub at: Timestamp,
    pub reason: Option<String>,
}

const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The referral's short code for letters and cover sheets: `RL-` and 8 Crockford base-32
/// characters of the SHA-256 of its id (40 bits), in two groups.
pub fn short_code(id: &ReferralId) -> String {
    let digest = Sha256::digest(id.as_str().as_bytes());
    let bits = digest[..5].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let chars: String = (0..8).rev().map(|i| CODE_ALPHABET[((bits >> (5 * i)) & 31) as usize] as char).collect();
    format!("RL-{}-{}", &chars[..4], &chars[4..])
}

/// The short codes in a text, normalised, each once. Written as printed (`RL-7KQ4-M2XD`, any
/// case) a code is found anywhere, even run together with the words around it (as a PDF's
/// text layer may give lines); written loosely (`RL 7KQ4 M2XD`, `rl7kq4m2xd`) it must stand as
/// words of its own. `O` is read as `0` and `I`/`L` as `1`, as Crockford says.
pub fn short_codes_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().map(|c| c.to_ascii_uppercase()).collect();
    let mut out: Vec<String> = Vec::new();
    for i in 0..chars.len().saturating_sub(1) {
        if !(chars[i] == 'R' && chars[i + 1] == 'L') {
            continue;
        }
        let found = strict(&chars[i + 2..]).or_else(|| {
            let starts_word = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
            loose(&chars[i + 2..]).filter(|_| starts_word)
        });
        if let Some(code) = found.map(|c| format!("RL-{}-{}", &c[..4], &c[4..]))
            && !out.contains(&code)
        {
            out.push(code);
        }
    }
    out
}

/// `-XXXX-XXXX` as printed: the 8 characters.
fn strict(rest: &[char]) -> Option<String> {
    let dash = |i: usize| matches!(rest.get(i), Some('-' | '\u{2010}'..='\u{2015}'));
    if !(dash(0) && dash(5)) {
        return None;
    }
    rest[1..5]
        .iter()
        .chain(rest.get(6..10)?)
        .map(|c| crockford(*c))
        .collect::<Option<String>>()
        .filter(|c| c.len() == 8)
}

/// 8 characters, with spaces or dashes anywhere, ending a word.
fn loose(rest: &[char]) -> Option<String> {
    let mut code = String::new();
    let mut j = 0;
    while j < rest.len() && code.len() < 8 {
        match rest[j] {
            '-' | ' ' | '\u{2010}'..='\u{2015}' => {}
            c => code.push(crockford(c)?),
        }
        j += 1;
    }
    let ends_word = rest.get(j).is_none_or(|c| !c.is_ascii_alphanumeric());
    (code.len() == 8 && ends_word).then_some(code)
}

fn crockford(c: char) -> Option<char> {
    match c {
        'O' => Some('0'),
        'I' | 'L' => Some('1'),
        c if CODE_ALPHABET.contains(&(c as u8)) && c.is_ascii() => Some(c),
        _ => None,
    }
}

/// The key under which a referral's short code names it.
pub fn code_key(code: &str) -> String {
    format!("code:{code}")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl DocumentRecord {
    /// A new document from a message's part.
    pub fn new(source: &str, inbox_id: Option<&str>, part: &DocumentPart, received_at: Timestamp) -> Self {
        Self {
            id: crate::new_id("doc"),
            inbox_id: inbox_id.map(str::to_owned),
            source: source.to_owned(),
            name: part.name.clone(),
            media_type: part.media_type.clone(),
            sha256: sha256_hex(&part.content),
            size: part.content.len() as u64,
            received_at,
            status: DocumentStatus::Unfiled,
            referral_id: None,
            role: None,
            settled_by: None,
            settled_at: None,
            reason: None,
            content: part.content.clone(),
        }
    }
}

impl App {
    /// Keeps the documents of a message just applied: filed to its referral when the message
    /// found one (as the consult note when its protocol read it so and the message was
    /// applied), else unfiled for a person.
    pub(crate) async fn keep_documents(
        &self,
        tx: &mut dyn Tx,
        protocol: &str,
        inbox_id: &str,
        parts: &[DocumentPart],
        applied: &Applied,
    ) -> Result<(), StoreError> {
        let now = self.now();
        for part in parts.iter().filter(|p| p.content.len() <= MAX_DOCUMENT_BYTES) {
            let mut doc = DocumentRecord::new(protocol, Some(inbox_id), part, now);
            // Unfiled, its role is how the protocol read it, for the person who files it.
            doc.role = part.note.then_some(DocumentRole::ConsultNote);
            if let Some(referral) =
                applied.referral.clone().filter(|_| !matches!(applied.status, InboxStatus::Review | InboxStatus::Dead))
            {
                let note = part.note && applied.status == InboxStatus::Applied;
                doc.status = DocumentStatus::Filed;
                doc.referral_id = Some(referral);
                doc.role = Some(if note { DocumentRole::ConsultNote } else { DocumentRole::Other });
                doc.settled_by = Some(format!("system:{protocol}"));
                doc.settled_at = Some(now);
            }
            tx.put_document(&doc).await?;
            if let (Some(DocumentRole::ConsultNote), Some(r), DocumentStatus::Filed) =
                (doc.role, &doc.referral_id, doc.status)
            {
                self.write_back_note(tx, &doc.id, r).await?;
            }
        }
        Ok(())
    }

    /// With `[ehr] write_back`, queues the consult note `doc_id` filed on `referral` for the
    /// EHR (a FHIR `DocumentReference`), through the outbox like every send; at most once per
    /// document.
    async fn write_back_note(&self, tx: &mut dyn Tx, doc_id: &str, referral: &ReferralId) -> Result<(), StoreError> {
        if !self.policy.note_write_back {
            return Ok(());
        }
        let Some(r) = tx.lock_referral(referral, false).await? else { return Ok(()) };
        let key = format!("{referral}:ehr-task:note-write-back:{doc_id}");
        let (channel, purpose) = (refloop_domain::Channel::EhrTask, refloop_domain::Purpose::NoteWriteBack);
        let item = crate::OutboxItem {
            body: Some(doc_id.to_owned()),
            ..crate::OutboxItem::pending(&r, channel, purpose, key, self.now())
        };
        tx.enqueue(&item).await
    }

    /// Files or dismisses the unfiled documents of a message a person (or a retry) settled.
    pub(crate) async fn settle_documents_of(
        &self,
        tx: &mut dyn Tx,
        inbox_id: &str,
        applied: &Applied,
        by: &str,
    ) -> Result<(), StoreError> {
        let settlement = match (&applied.referral, applied.status) {
            (Some(r), InboxStatus::Applied) => DocumentSettlement {
                status: DocumentStatus::Filed,
                referral: Some(r.clone()),
                role: None,
                by: by.to_owned(),
                at: self.now(),
                reason: None,
            },
            (None, InboxStatus::Ignored) => DocumentSettlement {
                status: DocumentStatus::Dismissed,
                referral: None,
                role: None,
                by: by.to_owned(),
                at: self.now(),
                reason: applied.note.clone(),
            },
            _ => return Ok(()),
        };
        let notes = tx.settle_inbox_documents(inbox_id, &settlement).await?;
        if let Some(r) = &settlement.referral {
            for doc_id in notes {
                self.write_back_note(tx, &doc_id, r).await?;
            }
        }
        Ok(())
    }

    /// A document with its content; the read is audited.
    pub async fn document(&self, actor: &Actor, id: &str) -> Result<DocumentRecord, AppError> {
        let doc = self
            .store()
            .document(id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "document", id: id.to_owned() })?;
        self.audit_read(actor, "document", id).await?;
        Ok(doc)
    }

    /// Documents without their content; the list is audited.
    pub async fn documents(&self, actor: &Actor, f: &DocumentFilter) -> Result<Vec<DocumentRecord>, AppError> {
        let docs = self.store().documents(f).await?;
        self.audit_list(actor, "document", docs.iter().map(|d| d.id.as_str())).await?;
        Ok(docs)
    }

    /// A person files an unfiled document on `referral_id`: as its consult note (recorded as
    /// `note-received` through the one write path, when the note came) or as another document.
    /// The review item of the message it came in, if any, is settled with it.
    pub async fn file_document(
        &self,
        id: &str,
        referral_id: &ReferralId,
        role: DocumentRole,
        actor: &Actor,
    ) -> Result<DocumentRecord, AppError> {
        let mut tx = self.store().begin().await?;
        let doc = self.unfiled_document(tx.as_mut(), id).await?;
        if role == DocumentRole::ConsultNote {
            let input = Input::Milestone {
                state: State::NoteReceived,
                at: doc.received_at.min(self.now()),
                appointment_at: None,
                channel: Some(doc.source.clone()),
            };
            self.record_in(tx.as_mut(), actor, referral_id, input).await?;
        } else if tx.lock_referral(referral_id, false).await?.is_none() {
            return Err(AppError::NotFound { what: "referral", id: referral_id.to_string() });
        }
        let settlement = DocumentSettlement {
            status: DocumentStatus::Filed,
            referral: Some(referral_id.clone()),
            role: Some(role),
            by: actor.source(),
            at: self.now(),
            reason: None,
        };
        tx.settle_document(id, &settlement).await?;
        if role == DocumentRole::ConsultNote {
            self.write_back_note(tx.as_mut(), id, referral_id).await?;
        }
        tx.audit(&self.audit_entry(actor, "file", "document", id)).await?;
        self.finish_document(tx, doc, settlement, referral_id, actor).await
    }

    /// A person dismisses an unfiled document (a fax for another practice, a duplicate), with
    /// the reason; nothing is recorded on any referral.
    pub async fn dismiss_document(&self, id: &str, reason: &str, actor: &Actor) -> Result<DocumentRecord, AppError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::invalid("reason", "say why the document needs nothing"));
        }
        if reason.chars().count() > 500 {
            return Err(AppError::invalid("reason", "at most 500 characters"));
        }
        let mut tx = self.store().begin().await?;
        let doc = self.unfiled_document(tx.as_mut(), id).await?;
        let settlement = DocumentSettlement {
            status: DocumentStatus::Dismissed,
            referral: None,
            role: None,
            by: actor.source(),
            at: self.now(),
            reason: Some(reason.to_owned()),
        };
        tx.settle_document(id, &settlement).await?;
        tx.audit(&self.audit_entry(actor, "dismiss", "document", id)).await?;
        tx.commit().await?;
        Ok(DocumentRecord { content: Vec::new(), ..settled(doc, settlement) })
    }

    async fn unfiled_document(&self, tx: &mut dyn Tx, id: &str) -> Result<DocumentRecord, AppError> {
        let doc =
            tx.lock_document(id).await?.ok_or_else(|| AppError::NotFound { what: "document", id: id.to_owned() })?;
        if doc.status != DocumentStatus::Unfiled {
            return Err(AppError::Conflict(format!("document {id} is {} already", doc.status.as_str())));
        }
        Ok(doc)
    }

    /// Settles the review item or dead letter the filed document came in, then commits.
    async fn finish_document(
        &self,
        tx: Box<dyn Tx>,
        doc: DocumentRecord,
        settlement: DocumentSettlement,
        referral_id: &ReferralId,
        actor: &Actor,
    ) -> Result<DocumentRecord, AppError> {
        let item = match &doc.inbox_id {
            Some(inbox_id) => self.store().inbox_item(inbox_id).await?,
            None => None,
        };
        let doc = DocumentRecord { content: Vec::new(), ..settled(doc, settlement) };
        match item.filter(|m| matches!(m.status, InboxStatus::Dead | InboxStatus::Review)) {
            Some(item) => {
                let outcome = format!("its document {} filed on {referral_id} by {}", doc.id, actor.source());
                let applied = Applied::new(InboxStatus::Applied, Some(referral_id.clone()), None);
                self.settle_inbox(tx, item, applied, &outcome).await?;
            }
            None => {
                tx.commit().await?;
                self.wake_workers();
            }
        }
        Ok(doc)
    }

    /// Empties the content of filed and dismissed documents received before `before` (their
    /// id, hash, size and filing stay); how many.
    pub(crate) async fn purge_old_documents(&self, before: Timestamp) -> Result<u64, AppError> {
        Ok(self.store().purge_documents(before).await?)
    }
}

fn settled(doc: DocumentRecord, s: DocumentSettlement) -> DocumentRecord {
    DocumentRecord {
        status: s.status,
        referral_id: s.referral.or(doc.referral_id.clone()),
        role: s.role.or(doc.role),
        settled_by: Some(s.by),
        settled_at: Some(s.at),
        reason: s.reason,
        ..doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_code_is_read_back_however_it_is_written() {
        let id = ReferralId::parse("ref_01hx3abcdefghjkmnpqr").unwrap();
        let code = short_code(&id);
        assert!(code.starts_with("RL-") && code.len() == 12, "{code}");
        assert_eq!(short_code(&id), code, "the same referral, the same code");
        let bare: String = code.chars().filter(|c| *c != '-').collect();
        let spaced = format!("{} {} {}", &code[..2], &code[3..7], &code[8..]);
        for written in [
            format!("Re: your referral {code}."),
            bare.to_ascii_lowercase(),
            format!("code:\n{spaced}\n"),
            code.replace('0', "O").replace('1', "I"),
        ] {
            assert_eq!(short_codes_in(&written), vec![code.clone()], "{written}");
        }
        // Printed, it is found run together with the lines around it.
        assert_eq!(short_codes_in(&format!("North Clinic{code}Pages: 3")), vec![code.clone()]);
        assert!(short_codes_in("CURL 7KQ4 M2XD").is_empty(), "loosely written inside a word");
        assert!(short_codes_in("world wide webs").is_empty(), "words that merely spell one");
        assert!(short_codes_in("RL-7KQ4-M2X").is_empty(), "too short");
        assert!(short_codes_in("RL 7KQ4 M2XDQ").is_empty(), "too long");
        assert_eq!(short_codes_in(&format!("{code} and {code}")).len(), 1);
    }
}
