//! The facts CMS50 reads, taken from FHIR resources as they arrive: Encounter, Procedure,
//! ServiceRequest and Task. Each is keyed by `Type/id` and the patient's reference, so a
//! resent or updated resource replaces its fact.

use jiff::{Timestamp, civil, tz::TimeZone};
use refloop_domain::cms50::{Coding, Fact};
use serde_json::Value;

/// The resource types that carry measure facts.
pub const FACT_TYPES: [&str; 4] = ["Encounter", "Procedure", "ServiceRequest", "Task"];

/// A measure fact from one resource: `(key Type/id, patient reference, fact)`, or `None` for a
/// resource that carries none (another type, or no patient).
pub fn fact_of(r: &Value, tz: &TimeZone) -> Option<(String, String, Fact)> {
    let kind = r.get("resourceType")?.as_str()?;
    if !FACT_TYPES.contains(&kind) {
        return None;
    }
    let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
    let patient = ["subject", "for", "patient"].iter().find_map(|k| r.get(*k)?.get("reference")?.as_str())?.to_owned();
    let status = text(r, "status");
    let time = |v: Option<&Value>| v.and_then(Value::as_str).and_then(|s| instant(s, tz));
    let period =
        |name: &str| (time(r.get(name).and_then(|p| p.get("start"))), time(r.get(name).and_then(|p| p.get("end"))));
    let fact = match kind {
        "Encounter" => {
            let codes = r
                .get("type")
                .and_then(Value::as_array)
                .map(|ts| ts.iter().flat_map(codings).collect())
                .unwrap_or_default();
            let (start, end) = period("period");
            Fact::Encounter { status, codes, start, end }
        }
        "Procedure" => {
            let (start, end) = match time(r.get("performedDateTime")) {
                Some(t) => (Some(t), Some(t)),
                None => period("performedPeriod"),
            };
            Fact::Procedure { status, codes: r.get("code").map(codings).unwrap_or_default(), start, end }
        }
        "ServiceRequest" => Fact::Referral {
            id: format!("ServiceRequest/{id}"),
            status,
            intent: text(r, "intent"),
            codes: r.get("code").map(codings).unwrap_or_default(),
            authored_on: time(r.get("authoredOn")),
            requester: r.get("requester").and_then(|q| q.get("reference")).and_then(Value::as_str).map(str::to_owned),
        },
        _ => Fact::Report {
            status,
            codes: r.get("code").map(codings).unwrap_or_default(),
            based_on: r
                .get("basedOn")
                .and_then(Value::as_array)
                .map(|b| b.iter().filter_map(|x| x.get("reference")?.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            end: time(r.get("executionPeriod").and_then(|p| p.get("end"))),
        },
    };
    Some((format!("{kind}/{id}"), patient, fact))
}

fn text(r: &Value, k: &str) -> String {
    r.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn codings(cc: &Value) -> Vec<Coding> {
    cc.get("coding")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some(Coding {
                        system: c.get("system")?.as_str()?.to_owned(),
                        code: c.get("code")?.as_str()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A FHIR `dateTime`/`instant`; a bare date is the start of that day in `tz`.
fn instant(s: &str, tz: &TimeZone) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let d: civil::Date = s.get(..10)?.parse().ok()?;
    d.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp())
}
