//! The REST surface of API.md, one module per resource. Handlers only translate between HTTP
//! and the operations of [`crate::app`]; every failure is the contract's error body.

mod auth;
mod consultations;
mod customers;
mod devices;
mod guides;
mod media;
mod messages;
mod system;
mod wallet;

use crate::app::AppState;
use crate::error::Error;
use crate::metrics::METRICS;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering::Relaxed;

/// Request bodies above this are refused (media has its own limit).
const JSON_LIMIT: usize = 64 * 1024;

/// Every route of the contract.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/health", get(system::health))
        .route("/auth/health", get(system::health))
        .route("/auth/otp/generate", post(auth::generate))
        .route("/auth/otp/validate", post(auth::validate))
        .route("/auth/refresh", post(auth::refresh))
        .route(
            "/auth/profile",
            get(auth::profile).patch(auth::update_profile),
        )
        .route("/auth/sessions", get(auth::sessions))
        .route(
            "/auth/sessions/{session_id}",
            axum::routing::delete(auth::delete_session),
        )
        .route("/auth/logout", post(auth::logout))
        .route(
            "/devices/push-token",
            post(devices::register).delete(devices::unregister),
        )
        .route("/guide/all", get(guides::list))
        .route("/guide/profile", get(guides::own_profile))
        .route("/guide/status", post(guides::set_status))
        .route("/guide/ratings", get(guides::ratings))
        .route("/guide/earnings", get(wallet::earnings))
        .route("/wallet", get(wallet::wallet))
        .route("/wallet/ledger", get(wallet::ledger))
        .route("/wallet/recharge", post(wallet::recharge))
        .route("/payments/webhook", post(wallet::webhook))
        .route(
            "/customers/{customer_id}/profile",
            get(customers::primary).post(customers::save_primary),
        )
        .route(
            "/customers/{customer_id}/profiles",
            get(customers::list).post(customers::add),
        )
        .route("/consultation", post(consultations::create))
        .route("/consultation/requests", get(consultations::requests))
        .route(
            "/consultation/customers/current",
            get(consultations::customer_current),
        )
        .route(
            "/consultation/guides/current",
            get(consultations::guide_current),
        )
        .route("/consultation/{id}", get(consultations::get_one))
        .route("/consultation/{id}/accept", post(consultations::accept))
        .route("/consultation/{id}/reject", post(consultations::reject))
        .route("/consultation/{id}/cancel", post(consultations::cancel))
        .route("/consultation/{id}/join", post(consultations::join))
        .route(
            "/consultation/{id}/complete",
            patch(consultations::complete).post(consultations::complete),
        )
        .route("/consultation/{id}/feedback", post(consultations::feedback))
        .route(
            "/consultation/{id}/messages",
            get(messages::history).post(messages::send),
        )
        .route("/consultation/{id}/messages/poll", get(messages::poll))
        .route("/consultations", get(consultations::chat_list))
        .route(
            "/media",
            post(media::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/media/{media_id}", get(media::download))
        .route("/realtime", get(crate::realtime::upgrade))
        .layer(axum::extract::DefaultBodyLimit::max(JSON_LIMIT));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(system::metrics))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

async fn count_requests(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    METRICS.http_requests.fetch_add(1, Relaxed);
    METRICS.http_latency.observe(started.elapsed());
    res
}

/// JSON body whose rejections are the contract's `VALIDATION_FAILED` (or `PAYLOAD_TOO_LARGE`).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(Error::new(
                    tara_protocol::ErrorCode::PayloadTooLarge,
                    "the request body is too large",
                ))
            }
            Err(e) => Err(Error::validation(e.body_text())),
        }
    }
}

/// An optional JSON body: an empty body reads as the default.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| {
                Error::new(
                    tara_protocol::ErrorCode::PayloadTooLarge,
                    "the request body is too large",
                )
            })?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| Error::validation(format!("the body is not valid: {e}")))
    }
}

/// Query string whose rejections are `VALIDATION_FAILED`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| Error::validation(e.body_text()))
    }
}

/// Path parameters whose rejections are `VALIDATION_FAILED`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| Error::validation(e.body_text()))
    }
}

/// Page size: `default` when absent, never above `max`, never 0.
pub fn page_size(limit: Option<u32>, default: usize, max: usize) -> usize {
    limit.map_or(default, |l| (l as usize).clamp(1, max))
}

/// An opaque cursor from its parts.
pub fn encode_cursor(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// The parts of an opaque cursor, or `VALIDATION_FAILED`.
pub fn decode_cursor(c: &str) -> Result<String, Error> {
    B64.decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Error::validation("cursor is not one this server gave out"))
}
