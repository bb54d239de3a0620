//! Who may act, as stored: API tokens (hashes, expiry, last use, revocation), users and their
//! lockouts, web sessions. The `Store` methods of the same names call these.

use jiff::Timestamp;
use refloop_app::store::AuthStore;
use refloop_app::{SessionRecord, SsoPending, StoreError, TokenRecord, UserRecord};

use crate::{
    Db, SqlStore, row,
    row::{db, ms, ts},
};

impl SqlStore {
    pub(crate) async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, role, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.role.as_str())
            .bind(&t.hash)
            .bind(ms(t.created_at))
            .bind(t.expires_at.map(ms))
            .execute(p)
                .await
                .map_err(db)?;
        });
        Ok(())
    }

    pub(crate) async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::token(&r)).transpose()
        })
    }

    pub(crate) async fn login_failed(
        &self,
        username: &str,
        lock_after: u32,
        lock_until: Timestamp,
    ) -> Result<Option<(u32, Option<Timestamp>)>, StoreError> {
        let row: Option<(i64, Option<i64>)> = on_writer!(self, p => {
            sqlx::query_as(
                "UPDATE users SET failed_logins = failed_logins + 1,
                     locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END
                 WHERE username = $1 RETURNING failed_logins, locked_until",
            )
            .bind(username)
            .bind(i64::from(lock_after))
            .bind(ms(lock_until))
            .fetch_optional(p)
            .await
            .map_err(db)?
        });
        row.map(|(n, until)| Ok((u32::try_from(n).unwrap_or(u32::MAX), until.map(ts).transpose()?))).transpose()
    }

    pub(crate) async fn login_cleared(&self, username: &str) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE username = $1")
                .bind(username)
                .execute(p)
                .await
                .map_err(db)?;
        });
        Ok(())
    }

    pub(crate) async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at DESC, id")
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::token(r)).collect()
        })
    }

    pub(crate) async fn revoke_tokens(&self, which: &str, at: Timestamp) -> Result<Vec<String>, StoreError> {
        on_writer!(self, p => {
            sqlx::query_scalar(
                "UPDATE api_tokens SET revoked_at = $2 WHERE (id = $1 OR name = $1) AND revoked_at IS NULL RETURNING id",
            )
            .bind(which)
            .bind(ms(at))
            .fetch_all(p)
            .await
            .map_err(db)
        })
    }

    pub(crate) async fn token_used(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $2 - 60000)",
            )
            .bind(id)
            .bind(ms(at))
            .execute(p)
            .await
            .map_err(db)?;
        });
        Ok(())
    }

    pub(crate) async fn upsert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO users (username, role, password_hash, disabled, created_at, updated_at, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (username) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,
                     disabled = excluded.disabled, updated_at = excluded.updated_at, source = excluded.source",
            )
            .bind(&u.username)
            .bind(u.role.as_str())
            .bind(&u.password_hash)
            .bind(u.disabled)
            .bind(ms(u.created_at))
            .bind(ms(u.updated_at))
            .bind(if u.sso { "oidc" } else { "local" })
            .execute(p)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    pub(crate) async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::user(&r)).transpose()
        })
    }

    pub(crate) async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM users ORDER BY username").fetch_all(p).await.map_err(db)?;
            rows.iter().map(|r| row::user(r)).collect()
        })
    }

    pub(crate) async fn set_totp(
        &self,
        username: &str,
        secret: Option<&str>,
        pending: Option<&str>,
        last_step: Option<i64>,
    ) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query("UPDATE users SET totp_secret = $2, totp_pending = $3, totp_last_step = $4 WHERE username = $1")
                .bind(username)
                .bind(secret)
                .bind(pending)
                .bind(last_step)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    pub(crate) async fn take_totp_step(&self, username: &str, step: i64) -> Result<bool, StoreError> {
        let n = on_writer!(self, p => {
            sqlx::query(
                "UPDATE users SET totp_last_step = $2 WHERE username = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            )
            .bind(username)
            .bind(step)
            .execute(p)
            .await
            .map_err(db)?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub(crate) async fn set_recovery_codes(&self, username: &str, hashes: &[String]) -> Result<(), StoreError> {
        on_writer!(self, p => {
            let mut tx = p.begin().await.map_err(db)?;
            sqlx::query("DELETE FROM recovery_codes WHERE username = $1").bind(username).execute(&mut *tx).await.map_err(db)?;
            for h in hashes {
                sqlx::query("INSERT INTO recovery_codes (username, hash) VALUES ($1, $2)")
                    .bind(username)
                    .bind(h)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            tx.commit().await.map_err(db)
        })
    }

    pub(crate) async fn use_recovery_code(
        &self,
        username: &str,
        hash: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let n = on_writer!(self, p => {
            sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE username = $1 AND hash = $2 AND used_at IS NULL")
                .bind(username)
                .bind(hash)
                .bind(ms(at))
                .execute(p)
                .await
                .map_err(db)?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub(crate) async fn unused_recovery_codes(&self, username: &str) -> Result<u32, StoreError> {
        let n: i64 = on_pool!(&self.db, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE username = $1 AND used_at IS NULL")
                .bind(username)
                .fetch_one(p)
                .await
                .map_err(db)?
        });
        Ok(u32::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn put_sso_pending(&self, p: &SsoPending) -> Result<(), StoreError> {
        on_writer!(self, pool => {
            sqlx::query("INSERT INTO sso_pending (state_hash, nonce, verifier, next, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&p.state_hash)
                .bind(&p.nonce)
                .bind(&p.verifier)
                .bind(&p.next)
                .bind(ms(p.created_at))
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    pub(crate) async fn take_sso_pending(
        &self,
        state_hash: &str,
        stale_before: Timestamp,
    ) -> Result<Option<SsoPending>, StoreError> {
        on_writer!(self, pool => {
            sqlx::query("DELETE FROM sso_pending WHERE created_at < $1 AND state_hash <> $2")
                .bind(ms(stale_before))
                .bind(state_hash)
                .execute(pool)
                .await
                .map_err(db)?;
            let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
                "DELETE FROM sso_pending WHERE state_hash = $1
                 RETURNING state_hash, nonce, verifier, next, created_at",
            )
            .bind(state_hash)
            .fetch_optional(pool)
            .await
            .map_err(db)?;
            let Some((state_hash, nonce, verifier, next, created_at)) = row else { return Ok(None) };
            let created_at = ts(created_at)?;
            Ok((created_at >= stale_before).then_some(SsoPending { state_hash, nonce, verifier, next, created_at }))
        })
    }

    pub(crate) async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO sessions (hash, username, csrf, created_at, last_seen_at, stage) VALUES ($1, $2, $3, $4, $5, $6)",
            )
                .bind(&s.hash)
                .bind(&s.username)
                .bind(&s.csrf)
                .bind(ms(s.created_at))
                .bind(ms(s.last_seen_at))
                .bind(s.stage.as_str())
                .execute(p)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    pub(crate) async fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let row = sqlx::query("SELECT * FROM sessions WHERE hash = $1")
                .bind(hash)
                .fetch_optional(p)
                .await
                .map_err(db)?;
            row.map(|r| row::session(&r)).transpose()
        })
    }

    pub(crate) async fn touch_session(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE hash = $2")
                .bind(ms(at))
                .bind(hash)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    pub(crate) async fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        on_pool!(&self.db, p => {
            let rows = sqlx::query("SELECT * FROM sessions ORDER BY username, last_seen_at DESC")
                .fetch_all(p)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::session(r)).collect()
        })
    }

    pub(crate) async fn delete_sessions(&self, hash: Option<&str>, username: Option<&str>) -> Result<(), StoreError> {
        on_writer!(self, p => {
            sqlx::query("DELETE FROM sessions WHERE hash = $1 OR username = $2")
                .bind(hash)
                .bind(username)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(db)
        })
    }
}

#[async_trait::async_trait]
impl AuthStore for SqlStore {
    async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        SqlStore::insert_token(self, t).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        SqlStore::token_by_hash(self, hash).await
    }

    async fn login_failed(
        &self,
        username: &str,
        lock_after: u32,
        lock_until: Timestamp,
    ) -> Result<Option<(u32, Option<Timestamp>)>, StoreError> {
        SqlStore::login_failed(self, username, lock_after, lock_until).await
    }

    async fn login_cleared(&self, username: &str) -> Result<(), StoreError> {
        SqlStore::login_cleared(self, username).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        SqlStore::tokens(self).await
    }

    async fn revoke_tokens(&self, which: &str, at: Timestamp) -> Result<Vec<String>, StoreError> {
        SqlStore::revoke_tokens(self, which, at).await
    }

    async fn token_used(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        SqlStore::token_used(self, id, at).await
    }

    async fn upsert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        SqlStore::upsert_user(self, u).await
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        SqlStore::user(self, username).await
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        SqlStore::users(self).await
    }

    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        SqlStore::insert_session(self, s).await
    }

    async fn set_totp(
        &self,
        username: &str,
        secret: Option<&str>,
        pending: Option<&str>,
        last_step: Option<i64>,
    ) -> Result<(), StoreError> {
        SqlStore::set_totp(self, username, secret, pending, last_step).await
    }

    async fn take_totp_step(&self, username: &str, step: i64) -> Result<bool, StoreError> {
        SqlStore::take_totp_step(self, username, step).await
    }

    async fn set_recovery_codes(&self, username: &str, hashes: &[String]) -> Result<(), StoreError> {
        SqlStore::set_recovery_codes(self, username, hashes).await
    }

    async fn use_recovery_code(&self, username: &str, hash: &str, at: Timestamp) -> Result<bool, StoreError> {
        SqlStore::use_recovery_code(self, username, hash, at).await
    }

    async fn unused_recovery_codes(&self, username: &str) -> Result<u32, StoreError> {
        SqlStore::unused_recovery_codes(self, username).await
    }

    async fn put_sso_pending(&self, p: &SsoPending) -> Result<(), StoreError> {
        SqlStore::put_sso_pending(self, p).await
    }

    async fn take_sso_pending(
        &self,
        state_hash: &str,
        stale_before: Timestamp,
    ) -> Result<Option<SsoPending>, StoreError> {
        SqlStore::take_sso_pending(self, state_hash, stale_before).await
    }

    async fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        SqlStore::session(self, hash).await
    }

    async fn touch_session(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        SqlStore::touch_session(self, hash, at).await
    }

    async fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        SqlStore::sessions(self).await
    }

    async fn delete_sessions(&self, hash: Option<&str>, username: Option<&str>) -> Result<(), StoreError> {
        SqlStore::delete_sessions(self, hash, username).await
    }
}
