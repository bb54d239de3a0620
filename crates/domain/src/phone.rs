//! Phone numbers in E.164 form: the only form the SMS channel accepts.

use serde::{Deserialize, Serialize};

/// A phone number in E.164 form: `+`, a country code not starting with 0, 8–15 digits in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Accepts `+15555550123` and the same with spaces, dashes, dots or parentheses.
    pub fn parse(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        let rest = trimmed.strip_prefix('+')?;
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return None,
            }
        }
        let n = digits.len() - 1;
        if !(8..=15).contains(&n) || digits.as_bytes()[1] == b'0' {
            return None;
        }
        Some(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PhoneE164 {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| "not an E.164 phone number".to_owned())
    }
}

impl From<PhoneE164> for String {
    fn from(p: PhoneE164) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_with_punctuation() {
        assert_eq!(PhoneE164::parse("+1 (555) 555-0123").unwrap().as_str(), "+15555550123");
        assert_eq!(PhoneE164::parse("+447700900123").unwrap().as_str(), "+447700900123");
    }

    #[test]
    fn refuses_national_short_long_and_lettered_numbers() {
        for bad in ["5555550123", "+1234567", "+1234567890123456", "+0123456789", "+1555CALLNOW", ""] {
            assert!(PhoneE164::parse(bad).is_none(), "{bad} should be refused");
        }
    }
}
