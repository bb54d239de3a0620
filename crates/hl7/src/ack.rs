//! Acknowledgements: original mode (AA/AE/AR) and enhanced-mode accepts (CA/CE/CR), with
//! an ERR segment naming the HL7 error code (table 0357) and the location.

use crate::{
    escape::escape,
    message::{Delimiters, Message},
};

/// MSA-1 (HL7 table 0008).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// Application accept: stored and taken.
    AA,
    /// Application error: understood but unusable; fix it before resending.
    AE,
    /// Application reject: cannot be parsed, or an unsupported type, event or version.
    AR,
    /// Enhanced mode: commit accept.
    CA,
    /// Enhanced mode: commit error.
    CE,
    /// Enhanced mode: commit reject.
    CR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [AckCode::AA, AckCode::AE, AckCode::AR, AckCode::CA, AckCode::CE, AckCode::CR]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    /// The enhanced-mode accept code with the same meaning.
    pub fn to_commit(self) -> AckCode {
        match self {
            AckCode::AA | AckCode::CA => AckCode::CA,
            AckCode::AE | AckCode::CE => AckCode::CE,
            AckCode::AR | AckCode::CR => AckCode::CR,
        }
    }
}

/// HL7 table 0357: message error condition codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    SegmentSequence = 100,
    RequiredFieldMissing = 101,
    DataTypeError = 102,
    TableValueNotFound = 103,
    UnsupportedMessageType = 200,
    UnsupportedEvent = 201,
    UnsupportedProcessingId = 202,
    UnsupportedVersion = 203,
    UnknownKey = 204,
    DuplicateKey = 205,
    RecordLocked = 206,
    InternalError = 207,
}

impl ErrorCode {
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequence => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataTypeError => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEvent => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersion => "Unsupported version id",
            ErrorCode::UnknownKey => "Unknown key identifier",
            ErrorCode::DuplicateKey => "Duplicate key identifier",
            ErrorCode::RecordLocked => "Application record locked",
            ErrorCode::InternalError => "Application internal error",
        }
    }
}

/// An error to report in the ACK: what, where (segment id and field number), and a
/// message for the interface engineer (never field values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckError {
    pub code: ErrorCode,
    pub segment: Option<&'static str>,
    pub field: Option<usize>,
    pub message: String,
}

impl AckError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, segment: None, field: None, message: message.into() }
    }

    pub fn at(mut self, segment: &'static str, field: usize) -> Self {
        self.segment = Some(segment);
        self.field = Some(field);
        self
    }
}

/// What an ACK copies from the message it answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Header {
    sending_app: String,
    sending_facility: String,
    receiving_app: String,
    receiving_facility: String,
    trigger: String,
    control_id: String,
    processing_id: String,
    version: String,
}

fn header_of(m: &Message) -> Header {
    let msh = m.msh();
    let raw = |f: usize| msh.get(f, 1).unwrap_or_default().to_owned();
    Header {
        sending_app: raw(3),
        sending_facility: raw(4),
        receiving_app: raw(5),
        receiving_facility: raw(6),
        trigger: m.trigger().unwrap_or_default().to_owned(),
        control_id: raw(10),
        processing_id: raw(11),
        version: raw(12),
    }
}

/// Reads what it can of an MSH line that did not parse, to answer it.
fn header_of_raw(raw: &[u8]) -> Header {
    let text: String = raw.iter().map(|b| char::from(*b)).collect();
    let Some(start) = text.find("MSH") else { return Header::default() };
    let line = text[start..].split(['\r', '\n']).next().unwrap_or_default();
    let sep = line.chars().nth(3).unwrap_or('|');
    let fields: Vec<&str> = line.split(sep).collect();
    let f = |n: usize| {
        fields.get(n - 1).map(|v| v.split('^').next().unwrap_or_default().trim().to_owned()).unwrap_or_default()
    };
    Header {
        sending_app: f(3),
        sending_facility: f(4),
        receiving_app: f(5),
        receiving_facility: f(6),
        trigger: fields.get(8).and_then(|v| v.split('^').nth(1)).unwrap_or_default().to_owned(),
        control_id: f(10),
        processing_id: f(11),
        version: f(12),
    }
}

/// Builds the ACK for a message (`Ok`) or for bytes that did not parse (`Err`), with
/// `control_id` as the ACK's own MSH-10 and `timestamp` (`YYYYMMDDHHMMSS`) as its MSH-7.
/// Segments end with CR.
pub fn build_ack(
    answered: Result<&Message, &[u8]>,
    code: AckCode,
    error: Option<&AckError>,
    control_id: &str,
    timestamp: &str,
) -> String {
    let (h, d) = match answered {
        Ok(m) => (header_of(m), m.delimiters),
        Err(raw) => (header_of_raw(raw), Delimiters::default()),
    };
    let e = |v: &str| escape(v, &d);
    let f = d.field;
    let version = if h.version.is_empty() { "2.5".to_owned() } else { h.version.clone() };
    let processing = if h.processing_id.is_empty() { "P".to_owned() } else { h.processing_id.clone() };
    let c = d.component;
    let mut ack = format!(
        "MSH{f}{enc}{f}{ra}{f}{rf}{f}{sa}{f}{sf}{f}{ts}{f}{f}ACK{c}{trigger}{c}ACK{f}{id}{f}{p}{f}{v}\r",
        enc = d.encoding_characters(),
        ra = e(&h.receiving_app),
        rf = e(&h.receiving_facility),
        sa = e(&h.sending_app),
        sf = e(&h.sending_facility),
        ts = e(timestamp),
        trigger = e(&h.trigger),
        id = e(control_id),
        p = e(&processing),
        v = e(&version),
    );
    let text = error.map(|x| e(&x.message)).unwrap_or_default();
    ack.push_str(&format!("MSA{f}{}{f}{}{f}{text}\r", code.as_str(), e(&h.control_id)));
    if let Some(err) = error {
        let s = d.subcomponent;
        let location = match (err.segment, err.field) {
            (Some(seg), Some(field)) => format!("{seg}{c}1{c}{field}"),
            (Some(seg), None) => format!("{seg}{c}1"),
            _ => String::new(),
        };
        let code = err.code as u16;
        let modern = version.split('.').nth(1).and_then(|minor| minor.parse::<u32>().ok()).is_some_and(|m| m >= 5)
            || version.starts_with("3");
        if modern {
            ack.push_str(&format!(
                "ERR{f}{f}{location}{f}{code}{c}{}{c}HL70357{f}E{f}{f}{f}{f}{text}\r",
                err.code.text()
            ));
        } else {
            ack.push_str(&format!("ERR{f}{location}{c}{code}{s}{}{s}HL70357\r", err.code.text()));
        }
    }
    ack
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;

    #[test]
    fn an_aa_echoes_the_control_id_and_swaps_sender_and_receiver() {
        let m = parse(b"MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302||SIU^S12^SIU_S12|CTRL42|P|2.5.1\r").unwrap();
        let ack = build_ack(Ok(&m), AckCode::AA, None, "ACK1", "20260302101500");
        assert_eq!(
            ack,
            "MSH|^~\\&|REFLOOP|CLINIC|EPIC|NORTH|20260302101500||ACK^S12^ACK|ACK1|P|2.5.1\rMSA|AA|CTRL42|\r"
        );
        let back = parse(ack.as_bytes()).unwrap();
        assert_eq!(back.segment("MSA").unwrap().get(2, 1), Some("CTRL42"));
    }

    #[test]
    fn an_ae_carries_err_with_code_and_location_in_the_senders_version() {
        let m = parse(b"MSH|^~\\&|A|B|C|D|20260302||REF^I12|X1|P|2.8\r").unwrap();
        let err = AckError::new(ErrorCode::RequiredFieldMissing, "RF1-6 is required").at("RF1", 6);
        let ack = parse(build_ack(Ok(&m), AckCode::AE, Some(&err), "A2", "20260302").as_bytes()).unwrap();
        let e = ack.segment("ERR").unwrap();
        assert_eq!(
            (e.get(2, 1), e.get(2, 3), e.get(3, 1), e.get(4, 1)),
            (Some("RF1"), Some("6"), Some("101"), Some("E"))
        );
        let old = parse(b"MSH|^~\\&|A|B|C|D|20260302||REF^I12|X1|P|2.3\r").unwrap();
        let ack = parse(build_ack(Ok(&old), AckCode::AE, Some(&err), "A3", "20260302").as_bytes()).unwrap();
        assert_eq!(ack.segment("ERR").unwrap().at(1, 0, 4, 1), Some("101"));
    }

    #[test]
    fn an_ar_answers_bytes_that_did_not_parse() {
        let raw = b"MSH|^~\\\\&|APP|FAC|||||ADT^A01|BROKEN7|P|2.6\r";
        let err = AckError::new(ErrorCode::SegmentSequence, "MSH-2 encoding characters are not distinct");
        let ack = parse(build_ack(Err(raw), AckCode::AR, Some(&err), "A9", "20260302").as_bytes()).unwrap();
        assert_eq!(ack.segment("MSA").unwrap().get(1, 1), Some("AR"));
        assert_eq!(ack.segment("MSA").unwrap().get(2, 1), Some("BROKEN7"));
    }
}
