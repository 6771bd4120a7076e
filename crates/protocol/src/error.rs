//! Error codes of the contract and the failure body `{"error": {"code", "message", "details"}}`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable error code. Clients branch on these, people read the message next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ErrorCode {
    ValidationFailed,
    OtpInvalid,
    OtpExpired,
    AuthenticationFailed,
    TokenExpired,
    Forbidden,
    NotFound,
    ConsultationNotFound,
    InvalidState,
    ConsultationActive,
    GuideUnavailable,
    AlreadyRated,
    InsufficientBalance,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    OtpAttemptsExceeded,
    Internal,
    /// Extension: recharges are not set up on this server (503).
    PaymentsUnavailable,
    /// Not in the contract: the SMS gateway could not take a login code (503).
    SmsUnavailable,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 20] = [
        Self::ValidationFailed,
        Self::OtpInvalid,
        Self::OtpExpired,
        Self::AuthenticationFailed,
        Self::TokenExpired,
        Self::Forbidden,
        Self::NotFound,
        Self::ConsultationNotFound,
        Self::InvalidState,
        Self::ConsultationActive,
        Self::GuideUnavailable,
        Self::AlreadyRated,
        Self::InsufficientBalance,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::OtpAttemptsExceeded,
        Self::Internal,
        Self::PaymentsUnavailable,
        Self::SmsUnavailable,
    ];

    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::ValidationFailed | Self::OtpInvalid | Self::OtpExpired => 400,
            Self::AuthenticationFailed | Self::TokenExpired => 401,
            Self::InsufficientBalance => 402,
            Self::Forbidden => 403,
            Self::NotFound | Self::ConsultationNotFound => 404,
            Self::InvalidState
            | Self::ConsultationActive
            | Self::GuideUnavailable
            | Self::AlreadyRated => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited | Self::OtpAttemptsExceeded => 429,
            Self::Internal => 500,
            Self::PaymentsUnavailable => 503,
            Self::SmsUnavailable => 503,
        }
    }

    /// The code as written on the wire (`"VALIDATION_FAILED"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::OtpInvalid => "OTP_INVALID",
            Self::OtpExpired => "OTP_EXPIRED",
            Self::AuthenticationFailed => "AUTHENTICATION_FAILED",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::ConsultationNotFound => "CONSULTATION_NOT_FOUND",
            Self::InvalidState => "INVALID_STATE",
            Self::ConsultationActive => "CONSULTATION_ACTIVE",
            Self::GuideUnavailable => "GUIDE_UNAVAILABLE",
            Self::AlreadyRated => "ALREADY_RATED",
            Self::InsufficientBalance => "INSUFFICIENT_BALANCE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::RateLimited => "RATE_LIMITED",
            Self::OtpAttemptsExceeded => "OTP_ATTEMPTS_EXCEEDED",
            Self::Internal => "INTERNAL",
            Self::PaymentsUnavailable => "PAYMENTS_UNAVAILABLE",
            Self::SmsUnavailable => "SMS_UNAVAILABLE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every failed REST call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code, a sentence for a person, and optional structured details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable code.
    pub code: ErrorCode,
    /// For a person.
    pub message: String,
    /// Structured details (which field, how long to wait, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}
