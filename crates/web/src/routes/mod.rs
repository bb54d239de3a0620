pub mod clock;
pub mod fhir;
pub mod health;
pub mod hl7v2;
pub mod inbox;
pub mod referrals;
pub mod sms;
pub mod tasks;
