//! Errors of the engine: a stable code (the contract's codes, plus local ones) and a sentence.

use serde::{Deserialize, Serialize};
use tara_protocol::ErrorCode;

/// What went wrong, in a form the UI can show and branch on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// `UPPER_SNAKE`: a contract code (`OTP_INVALID`, …) or a local one (`OFFLINE`, `IMAGE_INVALID`, …).
    pub code: String,
    /// For a person.
    pub message: String,
    /// Seconds to wait, when the server said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Codes the engine adds to the contract's.
pub mod codes {
    /// The server could not be reached.
    pub const OFFLINE: &str = "OFFLINE";
    /// Nobody is signed in.
    pub const SIGNED_OUT: &str = "SIGNED_OUT";
    /// The local store failed.
    pub const STORAGE: &str = "STORAGE";
    /// An image could not be prepared.
    pub const IMAGE_INVALID: &str = "IMAGE_INVALID";
    /// The server answered something the engine does not understand.
    pub const PROTOCOL: &str = "PROTOCOL";
    /// A wait ran out.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The caller asked for something that cannot be (caught before the server is asked).
    pub const BAD_INPUT: &str = "BAD_INPUT";
}

impl Error {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// From a contract code.
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code.as_str(), message)
    }

    /// The server could not be reached.
    pub fn offline(message: impl Into<String>) -> Self {
        Self::new(codes::OFFLINE, message)
    }

    /// The local store failed.
    pub fn storage(message: impl std::fmt::Display) -> Self {
        Self::new(codes::STORAGE, message.to_string())
    }

    /// Whether the code is this contract code.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code.as_str()
    }

    /// Whether retrying later may succeed (network trouble, rate limits, server errors).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code.as_str(),
            codes::OFFLINE | codes::TIMEOUT | "RATE_LIMITED" | "INTERNAL" | "TOKEN_EXPIRED"
        )
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::storage(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::new(codes::PROTOCOL, e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::storage(e)
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        if e.is_decode() {
            Self::new(codes::PROTOCOL, e.to_string())
        } else if e.is_timeout() {
            Self::new(codes::TIMEOUT, "the server did not answer in time")
        } else {
            Self::offline(format!("cannot reach the server: {e}"))
        }
    }
}
