//! FHIR R4 (4.0.1) for refloop: what EHRs send (ServiceRequest, Appointment, Encounter,
//! DocumentReference, Composition, Task, Patient, Consent …) mapped to the same inbound path
//! as HL7 v2, and each tracked referral served back as a ServiceRequest with a tracking Task.
//!
//! Resources are read into typed structs of the elements we use (unknown elements are
//! ignored, the raw JSON is kept in the inbox); errors are `OperationOutcome`s whose
//! `expression` names the offending element.

mod audit;
mod capability;
pub mod cms50;
mod ingest;
mod lookup;
mod map;
mod model;
mod outcome;
mod pull;
mod readback;
mod writeback;

pub use audit::audit_event;
pub use capability::capability_statement;
pub use ingest::{BundleReply, FhirIngest, FhirProtocol, Reply};
pub use lookup::NoteLookup;
pub use map::{FhirConfig, MAPPED, map_resource};
pub use outcome::{FhirError, Issue, Severity, outcome};
pub use pull::{EhrAuth, EhrClient, PollReport, Poller, PullError};
pub use readback::{fhir_id, our_id, service_request, staff_task, tracking_task, tracking_task_id};
pub use writeback::EhrWriter;

/// The FHIR media type.
pub const FHIR_JSON: &str = "application/fhir+json";
