//! Bearer-token authentication and role checks.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use refloop_app::{Actor, Permission};

use crate::{AppState, error::ApiError};

/// The authenticated caller. Rejects with 401 when the token is missing or unknown.
pub struct Auth(pub Actor);

impl Auth {
    /// 403 unless the caller's role may do `p`.
    pub fn require(&self, p: Permission) -> Result<&Actor, ApiError> {
        if self.0.role.may(p) { Ok(&self.0) } else { Err(ApiError::forbidden()) }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let remote = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string());
        // An address that has sent too many bad tokens waits (429) before any is looked at.
        state.app.bearer_allowed(remote.as_deref())?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        match state.app.authenticate(token, remote.clone()).await? {
            Some(actor) => {
                if !matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD) {
                    state.app.token_write(&actor)?;
                }
                Ok(Auth(actor))
            }
            None => {
                tracing::info!("rejected an unknown bearer token");
                state.app.bearer_refused(remote.as_deref())?;
                Err(ApiError::unauthorized())
            }
        }
    }
}
