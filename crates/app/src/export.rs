//! The referral export: one row per referral with every milestone time, the stage durations
//! and the leak reason — the same columns in CSV and JSON, for the CLI and the UI.

use crate::{leak_of, spans_of};

/// The export columns, in order.
pub const COLUMNS: &[&str] = &[
    "referral_id",
    "patient_id",
    "referring_provider",
    "specialty",
    "specialist",
    "urgency",
    "network",
    "origin",
    "tracked",
    "duplicate_of",
    "state",
    "ordered_at",
    "ordered_date_local",
    "patient_notified_at",
    "scheduled_at",
    "appointment_at",
    "attended_at",
    "note_received_at",
    "cancelled_at",
    "no_shows",
    "days_ordered_to_notified",
    "days_notified_to_scheduled",
    "days_scheduled_to_attended",
    "days_attended_to_note",
    "days_order_to_note",
    "leak_stage",
    "leak_reason",
    "closed_at",
    "close_reason",
    "in_progress",
];

/// An instant as the API and exports write it: ISO 8601 in UTC with milliseconds
/// (`2026-03-02T15:00:00.000Z`), so every value has the same shape and sorts as text.
pub fn iso(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One referral's cells; `tz` (the practice's) gives the local date columns; whether it
/// is still in progress (open, within its current stage's window) when exported (`maturity`).
pub fn row(r: &refloop_domain::Referral, tz: &jiff::tz::TimeZone, maturity: &crate::Maturity<'_>) -> Vec<String> {
    let t = |v: Option<jiff::Timestamp>| v.map(iso).unwrap_or_default();
    let m = &r.milestones;
    let mut row = vec![
        r.id.to_string(),
        r.patient_id.as_str().to_owned(),
        r.referring_provider.as_str().to_owned(),
        r.specialty.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        r.specialist.clone().unwrap_or_default(),
        r.urgency.as_str().to_owned(),
        r.network.as_str().to_owned(),
        r.origin.as_str().to_owned(),
        r.is_tracked().to_string(),
        r.duplicate_of.as_ref().map(|d| d.to_string()).unwrap_or_default(),
        r.state.as_str().to_owned(),
        iso(r.ordered_at),
        crate::period::local_date(r.ordered_at, tz),
        t(m.patient_notified),
        t(m.scheduled),
        t(r.appointment_at),
        t(m.attended),
        t(m.note_received),
        t(m.cancelled),
        r.no_shows.to_string(),
    ];
    row.extend(spans_of(r).iter().map(|(_, d)| d.map(|d| format!("{d:.2}")).unwrap_or_default()));
    let (stage, reason) = leak_of(r).unwrap_or(("", String::new()));
    row.push(stage.to_owned());
    row.push(reason);
    // When the referral ended, whichever way: its note, a close without one, a cancel.
    row.push(t(m.note_received.or(m.closed_incomplete).or(m.cancelled)));
    row.push(r.close_reason.clone().unwrap_or_default());
    row.push(maturity.in_progress(r).to_string());
    row
}

/// A cell as JSON: numbers and booleans as such, empty as null.
fn json_cell(column: &str, v: String) -> serde_json::Value {
    use serde_json::Value;
    if v.is_empty() {
        return Value::Null;
    }
    match column {
        "tracked" | "in_progress" => Value::Bool(v == "true"),
        c if c.starts_with("days_") || c == "no_shows" => {
            v.parse::<f64>().map_or(Value::String(v), |n| serde_json::json!(n))
        }
        _ => Value::String(v),
    }
}

/// Writes the CSV export (a header row, then one row per referral).
pub fn write_csv<W: std::io::Write>(
    referrals: &[refloop_domain::Referral],
    tz: &jiff::tz::TimeZone,
    m: &crate::Maturity<'_>,
    out: W,
) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    for r in referrals {
        w.write_record(row(r, tz, m).into_iter().map(inert))?;
    }
    w.flush()
}

/// A text cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return) gets a leading `'`, so it is shown as text (OWASP, CSV injection).
/// Numbers stay numbers.
fn inert(cell: String) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() { format!("'{cell}") } else { cell }
}

/// The JSON export: one object per referral, numbers and booleans typed, empty cells null.
pub fn json_rows(
    referrals: &[refloop_domain::Referral],
    tz: &jiff::tz::TimeZone,
    m: &crate::Maturity<'_>,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    referrals
        .iter()
        .map(|r| COLUMNS.iter().zip(row(r, tz, m)).map(|(k, v)| ((*k).to_owned(), json_cell(k, v))).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_a_spreadsheet_would_run_are_written_as_text() {
        for (cell, written) in [
            ("=1+2", "'=1+2"),
            ("+SUM(A1)", "'+SUM(A1)"),
            ("-2+3", "'-2+3"),
            ("@cmd", "'@cmd"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-1.5", "-1.5"),
            ("dr-adams", "dr-adams"),
        ] {
            assert_eq!(super::inert(cell.to_owned()), written);
        }
    }

    #[test]
    fn instants_are_written_with_milliseconds_in_utc() {
        let t: jiff::Timestamp = "2026-03-02T10:00:00-05:00".parse().unwrap();
        assert_eq!(super::iso(t), "2026-03-02T15:00:00.000Z");
        let t: jiff::Timestamp = "2026-03-02T15:00:00.1239Z".parse().unwrap();
        assert_eq!(super::iso(t), "2026-03-02T15:00:00.123Z");
    }
}
