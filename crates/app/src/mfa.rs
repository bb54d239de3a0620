//! The second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of skew either
//! way) with ten single-use recovery codes. Enrolment shows a secret and confirms it with a
//! code; sign-in then asks for a code after the password. Codes are checked against the wall
//! clock (an authenticator app never follows the manual clock), and each time step is taken
//! once, so a code seen over a shoulder cannot be replayed.

use totp_rs::{Algorithm, Secret, TOTP};

use crate::{Actor, App, AppError, NewSession, Role, SessionRecord, SessionStage, hash_token, users::user_actor};

/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
const STEP: u64 = 30;

/// A secret being enrolled: as text to type, and as the `otpauth://` link an authenticator
/// app reads.
#[derive(Clone, Debug)]
pub struct Enrolment {
    pub secret: String,
    pub url: String,
}

fn totp(secret_b32: &str, username: &str) -> Result<TOTP, AppError> {
    let bytes = Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|_| AppError::Internal("a stored TOTP secret is not base32".into()))?;
    TOTP::new(Algorithm::SHA1, 6, 1, STEP, bytes, Some("refloop".into()), username.to_owned())
        .map_err(|e| AppError::Internal(format!("TOTP: {e}")))
}

/// A recovery code: ten letters and digits in two groups (`k3x9m-p2q7w`), 50 bits.
fn recovery_code() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let chars: String = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// A typed recovery code as it is hashed: lower case, without spaces or dashes.
fn normal_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

impl App {
    /// The TOTP time step a code matches for `secret` now (within one step either way), if any.
    fn matching_step(&self, secret: &str, username: &str, code: &str) -> Result<Option<i64>, AppError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let t = totp(secret, username)?;
        let now = u64::try_from(self.wall.now().as_second()).unwrap_or(0);
        for at in [now.saturating_sub(STEP), now, now + STEP] {
            if t.generate(at) == code {
                return Ok(Some(i64::try_from(at / STEP).unwrap_or(i64::MAX)));
            }
        }
        Ok(None)
    }

    /// The enrolment under way for `actor`, or a new one: the same secret until it is
    /// confirmed, so a page shown again after a mistyped code still matches the app.
    pub async fn mfa_enrolment(&self, actor: &Actor) -> Result<Enrolment, AppError> {
        let user = self.user_record(&actor.name).await?;
        match user.totp_pending {
            Some(secret) => Ok(Enrolment { url: totp(&secret, &user.username)?.get_url(), secret }),
            None => self.mfa_begin(actor).await,
        }
    }

    /// Whether `username` signs in with a second factor.
    pub async fn mfa_enrolled(&self, username: &str) -> Result<bool, AppError> {
        Ok(self.user_record(username).await?.totp_secret.is_some())
    }

    /// Starts (or restarts) enrolment for `actor`: a new secret, kept as pending until a code
    /// from it confirms it. Audited.
    pub async fn mfa_begin(&self, actor: &Actor) -> Result<Enrolment, AppError> {
        let user = self.user_record(&actor.name).await?;
        let mut raw = [0u8; 20];
        getrandom::fill(&mut raw).expect("the operating system's random source is available");
        let secret = Secret::Raw(raw.to_vec()).to_encoded().to_string();
        self.store.set_totp(&user.username, user.totp_secret.as_deref(), Some(&secret), None).await?;
        self.audit_action(actor, "mfa-enrol-start", "user", &user.username).await?;
        Ok(Enrolment { url: totp(&secret, &user.username)?.get_url(), secret })
    }

    /// Confirms enrolment with a code from the pending secret: the secret becomes the
    /// user's, ten recovery codes are made (returned once; only hashes are kept), and a
    /// session that was waiting for enrolment becomes a full one (a new cookie, returned).
    pub async fn mfa_confirm(
        &self,
        actor: &Actor,
        session_token: &str,
        code: &str,
    ) -> Result<(Vec<String>, Option<NewSession>), AppError> {
        let user = self.user_record(&actor.name).await?;
        let Some(pending) = user.totp_pending.clone() else {
            return Err(AppError::Conflict("no enrolment is under way: start again".into()));
        };
        let Some(step) = self.matching_step(&pending, &user.username, code)? else {
            self.audit_action(actor, "mfa-enrol-failed", "user", &user.username).await?;
            return Err(AppError::invalid(
                "code",
                "that code does not match: check the app's clock and try the next one",
            ));
        };
        self.store.set_totp(&user.username, Some(&pending), None, Some(step)).await?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| hash_token(&normal_code(c))).collect();
        self.store.set_recovery_codes(&user.username, &hashes).await?;
        self.audit_action(actor, "mfa-enrol", "user", &user.username).await?;
        tracing::info!(user = %user.username, "second factor enrolled");
        let upgraded = match self.store.session(&hash_token(session_token)).await? {
            Some(s) if s.stage == SessionStage::Enrol => Some(self.replace_session(&s, actor).await?),
            _ => None,
        };
        Ok((codes, upgraded))
    }

    /// The second sign-in step: a TOTP code or a recovery code for a session that waits for
    /// one. Right: the session is replaced by a full one (returned). Wrong: counted with the
    /// password failures (the same lockout), audited, `None`.
    pub async fn mfa_verify(
        &self,
        session_token: &str,
        code: &str,
        remote: Option<String>,
    ) -> Result<Option<NewSession>, AppError> {
        let hash = hash_token(session_token);
        let Some(s) = self.store.session(&hash).await?.filter(|s| s.stage == SessionStage::Mfa) else {
            return Ok(None);
        };
        let user = self.user_record(&s.username).await?;
        let actor = Actor { remote: remote.clone(), ..user_actor(&user) };
        let now = self.now();
        let locked = user.locked_until.is_some_and(|until| now < until);
        let secret = user.totp_secret.clone().unwrap_or_default();
        let by_totp = match self.matching_step(&secret, &user.username, code)? {
            Some(step) => self.store.take_totp_step(&user.username, step).await?,
            None => false,
        };
        let by_recovery = !by_totp
            && code.trim().len() > 6
            && self.store.use_recovery_code(&user.username, &hash_token(&normal_code(code)), now).await?;
        if locked || user.disabled || !(by_totp || by_recovery) {
            if !locked {
                self.store.login_failed(&user.username, self.auth.lockout_after, now + self.auth.lockout_for).await?;
            }
            self.audit_action(&actor, "mfa-failed", "user", &user.username).await?;
            let from = remote.as_deref().unwrap_or("-");
            self.throttle.signins.hit(from, crate::throttle::SIGNIN_WINDOW);
            tracing::info!(remote = from, "second factor refused");
            tokio::time::sleep(self.auth.failure_delay).await;
            return Ok(None);
        }
        let used = if by_totp { "mfa-use" } else { "mfa-recovery-code-use" };
        self.audit_action(&actor, used, "user", &user.username).await?;
        if by_recovery {
            let left = self.store.unused_recovery_codes(&user.username).await?;
            tracing::warn!(user = %user.username, left, "a recovery code was used");
        }
        if user.failed_logins > 0 || user.locked_until.is_some() {
            self.store.login_cleared(&user.username).await?;
        }
        let session = self.replace_session(&s, &actor).await?;
        self.audit_action(&actor, "login", "user", &user.username).await?;
        Ok(Some(session))
    }

    /// Removes a user's second factor (they enrol again at their next sign-in, if their role
    /// requires one) and ends their sessions. For the operator (`refloop user reset-mfa`).
    pub async fn mfa_reset(&self, username: &str, actor: &Actor) -> Result<(), AppError> {
        let user = self.user_record(username).await?;
        self.store.set_totp(&user.username, None, None, None).await?;
        self.store.set_recovery_codes(&user.username, &[]).await?;
        self.store.delete_sessions(None, Some(&user.username)).await?;
        self.audit_action(actor, "mfa-reset", "user", &user.username).await?;
        Ok(())
    }

    /// Whether `user` must sign in with a second factor.
    pub(crate) fn mfa_required(&self, role: Role) -> bool {
        self.auth.mfa_required.contains(&role)
    }

    /// A new full session in place of `old` (a new cookie value: the one seen before the
    /// second factor is worth nothing after).
    async fn replace_session(&self, old: &SessionRecord, actor: &Actor) -> Result<NewSession, AppError> {
        self.store.delete_sessions(Some(&old.hash), None).await?;
        let session = self.open_session(&actor.name, SessionStage::Full).await?;
        tracing::info!(user = %actor.name, "signed in with a second factor");
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_code_is_read_however_it_is_typed() {
        let code = recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(normal_code(&code.to_uppercase().replace('-', " ")), normal_code(&code));
        assert_ne!(recovery_code(), code);
    }

    #[test]
    fn codes_follow_rfc_6238() {
        // RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", 8 digits at 59 s is 94287082.
        let seed = Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string();
        let t = totp(&seed, "x").unwrap();
        assert_eq!(t.generate(59), "287082", "the last six of 94287082");
        assert_eq!(t.generate(1_111_111_109), "081804", "the last six of 07081804");
    }
}
