//! Messages: the stored form, history pages, REST send and long poll.

use crate::ids::{ClientMsgId, ConsultationId, MediaId, MessageId, UserId};
use crate::media::MediaInfo;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderType {
    /// The customer.
    Customer,
    /// The guide.
    Guide,
    /// The server, for state changes.
    System,
}

impl SenderType {
    /// As written on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Guide => "guide",
            Self::System => "system",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "customer" => Self::Customer,
            "guide" => Self::Guide,
            "system" => Self::System,
            _ => return None,
        })
    }
}

/// What a message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Words.
    Text,
    /// An uploaded image, with an optional caption in `content`.
    Image,
    /// Written by the server.
    System,
}

impl MessageKind {
    /// As written on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::System => "system",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => Self::Text,
            "image" => Self::Image,
            "system" => Self::System,
            _ => return None,
        })
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Server id.
    pub message_id: MessageId,
    /// Its consultation.
    pub consultation_id: ConsultationId,
    /// Its place in the consultation: from 1, gapless.
    pub seq: i64,
    /// The sender's idempotency id (server-made for system messages).
    pub client_msg_id: ClientMsgId,
    /// Sender (0 for system messages).
    pub sender_id: UserId,
    /// Customer, guide or system.
    pub sender_type: SenderType,
    /// Text, image or system.
    pub kind: MessageKind,
    /// The text, caption, or system sentence.
    pub content: String,
    /// The image, for `kind: image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
    /// When the server stored it.
    pub sent_at: Timestamp,
    /// Whether it was deleted.
    #[serde(default)]
    pub is_deleted: bool,
}

/// `POST /api/v1/consultation/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    /// The sender's idempotency id.
    pub client_msg_id: ClientMsgId,
    /// Text or image.
    pub kind: MessageKind,
    /// The text or caption.
    #[serde(default)]
    pub content: String,
    /// The uploaded image, for `kind: image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<MediaId>,
}

/// History and long-poll query.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Messages below this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_seq: Option<i64>,
    /// Messages above this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<i64>,
    /// Page size, default 50, at most 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Long poll: seconds to wait, at most 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// A page of history, ascending by seq.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    /// Ascending by seq.
    pub messages: Vec<Message>,
    /// More exist beyond the page in the direction asked.
    pub has_more: bool,
}

/// Who a user id is on a message, for convenience.
pub fn system_sender() -> UserId {
    UserId(0)
}
