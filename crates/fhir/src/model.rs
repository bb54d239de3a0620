//! The elements of each resource that refloop reads, as typed structs. Unknown elements
//! are ignored here (the inbox keeps the raw JSON); a wrong type is an error naming the
//! element.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
    pub text: Option<String>,
}

impl CodeableConcept {
    /// Codes, displays and text, in that order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        let codes = self.coding.iter().filter_map(|c| c.code.as_deref());
        let displays = self.coding.iter().filter_map(|c| c.display.as_deref());
        codes.chain(displays).chain(self.text.as_deref())
    }

    pub fn has(&self, system: &str, code: &str) -> bool {
        self.coding.iter().any(|c| c.system.as_deref() == Some(system) && c.code.as_deref() == Some(code))
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Identifier {
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Reference {
    pub reference: Option<String>,
    pub identifier: Option<Identifier>,
    pub display: Option<String>,
}

impl Reference {
    /// The id of a relative reference `Type/id` (or `…/Type/id/_history/n`) of `kind`.
    pub fn id_of(&self, kind: &str) -> Option<&str> {
        let r = self.reference.as_deref()?;
        let r = r.split("/_history/").next().unwrap_or(r);
        let (head, id) = r.rsplit_once('/')?;
        (head == kind || head.ends_with(&format!("/{kind}"))).then_some(id)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Period {
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub last_updated: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    pub id: Option<String>,
    #[serde(default)]
    pub identifier: Vec<Identifier>,
    pub status: Option<String>,
    pub intent: Option<String>,
    #[serde(default)]
    pub category: Vec<CodeableConcept>,
    pub priority: Option<String>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub authored_on: Option<String>,
    pub requester: Option<Reference>,
    pub performer_type: Option<CodeableConcept>,
    #[serde(default)]
    pub performer: Vec<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Participant {
    pub actor: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub start: Option<String>,
    #[serde(default)]
    pub based_on: Vec<Reference>,
    #[serde(default)]
    pub participant: Vec<Participant>,
    #[serde(default)]
    pub specialty: Vec<CodeableConcept>,
    #[serde(default)]
    pub service_type: Vec<CodeableConcept>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Encounter {
    pub status: Option<String>,
    pub class: Option<Coding>,
    pub subject: Option<Reference>,
    #[serde(default)]
    pub based_on: Vec<Reference>,
    pub period: Option<Period>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DocumentContext {
    #[serde(default)]
    pub related: Vec<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReference {
    pub status: Option<String>,
    pub doc_status: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub date: Option<String>,
    pub context: Option<DocumentContext>,
    #[serde(default)]
    pub content: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Composition {
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub date: Option<String>,
    #[serde(default)]
    pub author: Vec<Reference>,
    pub title: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub status: Option<String>,
    pub intent: Option<String>,
    pub business_status: Option<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub based_on: Vec<Reference>,
    pub focus: Option<Reference>,
    #[serde(rename = "for")]
    pub for_: Option<Reference>,
    pub last_modified: Option<String>,
    pub execution_period: Option<Period>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPoint {
    pub system: Option<String>,
    pub value: Option<String>,
    #[serde(rename = "use")]
    pub use_: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct HumanName {
    pub text: Option<String>,
    pub family: Option<String>,
    #[serde(default)]
    pub given: Vec<String>,
    #[serde(default)]
    pub prefix: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub id: Option<String>,
    #[serde(default)]
    pub name: Vec<HumanName>,
    #[serde(default)]
    pub telecom: Vec<ContactPoint>,
    pub birth_date: Option<String>,
    #[serde(default)]
    pub communication: Vec<PatientCommunication>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PatientCommunication {
    pub language: Option<CodeableConcept>,
    pub preferred: Option<bool>,
}

impl HumanName {
    /// The name as people write it: `text`, else prefixes, given names, then family.
    pub fn written(&self) -> Option<String> {
        self.text.clone().or_else(|| {
            let parts: Vec<&str> =
                self.prefix.iter().chain(&self.given).map(String::as_str).chain(self.family.as_deref()).collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    }
}

/// A Practitioner: a referring provider's name.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Practitioner {
    pub id: Option<String>,
    #[serde(default)]
    pub name: Vec<HumanName>,
}

/// A PractitionerRole: its practitioner's name, when the reference carries one.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PractitionerRole {
    pub id: Option<String>,
    pub practitioner: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Provision {
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    pub status: Option<String>,
    pub scope: Option<CodeableConcept>,
    #[serde(default)]
    pub category: Vec<CodeableConcept>,
    pub patient: Option<Reference>,
    pub provision: Option<Provision>,
}
