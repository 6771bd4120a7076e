//! Customer profiles: birth details for a reading.

use serde::{Deserialize, Serialize};

/// Birth details, as written by the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfileInput {
    /// Whose chart this is.
    pub name: String,
    /// `1990-01-01`.
    pub date_of_birth: String,
    /// `10:30:00`.
    pub time_of_birth: String,
    /// City of birth.
    pub birth_city: String,
    /// Country of birth.
    pub birth_country: String,
    /// Language for the reading.
    pub preferred_language: String,
    /// Sun sign, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zodiac_sign: Option<String>,
    /// Gender, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
}

/// A stored profile; `intake` on a consultation is a snapshot of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// The profile.
    pub profile_id: i64,
    /// Its owner.
    pub customer_id: i64,
    /// Whether it is the customer's own (primary) profile.
    #[serde(default)]
    pub is_primary: bool,
    /// The birth details.
    #[serde(flatten)]
    pub details: CustomerProfileInput,
}

/// `GET /api/v1/customers/{id}/profiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfileList {
    /// Every profile of the customer, primary first.
    pub profiles: Vec<CustomerProfile>,
}
