//! Who may act, as stored: audit rows, API tokens, users and their web sessions.

use jiff::Timestamp;
use serde::Serialize;

use crate::auth::Role;

/// One audit row: who did what to which patient data, when and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub remote: Option<String>,
}

/// An API token as stored: the hash, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub hash: String,
    pub created_at: Timestamp,
    /// Refused from then on; `None` never expires (tokens made before expiry existed).
    pub expires_at: Option<Timestamp>,
    /// To the minute.
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl TokenRecord {
    /// Whether the token is accepted at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// A person who signs in to the web UI. The password is kept only as an argon2 hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub username: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Failed sign-ins in a row.
    pub failed_logins: u32,
    /// Sign-in refused until then (too many failures), unless an admin unlocks first.
    pub locked_until: Option<Timestamp>,
}

/// A web session as stored: a hash of the cookie value, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub hash: String,
    pub username: String,
    /// The token every form posted in this session must carry.
    pub csrf: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}
