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

impl AuditEntry {
    /// The hash that seals this row at `pos` in the chain after `prev`: SHA-256 (hex) of the
    /// JSON array of the place, the previous hash and every column, so no two rows' inputs
    /// can run together.
    pub fn chain_hash(&self, seq: i64, pos: i64, prev: &str) -> String {
        let input = serde_json::json!([
            pos,
            prev,
            seq,
            self.at.as_millisecond(),
            self.actor,
            self.action,
            self.resource_type,
            self.resource_id,
            self.remote,
        ]);
        crate::auth::hash_token(&input.to_string())
    }
}

/// The hash the first row of the chain follows.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit row as kept: its insertion number and, once sealed, its link in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
    pub seal: Option<AuditSeal>,
}

/// A row's link in the audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSeal {
    pub pos: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// Where the chain starts after a retention purge: the last purged row's place and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditAnchor {
    pub pos: i64,
    pub hash: String,
}

/// An audit search: every given filter must hold. Rows come newest first unless
/// `oldest_after` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// The actor as recorded (`admin:alice`, `integration:ehr`), or a bare name (`alice`) in
    /// any role.
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Rows naming any of these ids (alone or in a list read).
    pub ids: Vec<String>,
    pub from: Option<Timestamp>,
    /// Exclusive.
    pub to: Option<Timestamp>,
    pub limit: u32,
    /// Only rows with `seq` below this (the next page, newest first).
    pub before_seq: Option<i64>,
    /// Oldest first, from the row after this `seq` (an export's next page).
    pub oldest_after: Option<i64>,
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
    /// The TOTP secret (base32) once enrolment is confirmed: sign-in then asks for a code.
    #[serde(skip)]
    pub totp_secret: Option<String>,
    /// The secret being enrolled, until a code from it confirms it.
    #[serde(skip)]
    pub totp_pending: Option<String>,
    /// Signs in through the identity provider (OpenID Connect), never with a password here.
    pub sso: bool,
}

/// A single sign-on under way: what the browser must bring back (by a hash of its `state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoPending {
    pub state_hash: String,
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Where to go once signed in.
    pub next: String,
    pub created_at: Timestamp,
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
    pub stage: SessionStage,
}

/// How far a web session has got through signing in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStage {
    /// Signed in: every page the role allows.
    Full,
    /// The password was right; the second factor is still to come.
    Mfa,
    /// The password was right, and the role must enrol a second factor before anything else.
    Enrol,
}

impl SessionStage {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStage::Full => "full",
            SessionStage::Mfa => "mfa",
            SessionStage::Enrol => "enrol",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [SessionStage::Full, SessionStage::Mfa, SessionStage::Enrol].into_iter().find(|x| x.as_str() == s)
    }
}
