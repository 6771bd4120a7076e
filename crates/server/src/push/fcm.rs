//! Firebase Cloud Messaging, HTTP v1 API.
//!
//! The service account signs a JWT (RS256) that is exchanged at the account's `token_uri` for
//! an OAuth access token (kept until a minute before it expires); each push is then
//! `POST {base}/v1/projects/{project_id}/messages:send` with that token as bearer.

use super::{jwt, Push, PushError, PushSender};
use crate::config::FcmConfig;
use anyhow::Context;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// The OAuth scope that lets a token send FCM messages.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of a service-account JSON file that matter here.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default = "google_token_uri")]
    token_uri: String,
}

fn google_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default = "an_hour")]
    expires_in: u64,
}

fn an_hour() -> u64 {
    3600
}

struct Cached {
    token: String,
    until: Instant,
}

/// Sends through FCM.
pub struct Fcm {
    client: reqwest::Client,
    client_email: String,
    key_id: Option<String>,
    key: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    token_uri: String,
    send_url: String,
    // An async mutex: held across the token exchange, so concurrent pushes wait for one
    // exchange instead of each starting their own.
    access: tokio::sync::Mutex<Option<Cached>>,
}

impl Fcm {
    /// Reads the service account; fails if it lacks a field or its key is not RSA.
    pub fn new(config: &FcmConfig, timeout: Duration) -> anyhow::Result<Self> {
        let account: ServiceAccount = serde_json::from_str(config.service_account_json.expose())
            .context(
                "the FCM service-account JSON lacks project_id, client_email or private_key",
            )?;
        let key = jwt::rsa_key(&account.private_key).context("FCM service account")?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot build the FCM HTTP client")?;
        Ok(Self {
            client,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                config.base_url.trim_end_matches('/'),
                account.project_id
            ),
            client_email: account.client_email,
            key_id: account.private_key_id,
            key,
            token_uri: account.token_uri,
            access: tokio::sync::Mutex::new(None),
        })
    }

    /// An access token: the cached one while it lasts (unless `renew`), else a new exchange.
    async fn access_token(&self, renew: bool) -> Result<String, PushError> {
        let mut cached = self.access.lock().await;
        if let Some(c) = cached.as_ref() {
            if !renew && Instant::now() < c.until {
                return Ok(c.token.clone());
            }
        }
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let assertion = jwt::rs256(&self.key, self.key_id.as_deref(), &claims);
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let res = self
            .client
            .post(&self.token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| PushError::Failed(format!("FCM token exchange: {}", e.without_url())))?;
        let status = res.status();
        if !status.is_success() {
            return Err(PushError::Failed(format!(
                "FCM token exchange answered {status}"
            )));
        }
        let answer: TokenAnswer = res
            .json()
            .await
            .map_err(|_| PushError::Failed("FCM token exchange: no access_token".into()))?;
        let life = Duration::from_secs(answer.expires_in.saturating_sub(60));
        *cached = Some(Cached {
            token: answer.access_token.clone(),
            until: Instant::now() + life,
        });
        Ok(answer.access_token)
    }
}

/// The v1 `messages:send` body for one device.
pub fn message_body(token: &str, push: &Push) -> Value {
    let mut android = json!({
        "priority": "HIGH",
        "collapse_key": push.collapse_id(),
        "notification": {"tag": push.collapse_id()},
    });
    if let Some(ttl) = push.expires_in {
        android["ttl"] = format!("{}s", ttl.as_secs()).into();
    }
    json!({
        "message": {
            "token": token,
            "notification": {"title": push.title, "body": push.body},
            "data": {"type": push.kind.as_str(), "consultation_id": push.consultation_id.as_str()},
            "android": android,
        }
    })
}

#[async_trait]
impl PushSender for Fcm {
    async fn send(&self, token: &str, push: &Push) -> Result<(), PushError> {
        let body = message_body(token, push);
        let mut renewed = false;
        loop {
            let access = self.access_token(renewed).await?;
            let res = self
                .client
                .post(&self.send_url)
                .bearer_auth(&access)
                .json(&body)
                .send()
                .await
                .map_err(|e| PushError::Failed(format!("FCM: {}", e.without_url())))?;
            let status = res.status();
            if status.is_success() {
                return Ok(());
            }
            // Google's error body: {"error": {"status": "...", "details": [{"errorCode": "..."}]}}
            let error: Value = res.json().await.unwrap_or_default();
            let codes: Vec<&str> = std::iter::once(&error["error"]["status"])
                .chain(
                    error["error"]["details"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|d| &d["errorCode"]),
                )
                .filter_map(Value::as_str)
                .collect();
            if status == reqwest::StatusCode::NOT_FOUND || codes.contains(&"UNREGISTERED") {
                return Err(PushError::Unregistered);
            }
            if status == reqwest::StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                continue;
            }
            return Err(PushError::Failed(format!(
                "FCM answered {status} {}",
                codes.join(" ")
            )));
        }
    }
}
