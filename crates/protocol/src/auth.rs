//! Auth: OTP login, rotating refresh tokens, profile and device sessions.

use crate::ids::{SessionId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Who is logging in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    /// Someone asking for a reading.
    Customer,
    /// An astrologer giving readings.
    Guide,
}

impl UserType {
    /// As written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Guide => "guide",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Self::Customer),
            "guide" => Some(Self::Guide),
            _ => None,
        }
    }
}

/// `POST /api/v1/auth/otp/generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtpGenerateRequest {
    /// Country calling code with `+`, e.g. `+91`.
    pub area_code: String,
    /// The national number, digits only.
    pub phone_number: String,
    /// Which kind of account.
    pub user_type: UserType,
    /// Always `login` today.
    #[serde(default = "default_purpose")]
    pub purpose: String,
}

fn default_purpose() -> String {
    "login".to_owned()
}

/// Answer to [`OtpGenerateRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtpGenerateResponse {
    /// Names this code request in the validate call.
    pub request_id: String,
    /// Seconds the code stays valid.
    pub expires_in: u64,
    /// Seconds before another code may be asked for.
    pub resend_after: u64,
    /// The code itself, only from a server in dev mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_otp: Option<String>,
}

/// The device a session was opened from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `desktop`, `mobile`, `cli`, …
    #[serde(default)]
    pub device_type: String,
    /// `linux`, `android`, …
    #[serde(default)]
    pub platform: String,
    /// The browser, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
}

/// `POST /api/v1/auth/otp/validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtpValidateRequest {
    /// From [`OtpGenerateResponse`].
    pub request_id: String,
    /// The six digits the person typed.
    pub otp_code: String,
    /// Which kind of account.
    pub user_type: UserType,
    /// The device logging in.
    #[serde(default)]
    pub device_info: DeviceInfo,
    /// The national number.
    pub phone_number: String,
    /// Country calling code with `+`.
    pub area_code: String,
}

/// Tokens handed out by login and refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthTokens {
    /// A signed JWT (sub, role, sid, iat, exp).
    pub access_token: String,
    /// Opaque; dies when used.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The user.
    pub auth_user_id: UserId,
    /// The user's kind.
    pub user_type: UserType,
    /// Roles (`customer`, `guide`).
    pub user_roles: Vec<String>,
    /// The device session these tokens belong to.
    pub session_id: SessionId,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// The current refresh token.
    pub refresh_token: String,
    /// Optional: a key the client made for this token's refresh and keeps until it has the
    /// answer. The same token sent again with the same key within
    /// [`REFRESH_RETRY_WINDOW_SECS`] of its first use, while the successor it got has not been
    /// used, is a retry of a refresh whose answer was lost: it gets a new successor (the lost
    /// one dies) instead of revoking the session. Without the key, a dead token revokes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// How long after a refresh token's first use a retry with its idempotency key is taken.
pub const REFRESH_RETRY_WINDOW_SECS: i64 = 120;

/// `GET /api/v1/auth/profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The user.
    pub id: UserId,
    /// The user's kind.
    pub user_type: UserType,
    /// The name others see.
    pub display_name: String,
    /// Full phone number with country code.
    pub phone: String,
    /// A picture, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// `PATCH /api/v1/auth/profile`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProfilePatch {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// One row of `GET /api/v1/auth/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session.
    pub session_id: SessionId,
    /// Where it was opened.
    pub device_info: DeviceInfo,
    /// When it was opened.
    pub created_at: Timestamp,
    /// Its last login or refresh.
    pub last_used_at: Timestamp,
    /// Whether it is the caller's own.
    pub current: bool,
}

/// `{"status":"ok","version":"…"}`, and (an extension) which node answered and how its
/// backends are: `"node":"host:7700","backends":[{"name":"store","kind":"sqlite","ok":true}]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` (with HTTP 503) when a backend does not answer.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// The node that answered (`--node-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Each backend the node uses and whether it answered just now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendHealth>,
}

/// One backend in [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendHealth {
    /// What it is for: `store` (the database) or `fanout` (what crosses nodes).
    pub name: String,
    /// Which engine: `sqlite`, `postgres`, `local` (one node, in process).
    pub kind: String,
    /// Whether it answered.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
