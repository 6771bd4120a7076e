//! One error type for the whole server: a contract code, a sentence for people, and (for
//! internal failures) a cause that is logged but never shown to clients.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tara_protocol::{ErrorBody, ErrorCode, ErrorDetail};

/// What went wrong, in the terms of the contract.
#[derive(Debug)]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// Structured details for clients.
    pub details: Option<serde_json::Value>,
    /// Seconds to wait, for `RATE_LIMITED`.
    pub retry_after: Option<u64>,
}

/// The server's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `VALIDATION_FAILED`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    /// `INVALID_STATE`.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }

    /// `INVALID_STATE` for a message or image into a consultation that is not open for chat.
    pub fn closed_for_messages(status: tara_protocol::consultations::ConsultationStatus) -> Self {
        Self::invalid_state(format!(
            "messages can be sent only while a consultation is accepted or in progress; it is {}",
            status.as_str()
        ))
        .with_details(serde_json::json!({ "status": status.as_str() }))
    }

    /// `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `CONSULTATION_NOT_FOUND`.
    pub fn consultation_not_found() -> Self {
        Self::new(ErrorCode::ConsultationNotFound, "no such consultation")
    }

    /// `AUTHENTICATION_FAILED`.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AuthenticationFailed, message)
    }

    /// `RATE_LIMITED` with how long to wait.
    pub fn rate_limited(retry_after_secs: u64, message: impl Into<String>) -> Self {
        let secs = retry_after_secs.max(1);
        Self {
            code: ErrorCode::RateLimited,
            message: message.into(),
            details: Some(serde_json::json!({ "retry_after": secs })),
            retry_after: Some(secs),
        }
    }

    /// `INTERNAL`: logs the cause, shows clients nothing of it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "something went wrong on the server")
    }

    /// The body clients get.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::internal(format_args!("sqlite: {e}"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => Self::internal(format_args!(
                "postgres: {}: {}",
                db.code().code(),
                db.message()
            )),
            None => Self::internal(format_args!("postgres: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::internal(format_args!("postgres pool: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::internal(format_args!("json: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::internal(format_args!("io: {e}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        res
    }
}
