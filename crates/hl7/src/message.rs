//! The message model and the parser.

use crate::escape::unescape;

/// The delimiters of one message, read from MSH-1 and MSH-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: Option<char>,
    pub subcomponent: char,
    /// The 2.7+ truncation character (a fifth encoding character), if any.
    pub truncation: Option<char>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self { field: '|', component: '^', repetition: '~', escape: Some('\\'), subcomponent: '&', truncation: None }
    }
}

impl Delimiters {
    /// MSH-2 as written.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::new();
        s.push(self.component);
        s.push(self.repetition);
        s.extend(self.escape);
        s.push(self.subcomponent);
        s.extend(self.truncation);
        s
    }
}

/// Why a byte string is not an HL7 v2 message. Messages carry no field values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message does not start with an MSH segment")]
    NoMsh,
    #[error("MSH-1/MSH-2 do not hold a field separator and 4 or 5 distinct encoding characters")]
    BadDelimiters,
    #[error("segment {index} has an invalid segment id")]
    BadSegmentId { index: usize },
    #[error("the message is not valid text in its character set")]
    BadEncoding,
}

/// One leaf value: a subcomponent, unescaped. `""` (explicit null) is kept as written.
type Leaf = String;

/// One segment: its id and fields, numbered as in the standard (field 1 is `fields[1]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub id: String,
    /// `fields[n][rep][comp][sub]`, all indexes from 0; `fields[0]` is empty.
    fields: Vec<Vec<Vec<Vec<Leaf>>>>,
}

fn present(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty() && t != "\"\"").then_some(t)
}

impl Segment {
    /// The value at field `f`, repetition `r` (0-based), component `c` and subcomponent
    /// `s` (1-based); `None` when absent, empty or an explicit null. Trimmed.
    pub fn at(&self, f: usize, r: usize, c: usize, s: usize) -> Option<&str> {
        let leaf = self.fields.get(f)?.get(r)?.get(c.checked_sub(1)?)?.get(s.checked_sub(1)?)?;
        present(leaf)
    }

    /// Component `c` (1-based) of the first repetition of field `f`.
    pub fn get(&self, f: usize, c: usize) -> Option<&str> {
        self.at(f, 0, c, 1)
    }

    /// How many repetitions field `f` has.
    pub fn repetitions(&self, f: usize) -> usize {
        self.fields.get(f).map_or(0, Vec::len)
    }

    /// Whether field `f` is an explicit null (`""`).
    pub fn is_null(&self, f: usize) -> bool {
        self.fields
            .get(f)
            .and_then(|x| x.first())
            .and_then(|x| x.first())
            .and_then(|x| x.first())
            .is_some_and(|v| v.trim() == "\"\"")
    }

    /// Field `f` as people read it: its values (unescaped) joined with `d`'s repetition,
    /// component and subcomponent characters, trailing empties dropped.
    pub fn field_text(&self, f: usize, d: &Delimiters) -> String {
        let Some(field) = self.fields.get(f) else { return String::new() };
        let join = |parts: Vec<String>, sep: char| {
            let keep = parts.iter().rposition(|p| !p.is_empty()).map_or(0, |i| i + 1);
            parts[..keep].join(&sep.to_string())
        };
        let reps = field
            .iter()
            .map(|rep| join(rep.iter().map(|comp| join(comp.clone(), d.subcomponent)).collect(), d.component))
            .collect();
        join(reps, d.repetition)
    }

    /// The number of the last field present.
    pub fn len(&self) -> usize {
        self.fields.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub delimiters: Delimiters,
    pub segments: Vec<Segment>,
}

impl Message {
    pub fn msh(&self) -> &Segment {
        &self.segments[0]
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// Every segment with this id, in order.
    pub fn all<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.id == id)
    }

    /// MSH-9.1, the message type (`ADT`, `SIU`, …).
    pub fn message_type(&self) -> Option<&str> {
        self.msh().get(9, 1)
    }

    /// MSH-9.2, the trigger event (`A04`, `S12`, …).
    pub fn trigger(&self) -> Option<&str> {
        self.msh().get(9, 2)
    }

    /// MSH-10, the message control id.
    pub fn control_id(&self) -> Option<&str> {
        self.msh().get(10, 1)
    }

    /// MSH-12.1, the version id.
    pub fn version(&self) -> Option<&str> {
        self.msh().get(12, 1)
    }
}

fn valid_segment_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 3 && b[0].is_ascii_uppercase() && b[1..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Decodes the bytes as text in the message's character set (MSH-18): ISO 8859-1 when
/// declared, else UTF-8, else (undeclared and not UTF-8) ISO 8859-1.
fn decode(bytes: &[u8]) -> Result<String, ParseError> {
    let first_line = bytes.split(|b| *b == b'\r' || *b == b'\n').next().unwrap_or_default();
    let header: String = first_line.iter().map(|b| char::from(*b)).collect();
    let declared = header.to_ascii_uppercase();
    let latin1 = declared.contains("8859/1") || declared.contains("8859-1");
    if latin1 {
        return Ok(bytes.iter().map(|b| char::from(*b)).collect());
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) if declared.contains("UTF-8") || declared.contains("UTF8") => Err(ParseError::BadEncoding),
        Err(_) => Ok(bytes.iter().map(|b| char::from(*b)).collect()),
    }
}

/// Parses one message.
pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = decode(bytes)?;
    let mut lines: Vec<String> = Vec::new();
    for line in text.split(['\r', '\n']) {
        let line = line.trim_end_matches([' ', '\t', '\u{0}']);
        if line.trim().is_empty() {
            continue;
        }
        let id_ok = line.get(..3).is_some_and(valid_segment_id)
            && line[3..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        match lines.last_mut() {
            // A line that does not start with a segment id continues the one before (a
            // segment wrapped by an editor or a web page).
            Some(prev) if !id_ok => prev.push_str(line),
            _ => lines.push(line.to_owned()),
        }
    }
    let first = lines.first().ok_or(ParseError::Empty)?;
    if !first.starts_with("MSH") {
        return Err(ParseError::NoMsh);
    }
    let d = delimiters(first)?;
    let mut segments = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let id =
            line.get(..3).filter(|id| valid_segment_id(id)).ok_or(ParseError::BadSegmentId { index: index + 1 })?;
        segments.push(segment(id, line, &d));
    }
    Ok(Message { delimiters: d, segments })
}

fn delimiters(msh: &str) -> Result<Delimiters, ParseError> {
    let mut chars = msh.chars().skip(3);
    let field = chars.next().ok_or(ParseError::BadDelimiters)?;
    if field.is_alphanumeric() || field.is_whitespace() {
        return Err(ParseError::BadDelimiters);
    }
    let enc: Vec<char> = chars.take_while(|c| *c != field).collect();
    if !(enc.len() == 4 || enc.len() == 5) {
        return Err(ParseError::BadDelimiters);
    }
    let mut all = enc.clone();
    all.push(field);
    all.sort_unstable();
    all.dedup();
    if all.len() != enc.len() + 1 || enc.iter().any(|c| c.is_alphanumeric() || c.is_whitespace()) {
        return Err(ParseError::BadDelimiters);
    }
    Ok(Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: Some(enc[2]),
        subcomponent: enc[3],
        truncation: enc.get(4).copied(),
    })
}

fn segment(id: &str, line: &str, d: &Delimiters) -> Segment {
    let mut fields: Vec<Vec<Vec<Vec<Leaf>>>> = vec![Vec::new()];
    let rest = &line[3..];
    let mut parts = rest.split(d.field);
    parts.next(); // what precedes the first separator: nothing
    if id == "MSH" {
        fields.push(vec![vec![vec![d.field.to_string()]]]);
        let enc = parts.next().unwrap_or_default();
        fields.push(vec![vec![vec![enc.to_owned()]]]);
    }
    for raw in parts {
        let field = raw
            .split(d.repetition)
            .map(|rep| {
                rep.split(d.component)
                    .map(|comp| comp.split(d.subcomponent).map(|sub| unescape(sub, d)).collect())
                    .collect()
            })
            .collect();
        fields.push(field);
    }
    Segment { id: id.to_owned(), fields }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|EPIC|NORTH|REFLOOP|ALL|20260302101500||ADT^A04^ADT_A01|MSG0001|P|2.5.1\r\
        PID|1||MRN123^^^HOSP^MR~999-99-9999^^^SSA^SS||DOE^JANE||19700101|F\r\
        PV1|1|O|CLINIC^^^CARDIO|||||||CAR|||||||||V42\r";

    #[test]
    fn reads_header_fields_components_and_repetitions() {
        let m = parse(ADT.as_bytes()).unwrap();
        assert_eq!(
            (m.message_type(), m.trigger(), m.control_id(), m.version()),
            (Some("ADT"), Some("A04"), Some("MSG0001"), Some("2.5.1"))
        );
        assert_eq!(m.msh().get(1, 1), Some("|"));
        assert_eq!(m.msh().get(2, 1), Some("^~\\&"));
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.get(3, 1), Some("MRN123"));
        assert_eq!(pid.at(3, 1, 4, 1), Some("SSA"));
        assert_eq!(pid.repetitions(3), 2);
        assert_eq!(pid.get(5, 2), Some("JANE"));
        assert_eq!(m.segment("PV1").unwrap().get(10, 1), Some("CAR"));
    }

    #[test]
    fn accepts_any_line_ending_a_bom_and_trailing_spaces() {
        for sep in ["\r", "\n", "\r\n", "\r\n\n"] {
            let text = format!("\u{FEFF}{}", ADT.replace('\r', &format!("   {sep}")));
            let m = parse(text.as_bytes()).unwrap();
            assert_eq!(m.segments.len(), 3, "{sep:?}");
            assert_eq!(m.segment("PV1").unwrap().get(19, 1), Some("V42"));
        }
    }

    #[test]
    fn reads_non_default_delimiters_and_a_truncation_character() {
        let m = parse(b"MSH#*@!%#APP#FAC###SIU*S12#1#P#2.7\rSCH#A1*B@A2##########Booked*Booked\r").unwrap();
        assert_eq!(m.delimiters.component, '*');
        assert_eq!(m.delimiters.truncation, None);
        assert_eq!(m.segment("SCH").unwrap().at(1, 1, 1, 1), Some("A2"));
        let m = parse(b"MSH|^~\\&#|APP|FAC|||||SIU^S12|1|P|2.8\r").unwrap();
        assert_eq!(m.delimiters.truncation, Some('#'));
    }

    #[test]
    fn explicit_nulls_read_as_absent_but_are_known() {
        let m = parse(b"MSH|^~\\&|A|B|||||ORM^O01|1|P|2.3\rORC|NW|\"\"|X\r").unwrap();
        let orc = m.segment("ORC").unwrap();
        assert_eq!(orc.get(2, 1), None);
        assert!(orc.is_null(2));
        assert!(!orc.is_null(3));
    }

    #[test]
    fn decodes_iso_8859_1_when_declared() {
        let mut bytes = b"MSH|^~\\&|A|B|||||ORU^R01|1|P|2.5|||||||8859/1\rOBX|1|ST|X||".to_vec();
        bytes.push(0xB5);
        bytes.extend_from_slice(b"mol/L\r");
        let m = parse(&bytes).unwrap();
        assert_eq!(m.segment("OBX").unwrap().get(5, 1), Some("µmol/L"));
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"PID|1\r"), Err(ParseError::NoMsh));
        assert_eq!(parse(b"MSH|^~\\\\&|A\r"), Err(ParseError::BadDelimiters));
        assert_eq!(parse(b"MSH|^~|A\r"), Err(ParseError::BadDelimiters));
    }

    #[test]
    fn a_wrapped_line_continues_its_segment() {
        let m = parse(b"MSH|^~\\&|A|B|||||ORM^O01|1|P|2.3\nOBR|1|(555)\n555-1234|Z\n").unwrap();
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.segment("OBR").unwrap().get(2, 1), Some("(555)555-1234"));
        assert_eq!(m.segment("OBR").unwrap().get(3, 1), Some("Z"));
    }
}
