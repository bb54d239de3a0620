//! ONC/IHE 360X closed-loop referrals over Direct, as the referral initiator: the referral
//! request (PCC-55) is an XDM package holding an `OMG^O19` (v2.5.1, MSH-21 `360X`, ORC `NW`,
//! OBR-4 LOINC 57133-1, TQ1-8 "needed by") and a C-CDA R2.1 Referral Note built from what
//! refloop knows; a cancellation is the same order with ORC `CA`. Back from the specialist:
//! `OSU^O51` (PCC-56: ORC-5 `IP`/`SC` accepted, `CA` declined or cancelled, ORC-16 the reason),
//! read by [`status_of`], and the consult note (PCC-57) as a C-CDA, read by the Direct protocol.
//! The loop's key is the placer order number (ORC-2 / OBR-2): our referral id.

use jiff::Timestamp;
use refloop_cda::escape as xml;
use refloop_domain::Referral;
use refloop_hl7::{Delimiters, escape};

/// LOINC 57133-1, the service a 360X referral requests (OBR-4) and the Referral Note's type.
pub const REFERRAL_NOTE: &str = "57133-1";

/// The namespace of our placer order numbers (ORC-2.2 / OBR-2.2).
pub const PLACER: &str = "REFLOOP";

/// What a 360X referral request (or its cancellation) says.
pub struct Request<'a> {
    /// The message's control id (MSH-10): the outbox item's id.
    pub control_id: &'a str,
    pub referral: &'a Referral,
    pub patient_name: Option<&'a str>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<&'a str>,
    pub provider_name: Option<&'a str>,
    pub practice: &'a str,
    pub specialist: &'a str,
    /// By when the patient should be seen (TQ1-8).
    pub needed_by: Option<Timestamp>,
    pub now: Timestamp,
    /// ORC-1 `CA`: cancel the request.
    pub cancel: bool,
}

/// An HL7 timestamp in UTC: `YYYYMMDDHHMMSS+0000`.
fn ts(t: Timestamp) -> String {
    t.strftime("%Y%m%d%H%M%S+0000").to_string()
}

/// A person's name as (family, given): the last word is the family name (or `FAMILY^GIVEN`
/// as an EHR may have sent it).
fn split_name(name: &str) -> (String, String) {
    if let Some((family, given)) = name.split_once('^') {
        return (family.trim().to_owned(), given.replace('^', " ").trim().to_owned());
    }
    match name.trim().rsplit_once(' ') {
        Some((given, family)) => (family.to_owned(), given.trim().to_owned()),
        None => (name.trim().to_owned(), String::new()),
    }
}

/// The `OMG^O19` of a referral request (or, with `cancel`, of its cancellation).
pub fn omg_o19(r: &Request<'_>) -> String {
    let d = Delimiters::default();
    let e = |s: &str| escape(s, &d);
    let referral = r.referral;
    let placer = format!("{}^{PLACER}", e(referral.id.as_str()));
    let (family, given) = split_name(r.patient_name.unwrap_or(""));
    let dob =
        r.birth_date.map(|b| b.replace('-', "")).filter(|b| b.len() == 8 && b.bytes().all(|c| c.is_ascii_digit()));
    let (pfamily, pgiven) = split_name(r.provider_name.unwrap_or(""));
    let priority = match referral.urgency {
        refloop_domain::Urgency::Routine => "R",
        _ => "S",
    };
    let reason = referral.reason.as_deref().map(e).unwrap_or_default();
    let mut segments = vec![
        format!(
            "MSH|^~\\&|REFLOOP|{practice}|SPECIALIST|{specialist}|{now}||OMG^O19^OMG_O19|{control}|P|2.5.1|||NE|NE|||||360X",
            practice = e(r.practice),
            specialist = e(r.specialist),
            now = ts(r.now),
            control = e(r.control_id),
        ),
        format!(
            "PID|1||{pid}^^^{PLACER}^MR||{family}^{given}||{dob}",
            pid = e(referral.patient_id.as_str()),
            family = e(&family),
            given = e(&given),
            dob = dob.unwrap_or_default(),
        ),
        format!(
            "ORC|{control}|{placer}||||||||||{provider}^{pfamily}^{pgiven}",
            control = if r.cancel { "CA" } else { "NW" },
            provider = e(referral.referring_provider.as_str()),
            pfamily = e(&pfamily),
            pgiven = e(&pgiven),
        ),
    ];
    let needed_by = r.needed_by.map(ts).unwrap_or_default();
    segments.push(format!("TQ1|1|||||||{needed_by}|{priority}^^HL70485"));
    let specialty = referral.specialty.as_ref().map(|s| e(s.as_str())).unwrap_or_default();
    let reason_field = if reason.is_empty() { specialty.clone() } else { reason };
    segments.push(format!(
        "OBR|1|{placer}||{REFERRAL_NOTE}^Referral note^LN|||{ordered}{pad}^{reason_field}",
        ordered = ts(referral.ordered_at),
        // OBR-7 is the order time; OBR-31 (the reason) comes 24 fields later.
        pad = "|".repeat(24),
    ));
    let mut out = segments.join("\r");
    out.push('\r');
    out
}

/// The C-CDA R2.1 Referral Note (US Realm Header 2.16.840.1.113883.10.20.22.1.1 and Referral
/// Note 2.16.840.1.113883.10.20.22.1.14, both 2015-08-01): the patient, the referring
/// provider, the practice, and the sections the document type requires — the reason for the
/// referral with what refloop knows, and problems, allergies, medications and the plan as
/// "no information" (their entries live in the EHR).
pub fn referral_note(r: &Request<'_>) -> String {
    let referral = r.referral;
    let (family, given) = split_name(r.patient_name.unwrap_or(""));
    let (pfamily, pgiven) = split_name(r.provider_name.unwrap_or(""));
    let dob = r.birth_date.map(|b| b.replace('-', "")).filter(|b| b.len() == 8);
    let birth = match dob {
        Some(d) => format!("<birthTime value=\"{d}\"/>"),
        None => "<birthTime nullFlavor=\"UNK\"/>".to_owned(),
    };
    let now = r.now.strftime("%Y%m%d%H%M%S+0000").to_string();
    let specialty = referral.specialty.as_ref().map_or("a specialist", |s| s.as_str());
    let reason = match referral.reason.as_deref() {
        Some(reason) => format!("{} — referred to {} ({specialty}).", xml(reason), xml(r.specialist)),
        None => format!("Referred to {} ({specialty}).", xml(r.specialist)),
    };
    let empty = |template: &str, extension: &str, code: &str, name: &str| {
        format!(
            r#"<component><section nullFlavor="NI"><templateId root="{template}"/><templateId root="{template}" extension="{extension}"/><code code="{code}" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="{name}"/><title>{name}</title><text>No information: see the referring practice's record.</text></section></component>"#
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:sdtc="urn:hl7-org:sdtc">
<realmCode code="US"/>
<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
<templateId root="2.16.840.1.113883.10.20.22.1.1"/>
<templateId root="2.16.840.1.113883.10.20.22.1.1" extension="2015-08-01"/>
<templateId root="2.16.840.1.113883.10.20.22.1.14"/>
<templateId root="2.16.840.1.113883.10.20.22.1.14" extension="2015-08-01"/>
<id root="2.16.840.1.113883.3.9999.1" extension="{control}"/>
<code code="{REFERRAL_NOTE}" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Referral note"/>
<title>Referral Note</title>
<effectiveTime value="{now}"/>
<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
<languageCode code="en-US"/>
<recordTarget><patientRole>
<id root="2.16.840.1.113883.3.9999.2" extension="{pid}"/>
<addr nullFlavor="UNK"/><telecom nullFlavor="UNK"/>
<patient><name><given>{given}</given><family>{family}</family></name>
<administrativeGenderCode nullFlavor="UNK"/>{birth}</patient>
</patientRole></recordTarget>
<author><time value="{now}"/><assignedAuthor>
<id root="2.16.840.1.113883.3.9999.3" extension="{provider}"/>
<addr nullFlavor="UNK"/><telecom nullFlavor="UNK"/>
<assignedPerson><name><given>{pgiven}</given><family>{pfamily}</family></name></assignedPerson>
</assignedAuthor></author>
<custodian><assignedCustodian><representedCustodianOrganization>
<id root="2.16.840.1.113883.3.9999.4"/><name>{practice}</name><telecom nullFlavor="UNK"/><addr nullFlavor="UNK"/>
</representedCustodianOrganization></assignedCustodian></custodian>
<inFulfillmentOf><order><id root="2.16.840.1.113883.3.9999.5" extension="{referral_id}"/></order></inFulfillmentOf>
<component><structuredBody>
<component><section><templateId root="1.3.6.1.4.1.19376.1.5.3.1.3.1"/><templateId root="1.3.6.1.4.1.19376.1.5.3.1.3.1" extension="2014-06-09"/><code code="42349-1" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="Reason for referral"/><title>Reason for Referral</title><text><paragraph>{reason}</paragraph></text></section></component>
{problems}
{allergies}
{medications}
{plan}
</structuredBody></component>
</ClinicalDocument>
"#,
        control = xml(r.control_id),
        pid = xml(referral.patient_id.as_str()),
        given = xml(&given),
        family = xml(&family),
        provider = xml(referral.referring_provider.as_str()),
        pgiven = xml(&pgiven),
        pfamily = xml(&pfamily),
        practice = xml(r.practice),
        referral_id = xml(referral.id.as_str()),
        problems = empty("2.16.840.1.113883.10.20.22.2.5.1", "2015-08-01", "11450-4", "Problem list"),
        allergies =
            empty("2.16.840.1.113883.10.20.22.2.6.1", "2015-08-01", "48765-2", "Allergies and adverse reactions"),
        medications = empty("2.16.840.1.113883.10.20.22.2.1.1", "2014-06-09", "10160-0", "History of medication use"),
        plan = empty("2.16.840.1.113883.10.20.22.2.10", "2014-06-09", "18776-5", "Plan of care note"),
    )
}

/// The XDM package of a request: the `OMG^O19` and, for a new request, the Referral Note.
pub fn package(r: &Request<'_>) -> Vec<u8> {
    use crate::xdm::{Packed, pack};
    let omg = omg_o19(r);
    let note = referral_note(r);
    let mut docs = vec![Packed { name: "DOC0001.HL7", mime_type: HL7_V2, bytes: omg.as_bytes() }];
    if !r.cancel {
        docs.push(Packed { name: "DOC0002.XML", mime_type: "text/xml", bytes: note.as_bytes() });
    }
    pack(&docs, &r.now.strftime("%Y%m%d%H%M%S").to_string(), r.practice)
}

/// The media type XDS gives an HL7 v2 message.
pub const HL7_V2: &str = "x-application/hl7-v2+er7";

/// What a specialist's `OSU^O51` says of a referral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Our referral id (ORC-2.1).
    pub placer: String,
    /// `true`: accepted (ORC-5 `IP`, `SC`, `A`); `false`: declined or cancelled (`CA`, `DC`, `RE`).
    pub accepted: bool,
    /// ORC-16, the reason given.
    pub reason: Option<String>,
}

/// Reads an `OSU^O51`; why not when it is not one this understands.
pub fn status_of(raw: &[u8]) -> Result<Status, String> {
    let m = refloop_hl7::parse(raw).map_err(|e| format!("the HL7 v2 message cannot be read: {e}"))?;
    if m.message_type() != Some("OSU") {
        return Err(format!("an HL7 v2 {} message, not OSU^O51", m.message_type().unwrap_or("?")));
    }
    let orc = m.segment("ORC").ok_or_else(|| "OSU^O51 without ORC".to_owned())?;
    let placer = orc.get(2, 1).ok_or_else(|| "OSU^O51 without a placer order number (ORC-2)".to_owned())?;
    let accepted = match orc.get(5, 1).unwrap_or_default() {
        "IP" | "SC" | "A" | "CM" => true,
        "CA" | "DC" | "RE" | "D" => false,
        other => return Err(format!("OSU^O51 order status {other:?} (ORC-5) is not one refloop reads")),
    };
    let reason = orc.get(16, 2).or_else(|| orc.get(16, 1)).map(str::to_owned);
    Ok(Status { placer: placer.to_owned(), accepted, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_family_and_given() {
        assert_eq!(split_name("María José García"), ("García".into(), "María José".into()));
        assert_eq!(split_name("DOE^JANE^Q"), ("DOE".into(), "JANE Q".into()));
        assert_eq!(split_name("Cher"), ("Cher".into(), String::new()));
    }

    #[test]
    fn a_status_is_read_from_orc() {
        let osu = |status: &str| {
            format!(
                "MSH|^~\\&|SPEC|X|REFLOOP|Y|20260303100000||OSU^O51^OSU_O51|9|P|2.5.1\rORC|SC|ref_1^REFLOOP|||{status}|||||||||||^Not taking new patients\r"
            )
        };
        assert!(status_of(osu("IP").as_bytes()).unwrap().accepted);
        let declined = status_of(osu("CA").as_bytes()).unwrap();
        assert_eq!((declined.placer.as_str(), declined.accepted), ("ref_1", false));
        assert_eq!(declined.reason.as_deref(), Some("Not taking new patients"));
        assert!(status_of(osu("ZZ").as_bytes()).unwrap_err().contains("ZZ"));
        assert!(status_of(b"MSH|^~\\&|A|B|C|D|20260303||ADT^A04|1|P|2.5.1\r").unwrap_err().contains("ADT"));
    }
}
