//! tara-server: Tara's backend in one binary.
//!
//! # Layout
//!
//! - [`launch`]: runs the server on a bound listener until a shutdown future resolves. `main`
//!   only parses flags and calls it; tests call it on port 0.
//! - [`config`]: settings, with the contract's numbers as defaults.
//! - [`app`]: shared state and the operations that touch storage and the hub together.
//! - [`routes`]: the REST surface, one module per resource.
//! - [`realtime`]: the WebSocket endpoint, the [`realtime::hub::Hub`] and one task per connection.
//! - [`store`]: the storage trait and its SQLite backend (group commit on one writer thread).
//! - [`state`]: the consultation state machine as a pure function.
//! - [`billing`]: per-minute prices, the balance timer, payment providers.
//! - [`auth`]: OTP codes, JWT access tokens, refresh tokens, the `AuthUser` extractor.
//! - [`push`]: pushes to phones with no open connection (FCM, APNs), never in the way of a send.
//! - [`media`], [`ratelimit`], [`metrics`], [`demo`], [`error`].
#![deny(missing_docs)]

pub mod app;
pub mod auth;
pub mod billing;
pub mod config;
pub mod demo;
pub mod error;
mod http;
pub mod media;
pub mod metrics;
pub mod push;
pub mod ratelimit;
pub mod realtime;
#[allow(missing_docs)]
mod routes;
pub mod state;
pub mod store;

pub use config::Config;
pub use routes::{ROOT_ROUTES, ROUTES};

use std::future::Future;
use tokio::net::TcpListener;

/// Serves the whole API on `listener` until `shutdown` resolves, then stops taking new work,
/// closes realtime connections with 1001, lets in-flight requests finish, and commits what
/// storage holds before returning.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = app::AppState::build(config).await?;
    let router = routes::router(state.clone());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    println!("listening on http://{addr}");
    let signal_state = state.clone();
    // Not `axum::serve`: it cannot time out a request's headers (see `http`).
    http::serve(
        listener,
        router,
        state.config.header_read_timeout,
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            signal_state.begin_shutdown();
        },
    )
    .await;
    state.finish_shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
