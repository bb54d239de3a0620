//! Durations written the way people write windows: `24h`, `7d`, `90m`, `2w`, `1d12h`.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// A non-negative span of time with second precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Duration {
    seconds: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: expected a number and a unit (s, m, h, d, w), e.g. \"7d\" or \"1d12h\"")]
pub struct DurationError {
    input: String,
}

impl Duration {
    pub const fn seconds(seconds: i64) -> Self {
        Self { seconds }
    }
    pub const fn minutes(m: i64) -> Self {
        Self::seconds(m * 60)
    }
    pub const fn hours(h: i64) -> Self {
        Self::seconds(h * 3600)
    }
    pub const fn days(d: i64) -> Self {
        Self::seconds(d * 86_400)
    }
    pub const fn as_seconds(self) -> i64 {
        self.seconds
    }
    pub fn to_signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.seconds)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        let err = || DurationError { input: s.to_owned() };
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Err(err());
        }
        let mut total: i64 = 0;
        let mut number = String::new();
        for c in compact.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(err()),
            };
            let n: i64 = number.parse().map_err(|_| err())?;
            number.clear();
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .filter(|v| *v <= 3650 * 86_400)
                .ok_or_else(err)?;
        }
        if !number.is_empty() {
            return Err(err());
        }
        Ok(Self::seconds(total))
    }
}

impl TryFrom<String> for Duration {
    type Error = DurationError;
    fn try_from(s: String) -> Result<Self, DurationError> {
        s.parse()
    }
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        d.to_string()
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.seconds;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_people_write() {
        assert_eq!("24h".parse(), Ok(Duration::hours(24)));
        assert_eq!("7d".parse(), Ok(Duration::days(7)));
        assert_eq!("1d12h".parse(), Ok(Duration::hours(36)));
        assert_eq!("2w".parse(), Ok(Duration::days(14)));
        assert_eq!("90m".parse(), Ok(Duration::minutes(90)));
        assert_eq!(Duration::hours(36).to_string(), "1d12h");
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "7", "d", "7x", "-1d", "1.5d", "99999999999d"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} should be refused");
        }
    }
}
