//! Realtime frames on `GET /api/v1/realtime`: JSON text tagged by `type`.

use crate::consultations::Consultation;
pub use crate::consultations::ConsultationEvent;
use crate::error::ErrorCode;
use crate::guides::PresenceStatus;
use crate::ids::{ClientMsgId, ConsultationId, MediaId, MessageId, UserId};
use crate::messages::{Message, MessageKind};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Close code: authentication ended (logout, revoked session, expired token).
pub const CLOSE_AUTH_ENDED: u16 = 4001;
/// Close code: too many bad frames.
pub const CLOSE_TOO_MANY_BAD_FRAMES: u16 = 4008;
/// Close code: the server is going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the connection could not keep up with what it was sent.
pub const CLOSE_SLOW_CONSUMER: u16 = 4009;
/// Close code (standard, "message too big"): a frame over [`MAX_READABLE_FRAME_BYTES`], which the
/// server cannot skip without reading it.
pub const CLOSE_FRAME_TOO_BIG: u16 = 1009;
/// Frames up to this size are read and answered (over [`crate::MAX_FRAME_BYTES`]: with
/// `PAYLOAD_TOO_LARGE`); a bigger one ends the connection with [`CLOSE_FRAME_TOO_BIG`].
pub const MAX_READABLE_FRAME_BYTES: usize = 1024 * 1024;
/// How much either end reads from its socket at a time. tungstenite zero-fills its whole read
/// buffer before every read; at its default 128 KiB that memset was the largest single cost of
/// a busy server. Frames are small; a large one is simply read in several steps.
pub const SOCKET_READ_BYTES: usize = 8 * 1024;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Receive every message above `after_seq`, then live ones.
    Subscribe {
        /// The consultation.
        consultation_id: ConsultationId,
        /// The highest contiguous seq the client holds (0 for none).
        #[serde(default)]
        after_seq: i64,
    },
    /// Stop receiving a consultation's messages.
    Unsubscribe {
        /// The consultation.
        consultation_id: ConsultationId,
    },
    /// Send a message; answered by `ack` or `error` with `ref`.
    Send {
        /// The sender's idempotency id.
        client_msg_id: ClientMsgId,
        /// The consultation.
        consultation_id: ConsultationId,
        /// Text or image.
        kind: MessageKind,
        /// Text or caption.
        #[serde(default)]
        content: String,
        /// The uploaded image.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_id: Option<MediaId>,
    },
    /// The person is (or stopped) typing.
    Typing {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Typing or not.
        is_typing: bool,
    },
    /// The client has stored every message up to this seq.
    Delivered {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Highest seq stored.
        up_to_seq: i64,
    },
    /// The person has seen every message up to this seq.
    Read {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Highest seq seen.
        up_to_seq: i64,
    },
    /// Presence of every guide, for the guide list.
    WatchGuides,
    /// Swap in a fresh access token.
    Auth {
        /// The new token.
        access_token: String,
    },
    /// Application-level ping.
    Ping,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // frames are built, serialized and dropped; boxing buys nothing
pub enum ServerFrame {
    /// First frame on every connection.
    Hello {
        /// Who this connection is.
        user_id: UserId,
        /// The server's clock.
        server_time: Timestamp,
        /// How often the server pings.
        heartbeat_interval_ms: u64,
        /// The server node this connection is on (`--node-id`; an extension).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// Subscription caught up.
    Subscribed {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Its highest seq now.
        head_seq: i64,
    },
    /// A send was stored.
    Ack {
        /// The sender's id for it.
        client_msg_id: ClientMsgId,
        /// The consultation.
        consultation_id: ConsultationId,
        /// Its seq.
        seq: i64,
        /// Its server id.
        message_id: MessageId,
        /// When stored.
        sent_at: Timestamp,
    },
    /// A message, new or replayed.
    Message {
        /// The message.
        message: Message,
    },
    /// Someone is (or stopped) typing.
    Typing {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Who.
        user_id: UserId,
        /// Typing or not.
        is_typing: bool,
    },
    /// Delivery and read progress of a participant.
    Receipt {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Whose progress.
        user_id: UserId,
        /// Highest seq stored by that user's devices.
        delivered_seq: i64,
        /// Highest seq that user has seen.
        read_seq: i64,
    },
    /// A user's live status.
    Presence {
        /// Who.
        user_id: UserId,
        /// Online, busy or offline.
        status: PresenceStatus,
        /// Last time connected.
        #[serde(default)]
        last_seen: Option<Timestamp>,
    },
    /// A consultation changed state.
    Consultation {
        /// What happened.
        event: ConsultationEvent,
        /// The consultation after it.
        consultation: Consultation,
        /// When the server will end it on its own (billing), if it will.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ends_at: Option<Timestamp>,
    },
    /// A user's unread count for a consultation changed.
    Unread {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Messages not yet read.
        unread_count: i64,
    },
    /// A frame was refused; the connection stays open.
    Error {
        /// The code.
        code: ErrorCode,
        /// For a person.
        message: String,
        /// The `client_msg_id` of a refused `send`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<ClientMsgId>,
    },
    /// The user's wallet changed (recharge, charge, earning, credit): to every device of theirs.
    Wallet {
        /// The balance now.
        balance: i64,
        /// ISO 4217 code.
        currency: String,
    },
    /// Answer to `ping`.
    Pong,
}
