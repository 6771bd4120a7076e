//! Health, metrics, and the answers for unknown paths.

use crate::error::Error;
use crate::metrics::METRICS;
use axum::http::header;
use axum::response::IntoResponse;
use tara_protocol::auth::Health;
use tara_protocol::ErrorCode;

pub async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        METRICS.render(),
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
