//! The JSON API end to end: the real server on loopback, a manual clock, and each test on
//! SQLite and on PostgreSQL. Folders follow the product: the lifecycle, the worklist,
//! what bad input gets.

/// Runs each listed `async fn(Backend)` as two tests: on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(refloop_testkit::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(refloop_testkit::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The `type`s of a referral's timeline, in order.
pub fn event_types(referral: &serde_json::Value) -> Vec<String> {
    referral["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

mod admin;
mod auth;
mod bad_input;
mod booking;
mod channels;
mod direct;
mod escalation;
mod fax;
mod fhir;
mod fhir_pull;
mod hl7;
mod lifecycle;
mod listing;
mod notes;
mod outbox;
mod reports;
mod search;
mod sms;
mod ui;
mod worklist;
mod x360;
