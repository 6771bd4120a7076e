//! Apple Push Notification service, token-based: a JWT signed with the team's .p8 key (ES256,
//! `kid` = key id, `iss` = team id), reused for 50 minutes (Apple refuses tokens older than an
//! hour and ones renewed more often than every 20 minutes), over HTTP/2:
//! `POST {base}/3/device/{token}` with `apns-topic`, `apns-push-type`, `apns-collapse-id`.

use super::{jwt, Push, PushError, PushSender};
use crate::config::ApnsConfig;
use anyhow::Context;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long one provider token is used.
const TOKEN_LIFE: Duration = Duration::from_secs(50 * 60);

/// Sends through APNs.
pub struct Apns {
    client: reqwest::Client,
    key: p256::ecdsa::SigningKey,
    key_id: String,
    team_id: String,
    topic: String,
    base_url: String,
    // Held only to read or replace the token (signing is quick); never across an await.
    token: Mutex<Option<(String, Instant)>>,
}

impl Apns {
    /// Reads the key; fails if it is not a P-256 key.
    pub fn new(config: &ApnsConfig, timeout: Duration) -> anyhow::Result<Self> {
        let key = jwt::p256_key(config.key_pem.expose()).context("--apns-key")?;
        // APNs speaks only HTTP/2; over TLS it is negotiated, over plain HTTP (a local
        // stand-in) it is spoken from the first byte.
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(timeout)
            .build()
            .context("cannot build the APNs HTTP client")?;
        Ok(Self {
            client,
            key,
            key_id: config.key_id.clone(),
            team_id: config.team_id.clone(),
            topic: config.topic.clone(),
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            token: Mutex::new(None),
        })
    }

    fn provider_token(&self, renew: bool) -> String {
        let mut slot = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, made)) = slot.as_ref() {
            if !renew && made.elapsed() < TOKEN_LIFE {
                return token.clone();
            }
        }
        let claims = json!({"iss": self.team_id, "iat": chrono::Utc::now().timestamp()});
        let token = jwt::es256(&self.key, &self.key_id, &claims);
        *slot = Some((token.clone(), Instant::now()));
        token
    }
}

/// The JSON payload for one push.
pub fn payload(push: &Push) -> Value {
    json!({
        "aps": {
            "alert": {"title": push.title, "body": push.body},
            "sound": "default",
            "thread-id": push.collapse_id(),
        },
        "type": push.kind.as_str(),
        "consultation_id": push.consultation_id.as_str(),
    })
}

/// A device token as a path segment (tokens are hex; anything else is percent-encoded).
fn path_segment(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl PushSender for Apns {
    async fn send(&self, token: &str, push: &Push) -> Result<(), PushError> {
        let url = format!("{}/3/device/{}", self.base_url, path_segment(token));
        let body = payload(push);
        let mut renewed = false;
        loop {
            let mut req = self
                .client
                .post(&url)
                .header(
                    "authorization",
                    format!("bearer {}", self.provider_token(renewed)),
                )
                .header("apns-topic", &self.topic)
                .header("apns-push-type", "alert")
                .header("apns-priority", "10")
                .header("apns-collapse-id", push.collapse_id())
                .json(&body);
            if let Some(ttl) = push.expires_in {
                let at = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
                req = req.header("apns-expiration", at.to_string());
            }
            let res = req
                .send()
                .await
                .map_err(|e| PushError::Failed(format!("APNs: {}", e.without_url())))?;
            let status = res.status();
            if status.is_success() {
                return Ok(());
            }
            let answer: Value = res.json().await.unwrap_or_default();
            let reason = answer["reason"].as_str().unwrap_or_default().to_owned();
            match (status.as_u16(), reason.as_str()) {
                (410, _) | (400, "BadDeviceToken") | (400, "DeviceTokenNotForTopic") => {
                    return Err(PushError::Unregistered)
                }
                (403, "ExpiredProviderToken") if !renewed => {
                    renewed = true;
                    continue;
                }
                _ => {
                    return Err(PushError::Failed(format!(
                        "APNs answered {status} {reason}"
                    )))
                }
            }
        }
    }
}
