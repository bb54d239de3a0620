//! HL7 timestamps (TS/DTM): `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`.

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};

/// Parses an HL7 timestamp; without an offset it is local time in `tz`.
pub fn parse_ts(raw: &str, tz: &TimeZone) -> Option<Timestamp> {
    let raw = raw.trim();
    let (body, offset) = match raw.find(['+', '-']) {
        Some(i) => (&raw[..i], Some(&raw[i..])),
        None => (raw, None),
    };
    let (digits, _fraction) = body.split_once('.').unwrap_or((body, ""));
    if digits.len() < 8 || digits.len() > 14 || digits.len() % 2 != 0 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| digits.get(a..b).and_then(|s| s.parse::<i16>().ok());
    let dt = DateTime::new(
        n(0, 4)?,
        n(4, 6)? as i8,
        n(6, 8)? as i8,
        n(8, 10).unwrap_or(0) as i8,
        n(10, 12).unwrap_or(0) as i8,
        n(12, 14).unwrap_or(0) as i8,
        0,
    )
    .ok()?;
    match offset {
        Some(o) if o.len() == 5 && o[1..].bytes().all(|b| b.is_ascii_digit()) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hours: i32 = o[1..3].parse().ok()?;
            let minutes: i32 = o[3..5].parse().ok()?;
            let offset = jiff::tz::Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()?;
            offset.to_timestamp(dt).ok()
        }
        Some(_) => None,
        None => dt.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_precision_and_offsets() {
        let utc = TimeZone::UTC;
        assert_eq!(parse_ts("20260302", &utc), "2026-03-02T00:00:00Z".parse().ok());
        assert_eq!(parse_ts("202603021015", &utc), "2026-03-02T10:15:00Z".parse().ok());
        assert_eq!(parse_ts("20260302101530.1234", &utc), "2026-03-02T10:15:30Z".parse().ok());
        assert_eq!(parse_ts("202109240930+0215", &utc), "2021-09-24T07:15:00Z".parse().ok());
        assert_eq!(parse_ts("20260302101500-0500", &utc), "2026-03-02T15:15:00Z".parse().ok());
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(parse_ts("200803061000 ", &ny), "2008-03-06T15:00:00Z".parse().ok());
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for bad in ["", "2026", "2026030", "20261302", "yesterday", "20260302+05"] {
            assert_eq!(parse_ts(bad, &TimeZone::UTC), None, "{bad}");
        }
    }
}
