//! Identifiers. Referral ids are minted by refloop (`ref_…`); patient and provider ids
//! come from the source system and are opaque, non-empty strings.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::referral::ParseError;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a trimmed, non-empty id of at most 128 characters.
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                let s = raw.trim();
                if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
                    return Err(ParseError::new(stringify!($name), "must be 1–128 printable characters"));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A referral's id, minted by refloop with the `ref_` prefix.
    ReferralId
);
string_id!(
    /// The patient's id in the source system (MRN or FHIR Patient id).
    PatientId
);
string_id!(
    /// The referring provider's id in the source system (NPI or local id).
    ProviderId
);

/// FNV-1a over `bytes`, continuing from `state` ([`FNV_OFFSET`] to start): a cheap, stable
/// spread for ids (retry jitter, report sample slots, simulated draws). Not for secrets.
pub fn fnv1a(state: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(state, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Where [`fnv1a`] starts.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
