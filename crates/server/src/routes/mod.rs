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
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering::Relaxed;

/// Request bodies above this are refused (media has its own limit).
const JSON_LIMIT: usize = 64 * 1024;

/// Declares the route table once: [`ROUTES`] (what the access matrix walks) and the router that
/// serves it come out of the same list, so a route cannot exist without its row.
macro_rules! routes {
    ($( $path:literal => $( $method:ident ( $handler:path ) ),+ $( ; layer $layer:expr )? ;)+) => {
        /// Every route under `/api/v1`, as `(METHOD, path)`, in the router's own spelling
        /// (`{id}` for a path parameter).
        pub const ROUTES: &[(&str, &str)] = &[ $( $( (method_name!($method), $path), )+ )+ ];

        fn api_routes() -> Router<AppState> {
            let api = Router::new();
            $(
                let route = axum::routing::MethodRouter::new() $( .$method($handler) )+;
                $( let route = route.layer($layer); )?
                let api = api.route($path, route);
            )+
            api
        }
    };
}

macro_rules! method_name {
    (get) => {
        "GET"
    };
    (post) => {
        "POST"
    };
    (patch) => {
        "PATCH"
    };
    (delete) => {
        "DELETE"
    };
}

routes! {
    "/health" => get(system::health);
    "/auth/health" => get(system::health);
    "/auth/otp/generate" => post(auth::generate);
    "/auth/otp/validate" => post(auth::validate);
    "/auth/refresh" => post(auth::refresh);
    "/auth/profile" => get(auth::profile), patch(auth::update_profile);
    "/auth/sessions" => get(auth::sessions);
    "/auth/sessions/{session_id}" => delete(auth::delete_session);
    "/auth/logout" => post(auth::logout);
    "/devices/push-token" => post(devices::register), delete(devices::unregister);
    "/guide/all" => get(guides::list);
    "/guide/profile" => get(guides::own_profile);
    "/guide/status" => post(guides::set_status);
    "/guide/ratings" => get(guides::ratings);
    "/guide/earnings" => get(wallet::earnings);
    "/wallet" => get(wallet::wallet);
    "/wallet/ledger" => get(wallet::ledger);
    "/wallet/recharge" => post(wallet::recharge);
    "/payments/webhook" => post(wallet::webhook);
    "/customers/{customer_id}/profile" => get(customers::primary), post(customers::save_primary);
    "/customers/{customer_id}/profiles" => get(customers::list), post(customers::add);
    "/consultation" => post(consultations::create);
    "/consultation/requests" => get(consultations::requests);
    "/consultation/customers/current" => get(consultations::customer_current);
    "/consultation/guides/current" => get(consultations::guide_current);
    "/consultation/{id}" => get(consultations::get_one);
    "/consultation/{id}/accept" => post(consultations::accept);
    "/consultation/{id}/reject" => post(consultations::reject);
    "/consultation/{id}/cancel" => post(consultations::cancel);
    "/consultation/{id}/join" => post(consultations::join);
    "/consultation/{id}/complete" => patch(consultations::complete), post(consultations::complete);
    "/consultation/{id}/feedback" => post(consultations::feedback);
    "/consultation/{id}/messages" => get(messages::history), post(messages::send);
    "/consultation/{id}/messages/poll" => get(messages::poll);
    "/consultations" => get(consultations::chat_list);
    "/media" => post(media::upload); layer axum::extract::DefaultBodyLimit::disable();
    "/media/{media_id}" => get(media::download);
    "/realtime" => get(crate::realtime::upgrade);
}

/// Where the Prometheus text is served, outside `/api/v1`.
const METRICS_PATH: &str = "/metrics";

/// Routes outside `/api/v1`, as `(METHOD, full path)`.
pub const ROOT_ROUTES: &[(&str, &str)] = &[("GET", METRICS_PATH)];

/// Every route of the contract.
pub fn router(state: AppState) -> Router {
    let api = api_routes().layer(axum::extract::DefaultBodyLimit::max(JSON_LIMIT));
    Router::new()
        .nest("/api/v1", api)
        .route(METRICS_PATH, get(system::metrics))
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

/// The address of the peer the request came from (the TCP peer: behind a reverse proxy, the
/// proxy). Unspecified when the router was served without connect info.
pub struct PeerIp(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(peer_ip(parts)))
    }
}

/// The peer's IP address from a request's parts.
pub fn peer_ip(parts: &Parts) -> std::net::IpAddr {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip())
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

#[cfg(test)]
mod tests {
    use super::ROUTES;
    use std::collections::HashSet;

    #[test]
    fn the_route_table_names_each_route_once() {
        let mut seen = HashSet::new();
        for (method, path) in ROUTES {
            assert!(path.starts_with('/'), "{path}");
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
        assert!(ROUTES.contains(&("GET", "/realtime")));
    }
}
