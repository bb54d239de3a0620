//! Inbound fax: a PDF the fax provider received for the practice. Our note requests carry the
//! referral's short code (`RL-7KQ4-M2XD`) on the letter and cover sheet; a fax whose text
//! layer says it (read from the PDF's text, no OCR) is the note for that referral. Any other
//! fax is kept as a document in Unfiled documents, for a person to file.

use refloop_app::{
    Described, Mapped, Protocol,
    documents::{DocumentPart, code_key, short_codes_in},
};
use refloop_domain::{Input, State};

/// Pages read for a code at most (the cover sheet and letter come first).
const PAGES_READ: u32 = 5;

/// Inbound fax as an inbound protocol: the inbox keeps the PDF itself.
pub struct FaxProtocol;

impl FaxProtocol {
    /// The name the inbox keeps.
    pub const NAME: &'static str = "fax";
}

/// The text of a PDF's first pages; why it cannot be read when it is no PDF.
pub fn pdf_text(pdf: &[u8]) -> Result<String, String> {
    if !pdf.starts_with(b"%PDF-") {
        return Err("not a PDF (it does not start with %PDF-)".into());
    }
    // A parser of untrusted input: a panic in it is a document we cannot read, not a crash.
    std::panic::catch_unwind(|| {
        let doc = lopdf::Document::load_mem(pdf).map_err(|e| format!("the PDF cannot be read: {e}"))?;
        let pages: Vec<u32> = doc.get_pages().keys().copied().take(PAGES_READ as usize).collect();
        // A page without a text layer (a scan) gives no text, which is no error.
        Ok(pages.iter().filter_map(|p| doc.extract_text(&[*p]).ok()).collect::<Vec<_>>().join("\n"))
    })
    .unwrap_or_else(|_| Err("the PDF cannot be read".into()))
}

impl Protocol for FaxProtocol {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn remap(&self, raw: &[u8], now: jiff::Timestamp) -> Result<Mapped, String> {
        let codes = short_codes_in(&pdf_text(raw)?);
        if codes.is_empty() {
            return Ok(Mapped::Ignore("no referral code in its text: it is in Unfiled documents"));
        }
        let input = Input::Milestone {
            state: State::NoteReceived,
            at: now,
            appointment_at: None,
            channel: Some(Self::NAME.into()),
        };
        Ok(crate::event(codes.iter().map(|c| code_key(c)).collect(), input))
    }

    fn describe(&self, raw: &[u8]) -> Option<Described> {
        let text = pdf_text(raw).ok()?;
        let codes = short_codes_in(&text);
        Some(Described::Text(format!(
            "PDF, {} bytes; referral codes in its text: {}",
            raw.len(),
            if codes.is_empty() { "none".to_owned() } else { codes.join(", ") }
        )))
    }

    fn documents(&self, raw: &[u8]) -> Vec<DocumentPart> {
        vec![DocumentPart {
            name: "fax.pdf".into(),
            media_type: "application/pdf".into(),
            content: raw.to_vec(),
            note: true,
        }]
    }
}
