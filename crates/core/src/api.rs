//! The REST side: typed calls of the contract, with the access token kept fresh.
//!
//! The access token lives in memory only. It is refreshed a minute before it expires, and
//! when a call meets `TOKEN_EXPIRED` anyway; either way only one refresh runs at a time and
//! every caller waiting on it uses its result. A dead refresh token signs the user out.

use crate::config::ClientConfig;
use crate::error::{codes, Error, Result};
use crate::tokens::TokenStore;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;
use tara_protocol::auth::{AuthTokens, RefreshRequest, UserType};
use tara_protocol::{ErrorBody, ErrorCode, UserId};
use tokio::time::Instant;

/// Refresh this long before the access token expires.
const REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// Who is signed in, as far as this device knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The user.
    pub user_id: UserId,
    /// Customer or guide.
    pub user_type: UserType,
    /// This device's session.
    pub session_id: String,
}

#[derive(Debug, Clone)]
struct Access {
    token: String,
    expires: Instant,
    lifetime: Duration,
    generation: u64,
}

impl Access {
    /// Renew this long before expiry: a minute, or a third of a short lifetime.
    fn ahead(&self) -> Duration {
        REFRESH_AHEAD.min(self.lifetime / 3)
    }

    fn fresh(&self) -> bool {
        self.expires > Instant::now() + self.ahead()
    }
}

/// The REST client.
pub struct Api {
    http: reqwest::Client,
    base: String,
    tokens: TokenStore,
    // Held only to read or swap the token, never across an await.
    access: Mutex<Option<Access>>,
    identity: Mutex<Option<Identity>>,
    refreshing: tokio::sync::Mutex<()>,
    signed_out: tokio::sync::watch::Sender<Option<String>>,
}

impl Api {
    /// A client of the configured server.
    pub fn new(config: &ClientConfig, tokens: TokenStore) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::new(codes::PROTOCOL, e.to_string()))?;
        Ok(Self {
            http,
            base: config.api_base(),
            tokens,
            access: Mutex::new(None),
            identity: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            signed_out: tokio::sync::watch::channel(None).0,
        })
    }

    /// Changes to `Some(reason)` when the session ends.
    pub fn signed_out(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.signed_out.subscribe()
    }

    /// Who is signed in.
    pub fn identity(&self) -> Option<Identity> {
        self.identity.lock().ok().and_then(|g| g.clone())
    }

    /// Sets who is signed in (restored from the local store at start).
    pub fn set_identity(&self, identity: Identity) {
        if let Ok(mut i) = self.identity.lock() {
            *i = Some(identity);
        }
    }

    /// The HTTP client, for uploads.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `…/api/v1` + path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Takes a fresh set of tokens (login or refresh).
    pub async fn adopt(&self, t: &AuthTokens) -> Result<()> {
        self.tokens.save(&t.refresh_token).await?;
        let generation = self
            .access
            .lock()
            .ok()
            .and_then(|a| a.as_ref().map(|a| a.generation))
            .unwrap_or(0)
            + 1;
        if let Ok(mut a) = self.access.lock() {
            *a = Some(Access {
                token: t.access_token.clone(),
                expires: Instant::now() + Duration::from_secs(t.expires_in),
                lifetime: Duration::from_secs(t.expires_in),
                generation,
            });
        }
        if let Ok(mut i) = self.identity.lock() {
            *i = Some(Identity {
                user_id: t.auth_user_id,
                user_type: t.user_type,
                session_id: t.session_id.0.clone(),
            });
        }
        self.signed_out.send_replace(None);
        Ok(())
    }

    /// Whether a refresh token is stored (a session may be resumed).
    pub async fn has_session(&self) -> Result<bool> {
        Ok(self.tokens.load().await?.is_some())
    }

    /// Forgets the session on this device.
    pub async fn forget(&self, reason: &str) -> Result<()> {
        if let Ok(mut a) = self.access.lock() {
            *a = None;
        }
        if let Ok(mut i) = self.identity.lock() {
            *i = None;
        }
        self.tokens.clear().await?;
        self.signed_out.send_replace(Some(reason.to_owned()));
        Ok(())
    }

    /// A valid access token, refreshing first if it is about to expire.
    pub async fn access_token(&self) -> Result<String> {
        let current = self.access.lock().ok().and_then(|a| a.clone());
        match current {
            Some(a) if a.fresh() => Ok(a.token),
            Some(a) => self.refresh(Some(a.generation)).await,
            None => self.refresh(None).await,
        }
    }

    /// When the current access token should be renewed (a little before it expires).
    pub fn renew_at(&self) -> Option<Instant> {
        self.access
            .lock()
            .ok()
            .and_then(|a| a.as_ref().map(|a| a.expires - a.ahead()))
    }

    /// Refreshes, unless someone else already did since `seen` (the generation the caller had).
    pub async fn refresh(&self, seen: Option<u64>) -> Result<String> {
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(a) = self.access.lock().ok().and_then(|a| a.clone()) {
            if a.fresh() && Some(a.generation) != seen {
                return Ok(a.token);
            }
        }
        // And one process of this profile at a time: the token is read under the lock.
        let _one_process = self.tokens.exclusive().await?;
        let Some(refresh_token) = self.tokens.load().await? else {
            return Err(Error::new(codes::SIGNED_OUT, "sign in first"));
        };
        let res = self
            .http
            .post(self.url("/auth/refresh"))
            .json(&RefreshRequest {
                refresh_token,
                idempotency_key: Some(self.tokens.refresh_key().await?),
            })
            .send()
            .await?;
        if res.status() == StatusCode::UNAUTHORIZED {
            let e = error_of(res).await;
            self.forget(&e.message).await?;
            return Err(Error::new(codes::SIGNED_OUT, e.message));
        }
        let tokens: AuthTokens = parse(res).await?;
        self.adopt(&tokens).await?;
        Ok(tokens.access_token)
    }

    fn current_generation(&self) -> Option<u64> {
        self.access
            .lock()
            .ok()
            .and_then(|a| a.as_ref().map(|a| a.generation))
    }

    /// An authenticated call; on `TOKEN_EXPIRED` it refreshes once and tries again.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T> {
        for attempt in 0..2 {
            let generation = self.current_generation();
            let token = self.access_token().await?;
            let mut req = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(&token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let res = req.send().await?;
            if res.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let e = error_of(res).await;
                if e.is(ErrorCode::TokenExpired) {
                    self.refresh(generation).await?;
                    continue;
                }
                self.forget(&e.message).await?;
                return Err(Error::new(codes::SIGNED_OUT, e.message));
            }
            return parse(res).await;
        }
        Err(Error::new(
            codes::SIGNED_OUT,
            "the session could not be renewed",
        ))
    }

    /// An unauthenticated call (login).
    pub async fn call_open<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + Sync),
    ) -> Result<T> {
        parse(self.http.post(self.url(path)).json(body).send().await?).await
    }

    /// GET with auth.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// POST with auth.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + Sync),
    ) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A request builder with a fresh token, for calls that stream (uploads).
    pub async fn authed(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let token = self.access_token().await?;
        Ok(self.http.request(method, self.url(path)).bearer_auth(token))
    }
}

/// The body of a success, or the contract error of a failure.
pub async fn parse<T: DeserializeOwned>(res: reqwest::Response) -> Result<T> {
    if res.status().is_success() {
        let bytes = res.bytes().await?;
        // Calls that answer 204 have no body; `()` reads from `null`.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        return Ok(serde_json::from_slice(bytes)?);
    }
    Err(error_of(res).await)
}

/// The contract error of a failed response.
pub async fn error_of(res: reqwest::Response) -> Error {
    let status = res.status();
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = res.text().await.unwrap_or_default();
    let mut e = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Error::api(body.error.code, body.error.message),
        Err(_) if status.is_server_error() => {
            Error::api(ErrorCode::Internal, format!("the server failed ({status})"))
        }
        Err(_) => Error::new(
            codes::PROTOCOL,
            format!(
                "unexpected answer {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
        ),
    };
    e.retry_after = retry_after;
    e
}
