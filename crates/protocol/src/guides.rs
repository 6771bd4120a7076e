//! Guides (astrologers): the list, a guide's own profile, online/offline, ratings received.

use crate::ids::{ConsultationId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A user's live status as others see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// Connected (and, for a guide, set online and free).
    Online,
    /// A guide holding an accepted or in-progress consultation.
    Busy,
    /// Not reachable.
    Offline,
}

impl PresenceStatus {
    /// As written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Busy => "busy",
            Self::Offline => "offline",
        }
    }
}

/// A guide in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guide {
    /// The guide's user id.
    pub id: UserId,
    /// Name shown to customers.
    pub display_name: String,
    /// Picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// What the guide reads (`vedic`, `tarot`, …).
    pub skills: Vec<String>,
    /// Languages spoken.
    pub languages: Vec<String>,
    /// Price per minute.
    pub rate_per_minute: i64,
    /// Average of ratings received, 0 with none.
    pub rating_avg: f64,
    /// Number of ratings received.
    pub rating_count: i64,
    /// Live status.
    pub status: PresenceStatus,
    /// Last time the guide was connected, if ever.
    #[serde(default)]
    pub last_seen: Option<Timestamp>,
}

/// `GET /api/v1/guide/all`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuideList {
    /// One page.
    pub guides: Vec<Guide>,
    /// Pass back as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/guide/all`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GuideListQuery {
    /// Only guides online now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// `chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Page size, default 50, at most 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What a guide can set: `POST /api/v1/guide/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuideAvailability {
    /// Taking requests.
    Online,
    /// Not taking requests.
    Offline,
}

/// `POST /api/v1/guide/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuideStatusRequest {
    /// The wanted availability.
    pub status: GuideAvailability,
}

/// One rating a guide received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuideRating {
    /// The consultation rated.
    pub consultation_id: ConsultationId,
    /// Who rated it, by the name they show now.
    pub customer_name: String,
    /// 1 to 5 stars.
    pub rating: i64,
    /// The customer's words, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_text: Option<String>,
    /// Categories of trouble, empty with none.
    #[serde(default)]
    pub issues: Vec<String>,
    /// When the rating was given.
    pub submitted_at: Timestamp,
}

/// `GET /api/v1/guide/ratings` (an extension): the caller's ratings, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuideRatings {
    /// Average of all ratings received, 0 with none.
    pub rating_avg: f64,
    /// Number of ratings received.
    pub rating_count: i64,
    /// One page, newest first.
    pub ratings: Vec<GuideRating>,
    /// Pass back as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
