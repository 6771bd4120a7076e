//! Consultations: the state machine, requests, join, completion, feedback and the chat list.

use crate::customers::CustomerProfile;
use crate::guides::PresenceStatus;
use crate::ids::{ConsultationId, UserId};
use crate::messages::Message;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a consultation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsultationStatus {
    /// Asked for, waiting for the guide.
    Requested,
    /// The guide said yes; waiting for both to join.
    Accepted,
    /// Both joined; the clock runs.
    InProgress,
    /// Ended by a party or the system.
    Completed,
    /// Cancelled, rejected or timed out before it began.
    Cancelled,
}

impl ConsultationStatus {
    /// As written on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Accepted => "accepted",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => Self::Requested,
            "accepted" => Self::Accepted,
            "in_progress" => Self::InProgress,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Requested, accepted or in progress: counts against "one at a time".
    pub fn is_active(self) -> bool {
        matches!(self, Self::Requested | Self::Accepted | Self::InProgress)
    }

    /// Whether messages may be sent.
    pub fn accepts_messages(self) -> bool {
        matches!(self, Self::Accepted | Self::InProgress)
    }
}

/// Who ended a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The customer.
    Customer,
    /// The guide.
    Guide,
    /// The server (timeout, balance).
    System,
}

impl EndedBy {
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

/// A consultation as every call returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consultation {
    /// Its id.
    pub consultation_id: ConsultationId,
    /// `"{customer_id}_{guide_id}"`.
    pub pair_id: String,
    /// The guide.
    pub guide_id: UserId,
    /// The customer.
    pub customer_id: UserId,
    /// The guide's display name.
    pub guide_name: String,
    /// The customer's display name.
    pub customer_name: String,
    /// `chat`.
    pub mode: String,
    /// Where it stands.
    pub status: ConsultationStatus,
    /// When it was requested.
    pub created_at: Timestamp,
    /// When the guide accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<Timestamp>,
    /// When both had joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it ended (completed or cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Who ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<EndedBy>,
    /// Why it ended (`timeout`, `rejected`, a party's words, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// Seconds from start to end, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// The guide's rate when requested.
    pub rate_per_minute: i64,
    /// Birth details the customer attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake: Option<CustomerProfile>,
    /// The highest `seq` stored.
    pub head_seq: i64,
    /// How many messages it holds (system messages included).
    pub total_messages: i64,
    /// When the last message was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<Timestamp>,
    /// Extension: the customer has rated it (`feedback` would answer `ALREADY_RATED`). Sent only
    /// when true, so every device of the customer knows not to ask again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rated: bool,
    /// While `in_progress` with a rate: when the server ends it because the customer's balance
    /// is used up (`started_at + floor(balance / rate)` minutes). Moves when the balance does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// Once completed: what the customer was charged for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_charged: Option<i64>,
    /// Extension, while `in_progress`: the guide's connections have all been gone since then
    /// (for two minutes or more). The customer may end it; nothing after this is charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide_away_at: Option<Timestamp>,
}

/// `POST /api/v1/consultation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateConsultationRequest {
    /// The guide asked for.
    pub guide_id: UserId,
    /// `chat`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// `consultation`.
    #[serde(default = "default_service_type")]
    pub service_type: String,
    /// Birth details to attach as `intake`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_profile_id: Option<i64>,
}

fn default_mode() -> String {
    "chat".to_owned()
}

fn default_service_type() -> String {
    "consultation".to_owned()
}

/// `POST …/{id}/reject` and `PATCH …/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReasonRequest {
    /// Free text, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST …/{id}/join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// `chat`.
    #[serde(default = "default_mode")]
    pub mode: String,
}

impl Default for JoinRequest {
    fn default() -> Self {
        Self {
            mode: default_mode(),
        }
    }
}

/// One side of a consultation, with its live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// The user.
    pub user_id: UserId,
    /// Customer or guide.
    pub user_type: crate::auth::UserType,
    /// Name shown.
    pub display_name: String,
    /// Connected now (or within the presence grace).
    pub is_online: bool,
    /// Typing in this consultation now.
    pub is_typing: bool,
    /// Last time connected.
    #[serde(default)]
    pub last_seen: Option<Timestamp>,
    /// Messages from the other side this one has not read.
    pub unread_count: i64,
    /// Highest seq this one's devices have stored.
    pub delivered_seq: i64,
    /// Highest seq this one has seen.
    pub read_seq: i64,
}

/// Answer to join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The consultation after joining.
    pub consultation: Consultation,
    /// Both parties.
    pub participants: Vec<Participant>,
}

/// `POST …/{id}/feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRequest {
    /// 1 to 5 stars.
    pub rating: i64,
    /// Words, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_text: Option<String>,
    /// Categories of trouble, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<String>>,
}

/// Answer to feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackResponse {
    /// The stored feedback.
    pub feedback_id: String,
    /// The stars given.
    pub rating: i64,
    /// When.
    pub submitted_at: Timestamp,
}

/// A guide's pending requests: `GET /api/v1/consultation/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestList {
    /// Oldest first.
    pub requests: Vec<Consultation>,
}

/// The other side of a chat-list row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherParty {
    /// The user.
    pub id: UserId,
    /// Name shown.
    pub display_name: String,
    /// Picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Live status.
    pub status: PresenceStatus,
}

/// One row of the chat list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatListItem {
    /// The consultation.
    pub consultation: Consultation,
    /// Who it is with.
    pub other_party: OtherParty,
    /// Its newest message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Message>,
    /// Messages from the other side the caller has not read.
    pub unread_count: i64,
}

/// `GET /api/v1/consultations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatList {
    /// Newest activity first.
    pub items: Vec<ChatListItem>,
    /// Pass back as `cursor` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of list calls.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PageQuery {
    /// Page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What happened to a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsultationEvent {
    /// A customer asked a guide.
    Requested,
    /// The guide accepted.
    Accepted,
    /// The guide declined.
    Rejected,
    /// Cancelled by the customer or timed out.
    Cancelled,
    /// Both joined.
    Started,
    /// Ended.
    Completed,
    /// One minute before `ends_at`: the balance is about to run out.
    EndingSoon,
    /// A recharge moved `ends_at` later while it runs.
    Extended,
    /// Nobody has sent, read or typed for a while: the server ends it soon unless someone does.
    IdleWarning,
    /// The guide's connections have all been gone for two minutes: the customer may end it,
    /// and nothing after `guide_away_at` is charged.
    GuideAway,
    /// The guide is connected again.
    GuideBack,
}
