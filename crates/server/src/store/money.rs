//! What the store keeps about money: wallets, the ledger, payments. The arithmetic lives in
//! [`crate::billing`]; these are the shapes the `Store` methods take and give.

use tara_protocol::wallet::PaymentStatus;
use tara_protocol::UserId;

/// The platform's own account in the ledger (no user has id 0).
pub const PLATFORM: UserId = UserId(0);

/// How completions are priced, passed to every write that may charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    /// The platform's share of each charge, in percent (the guide gets the rest, rounded down).
    pub commission_percent: u32,
    /// ISO 4217 code of new wallets.
    pub currency: String,
    /// How long a billed minute is, in ms: 60,000 but in tests. New consultations keep it.
    pub minute_ms: i64,
}

impl Default for Tariff {
    fn default() -> Self {
        Self {
            commission_percent: 30,
            currency: "INR".into(),
            minute_ms: crate::billing::MINUTE_MS,
        }
    }
}

/// A wallet as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRow {
    /// Whose.
    pub user_id: UserId,
    /// The cached balance: always the sum of the account's ledger rows.
    pub balance: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// Money put into a wallet by an operator (`wallet credit`) or the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    /// Whose wallet.
    pub user_id: UserId,
    /// Positive.
    pub amount: i64,
    /// Why, for the ledger.
    pub note: Option<String>,
    /// When, ms.
    pub now_ms: i64,
}

/// A recharge to open with a payment provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// Its id (UUID v7), named in the gateway's webhook.
    pub payment_id: String,
    /// The customer paying.
    pub user_id: UserId,
    /// Whole units.
    pub amount: i64,
    /// The provider's name.
    pub provider: String,
    /// The client's key: one payment per (user, key).
    pub idempotency_key: String,
    /// Credit the wallet in the same transaction (a provider that captures at once).
    pub capture_now: bool,
    /// When, ms.
    pub now_ms: i64,
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// Its id.
    pub payment_id: String,
    /// Who pays.
    pub user_id: UserId,
    /// Whole units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Which provider opened it.
    pub provider: String,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The client's key.
    pub idempotency_key: String,
    /// The wallet's balance right after this payment was credited (from its ledger row).
    pub balance_after: Option<i64>,
}

/// What opening a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The payment (the first one with this key, if it existed).
    pub payment: PaymentRow,
    /// True when the key was used before: nothing new happened.
    pub existed: bool,
}

/// What a gateway's word about a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The payment, after.
    pub payment: PaymentRow,
    /// True when nothing changed (the same event again, or a payment already settled).
    pub duplicate: bool,
}

/// A guide's earnings page and sums.
#[derive(Debug, Clone, PartialEq)]
pub struct EarningsPage {
    /// Newest first; each with the ledger seq that is its cursor.
    pub items: Vec<(i64, tara_protocol::wallet::Earning)>,
    /// Everything earned.
    pub total: i64,
    /// Earned since the `since_ms` asked for.
    pub since: i64,
}
