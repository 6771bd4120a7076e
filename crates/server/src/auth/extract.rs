//! `AuthUser`: the caller of an authenticated request, checked against a live session.

use crate::app::AppState;
use crate::auth::tokens::TokenError;
use crate::error::Error;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tara_protocol::auth::UserType;
use tara_protocol::{ErrorCode, SessionId, UserId};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// Who.
    pub user_id: UserId,
    /// Customer or guide.
    pub user_type: UserType,
    /// The device session of the token.
    pub session_id: SessionId,
    /// When the token expires, seconds.
    pub expires_at: i64,
}

impl AuthUser {
    /// `FORBIDDEN` unless the caller is of this type.
    pub fn require(&self, t: UserType) -> Result<(), Error> {
        if self.user_type == t {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "only a {} can do this",
                t.as_str()
            )))
        }
    }
}

/// Checks a bearer token: signature, expiry, and that its session is still live.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, Error> {
    let now = chrono::Utc::now().timestamp();
    let claims = state.keys.verify(token, now).map_err(|e| match e {
        TokenError::Expired => Error::new(
            ErrorCode::TokenExpired,
            "the access token has expired; refresh it",
        ),
        TokenError::Invalid => Error::auth("the access token is not valid"),
    })?;
    let (Some(user_id), Some(user_type)) = (claims.user_id(), claims.user_type()) else {
        return Err(Error::auth("the access token is not valid"));
    };
    let sid = claims.session_id();
    match state.store.session(&sid).await? {
        Some(s) if s.revoked_ms.is_none() && s.user_id == user_id => {}
        _ => return Err(Error::auth("this session has ended; log in again")),
    }
    Ok(AuthUser {
        user_id,
        user_type,
        session_id: sid,
        expires_at: claims.exp,
    })
}

/// The token of a request: `Authorization: Bearer …`, or `?access_token=` where headers cannot be set.
pub fn bearer(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = h.to_str().ok()?;
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))?;
        return Some(token.trim().to_owned());
    }
    parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token=").map(|t| t.to_owned()))
    })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token =
            bearer(parts).ok_or_else(|| Error::auth("sign in first: no bearer token was sent"))?;
        authenticate(state, &token).await
    }
}
