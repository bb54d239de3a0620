//! One definition of a report's period for every surface (UI, API, CLI, exports): dates are
//! local dates in the practice's time zone and both ends are inclusive; a full timestamp
//! (`2026-03-02T15:00:00Z`, or a local `2026-03-02T10:00`) is taken as the instant it names.

use jiff::{SignedDuration, Timestamp, civil, tz::TimeZone};

use crate::AppError;

/// What a period's bounds accept, for help texts and errors.
pub const PERIOD_HELP: &str = "a date YYYY-MM-DD (local to the practice, inclusive) or an RFC 3339 timestamp";

/// The length of the default period, in days (ending today).
pub const DEFAULT_DAYS: i64 = 90;

/// A bound of a period as an instant: a local date is the start of that day, or for the end
/// of a period the start of the next one (the day is included); a timestamp is itself.
pub fn bound(field: &str, raw: &str, tz: &TimeZone, end: bool) -> Result<Timestamp, AppError> {
    let raw = raw.trim();
    let invalid = || AppError::invalid(field, PERIOD_HELP);
    if let Ok(at) = raw.parse::<Timestamp>() {
        return Ok(at);
    }
    // A date alone (jiff would also read the date out of a local date-time).
    if raw.len() == 10
        && let Ok(date) = raw.parse::<civil::Date>()
    {
        let day = if end { date.tomorrow().map_err(|_| invalid())? } else { date };
        return day.to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).map_err(|_| invalid());
    }
    let local = raw.parse::<civil::DateTime>().map_err(|_| invalid())?;
    local.to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).map_err(|_| invalid())
}

/// The period `[from, to)` as instants from optional bounds: by default the
/// [`DEFAULT_DAYS`] days ending today (local). A period must end after it starts.
pub fn period(
    from: Option<&str>,
    to: Option<&str>,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), AppError> {
    let today = tz.to_datetime(now).date();
    let to = match to.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => bound("to", t, tz, true)?,
        None => bound("to", &today.to_string(), tz, true)?,
    };
    let from = match from.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => bound("from", f, tz, false)?,
        None => {
            let last = tz.to_datetime(to - SignedDuration::from_millis(1)).date();
            let first = last.checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1)).unwrap_or(last);
            bound("from", &first.to_string(), tz, false)?
        }
    };
    if to <= from {
        return Err(AppError::invalid("to", "the period must end after it starts"));
    }
    Ok((from, to))
}

/// The inclusive last local date of a period that ends (exclusively) at `to`.
pub fn last_day(to: Timestamp, tz: &TimeZone) -> civil::Date {
    tz.to_datetime(to - SignedDuration::from_millis(1)).date()
}

/// The local date of `t`, as exports write it next to the instant.
pub fn local_date(t: Timestamp, tz: &TimeZone) -> String {
    tz.to_datetime(t).date().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_date_is_a_whole_local_day_at_either_end() {
        let (from, to) = period(Some("2026-04-03"), Some("2026-04-03"), &ny(), ts("2026-05-01T00:00:00Z")).unwrap();
        assert_eq!((from, to), (ts("2026-04-03T04:00:00Z"), ts("2026-04-04T04:00:00Z")), "EDT: UTC−4");
        assert!(from <= ts("2026-04-03T04:30:00Z") && ts("2026-04-04T03:30:00Z") < to, "00:30 and 23:30 local");
        assert_eq!(last_day(to, &ny()).to_string(), "2026-04-03");
        assert_eq!(bound("from", "2026-04-03T12:00:00Z", &ny(), false).unwrap(), ts("2026-04-03T12:00:00Z"));
        assert_eq!(bound("from", "2026-04-03T09:00", &ny(), false).unwrap(), ts("2026-04-03T13:00:00Z"));
    }

    #[test]
    fn the_default_is_the_ninety_days_ending_today() {
        let now = ts("2026-04-03T03:30:00Z"); // 23:30 on 04-02 in New York
        let (from, to) = period(None, None, &ny(), now).unwrap();
        assert_eq!(last_day(to, &ny()).to_string(), "2026-04-02");
        assert_eq!(ny().to_datetime(from).date().to_string(), "2026-01-03");
    }

    #[test]
    fn a_period_that_ends_before_it_starts_or_a_bad_date_is_refused() {
        let now = ts("2026-05-01T00:00:00Z");
        assert!(matches!(period(Some("2026-04-04"), Some("2026-04-03"), &ny(), now), Err(AppError::Invalid { .. })));
        let err = period(Some("last tuesday"), None, &ny(), now).unwrap_err();
        assert!(err.to_string().starts_with("from: a date YYYY-MM-DD"), "{err}");
    }
}
