//! Identifiers. User ids are integers; consultation, message and media ids are UUID v7 strings.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A user (customer or guide). A guide's `guide_id` is its user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A consultation (UUID v7).
    ConsultationId
);
string_id!(
    /// A stored message (UUID v7), assigned by the server.
    MessageId
);
string_id!(
    /// An uploaded image (UUID v7).
    MediaId
);
string_id!(
    /// A device session: one login on one device.
    SessionId
);
string_id!(
    /// The sender's id for a message, chosen when it is first queued; makes sending idempotent.
    ClientMsgId
);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `pair_id` = `"{customer_id}_{guide_id}"`: one customer and one guide across their consultations.
pub fn pair_id(customer: UserId, guide: UserId) -> String {
    format!("{}_{}", customer.0, guide.0)
}
