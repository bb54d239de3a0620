//! The practice's working calendar: which days it is open, its hours, its holidays (its own
//! list and, unless turned off, the US federal holidays as observed), and windows that count
//! either calendar time (`"7d"`) or business days (`"5bd"`).

use jiff::{
    Timestamp,
    civil::{Date, Time, Weekday},
    tz::TimeZone,
};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeSet, fmt, str::FromStr};

use crate::duration::Duration;

/// A stage window: calendar time, or a number of the practice's business days (the same
/// local time of day, that many open days later).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Window {
    Calendar(Duration),
    BusinessDays(u16),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid window {input:?}: expected a duration such as \"7d\" or \"24h\", or business days such as \"5bd\"")]
pub struct WindowError {
    input: String,
}

impl Window {
    pub const fn days(d: i64) -> Self {
        Window::Calendar(Duration::days(d))
    }
    pub const fn hours(h: i64) -> Self {
        Window::Calendar(Duration::hours(h))
    }

    /// The end of this window started at `at`, on `calendar` in the practice's zone `tz`.
    pub fn after(&self, at: Timestamp, calendar: &BusinessCalendar, tz: &TimeZone) -> Timestamp {
        match *self {
            Window::Calendar(d) => at.checked_add(d.to_signed()).unwrap_or(Timestamp::MAX),
            Window::BusinessDays(n) => calendar.add_business_days(at, n, tz),
        }
    }

    /// How people read it: "5 business days", "7 calendar days", "24 hours".
    pub fn reads(&self) -> String {
        match *self {
            Window::BusinessDays(1) => "1 business day".to_owned(),
            Window::BusinessDays(n) => format!("{n} business days"),
            Window::Calendar(d) if d.as_seconds() % 86_400 == 0 && d.as_seconds() >= 3 * 86_400 => {
                format!("{} calendar days", d.as_seconds() / 86_400)
            }
            Window::Calendar(d) if d.as_seconds() % 3600 == 0 => match d.as_seconds() / 3600 {
                1 => "1 hour".to_owned(),
                n => format!("{n} hours"),
            },
            Window::Calendar(d) => d.to_string(),
        }
    }
}

impl FromStr for Window {
    type Err = WindowError;
    fn from_str(s: &str) -> Result<Self, WindowError> {
        let t = s.trim();
        if let Some(n) = t.strip_suffix("bd") {
            return n
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n <= 2600)
                .map(Window::BusinessDays)
                .ok_or_else(|| WindowError { input: s.to_owned() });
        }
        t.parse::<Duration>().map(Window::Calendar).map_err(|_| WindowError { input: s.to_owned() })
    }
}

impl TryFrom<String> for Window {
    type Error = WindowError;
    fn try_from(s: String) -> Result<Self, WindowError> {
        s.parse()
    }
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        w.to_string()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Calendar(d) => d.fmt(f),
            Window::BusinessDays(n) => write!(f, "{n}bd"),
        }
    }
}

/// When the practice is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessCalendar {
    /// Open weekdays, Monday first.
    pub days: [bool; 7],
    pub opens: Time,
    pub closes: Time,
    /// The practice's own closed days.
    pub holidays: BTreeSet<Date>,
    /// The US federal holidays (as observed: a Saturday one on the Friday before, a Sunday
    /// one on the Monday after) are closed days too.
    pub us_federal: bool,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self {
            days: [true, true, true, true, true, false, false],
            opens: Time::constant(8, 0, 0, 0),
            closes: Time::constant(17, 0, 0, 0),
            holidays: BTreeSet::new(),
            us_federal: true,
        }
    }
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// `"mon"` … `"sun"` or the full English name as a weekday.
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    const NAMES: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let s = s.trim().to_ascii_lowercase();
    WEEKDAYS.iter().zip(NAMES).find(|((short, _), long)| s == *short || s == *long).map(|((_, d), _)| *d)
}

impl BusinessCalendar {
    /// Is `date` a business day: an open weekday that is not a holiday.
    pub fn is_open_day(&self, date: Date) -> bool {
        self.days[date.weekday().to_monday_zero_offset() as usize]
            && !self.holidays.contains(&date)
            && !(self.us_federal && us_federal_holiday(date).is_some())
    }

    /// The holiday `date` is, by name (the practice's own list reads "practice holiday").
    pub fn holiday(&self, date: Date) -> Option<&'static str> {
        if self.holidays.contains(&date) {
            return Some("practice holiday");
        }
        if self.us_federal { us_federal_holiday(date) } else { None }
    }

    /// `at` when the practice is open then; else its next opening.
    pub fn next_open(&self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let local = at.to_zoned_datetime(tz.clone());
        let (date, time) = (local.date(), local.time());
        if self.is_open_day(date) && time >= self.opens && time < self.closes {
            return at;
        }
        let mut day = if self.is_open_day(date) && time < self.opens { date } else { self.next_open_day(date) };
        if !self.is_open_day(day) {
            day = self.next_open_day(day);
        }
        day.to_datetime(self.opens).to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).unwrap_or(at)
    }

    /// The first business day after `date` (at most a year and a week on; a calendar with no
    /// open day at all gives the next day).
    pub fn next_open_day(&self, date: Date) -> Date {
        let mut day = date;
        for _ in 0..372 {
            day = day.tomorrow().unwrap_or(day);
            if self.is_open_day(day) {
                return day;
            }
        }
        date.tomorrow().unwrap_or(date)
    }

    /// `n` business days after `at`: the same local time of day on the `n`th business day
    /// after `at`'s date.
    pub fn add_business_days(&self, at: Timestamp, n: u16, tz: &TimeZone) -> Timestamp {
        let local = at.to_zoned_datetime(tz.clone());
        let mut day = local.date();
        for _ in 0..n {
            day = self.next_open_day(day);
        }
        day.to_datetime(local.time()).to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).unwrap_or(at)
    }

    /// The closed days from `from` on, weekends aside: up to `count` of them, within a year.
    pub fn next_holidays(&self, from: Date, count: usize) -> Vec<(Date, &'static str)> {
        let mut out = Vec::new();
        let mut day = from;
        for _ in 0..400 {
            if out.len() >= count {
                break;
            }
            if let Some(name) = self.holiday(day) {
                out.push((day, name));
            }
            day = day.tomorrow().unwrap_or(day);
        }
        out
    }

    /// "Mon–Fri 08:00–17:00".
    pub fn describe(&self) -> String {
        let open: Vec<&str> =
            WEEKDAYS.iter().zip(self.days).filter(|(_, on)| *on).map(|((short, _), _)| *short).collect();
        let days = if self.days == [true, true, true, true, true, false, false] {
            "Mon–Fri".to_owned()
        } else {
            open.iter().map(|d| capitalized(d)).collect::<Vec<_>>().join(", ")
        };
        format!("{days} {}–{}", self.opens.strftime("%H:%M"), self.closes.strftime("%H:%M"))
    }

    /// The open weekdays as written in configuration.
    pub fn set_days(&mut self, days: &[Weekday]) {
        self.days = [false; 7];
        for d in days {
            self.days[d.to_monday_zero_offset() as usize] = true;
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The US federal holiday observed on `date` (5 U.S.C. 6103), if any.
pub fn us_federal_holiday(date: Date) -> Option<&'static str> {
    use Weekday::*;
    let (y, m, d) = (date.year(), date.month(), date.day());
    let nth = |weekday: Weekday, n: i8| date.weekday() == weekday && (d - 1) / 7 + 1 == n;
    let last = |weekday: Weekday| date.weekday() == weekday && d + 7 > date.days_in_month();
    // Fixed-date holidays, observed on the nearest weekday.
    let fixed = [
        (1, 1, "New Year's Day"),
        (6, 19, "Juneteenth"),
        (7, 4, "Independence Day"),
        (11, 11, "Veterans Day"),
        (12, 25, "Christmas Day"),
    ];
    for (fm, fd, name) in fixed {
        // Juneteenth is a federal holiday from 2021.
        for year in [y, y + 1] {
            if fm == 6 && year < 2021 {
                continue;
            }
            let Ok(actual) = Date::new(year, fm, fd) else { continue };
            let observed = match actual.weekday() {
                Saturday => actual.yesterday().unwrap_or(actual),
                Sunday => actual.tomorrow().unwrap_or(actual),
                _ => actual,
            };
            if observed == date {
                return Some(name);
            }
        }
    }
    match m {
        1 if nth(Monday, 3) => Some("Birthday of Martin Luther King, Jr."),
        2 if nth(Monday, 3) => Some("Washington's Birthday"),
        5 if last(Monday) => Some("Memorial Day"),
        9 if nth(Monday, 1) => Some("Labor Day"),
        10 if nth(Monday, 2) => Some("Columbus Day"),
        11 if nth(Thursday, 4) => Some("Thanksgiving Day"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn windows_read_business_days_or_calendar_time() {
        assert_eq!("5bd".parse(), Ok(Window::BusinessDays(5)));
        assert_eq!("7d".parse(), Ok(Window::days(7)));
        assert_eq!(Window::BusinessDays(5).to_string(), "5bd");
        assert_eq!(Window::BusinessDays(5).reads(), "5 business days");
        assert_eq!(Window::days(7).reads(), "7 calendar days");
        assert_eq!(Window::hours(24).reads(), "24 hours");
        assert_eq!(Window::hours(48).reads(), "48 hours");
        for bad in ["", "bd", "-1bd", "5 b d", "1.5bd", "7x"] {
            assert!(bad.parse::<Window>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn the_us_federal_holidays_as_observed() {
        let named = |d: Date| us_federal_holiday(d);
        assert_eq!(named(date(2026, 1, 1)), Some("New Year's Day"));
        assert_eq!(named(date(2026, 1, 19)), Some("Birthday of Martin Luther King, Jr."));
        assert_eq!(named(date(2026, 2, 16)), Some("Washington's Birthday"));
        assert_eq!(named(date(2026, 5, 25)), Some("Memorial Day"));
        assert_eq!(named(date(2026, 6, 19)), Some("Juneteenth"));
        // 4 July 2026 is a Saturday: observed on Friday the 3rd.
        assert_eq!(named(date(2026, 7, 3)), Some("Independence Day"));
        assert_eq!(named(date(2026, 7, 4)), None);
        assert_eq!(named(date(2026, 9, 7)), Some("Labor Day"));
        assert_eq!(named(date(2026, 10, 12)), Some("Columbus Day"));
        assert_eq!(named(date(2026, 11, 11)), Some("Veterans Day"));
        assert_eq!(named(date(2026, 11, 26)), Some("Thanksgiving Day"));
        assert_eq!(named(date(2026, 12, 25)), Some("Christmas Day"));
        // 1 January 2028 is a Saturday: observed on Friday 31 December 2027.
        assert_eq!(named(date(2027, 12, 31)), Some("New Year's Day"));
        // 25 December 2022 was a Sunday: observed on Monday the 26th.
        assert_eq!(named(date(2022, 12, 26)), Some("Christmas Day"));
        assert_eq!(named(date(2026, 12, 7)), None);
        assert_eq!(named(date(2026, 5, 18)), None, "not the last Monday of May");
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let cal = BusinessCalendar::default();
        // Thursday 8 October 2026, 15:00 New York; Monday 12 October is Columbus Day.
        let thu = ts("2026-10-08T19:00:00Z");
        // Fri 9 (1), Tue 13 (2), Wed 14 (3), Thu 15 (4), Fri 16 (5) → Friday 16 October 15:00.
        assert_eq!(Window::BusinessDays(5).after(thu, &cal, &ny), ts("2026-10-16T19:00:00Z"));
        assert_eq!(Window::days(7).after(thu, &cal, &ny), ts("2026-10-15T19:00:00Z"));
        let no_federal = BusinessCalendar { us_federal: false, ..BusinessCalendar::default() };
        assert_eq!(Window::BusinessDays(5).after(thu, &no_federal, &ny), ts("2026-10-15T19:00:00Z"));
        let own = BusinessCalendar { holidays: [date(2026, 10, 9)].into(), ..no_federal };
        assert_eq!(Window::BusinessDays(5).after(thu, &own, &ny), ts("2026-10-16T19:00:00Z"));
    }

    #[test]
    fn the_next_opening_is_inside_business_hours() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let cal = BusinessCalendar::default();
        // Saturday 10 October 2026, 10:00 → Tuesday 13 October 08:00 (Monday is Columbus Day).
        assert_eq!(cal.next_open(ts("2026-10-10T14:00:00Z"), &ny), ts("2026-10-13T12:00:00Z"));
        // Wednesday 14 October, 07:00 → 08:00 the same day; 12:00 stays; 18:00 → Thursday 08:00.
        assert_eq!(cal.next_open(ts("2026-10-14T11:00:00Z"), &ny), ts("2026-10-14T12:00:00Z"));
        assert_eq!(cal.next_open(ts("2026-10-14T16:00:00Z"), &ny), ts("2026-10-14T16:00:00Z"));
        assert_eq!(cal.next_open(ts("2026-10-14T22:00:00Z"), &ny), ts("2026-10-15T12:00:00Z"));
        assert_eq!(cal.describe(), "Mon–Fri 08:00–17:00");
        let next = cal.next_holidays(date(2026, 12, 7), 3);
        assert_eq!(
            next,
            vec![
                (date(2026, 12, 25), "Christmas Day"),
                (date(2027, 1, 1), "New Year's Day"),
                (date(2027, 1, 18), "Birthday of Martin Luther King, Jr.")
            ]
        );
        assert_eq!(parse_weekday("Mon"), Some(Weekday::Monday));
        assert_eq!(parse_weekday("saturday"), Some(Weekday::Saturday));
        assert_eq!(parse_weekday("sa"), None);
        assert_eq!(parse_weekday("monx"), None);
    }
}
