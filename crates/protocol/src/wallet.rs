//! Wallet and billing (served by a later version of the server).

use serde::{Deserialize, Serialize};

/// `GET /api/v1/wallet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    /// Balance in the currency's units.
    pub balance: i64,
    /// ISO 4217 code.
    pub currency: String,
}
