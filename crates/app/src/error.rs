//! Errors of the application layer. Adapters map them to their protocol.

use refloop_domain::DecideError;

/// A storage failure. The message never carries patient data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Another writer got there first (a referral's version, a message stored twice, a
    /// deadlock the database broke): taking it again may succeed.
    #[error("{0}")]
    Conflict(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the clock is not manual: set [clock] mode = \"manual\" to drive it")]
    NotManualClock,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure inside refloop that is neither bad input nor storage.
    #[error("internal error: {0}")]
    Internal(String),
    /// Too many failed attempts from here: try again after this long.
    #[error("too many failed attempts; try again in {} s", .0.as_secs())]
    Throttled(std::time::Duration),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }
}

impl From<DecideError> for AppError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::Invalid(p) => AppError::invalid(p.field, p.message),
            other => AppError::Conflict(other.to_string()),
        }
    }
}

impl From<refloop_domain::ParseError> for AppError {
    fn from(p: refloop_domain::ParseError) -> Self {
        AppError::invalid(p.field, p.message)
    }
}
