//! Faults caused on purpose against real `serve` processes, each case counting what was
//! acknowledged or sent and asserting on the counts: kill -9 under an MLLP feed, PostgreSQL
//! cut off behind a proxy, a full SQLite disk, processes killed in the middle of SMS delivery,
//! a provider slower than the client's timeout or the outbox lease.
//!
//! The short versions run with the suite. `TEST_CHAOS=long` (see `scripts/chaos`) runs
//! each with more faults and messages; every case prints one row of the results table.

mod disk;
mod kill;
mod outage;
mod sms;

use refloop_testkit::Backend;

/// Whether this is the long run (`TEST_CHAOS=long`).
pub fn long_run() -> bool {
    std::env::var("TEST_CHAOS").is_ok_and(|v| v == "long")
}

/// The short or the long figure.
pub fn scaled(short: usize, long: usize) -> usize {
    if long_run() { long } else { short }
}

pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// One row of the results table `scripts/chaos` prints.
pub fn report(case: &str, backend: &str, faults: usize, items: usize, lost: usize, twice: usize) {
    println!("CHAOS | {case} | {backend} | {faults} | {items} | {lost} | {twice} |");
}

/// An order (REF^I12) with control id `control`, its placer id `R-{control}`, and a note of
/// `pad` bytes.
pub fn ref_i12(control: &str, pad: usize) -> String {
    let pad = "X".repeat(pad);
    format!(
        "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000||REF^I12|{control}|P|2.5.1\r\
         RF1|P|R|CAR||O|R-{control}^EPIC|20260302|||{pad}\rPRD|RP|ADAMS^ANN|||||NPI123\rPID|1||MRN-{control}^^^NORTH^MR\r"
    )
}

/// Compares what was kept (the first source id of each referral) with what was
/// acknowledged: (acknowledged but not kept, kept more than once).
pub fn lost_and_twice<'a>(
    kept: &[String],
    acknowledged: impl IntoIterator<Item = &'a String>,
) -> (Vec<String>, Vec<String>) {
    let mut count = std::collections::BTreeMap::<&str, usize>::new();
    for k in kept {
        *count.entry(k.trim_start_matches("R-")).or_default() += 1;
    }
    let lost = acknowledged.into_iter().filter(|a| !count.contains_key(a.as_str())).cloned().collect();
    let twice = count.iter().filter(|(_, n)| **n > 1).map(|(k, _)| (*k).to_owned()).collect();
    (lost, twice)
}
