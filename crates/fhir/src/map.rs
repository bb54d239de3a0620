//! FHIR resources → what they mean for referrals ([`Mapped`]), with the rules in
//! docs/INTEGRATION.md ("FHIR R4"). Validation errors name the element by FHIRPath.

use std::collections::BTreeMap;

use jiff::{Timestamp, civil::Date, tz::TimeZone};
use refloop_app::{ContactUpdate, Mapped, NewReferral, Target};
use refloop_domain::{
    Input, Network, Origin, PatientId, ProviderId, Specialty, State, Urgency, is_consult_report_code,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    model::{
        Appointment, CodeableConcept, Composition, Consent, DocumentReference, Encounter, HumanName, Patient,
        Practitioner, PractitionerRole, Reference, ServiceRequest, Task,
    },
    outcome::{FhirError, Issue},
};

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const BSER: &str = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS";

/// SNOMED CT codes that make a ServiceRequest a referral (category or code).
const REFERRAL_CODES: &[&str] = &["3457005", "103696004", "306206005", "183444007"];

/// What the mapping needs besides the resource.
#[derive(Clone, Debug)]
pub struct FhirConfig {
    /// For dates without a time.
    pub time_zone: TimeZone,
    /// Lower-cased code, display or text of `performerType` / `specialty` → specialty.
    pub specialty_map: BTreeMap<String, Specialty>,
}

/// A resource's meaning, and what the sender should know about how it was read.
#[derive(Debug)]
pub struct Mapping {
    pub mapped: Mapped,
    pub warnings: Vec<Issue>,
}

impl Mapping {
    fn new(mapped: Mapped) -> Self {
        Self { mapped, warnings: Vec::new() }
    }
}

/// The FHIR request intents (ServiceRequest).
const REQUEST_INTENTS: &[&str] = &[
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];

/// The resource types that mean something for referrals (and may be pulled from an EHR).
pub const MAPPED: &[&str] =
    &["ServiceRequest", "Appointment", "Encounter", "DocumentReference", "Composition", "Task", "Patient", "Consent"];

/// The resource types `/fhir` accepts (create and update): the mapped ones, and context
/// that is taken and left alone. Also the only values of metric labels (`other` for the rest).
pub const ACCEPTED: &[&str] = &[
    "ServiceRequest",
    "Appointment",
    "Encounter",
    "DocumentReference",
    "Composition",
    "Task",
    "Patient",
    "Consent",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Procedure",
];

/// Reads `resource` (its `resourceType` already checked) into what it means.
pub fn map_resource(resource: &Value, cfg: &FhirConfig, now: Timestamp) -> Result<Mapping, FhirError> {
    let kind = resource.get("resourceType").and_then(Value::as_str).unwrap_or_default();
    let cx = Cx { cfg, now, kind };
    match kind {
        "ServiceRequest" => cx.service_request(&read(resource, kind)?),
        "Appointment" => cx.appointment(&read(resource, kind)?),
        "Encounter" => cx.encounter(&read(resource, kind)?),
        "DocumentReference" => cx.document_reference(&read(resource, kind)?),
        "Composition" => cx.composition(&read(resource, kind)?),
        "Task" => cx.task(&read(resource, kind)?),
        "Patient" => cx.patient(&read(resource, kind)?),
        "Consent" => cx.consent(&read(resource, kind)?),
        "Practitioner" => cx.practitioner(&read(resource, kind)?),
        "PractitionerRole" => cx.practitioner_role(&read(resource, kind)?),
        "Organization" | "Procedure" => Ok(Mapping::new(Mapped::Ignore("accepted; not used for referral tracking"))),
        other => Err(FhirError::new(
            404,
            Issue::error(
                "not-supported",
                format!("resource type {other} is not supported"),
                Some("resourceType".into()),
            ),
        )),
    }
}

/// Deserializes into the typed struct; a wrong type is an error at its FHIRPath.
fn read<T: DeserializeOwned>(resource: &Value, kind: &str) -> Result<T, FhirError> {
    serde_path_to_error::deserialize(resource).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // Only what was expected: serde's message also quotes the value, which may be
        // patient data.
        let why = match inner.split_once(", expected ") {
            Some((_, expected)) => {
                format!("wrong type, expected {}", expected.split(" at line").next().unwrap_or(expected))
            }
            None => "not readable as FHIR".to_owned(),
        };
        FhirError::invalid("structure", format!("{kind}.{path}: {why}"), Some(format!("{kind}.{path}")))
    })
}

fn required<'a, T>(value: &'a Option<T>, path: &str) -> Result<&'a T, FhirError> {
    value.as_ref().ok_or_else(|| FhirError::invalid("required", format!("{path} is required"), Some(path.to_owned())))
}

fn one_of<'a>(value: &'a Option<String>, path: &str, codes: &[&str]) -> Result<&'a str, FhirError> {
    let v = required(value, path)?;
    if codes.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(FhirError::invalid(
            "code-invalid",
            format!("{path}: '{v}' is not one of {}", codes.join(", ")),
            Some(path.to_owned()),
        ))
    }
}

struct Cx<'a> {
    cfg: &'a FhirConfig,
    now: Timestamp,
    kind: &'a str,
}

impl Cx<'_> {
    /// A FHIR date or dateTime; a date alone is midnight in the practice's time zone.
    fn time(&self, value: &Option<String>, path: &str) -> Result<Option<Timestamp>, FhirError> {
        let Some(v) = value.as_deref() else { return Ok(None) };
        let bad = || {
            FhirError::invalid(
                "value",
                format!("{}.{path}: not a FHIR dateTime", self.kind),
                Some(format!("{}.{path}", self.kind)),
            )
        };
        if v.contains('T') {
            return v.parse::<Timestamp>().map(Some).map_err(|_| bad());
        }
        let date = match v.len() {
            4 => format!("{v}-01-01"),
            7 => format!("{v}-01"),
            _ => v.to_owned(),
        };
        let d: Date = date.parse().map_err(|_| bad())?;
        d.to_zoned_datetime(self.cfg.time_zone.clone()).map(|z| Some(z.timestamp())).map_err(|_| bad())
    }

    fn path(&self, p: &str) -> String {
        format!("{}.{p}", self.kind)
    }

    /// A required list (`1..*`) must have an element.
    fn non_empty<T>(&self, list: &[T], element: &str) -> Result<(), FhirError> {
        if list.is_empty() {
            let path = self.path(element);
            return Err(FhirError::invalid("required", format!("{path} is required"), Some(path)));
        }
        Ok(())
    }

    fn specialty<'c>(&self, concepts: impl IntoIterator<Item = &'c CodeableConcept>) -> Option<Specialty> {
        concepts
            .into_iter()
            .flat_map(CodeableConcept::words)
            .find_map(|w| self.cfg.specialty_map.get(&w.trim().to_ascii_lowercase()).cloned())
    }

    fn patient_of(&self, r: &Option<Reference>) -> Option<PatientId> {
        r.as_ref().and_then(|r| r.id_of("Patient")).and_then(|id| PatientId::parse(id).ok())
    }

    fn service_request(&self, sr: &ServiceRequest) -> Result<Mapping, FhirError> {
        let status = one_of(
            &sr.status,
            &self.path("status"),
            &["draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"],
        )?;
        let intent = one_of(&sr.intent, &self.path("intent"), REQUEST_INTENTS)?;
        let subject = required(&sr.subject, &self.path("subject"))?;
        if let Some(p) = &sr.priority {
            one_of(&Some(p.clone()), &self.path("priority"), &["routine", "urgent", "asap", "stat"])?;
        }
        let ordered_at = self.time(&sr.authored_on, "authoredOn")?;
        let mut keys: Vec<String> = sr.id.iter().map(|id| format!("ServiceRequest/{id}")).collect();
        keys.extend(sr.identifier.iter().filter_map(|i| i.value.clone()));
        let is_referral =
            sr.category.iter().chain(&sr.code).any(|c| REFERRAL_CODES.iter().any(|code| c.has(SNOMED, code)))
                || sr.performer_type.is_some();
        let target = Target { keys: keys.clone(), patient: self.patient_of(&sr.subject), ..Target::default() };
        match status {
            "revoked" | "entered-in-error" => {
                let reason = if status == "revoked" { "revoked in the EHR" } else { "entered in error" };
                return Ok(Mapping::new(Mapped::Event {
                    target,
                    input: Input::Cancel { at: self.now, reason: Some(reason.into()) },
                }));
            }
            "active" => {}
            _ => return Ok(Mapping::new(Mapped::Ignore("a ServiceRequest that is not active"))),
        }
        if !is_referral {
            return Ok(Mapping::new(Mapped::Ignore("not a referral (no referral category, code or performerType)")));
        }
        if !matches!(intent, "order" | "original-order" | "reflex-order" | "filler-order" | "instance-order") {
            return Ok(Mapping::new(Mapped::Ignore("not an order (intent proposal, plan, directive or option)")));
        }
        let Some(patient_id) = subject.id_of("Patient").and_then(|id| PatientId::parse(id).ok()) else {
            return Err(FhirError::new(
                422,
                Issue::error("processing", "subject must reference a Patient", Some(self.path("subject"))),
            ));
        };
        let requester = sr.requester.as_ref();
        let provider = requester
            .and_then(|r| r.id_of("Practitioner").or_else(|| r.id_of("PractitionerRole")))
            .or_else(|| requester.and_then(|r| r.identifier.as_ref()).and_then(|i| i.value.as_deref()))
            .unwrap_or("unknown");
        let referring_provider = ProviderId::parse(provider)
            .map_err(|e| FhirError::invalid("value", e.to_string(), Some(self.path("requester"))))?;
        let mut warnings = Vec::new();
        if requester.is_none() {
            warnings.push(Issue::warning(
                "incomplete",
                "no requester: the referring provider is recorded as 'unknown'",
                Some(self.path("requester")),
            ));
        }
        let urgency = match sr.priority.as_deref() {
            Some("urgent") => Urgency::Urgent,
            Some("asap") => Urgency::Asap,
            Some("stat") => Urgency::Stat,
            _ => Urgency::Routine,
        };
        let specialty = self.specialty(sr.performer_type.iter().chain(&sr.code));
        let order = NewReferral {
            patient_id,
            patient: None,
            referring_provider,
            referring_provider_name: requester.and_then(|r| r.display.clone()),
            specialty,
            specialist: sr.performer.first().and_then(|p| p.display.clone()),
            urgency,
            origin: Origin::PhysicianOrder,
            network: Network::Unknown,
            reason: None,
            ordered_at,
            source_ids: keys,
            historical: false,
        };
        Ok(Mapping { mapped: Mapped::Order(Box::new(order)), warnings })
    }

    /// Keys of the ServiceRequests a resource is based on.
    fn based_on<'r>(&self, refs: impl IntoIterator<Item = &'r Reference>) -> Vec<String> {
        let mut keys = Vec::new();
        for r in refs {
            if let Some(id) = r.id_of("ServiceRequest") {
                keys.push(format!("ServiceRequest/{id}"));
                // One of ours, as we serve it (`ref-…`): matched by referral id.
                if id.starts_with("ref-") {
                    keys.push(crate::readback::our_id(id));
                }
            }
            if let Some(v) = r.identifier.as_ref().and_then(|i| i.value.clone()) {
                keys.push(v);
            }
        }
        keys
    }

    fn appointment(&self, a: &Appointment) -> Result<Mapping, FhirError> {
        let status = one_of(
            &a.status,
            &self.path("status"),
            &[
                "proposed",
                "pending",
                "booked",
                "arrived",
                "fulfilled",
                "cancelled",
                "noshow",
                "entered-in-error",
                "checked-in",
                "waitlist",
            ],
        )?;
        self.non_empty(&a.participant, "participant")?;
        let start = self.time(&a.start, "start")?;
        let patient = a.participant.iter().find_map(|p| self.patient_of(&p.actor));
        let target = Target {
            keys: self.based_on(&a.based_on),
            patient,
            specialty: self.specialty(a.specialty.iter().chain(&a.service_type)),
            fallback_allowed: true,
            review_unmatched: false,
            demographics: None,
        };
        let at =
            self.time(&a.meta.as_ref().and_then(|m| m.last_updated.clone()), "meta.lastUpdated")?.unwrap_or(self.now);
        let input = match status {
            "booked" => {
                let Some(start) = start else {
                    return Err(FhirError::invalid(
                        "required",
                        "a booked Appointment needs a start",
                        Some(self.path("start")),
                    ));
                };
                milestone(State::Scheduled, at.min(self.now), Some(start))
            }
            "arrived" | "checked-in" | "fulfilled" => milestone(State::Attended, start.unwrap_or(at), None),
            "noshow" => Input::NoShow { at: start.unwrap_or(at) },
            "cancelled" | "entered-in-error" => Input::AppointmentCancelled { at },
            _ => return Ok(Mapping::new(Mapped::Ignore("an appointment that is not booked yet"))),
        };
        Ok(Mapping::new(Mapped::Event { target, input }))
    }

    fn encounter(&self, e: &Encounter) -> Result<Mapping, FhirError> {
        let status = one_of(
            &e.status,
            &self.path("status"),
            &[
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown",
            ],
        )?;
        required(&e.class, &self.path("class"))?;
        let start = self.time(&e.period.as_ref().and_then(|p| p.start.clone()), "period.start")?;
        let keys = self.based_on(&e.based_on);
        if keys.is_empty() {
            return Ok(Mapping::new(Mapped::Ignore("an encounter not based on a referral")));
        }
        if !matches!(status, "arrived" | "triaged" | "in-progress" | "onleave" | "finished") {
            return Ok(Mapping::new(Mapped::Ignore("an encounter that did not take place")));
        }
        let target = Target {
            keys,
            patient: self.patient_of(&e.subject),
            specialty: None,
            fallback_allowed: false,
            review_unmatched: false,
            demographics: None,
        };
        Ok(Mapping::new(Mapped::Event { target, input: milestone(State::Attended, start.unwrap_or(self.now), None) }))
    }

    fn is_consult(&self, c: &Option<CodeableConcept>) -> bool {
        c.as_ref().is_some_and(|c| {
            c.coding
                .iter()
                .any(|k| k.system.as_deref() == Some(LOINC) && k.code.as_deref().is_some_and(is_consult_report_code))
        })
    }

    fn note(&self, keys: Vec<String>, subject: &Option<Reference>, at: Option<Timestamp>) -> Mapping {
        let target = Target {
            keys,
            patient: self.patient_of(subject),
            specialty: None,
            fallback_allowed: true,
            review_unmatched: false,
            demographics: None,
        };
        Mapping::new(Mapped::Event { target, input: milestone(State::NoteReceived, at.unwrap_or(self.now), None) })
    }

    fn document_reference(&self, d: &DocumentReference) -> Result<Mapping, FhirError> {
        let status = one_of(&d.status, &self.path("status"), &["current", "superseded", "entered-in-error"])?;
        if let Some(s) = &d.doc_status {
            one_of(
                &Some(s.clone()),
                &self.path("docStatus"),
                &["preliminary", "final", "amended", "entered-in-error"],
            )?;
        }
        self.non_empty(&d.content, "content")?;
        let at = self.time(&d.date, "date")?;
        if !self.is_consult(&d.kind) {
            return Ok(Mapping::new(Mapped::Ignore(
                "not a consult report (type outside the CMS50 Consultant Report codes)",
            )));
        }
        if status != "current" || matches!(d.doc_status.as_deref(), Some("preliminary" | "entered-in-error")) {
            return Ok(Mapping::new(Mapped::Ignore("a consult report that is not current and final")));
        }
        let keys = self.based_on(d.context.iter().flat_map(|c| &c.related));
        Ok(self.note(keys, &d.subject, at))
    }

    fn composition(&self, c: &Composition) -> Result<Mapping, FhirError> {
        let status = one_of(&c.status, &self.path("status"), &["preliminary", "final", "amended", "entered-in-error"])?;
        required(&c.kind, &self.path("type"))?;
        let at = self.time(&Some(required(&c.date, &self.path("date"))?.clone()), "date")?;
        self.non_empty(&c.author, "author")?;
        required(&c.title, &self.path("title"))?;
        if !self.is_consult(&c.kind) {
            return Ok(Mapping::new(Mapped::Ignore(
                "not a consult report (type outside the CMS50 Consultant Report codes)",
            )));
        }
        if !matches!(status, "final" | "amended") {
            return Ok(Mapping::new(Mapped::Ignore("a consult report that is not final")));
        }
        Ok(self.note(Vec::new(), &c.subject, at))
    }

    fn task(&self, t: &Task) -> Result<Mapping, FhirError> {
        let status = one_of(
            &t.status,
            &self.path("status"),
            &[
                "draft",
                "requested",
                "received",
                "accepted",
                "rejected",
                "ready",
                "cancelled",
                "in-progress",
                "on-hold",
                "failed",
                "completed",
                "entered-in-error",
            ],
        )?;
        // task-intent: `unknown` and the request intents but `directive`.
        let task_intents: Vec<&str> =
            std::iter::once("unknown").chain(REQUEST_INTENTS.iter().copied().filter(|i| *i != "directive")).collect();
        one_of(&t.intent, &self.path("intent"), &task_intents)?;
        let keys = self.based_on(t.based_on.iter().chain(&t.focus));
        let modified = self.time(&t.last_modified, "lastModified")?;
        let period_start =
            self.time(&t.execution_period.as_ref().and_then(|p| p.start.clone()), "executionPeriod.start")?;
        let period_end = self.time(&t.execution_period.as_ref().and_then(|p| p.end.clone()), "executionPeriod.end")?;
        let at = modified.or(period_end).or(period_start).unwrap_or(self.now).min(self.now);
        let target = Target {
            keys: keys.clone(),
            patient: self.patient_of(&t.for_),
            specialty: None,
            fallback_allowed: false,
            review_unmatched: false,
            demographics: None,
        };
        if keys.is_empty() {
            return Ok(Mapping::new(Mapped::Ignore("a task not based on a referral")));
        }
        let business = t
            .business_status
            .as_ref()
            .and_then(|b| b.coding.iter().find(|c| c.system.as_deref() == Some(BSER)).and_then(|c| c.code.as_deref()));
        if let Some(code) = business {
            let input = match code {
                "3.0" => Input::SpecialistResponded { at, accepted: true },
                "4.0" => Input::SpecialistResponded { at, accepted: false },
                "5.1.1" => milestone(State::Scheduled, at, period_start),
                "5.1.2" => Input::NoShow { at },
                "5.1.3" => Input::AppointmentCancelled { at },
                "5.1.4" => milestone(State::Attended, at, None),
                "6.0" => Input::Cancel { at, reason: Some("fulfillment cancelled by the recipient".into()) },
                "7.0" => milestone(State::NoteReceived, at, None),
                "2.0" | "5.2" => return Ok(Mapping::new(Mapped::Ignore("a business status with nothing to record"))),
                other => {
                    return Err(FhirError::invalid(
                        "code-invalid",
                        format!("Task.businessStatus: '{other}' is not a BSeR TaskBusinessStatus code"),
                        Some(self.path("businessStatus")),
                    ));
                }
            };
            // BSeR's own example says status requested with businessStatus 7.0: the business
            // status is the more specific statement, so it wins, with a warning.
            let done = matches!(code, "5.1.4" | "7.0");
            let open = matches!(status, "draft" | "requested" | "received" | "accepted" | "ready");
            let stopped = matches!(status, "cancelled" | "rejected" | "failed" | "entered-in-error");
            let mut mapping = Mapping::new(Mapped::Event { target, input });
            if done && (open || stopped) {
                mapping.warnings.push(Issue::warning(
                    "business-rule",
                    format!(
                        "Task.status '{status}' contradicts businessStatus '{code}'; the businessStatus was applied"
                    ),
                    Some(self.path("status")),
                ));
            }
            return Ok(mapping);
        }
        if self.is_consult(&t.code) {
            return Ok(if status == "completed" {
                Mapping::new(Mapped::Event { target, input: milestone(State::NoteReceived, at, None) })
            } else {
                Mapping::new(Mapped::Ignore("a consult-report task that is not completed"))
            });
        }
        Ok(Mapping::new(Mapped::Ignore("a task without a BSeR business status or consult-report code")))
    }

    fn patient(&self, p: &Patient) -> Result<Mapping, FhirError> {
        let Some(id) = p.id.as_deref() else {
            return Err(FhirError::invalid(
                "required",
                "Patient.id is required to update a patient",
                Some(self.path("id")),
            ));
        };
        let patient_id =
            PatientId::parse(id).map_err(|e| FhirError::invalid("value", e.to_string(), Some(self.path("id"))))?;
        let sms = p.telecom.iter().find(|t| t.system.as_deref() == Some("sms"));
        let mobile =
            p.telecom.iter().find(|t| t.system.as_deref() == Some("phone") && t.use_.as_deref() == Some("mobile"));
        let name = p.name.first().and_then(HumanName::written);
        let birth_date = match p.birth_date.as_deref() {
            // A full date; a year or year-month alone is not shown as a date of birth.
            Some(d) if d.len() == 10 => Some(
                d.parse::<jiff::civil::Date>()
                    .map_err(|_| FhirError::invalid("value", "not a date (YYYY-MM-DD)", Some(self.path("birthDate"))))?
                    .to_string(),
            ),
            _ => None,
        };
        // The preferred language, else the first: its text, else its display, else its code.
        let language = p
            .communication
            .iter()
            .find(|c| c.preferred == Some(true))
            .or_else(|| p.communication.first())
            .and_then(|c| c.language.as_ref())
            .and_then(|l| {
                l.text.clone().or_else(|| l.coding.iter().find_map(|c| c.display.clone().or_else(|| c.code.clone())))
            });
        Ok(Mapping::new(Mapped::Contact(ContactUpdate {
            patient_id,
            name,
            birth_date,
            language,
            phone: sms.or(mobile).and_then(|t| t.value.clone()),
            sms_consent: None,
        })))
    }

    fn practitioner(&self, p: &Practitioner) -> Result<Mapping, FhirError> {
        let name = p.name.first().and_then(HumanName::written);
        self.provider(p.id.as_deref(), name)
    }

    fn practitioner_role(&self, p: &PractitionerRole) -> Result<Mapping, FhirError> {
        self.provider(p.id.as_deref(), p.practitioner.as_ref().and_then(|r| r.display.clone()))
    }

    /// A referring provider's name under the id a ServiceRequest's `requester` names them by.
    fn provider(&self, id: Option<&str>, name: Option<String>) -> Result<Mapping, FhirError> {
        match (id, name.filter(|n| !n.trim().is_empty())) {
            (Some(id), Some(name)) => {
                let id = ProviderId::parse(id)
                    .map_err(|e| FhirError::invalid("value", e.to_string(), Some(self.path("id"))))?;
                Ok(Mapping::new(Mapped::Provider { id, name }))
            }
            _ => Ok(Mapping::new(Mapped::Ignore("accepted; no id and name to record"))),
        }
    }

    fn consent(&self, c: &Consent) -> Result<Mapping, FhirError> {
        let status = one_of(
            &c.status,
            &self.path("status"),
            &["draft", "proposed", "active", "rejected", "inactive", "entered-in-error"],
        )?;
        required(&c.scope, &self.path("scope"))?;
        self.non_empty(&c.category, "category")?;
        let about_sms = c.category.iter().chain(&c.scope).flat_map(CodeableConcept::words).any(|w| {
            let w = w.to_ascii_lowercase();
            w.contains("sms") || w.contains("text messag")
        });
        if !about_sms {
            return Ok(Mapping::new(Mapped::Ignore("a consent that is not about SMS")));
        }
        let Some(patient_id) = self.patient_of(&c.patient) else {
            return Err(FhirError::invalid(
                "required",
                "Consent.patient must reference a Patient",
                Some(self.path("patient")),
            ));
        };
        let permit = c.provision.as_ref().and_then(|p| p.kind.as_deref()) != Some("deny");
        let consent = match status {
            "active" => permit,
            "rejected" | "inactive" => false,
            _ => return Ok(Mapping::new(Mapped::Ignore("a consent that is not in force yet"))),
        };
        Ok(Mapping::new(Mapped::Contact(ContactUpdate {
            patient_id,
            name: None,
            birth_date: None,
            language: None,
            phone: None,
            sms_consent: Some(consent),
        })))
    }
}

fn milestone(state: State, at: Timestamp, appointment_at: Option<Timestamp>) -> Input {
    Input::Milestone { state, at, appointment_at, channel: Some("fhir".to_owned()) }
}
