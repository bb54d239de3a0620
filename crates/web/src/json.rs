//! A JSON body extractor whose errors name the offending field.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{StatusCode, header},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, but a type error, a missing field or an unknown field answers 422
/// with the field's path; a body that is not JSON answers 400; a wrong content type 415.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(&req);
        let bytes = bytes(req, state).await?;
        if !json {
            return Err(unsupported());
        }
        parse(&bytes).map(Body)
    }
}

/// An optional JSON body: an empty body is `None`.
pub struct MaybeBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(&req);
        let bytes = bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(None));
        }
        if !json {
            return Err(unsupported());
        }
        parse(&bytes).map(|v| MaybeBody(Some(v)))
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn unsupported() -> ApiError {
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json")
}

async fn bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| ApiError::new(e.status(), "body_rejected", e.body_text()))
}

/// Parses JSON, reporting where it went wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {inner}"),
            );
        }
        let path = e.path().to_string();
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        // serde quotes the offending value ("invalid type: string \"…\""): it may be patient
        // data, so only what was expected is said.
        let message = match message.split_once(", expected ") {
            Some((_, expected)) if message.starts_with("invalid ") => {
                format!("invalid value, expected {expected}")
            }
            _ => message,
        };
        // The path already ends at an unknown field; a missing one is named only in the message.
        let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            Some(missing) if path == "." => missing.to_owned(),
            Some(missing) => format!("{path}.{missing}"),
            None => path,
        };
        ApiError::invalid(field, message)
    })
}
