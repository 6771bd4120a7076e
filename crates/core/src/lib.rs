//! tara-core: the client engine behind the app, the CLI, the end-to-end tests and the benchmarks.
//!
//! Its promise to a person on a bad network: what you write is never lost, never sent twice,
//! and appears in the same order for both sides, whatever the network, the server or the app
//! does in between.
//!
//! # Layout
//!
//! - [`Client`] ([`client`]): the handle the shell holds; commands in, one [`Event`] stream out.
//! - [`realtime`]: the actor that owns the connection: resume by seq, drain the outbox in
//!   order, backoff with jitter, heartbeats, the long-poll fallback.
//! - [`db`]: the local SQLite store on its own thread: consultations, messages, the outbox.
//! - [`api`]: REST calls with the access token kept fresh by one shared refresh.
//! - [`tokens`]: the refresh token in the OS keychain, or an owner-only file.
//! - [`media`]: image compression before upload.
//! - [`account`]: birth-details profiles, devices, a guide's own card.
//! - [`wallet`]: the balance, the ledger, recharges, a guide's earnings.
//! - [`events`], [`config`], [`error`].
#![deny(missing_docs)]

pub mod account;
pub mod api;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod media;
pub mod realtime;
pub mod tokens;
pub mod wallet;

pub use api::Identity;
pub use client::{Client, SyncReport};
pub use config::{ClientConfig, TokenStoreKind};
pub use db::OutboxItem;
pub use error::{Error, Result};
pub use events::{ConnectionState, Event, LocalMessage, MessageStatus, NoticeKind};
