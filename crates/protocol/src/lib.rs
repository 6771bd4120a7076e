//! Tara's wire contract, as serde types.
//!
//! This crate is the one copy of `shared/API.md` in Rust. The server and the client engine
//! both speak only these types, so a field renamed here is renamed everywhere at once.
//!
//! # Layout
//!
//! - [`ids`]: newtype ids (`UserId`, `ConsultationId`, …) and the `pair_id` rule.
//! - [`time`]: [`Timestamp`], RFC 3339 UTC with milliseconds.
//! - [`error`]: [`ErrorCode`] with its HTTP status, and the `{"error": …}` body.
//! - [`auth`], [`guides`], [`customers`], [`consultations`], [`messages`], [`media`],
//!   [`wallet`], [`devices`]: request and response bodies of the REST calls, named after the call.
//! - [`realtime`]: [`ClientFrame`] and [`ServerFrame`], the WebSocket frames, tagged by `type`.
#![deny(missing_docs)]

pub mod auth;
pub mod consultations;
pub mod customers;
pub mod devices;
pub mod error;
pub mod guides;
pub mod ids;
pub mod media;
pub mod messages;
pub mod realtime;
pub mod time;
pub mod wallet;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use ids::{ClientMsgId, ConsultationId, MediaId, MessageId, SessionId, UserId};
pub use realtime::{ClientFrame, ServerFrame};
pub use time::Timestamp;

/// The largest realtime frame a server accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The most Unicode scalar values a text message may hold after trimming.
pub const MAX_TEXT_CHARS: usize = 4000;
/// The largest media upload, in bytes.
pub const MAX_MEDIA_BYTES: usize = 10 * 1024 * 1024;
/// The most pixels (width × height) an uploaded image may claim.
pub const MAX_MEDIA_PIXELS: u64 = 50_000_000;
/// The path prefix of every REST call.
pub const API_PREFIX: &str = "/api/v1";
