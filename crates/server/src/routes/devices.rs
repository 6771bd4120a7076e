//! `/api/v1/devices/push-token` (beyond the contract): a device session's push token.

use super::{Json, OptionalJson};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::store::PushTokenRow;
use axum::extract::State;
use axum::http::StatusCode;
use tara_protocol::auth::UserType;
use tara_protocol::devices::{PushTokenDelete, PushTokenRegistration, PushTokenRequest};
use tara_protocol::Timestamp;

/// Longer than any token FCM or APNs hands out.
const MAX_TOKEN: usize = 4096;

fn check_token(token: &str) -> Result<()> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(Error::validation(format!(
            "token must be 1 to {MAX_TOKEN} characters"
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::validation(
            "token must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

/// Stores (or replaces) the calling session's token.
pub async fn register(
    State(app): State<AppState>,
    me: AuthUser,
    Json(req): Json<PushTokenRequest>,
) -> Result<axum::Json<PushTokenRegistration>> {
    let token = req.token.trim().to_owned();
    check_token(&token)?;
    app.store
        .set_push_token(PushTokenRow {
            session_id: me.session_id.clone(),
            user_id: me.user_id,
            platform: req.platform,
            token: token.clone(),
            private_previews: req.private_previews,
            updated_ms: Timestamp::now().millis(),
        })
        .await?;
    if me.user_type == UserType::Guide {
        // A guide with a token stays requestable while their phone sleeps.
        app.presence_changed(me.user_id);
    }
    Ok(axum::Json(PushTokenRegistration {
        platform: req.platform,
        token,
        private_previews: req.private_previews,
    }))
}

/// Forgets the calling session's token, or the named one among the caller's sessions.
/// Forgetting a token that is not there is no error: the result is the same.
pub async fn unregister(
    State(app): State<AppState>,
    me: AuthUser,
    OptionalJson(req): OptionalJson<PushTokenDelete>,
) -> Result<StatusCode> {
    match req.token {
        Some(token) => {
            app.store
                .delete_push_token(Some(me.user_id), token.trim())
                .await?
        }
        None => app.store.delete_session_push_token(&me.session_id).await?,
    };
    if me.user_type == UserType::Guide {
        app.presence_changed(me.user_id);
    }
    Ok(StatusCode::NO_CONTENT)
}
