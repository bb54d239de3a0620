//! From a parsed message to what it means for a referral.
//!
//! [`map`] is pure: it reads the message and returns a new order, an input for an existing
//! referral (with the keys to find it), "nothing to do", or the ACK error that explains
//! why the message cannot be used. Matching to a stored referral happens in the ingest.

use std::collections::BTreeMap;

use jiff::{Timestamp, tz::TimeZone};
use refloop_app::{Mapped, NewReferral, PatientInput, Target};
use refloop_domain::{
    Input, Network, OrderUpdate, Origin, PatientId, ProviderId, Specialty, State, Urgency, is_consult_report_code,
};

use crate::{
    ack::{AckCode, AckError, ErrorCode},
    message::{Message, Segment},
    time::parse_ts,
};

/// What the mapping needs besides the message.
#[derive(Clone, Debug)]
pub struct MapConfig {
    /// For timestamps without an offset.
    pub time_zone: TimeZone,
    /// Lower-cased code or text (RF1-3, PRD-4, PV1-10, OBR-4, AIS-3, AIP-4) → specialty.
    pub specialty_map: BTreeMap<String, Specialty>,
}

impl MapConfig {
    /// The built-in specialty map: common HL7 table 0069 service codes and plain names.
    pub fn with_defaults(time_zone: TimeZone) -> Self {
        let pairs: &[(&str, &[&str])] = &[
            ("cardiology", &["car", "card", "cardio", "cardiology", "cardiologist", "cardiovascular disease"]),
            ("dermatology", &["derm", "dermatology", "dermatologist"]),
            ("endocrinology", &["endo", "endocrinology", "endocrinologist"]),
            ("gastroenterology", &["gi", "gastro", "gastroenterology", "gastroenterologist"]),
            ("nephrology", &["neph", "nephrology", "nephrologist"]),
            ("neurology", &["neu", "neuro", "neurology", "neurologist"]),
            ("obstetrics-gynecology", &["obg", "obgyn", "ob/gyn", "gynecology", "obstetrics"]),
            ("oncology", &["onc", "oncology", "oncologist", "hematology oncology"]),
            ("ophthalmology", &["oph", "eye", "ophthalmology", "ophthalmologist"]),
            ("orthopedics", &["ort", "ortho", "orthopedics", "orthopaedics", "orthopedic surgery"]),
            ("otolaryngology", &["ent", "otolaryngology", "otolaryngologist"]),
            ("psychiatry", &["psy", "psych", "psychiatry", "psychiatrist"]),
            ("pulmonology", &["pul", "pulm", "pulmonary", "pulmonology", "pulmonologist"]),
            ("rheumatology", &["rhe", "rheum", "rheumatology", "rheumatologist"]),
            ("general-surgery", &["sur", "surgery", "general surgery"]),
            ("urology", &["uro", "urology", "urologist"]),
        ];
        let mut specialty_map = BTreeMap::new();
        for (specialty, names) in pairs {
            let s = Specialty::parse(specialty).expect("built-in specialty codes are valid");
            for name in *names {
                specialty_map.insert((*name).to_owned(), s.clone());
            }
        }
        Self { time_zone, specialty_map }
    }
}

/// Why a message cannot be used: the ACK code and the ERR to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapError {
    pub code: AckCode,
    pub error: AckError,
}

fn ae(code: ErrorCode, segment: &'static str, field: usize, message: impl Into<String>) -> MapError {
    MapError { code: AckCode::AE, error: AckError::new(code, message).at(segment, field) }
}

fn ar(code: ErrorCode, message: impl Into<String>) -> MapError {
    MapError { code: AckCode::AR, error: AckError::new(code, message).at("MSH", 9) }
}

/// Checks the header: supported version and processing id, a control id.
pub fn check_header(m: &Message) -> Result<(), MapError> {
    let version = m.version().unwrap_or_default();
    let minor = version.strip_prefix("2.").and_then(|v| v.split('.').next()).and_then(|v| v.parse::<u32>().ok());
    if !matches!(minor, Some(1..=8)) {
        return Err(MapError {
            code: AckCode::AR,
            error: AckError::new(ErrorCode::UnsupportedVersion, "MSH-12 must be a version from 2.1 to 2.8")
                .at("MSH", 12),
        });
    }
    if let Some(p) = m.msh().get(11, 1)
        && !matches!(p, "P" | "T" | "D")
    {
        return Err(MapError {
            code: AckCode::AR,
            error: AckError::new(ErrorCode::UnsupportedProcessingId, "MSH-11 must be P, T or D").at("MSH", 11),
        });
    }
    if m.control_id().is_none() {
        return Err(ae(ErrorCode::RequiredFieldMissing, "MSH", 10, "MSH-10 (message control id) is required"));
    }
    Ok(())
}

/// A person's name from an XPN (at component `first`: family, given, middle, suffix, prefix)
/// as people write it: "Dr Ann B Adams Jr".
fn person_name(s: &Segment, field: usize, first: usize) -> Option<String> {
    let part = |k: usize| s.get(field, first + k).map(str::trim).filter(|p| !p.is_empty());
    let words: Vec<&str> = [part(4), part(1), part(2), part(0), part(3)].into_iter().flatten().collect();
    (part(0).is_some() && !words.is_empty()).then(|| words.join(" "))
}

/// `YYYYMMDD…` → `YYYY-MM-DD`, when it is a real date.
fn birth_date(ts: &str) -> Option<String> {
    let d = ts.get(..8)?;
    let date = jiff::civil::Date::strptime("%Y%m%d", d).ok()?;
    Some(date.to_string())
}

struct Ctx<'a> {
    m: &'a Message,
    cfg: &'a MapConfig,
    /// MSH-7, or now: when the sender says this happened.
    sent: Timestamp,
}

impl Ctx<'_> {
    fn seg(&self, id: &str) -> Option<&Segment> {
        self.m.segment(id)
    }

    fn ts(&self, seg: &str, field: usize, comp: usize) -> Option<Timestamp> {
        self.seg(seg).and_then(|s| s.get(field, comp)).and_then(|v| parse_ts(v, &self.cfg.time_zone))
    }

    fn patient_id(&self) -> Option<PatientId> {
        let pid = self.seg("PID")?;
        let reps = pid.repetitions(3);
        let is_mrn = |r: usize| matches!(pid.at(3, r, 5, 1), Some("MR" | "MRN")) || pid.at(3, r, 4, 1) == Some("MRN");
        let mrn = (0..reps).find(|r| is_mrn(*r) && pid.at(3, *r, 1, 1).is_some()).and_then(|r| pid.at(3, r, 1, 1));
        let first = (0..reps).find_map(|r| pid.at(3, r, 1, 1));
        mrn.or(first).or_else(|| pid.get(2, 1)).and_then(|id| PatientId::parse(id).ok())
    }

    fn require_patient(&self) -> Result<PatientId, MapError> {
        self.patient_id()
            .ok_or_else(|| ae(ErrorCode::RequiredFieldMissing, "PID", 3, "PID-3 (patient identifier) is required"))
    }

    fn patient_input(&self) -> Option<PatientInput> {
        let pid = self.seg("PID")?;
        let name = match (pid.get(5, 2), pid.get(5, 1)) {
            (Some(given), Some(family)) => Some(format!("{given} {family}")),
            (None, Some(family)) => Some(family.to_owned()),
            _ => None,
        };
        let phone = (0..pid.repetitions(13)).find_map(|r| {
            pid.at(13, r, 12, 1).or_else(|| pid.at(13, r, 1, 1)).map(str::to_owned).or_else(|| {
                match (pid.at(13, r, 5, 1), pid.at(13, r, 6, 1), pid.at(13, r, 7, 1)) {
                    (country, Some(area), Some(local)) => Some(format!("+{}{area}{local}", country.unwrap_or("1"))),
                    _ => None,
                }
            })
        });
        // PID-7 (date/time of birth): its date; PID-15 (primary language): the text, else the code.
        let birth_date = pid.get(7, 1).and_then(birth_date);
        let language = pid.get(15, 2).or_else(|| pid.get(15, 1)).map(str::to_owned);
        Some(PatientInput { name, birth_date, language, phone, sms_consent: None, time_zone: None })
    }

    /// The first candidate code or text that the specialty map knows.
    fn specialty(&self) -> Option<Specialty> {
        let mut candidates: Vec<&str> = Vec::new();
        if let Some(rf1) = self.seg("RF1") {
            candidates.extend([rf1.get(3, 1), rf1.get(3, 2)].into_iter().flatten());
        }
        for prd in self.m.all("PRD").filter(|p| p.get(1, 1) == Some("RT")) {
            candidates.extend([prd.get(4, 1), prd.get(4, 4)].into_iter().flatten());
        }
        if let Some(pv1) = self.seg("PV1") {
            candidates.extend(pv1.get(10, 1));
        }
        for obr in self.m.all("OBR") {
            candidates.extend([obr.get(4, 1), obr.get(4, 2)].into_iter().flatten());
        }
        for ais in self.m.all("AIS") {
            candidates.extend([ais.get(3, 1), ais.get(3, 2)].into_iter().flatten());
        }
        for aip in self.m.all("AIP") {
            candidates.extend([aip.get(4, 1), aip.get(4, 2)].into_iter().flatten());
        }
        candidates.into_iter().find_map(|c| {
            let key = c.trim().to_ascii_lowercase();
            self.cfg.specialty_map.get(&key).cloned()
        })
    }

    fn urgency(&self) -> Urgency {
        let code = self
            .seg("RF1")
            .and_then(|s| s.get(2, 1))
            .or_else(|| self.seg("TQ1").and_then(|s| s.get(9, 1)))
            .or_else(|| self.seg("OBR").and_then(|s| s.get(27, 6)))
            .or_else(|| self.seg("ORC").and_then(|s| s.get(7, 6)));
        match code.map(str::to_ascii_uppercase).as_deref() {
            Some("S" | "STAT") => Urgency::Stat,
            Some("A" | "ASAP") => Urgency::Asap,
            Some("U" | "C" | "T" | "URGENT") => Urgency::Urgent,
            _ => Urgency::Routine,
        }
    }

    /// The referring provider and, when the message gives it, their name: PRD with role RP
    /// (id PRD-7, name PRD-2 as XPN), else the XCN of ORC-12, OBR-16 or PV1-8 (id, family,
    /// given, middle, suffix, prefix).
    fn referring_provider(&self) -> Option<(ProviderId, Option<String>)> {
        let prd = self.m.all("PRD").find(|p| p.get(1, 1) == Some("RP"));
        let from_prd = prd.and_then(|p| {
            let id = p.get(7, 1).or_else(|| p.get(2, 1))?;
            let name = if p.get(7, 1).is_some() { person_name(p, 2, 1) } else { None };
            Some((id, name))
        });
        let from_xcn =
            |seg: &str, field: usize| self.seg(seg).and_then(|s| Some((s.get(field, 1)?, person_name(s, field, 2))));
        from_prd
            .or_else(|| from_xcn("ORC", 12))
            .or_else(|| from_xcn("OBR", 16))
            .or_else(|| from_xcn("PV1", 8))
            .and_then(|(id, name)| Some((ProviderId::parse(id).ok()?, name)))
    }

    fn specialist(&self) -> Option<String> {
        let prd = self.m.all("PRD").find(|p| p.get(1, 1) == Some("RT"))?;
        let name: Vec<&str> = [prd.get(2, 2), prd.get(2, 1)].into_iter().flatten().collect();
        (!name.is_empty()).then(|| name.join(" "))
    }

    fn keys(&self, places: &[(&str, usize)]) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for (seg, field) in places {
            for s in self.m.all(seg) {
                if let Some(k) = s.get(*field, 1)
                    && !keys.iter().any(|x| x == k)
                {
                    keys.push(k.to_owned());
                }
            }
        }
        keys
    }

    fn target(&self, places: &[(&str, usize)], fallback_allowed: bool) -> Target {
        Target {
            keys: self.keys(places),
            patient: self.patient_id(),
            specialty: self.specialty(),
            fallback_allowed,
            review_unmatched: false,
            demographics: None,
        }
    }

    fn event(&self, places: &[(&str, usize)], fallback_allowed: bool, input: Input) -> Mapped {
        Mapped::Event { target: self.target(places, fallback_allowed), input }
    }

    fn milestone(&self, state: State, at: Timestamp, appointment_at: Option<Timestamp>) -> Input {
        Input::Milestone { state, at, appointment_at, channel: Some("hl7v2".to_owned()) }
    }

    fn order(&self, key: String) -> Result<Mapped, MapError> {
        let patient_id = self.require_patient()?;
        let (referring_provider, referring_provider_name) = self.referring_provider().ok_or_else(|| {
            ae(
                ErrorCode::RequiredFieldMissing,
                "ORC",
                12,
                "the referring provider is missing (PRD RP, ORC-12, OBR-16, PV1-8)",
            )
        })?;
        let ordered_at = self
            .ts("RF1", 7, 1)
            .or_else(|| self.ts("ORC", 9, 1))
            .or_else(|| self.ts("ORC", 15, 1))
            .unwrap_or(self.sent)
            .min(self.sent);
        let reason = self
            .seg("DG1")
            .and_then(|d| d.get(3, 1))
            .or_else(|| self.seg("RF1").and_then(|r| r.get(10, 1)))
            .or_else(|| self.seg("OBR").and_then(|r| r.get(31, 1)))
            .map(str::to_owned);
        Ok(Mapped::Order(Box::new(NewReferral {
            patient_id,
            patient: self.patient_input(),
            referring_provider,
            referring_provider_name,
            specialty: self.specialty(),
            specialist: self.specialist(),
            urgency: self.urgency(),
            origin: Origin::PhysicianOrder,
            network: Network::Unknown,
            reason,
            ordered_at: Some(ordered_at),
            source_ids: vec![key],
            historical: false,
        })))
    }

    /// The appointment start: TQ1-7, AIS-4, AIL-6, AIP-6, then SCH-11.4.
    fn appointment_start(&self) -> Option<Timestamp> {
        self.ts("TQ1", 7, 1)
            .or_else(|| self.ts("AIS", 4, 1))
            .or_else(|| self.ts("AIL", 6, 1))
            .or_else(|| self.ts("AIP", 6, 1))
            .or_else(|| self.ts("SCH", 11, 4))
    }
}

const REF_KEYS: &[(&str, usize)] = &[("RF1", 6), ("RF1", 11)];
const ORDER_KEYS: &[(&str, usize)] = &[("ORC", 2), ("OBR", 2)];
const SIU_KEYS: &[(&str, usize)] = &[("SCH", 26), ("ORC", 2)];
const DOC_KEYS: &[(&str, usize)] = &[("TXA", 14), ("ORC", 2), ("OBR", 2)];

/// Maps a message whose header passed [`check_header`]. `now` stands in for a missing MSH-7.
pub fn map(m: &Message, cfg: &MapConfig, now: Timestamp) -> Result<Mapped, MapError> {
    let sent = m.msh().get(7, 1).and_then(|v| parse_ts(v, &cfg.time_zone)).unwrap_or(now);
    let c = Ctx { m, cfg, sent };
    let kind = m.message_type().unwrap_or_default();
    let trigger = m.trigger().unwrap_or_default();
    match (kind, trigger) {
        ("REF", "I12") => {
            let key = c.keys(&[("RF1", 6)]).into_iter().next().ok_or_else(|| {
                ae(ErrorCode::RequiredFieldMissing, "RF1", 6, "RF1-6 (originating referral identifier) is required")
            })?;
            c.order(key)
        }
        ("REF", "I13") => Ok(c.event(
            REF_KEYS,
            false,
            Input::OrderUpdated(OrderUpdate {
                specialty: c.specialty(),
                specialist: c.specialist(),
                urgency: Some(c.urgency()),
                network: None,
            }),
        )),
        ("REF", "I14") => Ok(c.event(
            REF_KEYS,
            false,
            Input::Cancel { at: sent, reason: Some("cancelled by the sender (REF^I14)".into()) },
        )),
        ("RRI", "I12") => match m.segment("RF1").and_then(|r| r.get(1, 1)) {
            Some("A") => Ok(c.event(REF_KEYS, false, Input::SpecialistResponded { at: sent, accepted: true })),
            Some("R" | "E") => Ok(c.event(REF_KEYS, false, Input::SpecialistResponded { at: sent, accepted: false })),
            Some(_) => Ok(Mapped::Ignore("the referral is still pending at the specialist")),
            None => Err(ae(ErrorCode::RequiredFieldMissing, "RF1", 1, "RF1-1 (referral status) is required")),
        },
        ("ORM", "O01") | ("OMG", "O19") | ("OSU", "O51") => order_control(&c, kind),
        ("SIU", _) => scheduling(&c, trigger),
        ("ADT", "A04") => {
            let at = c.ts("PV1", 44, 1).or_else(|| c.ts("EVN", 2, 1)).unwrap_or(sent);
            c.require_patient()?;
            Ok(c.event(&[], false, c.milestone(State::Attended, at, None)))
        }
        ("ADT", "A03") => {
            let at = c.ts("PV1", 45, 1).or_else(|| c.ts("PV1", 44, 1)).or_else(|| c.ts("EVN", 2, 1)).unwrap_or(sent);
            c.require_patient()?;
            Ok(c.event(&[], false, c.milestone(State::Attended, at, None)))
        }
        ("MDM", "T02" | "T04" | "T06" | "T08" | "T10") => document(&c),
        ("ORU", "R01") => report(&c),
        ("REF" | "RRI" | "ORM" | "OMG" | "OSU" | "ADT" | "MDM" | "ORU", _) => {
            Err(ar(ErrorCode::UnsupportedEvent, format!("{kind}^{trigger} is not an event refloop takes")))
        }
        _ => Err(ar(ErrorCode::UnsupportedMessageType, format!("message type {kind} is not supported"))),
    }
}

fn order_control(c: &Ctx<'_>, kind: &str) -> Result<Mapped, MapError> {
    let orc = c.seg("ORC").ok_or_else(|| ae(ErrorCode::SegmentSequence, "ORC", 1, "the ORC segment is required"))?;
    let control = orc
        .get(1, 1)
        .ok_or_else(|| ae(ErrorCode::RequiredFieldMissing, "ORC", 1, "ORC-1 (order control) is required"))?;
    let at = c.ts("ORC", 9, 1).unwrap_or(c.sent);
    match control {
        "NW" if kind != "OSU" => {
            let key = c.keys(ORDER_KEYS).into_iter().next().ok_or_else(|| {
                ae(ErrorCode::RequiredFieldMissing, "ORC", 2, "ORC-2 or OBR-2 (placer order number) is required")
            })?;
            c.order(key)
        }
        "CA" | "OC" | "DC" | "CR" | "OD" | "DR" => {
            if orc.get(16, 1).is_some_and(|r| r.eq_ignore_ascii_case("NS")) {
                Ok(c.event(ORDER_KEYS, false, Input::NoShow { at }))
            } else {
                Ok(c.event(ORDER_KEYS, false, Input::Cancel { at, reason: Some(format!("order control {control}")) }))
            }
        }
        "XO" | "XX" => Ok(c.event(
            ORDER_KEYS,
            false,
            Input::OrderUpdated(OrderUpdate {
                specialty: c.specialty(),
                specialist: None,
                urgency: Some(c.urgency()),
                network: None,
            }),
        )),
        "OK" | "CR_OK" => Ok(c.event(ORDER_KEYS, false, Input::SpecialistResponded { at, accepted: true })),
        "UA" | "UC" | "UD" | "UX" | "RQ_UA" => {
            Ok(c.event(ORDER_KEYS, false, Input::SpecialistResponded { at, accepted: false }))
        }
        "SC" | "SN" | "NA" | "RE" | "RP" | "RU" | "RO" | "PA" | "PR" | "HD" | "HR" | "OH" | "RL" | "OE" | "OR"
        | "DE" | "RF" | "CH" | "LI" | "MC" | "NH" | "SS" | "CN" => {
            Ok(Mapped::Ignore("an order status that does not move a referral"))
        }
        _ => Err(ae(ErrorCode::TableValueNotFound, "ORC", 1, "ORC-1 is not an HL7 table 0119 order control code")),
    }
}

fn scheduling(c: &Ctx<'_>, trigger: &str) -> Result<Mapped, MapError> {
    let sent = c.sent;
    let start = c.appointment_start();
    let booked = |c: &Ctx<'_>| -> Result<Mapped, MapError> {
        let start = start.ok_or_else(|| {
            ae(
                ErrorCode::RequiredFieldMissing,
                "TQ1",
                7,
                "the appointment start is missing (TQ1-7, AIS-4, AIL-6, AIP-6 or SCH-11.4)",
            )
        })?;
        Ok(c.event(SIU_KEYS, true, c.milestone(State::Scheduled, sent, Some(start))))
    };
    match trigger {
        "S12" | "S13" => booked(c),
        "S14" => {
            let status = c.seg("SCH").and_then(|s| s.get(25, 1)).map(str::to_ascii_lowercase);
            match status.as_deref() {
                Some("started" | "complete" | "completed" | "arrived" | "checked in" | "checkedin") => {
                    Ok(c.event(SIU_KEYS, true, c.milestone(State::Attended, start.unwrap_or(sent).min(sent), None)))
                }
                Some("noshow" | "no show" | "no-show") => Ok(c.event(SIU_KEYS, true, Input::NoShow { at: sent })),
                Some("cancelled" | "canceled" | "deleted" | "dc") => {
                    Ok(c.event(SIU_KEYS, true, Input::AppointmentCancelled { at: sent }))
                }
                _ if start.is_some() => booked(c),
                _ => Ok(Mapped::Ignore("an appointment change with no time or status refloop tracks")),
            }
        }
        "S15" | "S17" => Ok(c.event(SIU_KEYS, true, Input::AppointmentCancelled { at: sent })),
        "S26" => Ok(c.event(SIU_KEYS, true, Input::NoShow { at: sent })),
        _ => Err(ar(ErrorCode::UnsupportedEvent, format!("SIU^{trigger} is not an event refloop takes"))),
    }
}

fn document(c: &Ctx<'_>) -> Result<Mapped, MapError> {
    let txa = c.seg("TXA").ok_or_else(|| ae(ErrorCode::SegmentSequence, "TXA", 1, "the TXA segment is required"))?;
    if txa.get(12, 1).is_none() {
        return Err(ae(ErrorCode::RequiredFieldMissing, "TXA", 12, "TXA-12 (unique document number) is required"));
    }
    let status = txa.get(17, 1).map(str::to_ascii_uppercase);
    if matches!(status.as_deref(), Some("IP" | "IN" | "PA" | "DI")) {
        return Ok(Mapped::Ignore("the document is not complete (TXA-17)"));
    }
    let consult = txa.get(2, 1).is_some_and(|t| t.eq_ignore_ascii_case("CN"))
        || c.m.all("OBX").any(|o| o.get(3, 1).is_some_and(is_consult_report_code));
    Ok(c.event(DOC_KEYS, consult, c.milestone(State::NoteReceived, c.sent, None)))
}

fn report(c: &Ctx<'_>) -> Result<Mapped, MapError> {
    let consult = c.m.all("OBX").any(|o| o.get(3, 1).is_some_and(is_consult_report_code))
        || c.m.all("OBR").any(|o| o.get(4, 1).is_some_and(is_consult_report_code));
    let final_status = c.m.all("OBR").all(|o| o.get(25, 1).is_none_or(|s| matches!(s, "F" | "C" | "A")));
    let keys = c.keys(DOC_KEYS);
    if !final_status {
        return Ok(Mapped::Ignore("the report is not final (OBR-25)"));
    }
    if !consult && keys.is_empty() {
        return Ok(Mapped::Ignore("a result that is not a consult report"));
    }
    Ok(c.event(DOC_KEYS, consult, c.milestone(State::NoteReceived, c.sent, None)))
}
