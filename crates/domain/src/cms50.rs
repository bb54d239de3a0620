//! CMS50 (MIPS Quality ID 374) "Closing the Referral Loop: Receipt of Specialist Report",
//! CMS50FHIR 0.4.000 logic over measure facts (the EHR's encounters, procedures, referral
//! orders and consultant-report tasks), with the official value sets shipped as data.
//!
//! - Initial population: a qualifying encounter (finished, Office Visit / Ophthalmological /
//!   Preventive Care type) or procedure (completed, Behavioral/Neuropsych Assessment, Psych Visit
//!   Diagnostic Evaluation, or CPT 96112, 96156, 96136, 96138, 90839) during the measurement
//!   period, and a first referral: the earliest order (code in "Referral", status active or
//!   completed, intent order) authored from Jan 1 to Oct 31.
//! - Denominator = initial population.
//! - Numerator: a completed task with a "Consultant Report" code, based on that first referral,
//!   whose execution period ends after the referral was authored and within the period.

use std::{
    collections::{BTreeMap, HashSet},
    sync::OnceLock,
};

use jiff::{Timestamp, civil, tz::TimeZone};
use serde::{Deserialize, Serialize};

const VALUE_SETS: &str = include_str!("../data/cms50-valuesets.tsv");

const ENCOUNTER_SETS: [&str; 6] = [
    "OfficeVisit",
    "OphthalmologicalServices",
    "PreventiveCare,EstablishedOfficeVisit,0to17",
    "PreventiveCareServices,InitialOfficeVisit,0to17",
    "PreventiveCareServicesEstablishedOfficeVisit,18andUp",
    "PreventiveCareServicesInitialOfficeVisit,18andUp",
];
const PROCEDURE_SETS: [&str; 2] = ["Behavioral_NeuropsychAssessment", "PsychVisitDiagnosticEvaluation"];
const PROCEDURE_CPT: [&str; 5] = ["96112", "96156", "96136", "96138", "90839"];
const CPT: &str = "http://www.ama-assn.org/go/cpt";

/// A code as FHIR carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
}

/// One clinical fact the measure reads, from the EHR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fact {
    Encounter {
        status: String,
        codes: Vec<Coding>,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    },
    Procedure {
        status: String,
        codes: Vec<Coding>,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    },
    Referral {
        id: String,
        status: String,
        intent: String,
        codes: Vec<Coding>,
        authored_on: Option<Timestamp>,
        requester: Option<String>,
    },
    Report {
        status: String,
        codes: Vec<Coding>,
        based_on: Vec<String>,
        end: Option<Timestamp>,
    },
}

fn sets() -> &'static HashSet<(String, String, String)> {
    static SETS: OnceLock<HashSet<(String, String, String)>> = OnceLock::new();
    SETS.get_or_init(|| {
        VALUE_SETS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let mut p = l.split('\t');
                Some((p.next()?.to_owned(), p.next()?.to_owned(), p.next()?.to_owned()))
            })
            .collect()
    })
}

/// Whether any of `codes` is in one of the named value sets.
pub fn in_value_set(codes: &[Coding], names: &[&str]) -> bool {
    let s = sets();
    codes.iter().any(|c| names.iter().any(|n| s.contains(&((*n).to_owned(), c.system.clone(), c.code.clone()))))
}

/// The measurement period of `year` in `tz`: Jan 1 00:00 to Dec 31 end of day, and the end of
/// Oct 31 (the last day a referral counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: Timestamp,
    pub end: Timestamp,
    pub referral_end: Timestamp,
}

impl Period {
    pub fn year(year: i16, tz: &TimeZone) -> Option<Self> {
        let at = |m: i8, d: i8| civil::date(year, m, d).to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp());
        let next_year = civil::date(year.checked_add(1)?, 1, 1).to_zoned_datetime(tz.clone()).ok()?.timestamp();
        let nov1 = at(11, 1)?;
        let ms = jiff::SignedDuration::from_millis(1);
        Some(Period { start: at(1, 1)?, end: next_year - ms, referral_end: nov1 - ms })
    }

    fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t <= self.end
    }
}

/// Where one patient stands in the measure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PatientResult {
    pub initial_population: bool,
    pub denominator: bool,
    pub numerator: bool,
    /// The first referral's id and requester, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_referral: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// Evaluates one patient's facts for the period.
pub fn evaluate(facts: &[Fact], p: &Period) -> PatientResult {
    let during = |start: &Option<Timestamp>, end: &Option<Timestamp>| match (start, end) {
        (Some(s), Some(e)) => p.contains(*s) && p.contains(*e),
        (Some(s), None) | (None, Some(s)) => p.contains(*s),
        (None, None) => false,
    };
    let qualifying = facts.iter().any(|f| match f {
        Fact::Encounter { status, codes, start, end } => {
            status == "finished" && in_value_set(codes, &ENCOUNTER_SETS) && during(start, end)
        }
        Fact::Procedure { status, codes, start, end } => {
            let cpt = codes.iter().any(|c| c.system == CPT && PROCEDURE_CPT.contains(&c.code.as_str()));
            status == "completed" && (cpt || in_value_set(codes, &PROCEDURE_SETS)) && during(start, end)
        }
        _ => false,
    });
    let first = facts
        .iter()
        .filter_map(|f| match f {
            Fact::Referral { id, status, intent, codes, authored_on: Some(at), requester } => {
                let ok = matches!(status.as_str(), "active" | "completed")
                    && intent == "order"
                    && in_value_set(codes, &["Referral"])
                    && p.start <= *at
                    && *at <= p.referral_end;
                ok.then_some((*at, id, requester))
            }
            _ => None,
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let Some((authored, id, requester)) = first else {
        return PatientResult::default();
    };
    let ip = qualifying;
    let numerator = ip
        && facts.iter().any(|f| match f {
            Fact::Report { status, codes, based_on, end: Some(end) } => {
                status == "completed"
                    && in_value_set(codes, &["ConsultantReport"])
                    && based_on.iter().any(|b| b == id)
                    && *end > authored
                    && p.contains(*end)
            }
            _ => false,
        });
    PatientResult {
        initial_population: ip,
        denominator: ip,
        numerator,
        first_referral: ip.then(|| id.clone()),
        provider: if ip { requester.clone() } else { None },
    }
}

/// The counts and the patients behind them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub initial_population: usize,
    pub denominator: usize,
    pub numerator: usize,
    /// numerator / denominator, `None` when the denominator is empty.
    pub rate: Option<f64>,
    pub patients: Patients,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Patients {
    pub initial_population: Vec<String>,
    pub denominator: Vec<String>,
    pub numerator: Vec<String>,
}

impl Counts {
    fn add(&mut self, patient: &str, r: &PatientResult) {
        if r.initial_population {
            self.initial_population += 1;
            self.patients.initial_population.push(patient.to_owned());
        }
        if r.denominator {
            self.denominator += 1;
            self.patients.denominator.push(patient.to_owned());
        }
        if r.numerator {
            self.numerator += 1;
            self.patients.numerator.push(patient.to_owned());
        }
        self.rate = (self.denominator > 0)
            .then(|| (self.numerator as f64 / self.denominator as f64 * 10_000.0).round() / 10_000.0);
    }
}

/// The practice's figures and each referring provider's (by the first referral's requester).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cms50 {
    pub practice: Counts,
    pub providers: BTreeMap<String, Counts>,
}

/// Why the practice's figures are zero, from what the EHR sent (none when they are not):
/// what is missing, in the order the measure needs it.
pub fn zero_reasons<'a>(
    patients: impl IntoIterator<Item = (&'a str, &'a [Fact])>,
    p: &Period,
    result: &Cms50,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if result.practice.denominator > 0 && result.practice.numerator > 0 {
        return reasons;
    }
    let (mut any, mut encounters, mut referrals, mut coded, mut reports) = (false, false, false, false, false);
    for (_, facts) in patients {
        for f in facts {
            any = true;
            match f {
                Fact::Encounter { .. } | Fact::Procedure { .. } => encounters = true,
                Fact::Referral { codes, authored_on, .. } => {
                    referrals = true;
                    coded |= in_value_set(codes, &["Referral"])
                        && authored_on.is_some_and(|at| p.start <= at && at <= p.referral_end);
                }
                Fact::Report { .. } => reports = true,
            }
        }
    }
    if !any {
        reasons.push("no FHIR data received: CMS50 is computed from the Encounters, Procedures, ServiceRequests and Tasks the EHR sends over FHIR (HL7 v2 and CSV imports do not feed it)".into());
        return reasons;
    }
    if !encounters {
        reasons.push("no FHIR encounter data received (a finished office visit or procedure in the year is what puts a patient in the measure)".into());
    }
    if !referrals {
        reasons.push("no referral (ServiceRequest) received".into());
    } else if !coded {
        reasons.push("no referral with a code in the CMS50 Referral value set ordered between January 1 and October 31 of the year".into());
    }
    if result.practice.denominator > 0 && result.practice.numerator == 0 {
        reasons.push(if reports {
            "no consultant report that names its referral (Task.basedOn) and is in the Consultant Report value set, completed in the year".into()
        } else {
            "no consultant report (Task with the specialist's report) received".into()
        });
    } else if result.practice.denominator == 0 && encounters && coded {
        reasons.push("no patient had both a qualifying visit and a coded referral in the year".into());
    }
    reasons
}

/// Evaluates every patient (`patient id → facts`).
pub fn measure<'a>(patients: impl IntoIterator<Item = (&'a str, &'a [Fact])>, p: &Period) -> Cms50 {
    let mut out = Cms50::default();
    for (patient, facts) in patients {
        let r = evaluate(facts, p);
        out.practice.add(patient, &r);
        if r.initial_population {
            let who = r.provider.clone().unwrap_or_else(|| "(unattributed)".into());
            out.providers.entry(who).or_default().add(patient, &r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(system: &str, code: &str) -> Vec<Coding> {
        vec![Coding { system: system.into(), code: code.into() }]
    }

    fn t(s: &str) -> Option<Timestamp> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_zero_figure_says_what_is_missing() {
        let p = Period::year(2026, &jiff::tz::TimeZone::UTC).unwrap();
        let none: Vec<(&str, &[Fact])> = Vec::new();
        let empty = measure(none.clone(), &p);
        assert!(zero_reasons(none, &p, &empty)[0].starts_with("no FHIR data received"));
        let uncoded = [Fact::Referral {
            id: "sr1".into(),
            status: "active".into(),
            intent: "order".into(),
            codes: c("http://snomed.info/sct", "3457005"),
            authored_on: t("2026-03-01T00:00:00Z"),
            requester: None,
        }];
        let patients = [("p1", &uncoded[..])];
        let r = measure(patients, &p);
        let why = zero_reasons(patients, &p, &r);
        assert!(why.iter().any(|w| w.starts_with("no FHIR encounter data")), "{why:?}");
        assert!(why.iter().any(|w| w.contains("CMS50 Referral value set")), "{why:?}");
    }

    #[test]
    fn the_shipped_value_sets_hold_the_codes_the_measure_names() {
        assert!(in_value_set(&c("http://snomed.info/sct", "103696004"), &["Referral"]));
        assert!(!in_value_set(&c("http://snomed.info/sct", "3457005"), &["Referral"]), "not in the VSAC set");
        assert!(in_value_set(&c("http://loinc.org", "11488-4"), &["ConsultantReport"]));
    }

    #[test]
    fn a_referral_after_october_is_out_and_a_late_report_does_not_count() {
        let p = Period::year(2026, &TimeZone::UTC).unwrap();
        let enc = Fact::Encounter {
            status: "finished".into(),
            codes: c(CPT, "99213"),
            start: t("2026-03-01T10:00:00Z"),
            end: t("2026-03-01T10:30:00Z"),
        };
        let referral = |at: &str| Fact::Referral {
            id: "sr1".into(),
            status: "active".into(),
            intent: "order".into(),
            codes: c("http://snomed.info/sct", "103696004"),
            authored_on: t(at),
            requester: Some("Practitioner/1".into()),
        };
        let report = |end: &str| Fact::Report {
            status: "completed".into(),
            codes: c("http://loinc.org", "11488-4"),
            based_on: vec!["sr1".into()],
            end: t(end),
        };
        let r = evaluate(&[enc.clone(), referral("2026-10-31T23:59:00Z"), report("2026-12-31T23:00:00Z")], &p);
        assert!(r.initial_population && r.numerator);
        assert!(!evaluate(&[enc.clone(), referral("2026-11-01T00:00:00Z")], &p).initial_population);
        let late = evaluate(&[enc.clone(), referral("2026-06-01T00:00:00Z"), report("2027-01-01T00:00:00Z")], &p);
        assert!(late.denominator && !late.numerator);
        let before = evaluate(&[enc, referral("2026-06-01T00:00:00Z"), report("2026-05-31T23:59:00Z")], &p);
        assert!(!before.numerator);
    }
}
