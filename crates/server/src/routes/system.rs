//! Health, metrics, and the answers for unknown paths.

use crate::app::AppState;
use crate::error::Error;
use crate::metrics::METRICS;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use std::time::Duration;
use tara_protocol::auth::{BackendHealth, Health};
use tara_protocol::ErrorCode;

/// How long the store may take to answer a health check before it counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `ok` with 200 while every backend answers; `degraded` with 503 (so a balancer takes the
/// node out) when one does not.
pub async fn health(State(app): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    let store = match tokio::time::timeout(PING_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", PING_TIMEOUT.as_secs())),
    };
    let (fanout_kind, fanout) = match app.bus.get() {
        Some(bus) => ("redis", bus.error()),
        // One node: realtime frames cross no process, so this part cannot fail.
        None => ("local", None),
    };
    let backends = vec![
        BackendHealth {
            name: "store".into(),
            kind: app.store.backend().into(),
            ok: store.is_none(),
            error: store,
        },
        BackendHealth {
            name: "fanout".into(),
            kind: fanout_kind.into(),
            ok: fanout.is_none(),
            error: fanout,
        },
    ];
    let ok = backends.iter().all(|b| b.ok);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(Health {
            status: if ok { "ok" } else { "degraded" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            node: Some(app.config.node_id.clone()),
            backends,
        }),
    )
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        METRICS.render(&app.config.node_id),
    )
}

pub async fn not_found() -> Error {
    Error::new(ErrorCode::NotFound, "no such endpoint")
}

pub async fn method_not_allowed() -> impl IntoResponse {
    let mut e = Error::validation("this method is not allowed here").into_response();
    *e.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    e
}
