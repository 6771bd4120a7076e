//! Realtime: `GET /api/v1/realtime`, the hub, and one task per connection.

pub mod bus;
pub mod conn;
pub mod hub;

use crate::app::AppState;
use crate::auth::extract::{authenticate, bearer};
use crate::error::Error;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tara_protocol::realtime::{MAX_READABLE_FRAME_BYTES, SOCKET_READ_BYTES};

/// What a refused connection is told to wait before trying again.
const RETRY_CONNECT_SECS: u64 = 10;

/// The WebSocket upgrade. The token is checked before upgrading, so a bad one gets a plain
/// 401 with the contract's error body.
pub async fn upgrade(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (mut parts, _body): (Parts, _) = req.into_parts();
    let Some(token) = bearer(&parts) else {
        return Error::auth("sign in first: send a bearer token or ?access_token=").into_response();
    };
    let user = match authenticate(&state, &token).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // Held for the connection's life; a user or an address past its cap is refused before the
    // upgrade, and nobody else's connections are touched.
    let Some(user_slot) = state.connections_per_user.take(&user.user_id) else {
        return Error::rate_limited(
            RETRY_CONNECT_SECS,
            format!(
                "too many open connections for this account (at most {}); close one first",
                state.config.max_connections_per_user
            ),
        )
        .into_response();
    };
    let ip = crate::routes::peer_ip(&parts);
    let Some(ip_slot) = state.connections_per_ip.take(&ip) else {
        return Error::rate_limited(
            RETRY_CONNECT_SECS,
            format!(
                "too many open connections from this address (at most {})",
                state.config.max_connections_per_ip
            ),
        )
        .into_response();
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(e) => {
            return Error::validation(format!("this endpoint needs a WebSocket upgrade: {e}"))
                .into_response()
        }
    };
    ws.max_message_size(MAX_READABLE_FRAME_BYTES)
        .max_frame_size(MAX_READABLE_FRAME_BYTES)
        .read_buffer_size(SOCKET_READ_BYTES)
        .on_upgrade(move |socket| async move {
            conn::serve(socket, state, user).await;
            drop((user_slot, ip_slot));
        })
}
