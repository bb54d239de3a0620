//! HTTP errors: a status and a JSON body that names the problem (and the field, when one
//! is to blame). 5xx bodies say nothing internal; the cause is logged once, here.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use refloop_app::{AppError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// The error body of every `/api/v1` endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `invalid_field`, `not_found`, `forbidden`.
    pub code: &'static str,
    pub message: String,
    /// The offending field of the request, as a dotted path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// 429: when to try again (`Retry-After`, seconds).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None }
    }

    pub fn field(status: StatusCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        Self { status, code: "invalid_field", message, field: Some(field), retry_after: None }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::field(StatusCode::UNPROCESSABLE_ENTITY, field, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "this role may not do that")
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            AppError::Invalid { field, message } => Self::invalid(field, message),
            AppError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            AppError::NotManualClock => Self::new(StatusCode::CONFLICT, "clock_not_manual", e.to_string()),
            AppError::Throttled(wait) => Self {
                retry_after: Some(wait.as_secs().max(1)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", e.to_string())
            },
            AppError::Store(StoreError::Unavailable(cause)) => {
                tracing::error!(%cause, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable")
            }
            AppError::Store(StoreError::Conflict(why)) => {
                Self::new(StatusCode::CONFLICT, "conflict", format!("{why}; retry"))
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            AppError::Store(cause) => {
                tracing::error!(%cause, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let retry_after = self.retry_after;
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"refloop\""));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
