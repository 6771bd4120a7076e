//! Not in the contract: a device's push token, so a phone that is asleep hears about a new
//! request or message (`POST` and `DELETE /api/v1/devices/push-token`).
//!
//! A token belongs to the device session that registered it (the session of the access token):
//! one token per session, replaced by the next `POST`. `DELETE` with no body forgets the calling
//! session's token; with `{"token": …}` it forgets that token on any of the caller's sessions.

use serde::{Deserialize, Serialize};

/// Which push service delivers to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushPlatform {
    /// Firebase Cloud Messaging.
    Android,
    /// Apple Push Notification service.
    Ios,
}

impl PushPlatform {
    /// As written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Ios => "ios",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "android" => Some(Self::Android),
            "ios" => Some(Self::Ios),
            _ => None,
        }
    }
}

/// `POST /api/v1/devices/push-token`; answered with [`PushTokenRegistration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTokenRequest {
    /// `android` (FCM) or `ios` (APNs).
    pub platform: PushPlatform,
    /// The registration token (FCM) or device token (APNs, hex).
    pub token: String,
    /// When true, pushes to this device never carry message text: they say only that a
    /// message came and from whom. Absent means false.
    #[serde(default)]
    pub private_previews: bool,
}

/// The token as stored for the calling session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTokenRegistration {
    /// `android` or `ios`.
    pub platform: PushPlatform,
    /// The token.
    pub token: String,
    /// Whether pushes leave message text out.
    pub private_previews: bool,
}

/// The optional body of `DELETE /api/v1/devices/push-token`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTokenDelete {
    /// Forget this token on any of the caller's sessions; absent: the calling session's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}
