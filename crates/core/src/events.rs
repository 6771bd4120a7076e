//! The one event stream the engine emits. Serializable, so a shell can forward it to a UI as is.

use serde::{Deserialize, Serialize};
use tara_protocol::consultations::{Consultation, ConsultationEvent};
use tara_protocol::guides::PresenceStatus;
use tara_protocol::media::MediaInfo;
use tara_protocol::messages::{MessageKind, SenderType};
use tara_protocol::{ConsultationId, Timestamp, UserId};

/// The state of the link to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Not signed in, or stopped.
    Idle,
    /// Trying to connect.
    Connecting,
    /// Realtime connection up.
    Online,
    /// No WebSocket possible; using long poll and REST.
    Polling,
    /// The server cannot be reached; retrying.
    Offline,
}

/// Where one of our messages stands, or that it is someone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// In the outbox, not yet acked.
    Sending,
    /// Stored by the server.
    Sent,
    /// Stored on the other side's device.
    Delivered,
    /// Seen by the other side.
    Read,
    /// Refused for good; see `error`. Can be retried.
    Failed,
    /// From someone else (or the server).
    Received,
}

impl MessageStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Received => "received",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Self {
        match s {
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            _ => Self::Received,
        }
    }
}

/// A message as the device holds it: stored by the server (with `seq`) or still on its way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalMessage {
    /// Its consultation.
    pub consultation_id: ConsultationId,
    /// The sender's idempotency id.
    pub client_msg_id: String,
    /// Server id, once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Order in the consultation, once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Who sent it.
    pub sender_id: UserId,
    /// Customer, guide or system.
    pub sender_type: SenderType,
    /// Text, image or system.
    pub kind: MessageKind,
    /// Text or caption.
    pub content: String,
    /// The uploaded image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
    /// The compressed image on this device, until (and after) it is uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    /// When the server stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// When it was written on this device (or received).
    pub created_at: Timestamp,
    /// Where it stands.
    pub status: MessageStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What kind of notice is worth a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A message from the other side.
    Message,
    /// A customer asks for a consultation (guides).
    Request,
    /// The guide accepted.
    Accepted,
    /// The consultation ended.
    Ended,
    /// The balance runs out in a minute (customers).
    EndingSoon,
}

/// Everything the engine tells its shell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// The link to the server changed.
    Connection {
        /// Now.
        state: ConnectionState,
    },
    /// Signed in (at login, or at start with a stored session).
    SignedIn {
        /// Who.
        user_id: UserId,
        /// Customer or guide.
        user_type: tara_protocol::auth::UserType,
    },
    /// Signed out: by the user, or because the session ended elsewhere.
    SignedOut {
        /// Why, for a person.
        reason: String,
    },
    /// A message appeared (written here, or received).
    MessageAdded {
        /// It.
        message: LocalMessage,
    },
    /// A message changed (acked, delivered, read, failed, retried).
    MessageUpdated {
        /// It, as it is now.
        message: LocalMessage,
    },
    /// Someone is (or stopped) typing.
    Typing {
        /// Where.
        consultation_id: ConsultationId,
        /// Who.
        user_id: UserId,
        /// Typing or not.
        is_typing: bool,
    },
    /// A user's live status.
    Presence {
        /// Who.
        user_id: UserId,
        /// Online, busy or offline.
        status: PresenceStatus,
        /// Last connected.
        #[serde(default)]
        last_seen: Option<Timestamp>,
    },
    /// The other side's delivery and read progress.
    Receipt {
        /// Where.
        consultation_id: ConsultationId,
        /// Whose progress.
        user_id: UserId,
        /// Highest seq stored by their devices.
        delivered_seq: i64,
        /// Highest seq they have seen.
        read_seq: i64,
    },
    /// A consultation changed state.
    Consultation {
        /// What happened.
        event: ConsultationEvent,
        /// After it.
        consultation: Consultation,
    },
    /// This user's balance changed (a recharge, a charge, an earning, a credit).
    Wallet {
        /// The balance now.
        balance: i64,
        /// ISO 4217 code.
        currency: String,
    },
    /// This user's unread count for a consultation.
    Unread {
        /// Where.
        consultation_id: ConsultationId,
        /// How many.
        unread_count: i64,
    },
    /// How many messages wait to be sent.
    Outbox {
        /// Queued, not yet acked or failed.
        queued: i64,
    },
    /// An image upload moved.
    UploadProgress {
        /// The message it belongs to.
        client_msg_id: String,
        /// Bytes sent.
        sent: u64,
        /// Bytes in all.
        total: u64,
    },
    /// Something a person should hear about even with the window hidden.
    Notice {
        /// What kind.
        kind: NoticeKind,
        /// Where.
        consultation_id: ConsultationId,
        /// Short title (who).
        title: String,
        /// Short body (a preview).
        body: String,
    },
}
