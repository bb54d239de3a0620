//! The `refloop` binary itself: started, stopped and restarted as an operator would,
//! against real SQLite files and a real PostgreSQL.

mod audit;
mod chaos;
mod direct;
mod fhir;
mod hl7;
mod limits;
mod operate;
mod process;
mod reports;
mod serve;
mod simulate;
mod tools;
