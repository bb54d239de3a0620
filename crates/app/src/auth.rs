//! Roles, API tokens and who is acting.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A role, as SPEC §6 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Coordinator,
    Viewer,
    Integration,
}

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read referrals, tasks, the outbox, reports.
    Read,
    /// See patients as people: names, dates of birth, phone numbers, languages (staff roles;
    /// not integrations). Every such read is audited.
    ReadPatients,
    /// Enter referrals and record their events (staff and EHR integrations).
    WriteReferrals,
    /// Work the worklist: claim and complete tasks.
    WorkTasks,
    /// Read raw inbound messages (the inbox, dead letters) and settle them: retry, apply to a
    /// referral, dismiss (staff; not viewers or integrations).
    Messages,
    /// Change the specialist directory, where note requests are sent (staff; not integrations).
    EditDirectory,
    /// Operate the service: drive the manual clock, manage tokens.
    Operate,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "coordinator" => Some(Role::Coordinator),
            "viewer" => Some(Role::Viewer),
            "integration" => Some(Role::Integration),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coordinator => "coordinator",
            Role::Viewer => "viewer",
            Role::Integration => "integration",
        }
    }

    pub fn may(self, p: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Coordinator => !matches!(p, Permission::Operate),
            Role::Viewer => matches!(p, Permission::Read | Permission::ReadPatients),
            // An integration writes what it sends and reads nothing back beyond the answers.
            Role::Integration => matches!(p, Permission::WriteReferrals),
        }
    }
}

/// Who is acting: a token's or user's name and role, or the system itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// The remote address, when the actor came over the network.
    pub remote: Option<String>,
    /// refloop itself rather than a person or integration.
    pub system: bool,
    /// For an inbound message: the system that sent it (its `[[hl7.senders]]` name, else
    /// MSH-3^MSH-4; the token's name over HTTP). Audit rows name it.
    pub sender: Option<String>,
}

impl Actor {
    /// refloop itself (timers, the outbox worker, the CLI).
    pub fn system(name: &str) -> Self {
        Self { name: name.to_owned(), role: Role::Admin, remote: None, system: true, sender: None }
    }

    /// A person or an integration (by token) acting in `role`, from `remote`.
    pub fn person(name: impl Into<String>, role: Role, remote: Option<String>) -> Self {
        Self { name: name.into(), role, remote, system: false, sender: None }
    }

    /// refloop applying an inbound message (`source`, e.g. `hl7v2/inb_…`) that `sender`
    /// sent from `remote`.
    pub fn inbound(source: &str, sender: Option<String>, remote: Option<String>) -> Self {
        Self { remote, sender, ..Self::system(source) }
    }

    /// The source recorded on events this actor causes.
    pub fn source(&self) -> String {
        let kind = if self.system { "system" } else { self.role.as_str() };
        format!("{kind}:{}", self.name)
    }
}

/// A new API token: `rfl_` and 43 base-64 characters (256 bits).
pub fn new_token() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 43];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let mut token = String::from("rfl_");
    token.extend(bytes.iter().map(|b| ALPHABET[usize::from(b & 63)] as char));
    token
}

/// How a token is stored: its SHA-256, hex. Tokens are random and long, so a fast hash is
/// enough; the token itself is never stored.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// API tokens: created, listed, revoked, and the actor behind one.
impl crate::App {
    /// Creates an API token and returns it; only its hash is stored. It is refused from
    /// `expires_at` on (never, when `None`).
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<jiff::Timestamp>,
    ) -> Result<String, crate::AppError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(crate::AppError::invalid("name", "a token needs a name"));
        }
        let token = new_token();
        let record = crate::TokenRecord {
            id: crate::new_id("tok"),
            name: name.to_owned(),
            role,
            hash: hash_token(&token),
            created_at: self.now(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_token(&record).await?;
        let cli = Actor::system("cli");
        self.store.audit(&self.audit_entry(&cli, "create", "token", &record.id)).await?;
        tracing::info!(token_id = %record.id, role = role.as_str(), "API token created");
        Ok(token)
    }

    /// Every API token (never the token itself; the stored hash stays inside).
    pub async fn tokens(&self) -> Result<Vec<crate::TokenRecord>, crate::AppError> {
        Ok(self.store.tokens().await?)
    }

    /// Revokes the live tokens with this id or name; their ids (none: nothing matched).
    pub async fn revoke_token(&self, which: &str, actor: &Actor) -> Result<Vec<String>, crate::AppError> {
        let revoked = self.store.revoke_tokens(which.trim(), self.now()).await?;
        for id in &revoked {
            self.store.audit(&self.audit_entry(actor, "revoke", "token", id)).await?;
            tracing::info!(token_id = %id, "API token revoked");
        }
        Ok(revoked)
    }

    /// The actor behind a bearer token, if the token is known, not revoked and not expired.
    /// A refused known token is logged and audited (a use after revocation or expiry).
    pub async fn authenticate(&self, token: &str, remote: Option<String>) -> Result<Option<Actor>, crate::AppError> {
        let Some(record) = self.store.token_by_hash(&hash_token(token)).await? else { return Ok(None) };
        let now = self.now();
        if !record.is_live(now) {
            let why = if record.revoked_at.is_some() { "revoked" } else { "expired" };
            tracing::warn!(token_id = %record.id, why, remote = remote.as_deref().unwrap_or("-"), "API token refused");
            let actor = Actor::person(record.name.clone(), record.role, remote);
            self.store.audit(&self.audit_entry(&actor, &format!("refused-{why}"), "token", &record.id)).await?;
            return Ok(None);
        }
        // At most one write a minute per token: most requests only read.
        if record.last_used_at.is_none_or(|at| now - at >= jiff::SignedDuration::from_secs(60)) {
            self.store.token_used(&record.id, now).await?;
        }
        Ok(Some(Actor::person(record.name, record.role, remote)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_reads_but_never_writes() {
        assert!(Role::Viewer.may(Permission::Read));
        for p in [Permission::WriteReferrals, Permission::WorkTasks, Permission::Operate] {
            assert!(!Role::Viewer.may(p));
        }
    }

    #[test]
    fn an_integration_writes_and_reads_nothing_back() {
        assert!(Role::Integration.may(Permission::WriteReferrals));
        for p in [
            Permission::Read,
            Permission::ReadPatients,
            Permission::Messages,
            Permission::EditDirectory,
            Permission::WorkTasks,
            Permission::Operate,
        ] {
            assert!(!Role::Integration.may(p), "{p:?}");
        }
        assert!(!Role::Viewer.may(Permission::Messages), "viewers see no raw messages");
        assert!(Role::Coordinator.may(Permission::Messages) && Role::Coordinator.may(Permission::EditDirectory));
    }

    #[test]
    fn tokens_are_distinct_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 47);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
