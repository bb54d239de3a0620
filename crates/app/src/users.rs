//! People who sign in to the web UI: argon2 password hashes, sessions with an idle timeout,
//! and a CSRF token per session.

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use jiff::{SignedDuration, Timestamp};

use crate::{
    Actor, AppError, Role, SessionRecord, SessionStage, UserRecord, auth::hash_token, new_token, service::App,
    throttle::TOKEN_WINDOW,
};

/// A session unused for this long has ended.
pub const SESSION_IDLE: SignedDuration = SignedDuration::from_mins(30);
/// No session lasts longer than this, however busy.
pub const SESSION_MAX: SignedDuration = SignedDuration::from_hours(12);
/// The last-seen time is written at most this often, so reading pages does not write every time.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_mins(1);
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A signed-in web session: who, and the token its forms must carry.
#[derive(Clone, Debug)]
pub struct WebSession {
    pub actor: Actor,
    pub csrf: String,
    /// Pages other than the second-factor ones need [`SessionStage::Full`].
    pub stage: SessionStage,
}

/// A session just opened: the cookie value (shown once) and its CSRF token.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    /// Whether a second factor (or its enrolment) is still to come.
    pub stage: SessionStage,
}

/// The actor a signed-in user acts as (no address).
pub(crate) fn user_actor(u: &UserRecord) -> Actor {
    Actor::person(u.username.clone(), u.role, None)
}

impl App {
    /// Adds a user or replaces one's role and password; existing sessions of that user end.
    pub async fn save_user(&self, username: &str, role: Role, password: &str) -> Result<UserRecord, AppError> {
        let username = check_username(username)?;
        check_password(&username, password)?;
        let password_hash = hash_password(password.to_owned()).await?;
        let now = self.now();
        let existing = self.store.user(&username).await?;
        let created_at = existing.as_ref().map_or(now, |u| u.created_at);
        let user = UserRecord {
            username,
            role,
            password_hash,
            disabled: false,
            created_at,
            updated_at: now,
            failed_logins: 0,
            locked_until: None,
            totp_secret: None,
            totp_pending: None,
            sso: false,
        };
        self.store.upsert_user(&user).await?;
        self.store.delete_sessions(None, Some(&user.username)).await?;
        let action = if existing.is_some() { "update" } else { "create" };
        self.store.audit(&self.audit_entry(&Actor::system("users"), action, "user", &user.username)).await?;
        tracing::info!(user = %user.username, role = role.as_str(), "user saved");
        Ok(user)
    }

    /// Disables (or enables again) a user; a disabled user's sessions end at once.
    pub async fn set_user_disabled(&self, username: &str, disabled: bool) -> Result<UserRecord, AppError> {
        let mut user = self.user_record(username).await?;
        user.disabled = disabled;
        user.updated_at = self.now();
        self.store.upsert_user(&user).await?;
        self.store.delete_sessions(None, Some(username)).await?;
        let action = if disabled { "disable" } else { "enable" };
        self.store.audit(&self.audit_entry(&Actor::system("users"), action, "user", username)).await?;
        tracing::info!(user = %username, disabled, "user updated");
        Ok(user)
    }

    /// Whether `username` exists and `password` is its password (no session, no audit row).
    pub async fn password_matches(&self, username: &str, password: &str) -> Result<bool, AppError> {
        let Some(user) = self.store.user(username).await? else { return Ok(false) };
        verify_password(password.to_owned(), Some(user.password_hash)).await
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>, AppError> {
        Ok(self.store.users().await?)
    }

    /// Checks a password and opens a session; `None` for a wrong name or password (one answer
    /// for both, and the same work either way). Each failure in a row for an account is
    /// answered later than the one before, and the `lockout_after`th locks it for
    /// `lockout_for` (an admin may unlock it sooner); an address with too many failures in a
    /// quarter of an hour is refused outright (`AppError::Throttled`). Every attempt is audited.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        remote: Option<String>,
    ) -> Result<Option<NewSession>, AppError> {
        use crate::throttle::{SIGNIN_WINDOW, failure_delay};
        let from = remote.clone().unwrap_or_else(|| "-".to_owned());
        let username = username.trim();
        let window = SIGNIN_WINDOW;
        if self.throttle.signins.count(&from, window) >= self.auth.signins_per_address {
            tracing::warn!(remote = %from, "sign-in refused: too many failures from this address");
            return Err(AppError::Throttled(self.throttle.signins.retry_after(&from, window)));
        }
        let now = self.now();
        let user = self.store.user(username).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = verify_password(password.to_owned(), stored).await?;
        let locked = user.as_ref().is_some_and(|u| u.locked_until.is_some_and(|until| now < until));
        // A refused attempt is nobody's yet: recorded as the sign-in form's, with the address.
        let attempt = Actor { remote: remote.clone(), ..Actor::system("sign-in") };
        let Some(user) = user.filter(|u| ok && !locked && !u.disabled && u.role != Role::Integration) else {
            let failures = if locked {
                None
            } else {
                self.store.login_failed(username, self.auth.lockout_after, now + self.auth.lockout_for).await?
            };
            let in_a_row = failures.map_or(1, |(n, _)| n);
            if let Some((n, Some(until))) = failures
                && n == self.auth.lockout_after
            {
                tracing::warn!(user = %username, until = %until, "account locked after failed sign-ins");
                self.store.audit(&self.audit_entry(&attempt, "lockout", "user", username)).await?;
            }
            let action = if locked { "login-locked" } else { "login-failed" };
            self.store.audit(&self.audit_entry(&attempt, action, "user", username)).await?;
            let by_address = self.throttle.signins.hit(&from, window);
            let n = in_a_row.max(u32::try_from(by_address).unwrap_or(u32::MAX));
            tracing::info!(remote = %from, "sign-in refused");
            tokio::time::sleep(failure_delay(self.auth.failure_delay, n)).await;
            return Ok(None);
        };
        // The password is right; a second factor may still be owed (or must be enrolled).
        let stage = if user.totp_secret.is_some() {
            SessionStage::Mfa
        } else if self.mfa_required(user.role) {
            SessionStage::Enrol
        } else {
            SessionStage::Full
        };
        // Failures in a row end only with a whole sign-in: a right password alone must not
        // reset the count of wrong second-factor codes.
        if stage != SessionStage::Mfa && (user.failed_logins > 0 || user.locked_until.is_some()) {
            self.store.login_cleared(&user.username).await?;
        }
        let session = self.open_session(&user.username, stage).await?;
        let actor = Actor::person(user.username.clone(), user.role, remote);
        let action = match stage {
            SessionStage::Full => "login",
            SessionStage::Mfa => "login-password",
            SessionStage::Enrol => "login-enrol-required",
        };
        self.store.audit(&self.audit_entry(&actor, action, "user", &user.username)).await?;
        tracing::info!(user = %user.username, stage = stage.as_str(), "password accepted");
        Ok(Some(session))
    }

    /// Ends every session of `username` at once (a lost laptop, a suspicion). Audited.
    pub async fn end_sessions(&self, username: &str, actor: &Actor) -> Result<(), AppError> {
        self.user_record(username).await?;
        self.store.delete_sessions(None, Some(username)).await?;
        self.store.audit(&self.audit_entry(actor, "end-sessions", "user", username)).await?;
        tracing::info!(user = %username, "sessions ended by an admin");
        Ok(())
    }

    /// Live sessions per user: how many, and the latest use.
    pub async fn live_sessions(&self) -> Result<Vec<(String, u32, Timestamp)>, AppError> {
        let now = self.now();
        let mut out: Vec<(String, u32, Timestamp)> = Vec::new();
        for s in self.store.sessions().await? {
            if now - s.last_seen_at > SESSION_IDLE || now - s.created_at > SESSION_MAX {
                continue;
            }
            match out.last_mut() {
                Some((u, n, last)) if *u == s.username => {
                    *n += 1;
                    *last = (*last).max(s.last_seen_at);
                }
                _ => out.push((s.username, 1, s.last_seen_at)),
            }
        }
        Ok(out)
    }

    /// A new web session for `username` at `stage`: its cookie value is returned once, only
    /// its hash is stored.
    pub(crate) async fn open_session(&self, username: &str, stage: SessionStage) -> Result<NewSession, AppError> {
        let session = NewSession { token: new_token(), csrf: new_token(), stage };
        let now = self.now();
        self.store
            .insert_session(&SessionRecord {
                hash: hash_token(&session.token),
                username: username.to_owned(),
                csrf: session.csrf.clone(),
                created_at: now,
                last_seen_at: now,
                stage,
            })
            .await?;
        Ok(session)
    }

    /// A user as stored, or NotFound.
    pub(crate) async fn user_record(&self, username: &str) -> Result<UserRecord, AppError> {
        self.store.user(username).await?.ok_or_else(|| AppError::NotFound { what: "user", id: username.to_owned() })
    }

    /// Lifts a lockout (and the count of failures) before it runs out.
    pub async fn unlock_user(&self, username: &str, actor: &Actor) -> Result<(), AppError> {
        self.user_record(username).await?;
        self.store.login_cleared(username).await?;
        self.store.audit(&self.audit_entry(actor, "unlock", "user", username)).await?;
        tracing::info!(user = %username, "user unlocked");
        Ok(())
    }

    /// Counts a refused bearer token from `remote`; `Err(Throttled)` once there were too many
    /// in the last minute.
    pub fn bearer_refused(&self, remote: Option<&str>) -> Result<(), AppError> {
        let from = remote.unwrap_or("-");
        self.throttle.tokens.hit(from, TOKEN_WINDOW);
        self.bearer_allowed(remote)
    }

    /// Counts a write by API token `actor`; `Err(Throttled)` once it made more than `[auth]
    /// token_writes_per_minute` in the last minute (a runaway or stolen integration).
    pub fn token_write(&self, actor: &Actor) -> Result<(), AppError> {
        let key = actor.source();
        let n = self.throttle.writes.hit(&key, TOKEN_WINDOW);
        if n > self.auth.token_writes_per_minute {
            if n == self.auth.token_writes_per_minute + 1 {
                tracing::warn!(token = %actor.name, "API token over its write rate: answering 429 until it slows");
            }
            return Err(AppError::Throttled(self.throttle.writes.retry_after(&key, TOKEN_WINDOW)));
        }
        Ok(())
    }

    /// `Err(Throttled)` while `remote` has had too many refused bearer tokens in the last minute.
    pub fn bearer_allowed(&self, remote: Option<&str>) -> Result<(), AppError> {
        let from = remote.unwrap_or("-");
        if self.throttle.tokens.count(from, TOKEN_WINDOW) > self.auth.tokens_per_address {
            return Err(AppError::Throttled(self.throttle.tokens.retry_after(from, TOKEN_WINDOW)));
        }
        Ok(())
    }

    /// The session behind a cookie value, if it is still alive; keeps it alive.
    pub async fn web_session(&self, token: &str, remote: Option<String>) -> Result<Option<WebSession>, AppError> {
        let hash = hash_token(token);
        let Some(s) = self.store.session(&hash).await? else { return Ok(None) };
        let now = self.now();
        if now - s.last_seen_at > SESSION_IDLE || now - s.created_at > SESSION_MAX {
            self.store.delete_sessions(Some(&hash), None).await?;
            return Ok(None);
        }
        let Some(user) = self.store.user(&s.username).await?.filter(|u| !u.disabled) else { return Ok(None) };
        if now - s.last_seen_at > TOUCH_EVERY {
            self.store.touch_session(&hash, now).await?;
        }
        Ok(Some(WebSession { actor: Actor::person(user.username, user.role, remote), csrf: s.csrf, stage: s.stage }))
    }

    /// Ends the session behind a cookie value (audited with its user).
    pub async fn logout(&self, token: &str, remote: Option<String>) -> Result<(), AppError> {
        let hash = hash_token(token);
        if let Some(session) = self.store.session(&hash).await? {
            let role = self.store.user(&session.username).await?.map_or(Role::Viewer, |u| u.role);
            let actor = Actor::person(session.username.clone(), role, remote);
            self.store.audit(&self.audit_entry(&actor, "logout", "user", &session.username)).await?;
        }
        Ok(self.store.delete_sessions(Some(&hash), None).await?)
    }
}

/// Passwords everyone tries first that are long enough to pass the length rule (lower-cased).
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "111111111111",
    "000000000000",
    "123123123123",
    "password1234",
    "password12345",
    "password123!",
    "passwordpassword",
    "qwerty123456",
    "qwertyuiop12",
    "qwertyuiopas",
    "qwertyuiopasdf",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "zaq12wsxcde3",
    "qazwsxedcrfv",
    "asdfghjkl123",
    "abcdefghijkl",
    "abc123abc123",
    "iloveyou1234",
    "welcome12345",
    "letmein12345",
    "changeme1234",
    "adminadmin12",
    "administrator",
    "monkeymonkey",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "dragon123456",
    "trustno1trustno1",
    "superman1234",
    "starwars1234",
];

/// ASVS L2: at least 12 characters, not the username, not a well-known password, and more
/// than a few different characters. The password is never echoed in the error.
fn check_password(username: &str, password: &str) -> Result<(), AppError> {
    let invalid = |why: &str| Err(AppError::invalid("password", why));
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return invalid("at least 12 characters");
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() {
        return invalid("must not be the username");
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return invalid("one of the most common passwords; choose another");
    }
    if lower.chars().collect::<std::collections::HashSet<_>>().len() < 5 {
        return invalid("needs more than a few different characters");
    }
    Ok(())
}

pub(crate) fn check_username(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok { Ok(name.to_owned()) } else { Err(AppError::invalid("username", "1–64 letters, digits, . - _ @")) }
}

async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|e| AppError::Internal(format!("password hashing stopped: {e}")))?
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

/// Verifies against the stored hash, or against a throw-away hash when there is no user, so a
/// wrong name takes as long as a wrong password.
async fn verify_password(password: String, stored: Option<String>) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let decoy;
        let phc = match &stored {
            Some(h) => h.as_str(),
            None => {
                decoy = Argon2::default().hash_password(b"not a password").map(|h| h.to_string());
                decoy.as_deref().unwrap_or("")
            }
        };
        let parsed = PasswordHash::new(phc).ok();
        stored.is_some() && parsed.is_some_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .map_err(|e| AppError::Internal(format!("password check stopped: {e}")))
}

#[cfg(test)]
mod tests {
    use super::check_password;

    #[test]
    fn passwords_follow_asvs_level_2() {
        for (password, why) in [
            ("short pass", "at least 12"),
            ("aaaaaaaaaaaaaaaa", "different characters"),
            ("Password1234", "most common"),
            ("casey.example", "the username"),
        ] {
            let err = check_password("casey.example", password).unwrap_err().to_string();
            assert!(err.contains(why) && !err.contains(password), "{password}: {err}");
        }
        assert!(check_password("casey", "correct horse battery").is_ok());
    }
}
