//! Wallet and billing: the prepaid balance, its double-entry ledger, recharges through a payment
//! provider, and what guides earn.
//!
//! Every amount is an integer in the currency's unit (rupees for INR), like `rate_per_minute`.

use crate::ids::{ConsultationId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The most one recharge may add.
pub const MAX_RECHARGE: i64 = 1_000_000;
/// A consultation can be requested with at least this many minutes of balance at the guide's rate.
pub const MIN_MINUTES_TO_REQUEST: i64 = 5;

/// `GET /api/v1/wallet`, and the `wallet` frame's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    /// Balance in the currency's units.
    pub balance: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// What moved money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// A customer paid money in.
    Recharge,
    /// A consultation was paid for (customer, negative).
    Charge,
    /// A guide's share of a charge.
    Earning,
    /// The platform's share of a charge.
    Commission,
    /// Money given back.
    Refund,
    /// An operator's correction or credit (`tara-server wallet credit`, demo credit).
    Adjustment,
}

impl LedgerKind {
    /// As written on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recharge => "recharge",
            Self::Charge => "charge",
            Self::Earning => "earning",
            Self::Commission => "commission",
            Self::Refund => "refund",
            Self::Adjustment => "adjustment",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "recharge" => Self::Recharge,
            "charge" => Self::Charge,
            "earning" => Self::Earning,
            "commission" => Self::Commission,
            "refund" => Self::Refund,
            "adjustment" => Self::Adjustment,
            _ => return None,
        })
    }
}

/// One row of an account's ledger: one account's side of one movement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Its id (UUID v7).
    pub entry_id: String,
    /// What moved the money.
    pub kind: LedgerKind,
    /// Signed: positive adds to this account, negative takes from it.
    pub amount: i64,
    /// This account's balance right after it.
    pub balance_after: i64,
    /// The consultation it paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consultation_id: Option<ConsultationId>,
    /// The payment it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// When.
    pub created_at: Timestamp,
    /// Words for a person (an operator's note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `GET /api/v1/wallet/ledger?limit=&cursor=`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerPage {
    /// Newest first.
    pub items: Vec<LedgerEntry>,
    /// Pass back as `cursor` for the next (older) page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The balance now.
    pub balance: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// `POST /api/v1/wallet/recharge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RechargeRequest {
    /// Whole units, 1 to [`MAX_RECHARGE`].
    pub amount: i64,
    /// Chosen by the client per recharge; a retry with the same key gets the first answer.
    pub idempotency_key: String,
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Waiting for the gateway to say it was paid.
    Created,
    /// Paid: the wallet was credited.
    Captured,
    /// The gateway says it failed: nothing was credited.
    Failed,
}

impl PaymentStatus {
    /// As written on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Captured => "captured",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => Self::Created,
            "captured" => Self::Captured,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// Answer to a recharge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RechargeResponse {
    /// The payment's id; the gateway's webhook names it.
    pub payment_id: String,
    /// `captured` (dev provider: credited at once) or `created` (the gateway confirms later).
    pub status: PaymentStatus,
    /// The amount asked for.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The wallet after the credit, when it was credited at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet: Option<Wallet>,
}

/// The body a payment gateway posts to `POST /api/v1/payments/webhook`, signed with
/// `X-Tara-Signature: hex(HMAC-SHA256(secret, raw body))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentWebhook {
    /// What happened: `captured` or `failed` (`payment.captured` and `payment.failed` are read
    /// the same way; the field may also be called `status` or `type`).
    #[serde(alias = "status", alias = "type")]
    pub event: String,
    /// The payment the recharge answered with.
    pub payment_id: String,
    /// What the gateway collected; when given, it must equal the recharge's amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// ISO 4217 code, if the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// Answer to a webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookResponse {
    /// The payment.
    pub payment_id: String,
    /// Where it stands now.
    pub status: PaymentStatus,
    /// True when this delivery changed nothing (the event was seen before).
    pub duplicate: bool,
}

/// One consultation a guide was paid for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Earning {
    /// The consultation.
    pub consultation_id: ConsultationId,
    /// Who it was with.
    pub customer_name: String,
    /// How long it ran.
    pub duration_seconds: i64,
    /// What the guide earned from it (after the platform's commission).
    pub amount: i64,
    /// When it was paid.
    pub created_at: Timestamp,
}

/// `GET /api/v1/guide/earnings?limit=&cursor=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Earnings {
    /// Everything earned, all time.
    pub total: i64,
    /// Extension: earned since midnight (UTC, or the offset given as `tz_offset_minutes`).
    pub today: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Newest first.
    pub items: Vec<Earning>,
    /// Pass back as `cursor` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The operator's `tara-server wallet credit|show` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletOfUser {
    /// Whose.
    pub user_id: UserId,
    /// The balance now.
    pub balance: i64,
    /// ISO 4217 code.
    pub currency: String,
}
