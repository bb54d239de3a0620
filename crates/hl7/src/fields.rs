//! Field names of the segments refloop reads, for the message browser: "PID-5 Patient Name".
//! Names follow HL7 v2.5.1 chapter definitions (the same positions in 2.3–2.8).

/// Names from field 1 on; an empty name is a field we do not name.
fn names(segment: &str) -> &'static [&'static str] {
    match segment {
        "MSH" => &[
            "Field Separator",
            "Encoding Characters",
            "Sending Application",
            "Sending Facility",
            "Receiving Application",
            "Receiving Facility",
            "Date/Time of Message",
            "Security",
            "Message Type",
            "Message Control ID",
            "Processing ID",
            "Version ID",
            "Sequence Number",
            "Continuation Pointer",
            "Accept Acknowledgment Type",
            "Application Acknowledgment Type",
            "Country Code",
            "Character Set",
            "Principal Language of Message",
        ],
        "EVN" => &[
            "Event Type Code",
            "Recorded Date/Time",
            "Date/Time Planned Event",
            "Event Reason Code",
            "Operator ID",
            "Event Occurred",
        ],
        "PID" => &[
            "Set ID",
            "Patient ID",
            "Patient Identifier List",
            "Alternate Patient ID",
            "Patient Name",
            "Mother's Maiden Name",
            "Date/Time of Birth",
            "Administrative Sex",
            "Patient Alias",
            "Race",
            "Patient Address",
            "County Code",
            "Phone Number - Home",
            "Phone Number - Business",
            "Primary Language",
            "Marital Status",
            "Religion",
            "Patient Account Number",
            "SSN Number",
            "Driver's License Number",
        ],
        "PV1" => &[
            "Set ID",
            "Patient Class",
            "Assigned Patient Location",
            "Admission Type",
            "Preadmit Number",
            "Prior Patient Location",
            "Attending Doctor",
            "Referring Doctor",
            "Consulting Doctor",
            "Hospital Service",
            "Temporary Location",
            "Preadmit Test Indicator",
            "Re-admission Indicator",
            "Admit Source",
            "Ambulatory Status",
            "VIP Indicator",
            "Admitting Doctor",
            "Patient Type",
            "Visit Number",
        ],
        "ORC" => &[
            "Order Control",
            "Placer Order Number",
            "Filler Order Number",
            "Placer Group Number",
            "Order Status",
            "Response Flag",
            "Quantity/Timing",
            "Parent",
            "Date/Time of Transaction",
            "Entered By",
            "Verified By",
            "Ordering Provider",
            "Enterer's Location",
            "Call Back Phone Number",
            "Order Effective Date/Time",
            "Order Control Code Reason",
        ],
        "OBR" => &[
            "Set ID",
            "Placer Order Number",
            "Filler Order Number",
            "Universal Service Identifier",
            "Priority",
            "Requested Date/Time",
            "Observation Date/Time",
            "Observation End Date/Time",
            "Collection Volume",
            "Collector Identifier",
            "Specimen Action Code",
            "Danger Code",
            "Relevant Clinical Information",
            "Specimen Received Date/Time",
            "Specimen Source",
            "Ordering Provider",
            "Order Callback Phone Number",
            "Placer Field 1",
            "Placer Field 2",
            "Filler Field 1",
            "Filler Field 2",
            "Results Rpt/Status Chng",
            "Charge to Practice",
            "Diagnostic Serv Sect ID",
            "Result Status",
            "Parent Result",
            "Quantity/Timing",
        ],
        "OBX" => &[
            "Set ID",
            "Value Type",
            "Observation Identifier",
            "Observation Sub-ID",
            "Observation Value",
            "Units",
            "References Range",
            "Abnormal Flags",
            "Probability",
            "Nature of Abnormal Test",
            "Observation Result Status",
        ],
        "RF1" => &[
            "Referral Status",
            "Referral Priority",
            "Referral Type",
            "Referral Disposition",
            "Referral Category",
            "Originating Referral Identifier",
            "Effective Date",
            "Expiration Date",
            "Process Date",
            "Referral Reason",
            "External Referral Identifier",
        ],
        "PRD" => &[
            "Provider Role",
            "Provider Name",
            "Provider Address",
            "Provider Location",
            "Provider Communication Information",
            "Preferred Method of Contact",
            "Provider Identifiers",
            "Effective Start Date",
            "Effective End Date",
        ],
        "SCH" => &[
            "Placer Appointment ID",
            "Filler Appointment ID",
            "Occurrence Number",
            "Placer Group Number",
            "Schedule ID",
            "Event Reason",
            "Appointment Reason",
            "Appointment Type",
            "Appointment Duration",
            "Appointment Duration Units",
            "Appointment Timing Quantity",
            "Placer Contact Person",
            "Placer Contact Phone Number",
            "Placer Contact Address",
            "Placer Contact Location",
            "Filler Contact Person",
            "Filler Contact Phone Number",
            "Filler Contact Address",
            "Filler Contact Location",
            "Entered By Person",
            "Entered By Phone Number",
            "Entered By Location",
            "Parent Placer Appointment ID",
            "Parent Filler Appointment ID",
            "Filler Status Code",
            "Placer Order Number",
            "Filler Order Number",
        ],
        "AIS" => &["Set ID", "Segment Action Code", "Universal Service Identifier", "Start Date/Time"],
        "AIL" => &[
            "Set ID",
            "Segment Action Code",
            "Location Resource ID",
            "Location Type",
            "Location Group",
            "Start Date/Time",
        ],
        "AIP" => &[
            "Set ID",
            "Segment Action Code",
            "Personnel Resource ID",
            "Resource Type",
            "Resource Group",
            "Start Date/Time",
        ],
        "TQ1" => &[
            "Set ID",
            "Quantity",
            "Repeat Pattern",
            "Explicit Time",
            "Relative Time and Units",
            "Service Duration",
            "Start Date/Time",
            "End Date/Time",
            "Priority",
        ],
        "TXA" => &[
            "Set ID",
            "Document Type",
            "Document Content Presentation",
            "Activity Date/Time",
            "Primary Activity Provider",
            "Origination Date/Time",
            "Transcription Date/Time",
            "Edit Date/Time",
            "Originator Code/Name",
            "Assigned Document Authenticator",
            "Transcriptionist Code/Name",
            "Unique Document Number",
            "Parent Document Number",
            "Placer Order Number",
            "Filler Order Number",
            "Unique Document File Name",
            "Document Completion Status",
            "Document Confidentiality Status",
            "Document Availability Status",
        ],
        "DG1" => &[
            "Set ID",
            "Diagnosis Coding Method",
            "Diagnosis Code",
            "Diagnosis Description",
            "Diagnosis Date/Time",
            "Diagnosis Type",
        ],
        "NTE" => &["Set ID", "Source of Comment", "Comment", "Comment Type"],
        "MSA" => &["Acknowledgment Code", "Message Control ID", "Text Message"],
        "ERR" => &["Error Code and Location", "Error Location", "HL7 Error Code", "Severity"],
        _ => &[],
    }
}

/// The standard name of field `n` (1-based) of `segment`, when refloop knows it.
pub fn field_name(segment: &str, n: usize) -> Option<&'static str> {
    names(segment).get(n.checked_sub(1)?).copied().filter(|s| !s.is_empty())
}

use refloop_app::{FieldView, SegmentView};

/// `raw` segment by segment, each field with its position and name; `None` when it does not parse.
pub fn describe(raw: &[u8]) -> Option<Vec<SegmentView>> {
    let m = crate::parse(raw).ok()?;
    Some(
        m.segments
            .iter()
            .map(|s| SegmentView {
                id: s.id.clone(),
                fields: (1..=s.len())
                    .filter_map(|n| {
                        let value = if s.id == "MSH" && n == 1 {
                            m.delimiters.field.to_string()
                        } else if s.id == "MSH" && n == 2 {
                            m.delimiters.encoding_characters()
                        } else {
                            s.field_text(n, &m.delimiters)
                        };
                        (!value.is_empty()).then(|| FieldView {
                            position: format!("{}-{n}", s.id),
                            name: field_name(&s.id, n).unwrap_or(""),
                            value,
                        })
                    })
                    .collect(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_shown_field_by_field_with_names() {
        let raw = b"MSH|^~\\&|EHR|CLINIC|REFLOOP|PCP|20260302100000||REF^I12|C1|P|2.5\rPID|1||MRN1^^^H^MR||Doe^Jane~Roe^J||19800101\rRF1||R|CAR\r";
        let segs = describe(raw).unwrap();
        assert_eq!(segs.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["MSH", "PID", "RF1"]);
        let pid = &segs[1].fields;
        let five = pid.iter().find(|f| f.position == "PID-5").unwrap();
        assert_eq!((five.name, five.value.as_str()), ("Patient Name", "Doe^Jane~Roe^J"));
        assert_eq!(pid.iter().find(|f| f.position == "PID-3").unwrap().value, "MRN1^^^H^MR");
        let msh = &segs[0].fields;
        assert_eq!((msh[0].position.as_str(), msh[0].value.as_str()), ("MSH-1", "|"));
        assert_eq!(msh.iter().find(|f| f.position == "MSH-9").unwrap().name, "Message Type");
        assert!(describe(b"not hl7").is_none());
    }
}
