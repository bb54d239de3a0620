//! Single sign-on through the practice's identity provider (OpenID Connect, authorization
//! code with PKCE): what the app keeps between the redirect out and the browser's return, and
//! the session it opens for the person the provider vouched for. The protocol itself (the
//! provider's metadata, the code exchange, the ID token's checks) is the web crate's.

use jiff::SignedDuration;
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, NewSession, Role, SessionStage, SsoPending, UserRecord, hash_token, new_token};

/// How long a sign-in may take at the provider.
pub const SSO_WITHIN: SignedDuration = SignedDuration::from_mins(10);

/// A sign-in just begun: what goes to the provider (`state`, `nonce`, the PKCE challenge).
#[derive(Clone, Debug)]
pub struct SsoStart {
    pub state: String,
    pub nonce: String,
    /// `BASE64URL(SHA-256(verifier))` (RFC 7636, S256).
    pub challenge: String,
}

/// Base64url without padding (RFC 4648 §5), as PKCE writes it.
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl App {
    /// Begins a sign-in that will come back to `next`: keeps the PKCE verifier and the
    /// nonce (by a hash of the state) for whichever process the browser returns to.
    pub async fn sso_begin(&self, next: &str) -> Result<SsoStart, AppError> {
        let (state, nonce, verifier) = (new_token(), new_token(), new_token());
        let challenge = base64url(&Sha256::digest(verifier.as_bytes()));
        self.store
            .put_sso_pending(&SsoPending {
                state_hash: hash_token(&state),
                nonce: nonce.clone(),
                verifier,
                next: next.to_owned(),
                created_at: self.wall.now(),
            })
            .await?;
        Ok(SsoStart { state, nonce, challenge })
    }

    /// The sign-in under way with this `state`, once (a second use finds nothing), if it
    /// began within [`SSO_WITHIN`].
    pub async fn sso_take(&self, state: &str) -> Result<Option<SsoPending>, AppError> {
        Ok(self.store.take_sso_pending(&hash_token(state), self.wall.now() - SSO_WITHIN).await?)
    }

    /// Opens a session for `username`, whom the identity provider vouched for, in `role`
    /// (from its claims; it may change at each sign-in). The user is kept as a single
    /// sign-on user, with no password here; a local account of the same name is never
    /// taken over, and a disabled one stays out. Audited, like every refusal.
    pub async fn sso_login(
        &self,
        username: &str,
        role: Option<Role>,
        remote: Option<String>,
    ) -> Result<NewSession, AppError> {
        let username = &crate::users::check_username(username)?;
        let existing = self.store.user(username).await?;
        let refuse = match (&existing, role) {
            (_, None) => Some("the account has no refloop role (none of its groups is in [auth.oidc.roles])"),
            (Some(u), _) if !u.sso => Some("a local account has this name"),
            (Some(u), _) if u.disabled => Some("the account is disabled"),
            _ => None,
        };
        let (None, Some(role)) = (refuse, role) else {
            let why = refuse.unwrap_or_default();
            let attempt = Actor { remote, ..Actor::system("sso") };
            self.audit_action(&attempt, "login-sso-refused", "user", username).await?;
            tracing::warn!(user = %username, why, "single sign-on refused");
            return Err(AppError::Conflict(format!("{why}: an admin must resolve it before {username} can sign in")));
        };
        let actor = Actor::person(username, role, remote.clone());
        let now = self.now();
        let user = UserRecord {
            username: username.to_owned(),
            role,
            // Not a PHC string: no password ever matches it.
            password_hash: "!sso".into(),
            disabled: false,
            created_at: existing.as_ref().map_or(now, |u| u.created_at),
            updated_at: now,
            failed_logins: 0,
            locked_until: None,
            totp_secret: None,
            totp_pending: None,
            sso: true,
        };
        self.store.upsert_user(&user).await?;
        if existing.as_ref().is_some_and(|u| u.role != role) {
            self.audit_action(&Actor::system("sso"), "role-change", "user", username).await?;
        }
        let session = self.open_session(username, SessionStage::Full).await?;
        self.audit_action(&actor, "login-sso", "user", username).await?;
        tracing::info!(user = %username, role = role.as_str(), "signed in through the identity provider");
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636 appendix B.
        let challenge = base64url(&Sha256::digest(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
    }
}
