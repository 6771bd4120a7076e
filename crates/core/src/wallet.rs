//! Money: the wallet's balance, its ledger, recharges, and (guides) earnings. Balance changes
//! arrive as [`crate::Event::Wallet`] on the event stream, from every device of the owner.

use crate::client::Client;
use crate::error::{codes, Error, Result};
use tara_protocol::wallet::{Earnings, LedgerPage, RechargeRequest, RechargeResponse, Wallet};

fn page_path(base: &str, limit: u32, cursor: Option<&str>) -> String {
    let mut path = format!("{base}?limit={}", limit.clamp(1, 100));
    if let Some(c) = cursor {
        path.push_str("&cursor=");
        path.push_str(c);
    }
    path
}

impl Client {
    /// The balance now.
    pub async fn wallet(&self) -> Result<Wallet> {
        self.inner.api.get("/wallet").await
    }

    /// A page of the ledger, newest first (`cursor` from the previous page).
    pub async fn ledger(&self, limit: u32, cursor: Option<&str>) -> Result<LedgerPage> {
        self.inner
            .api
            .get(&page_path("/wallet/ledger", limit, cursor))
            .await
    }

    /// Pays `amount` into the wallet. `idempotency_key` names this one recharge: asking again
    /// with the same key (after a lost answer) never pays twice. Without one, a fresh key is
    /// chosen, so a caller that may retry should pass its own.
    pub async fn recharge(
        &self,
        amount: i64,
        idempotency_key: Option<String>,
    ) -> Result<RechargeResponse> {
        if amount <= 0 {
            return Err(Error::new(codes::BAD_INPUT, "a recharge must be above 0"));
        }
        let body = RechargeRequest {
            amount,
            idempotency_key: idempotency_key.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        };
        self.inner.api.post("/wallet/recharge", &body).await
    }

    /// A guide's earnings: today (on this device's clock), in total, and the newest first.
    pub async fn earnings(&self, limit: u32, cursor: Option<&str>) -> Result<Earnings> {
        let offset = chrono::Local::now().offset().local_minus_utc() / 60;
        let path = format!(
            "{}&tz_offset_minutes={offset}",
            page_path("/guide/earnings", limit, cursor)
        );
        self.inner.api.get(&path).await
    }
}
