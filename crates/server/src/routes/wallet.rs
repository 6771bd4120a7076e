//! `/api/v1/wallet*`, `/api/v1/payments/webhook` and `/api/v1/guide/earnings`: the balance, its
//! ledger, recharges through the payment provider, and what guides earned.

use super::{decode_cursor, encode_cursor, page_size, Json, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::billing::payments::SIGNATURE_HEADER;
use crate::error::{Error, Result};
use crate::store::{NewPayment, PaymentRow};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use tara_protocol::auth::UserType;
use tara_protocol::wallet::{
    Earnings, LedgerPage, PaymentStatus, PaymentWebhook, RechargeRequest, RechargeResponse, Wallet,
    WebhookResponse, MAX_RECHARGE,
};
use tara_protocol::{ErrorCode, Timestamp};

pub async fn wallet(State(app): State<AppState>, me: AuthUser) -> Result<axum::Json<Wallet>> {
    let w = app.store.wallet(me.user_id).await?;
    Ok(axum::Json(Wallet {
        balance: w.balance,
        currency: w.currency,
    }))
}

#[derive(Debug, Default, Deserialize)]
pub struct LedgerQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

fn seq_cursor(c: Option<&String>) -> Result<Option<i64>> {
    c.map(|c| {
        decode_cursor(c)?
            .parse::<i64>()
            .map_err(|_| Error::validation("cursor is not one this server gave out"))
    })
    .transpose()
}

pub async fn ledger(
    State(app): State<AppState>,
    me: AuthUser,
    Query(q): Query<LedgerQuery>,
) -> Result<axum::Json<LedgerPage>> {
    let limit = page_size(q.limit, 20, 100);
    let before = seq_cursor(q.cursor.as_ref())?;
    let mut rows = app.store.ledger(me.user_id, before, limit + 1).await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(seq, _)| encode_cursor(&seq.to_string()))
    } else {
        None
    };
    let w = app.store.wallet(me.user_id).await?;
    Ok(axum::Json(LedgerPage {
        items: rows.into_iter().map(|(_, e)| e).collect(),
        next_cursor,
        balance: w.balance,
        currency: w.currency,
    }))
}

fn answer(p: &PaymentRow) -> RechargeResponse {
    RechargeResponse {
        payment_id: p.payment_id.clone(),
        // The first answer: a payment captured at once said so; one waiting for its webhook
        // said `created`, and a replay says the same.
        status: if p.provider == "dev" {
            PaymentStatus::Captured
        } else {
            PaymentStatus::Created
        },
        amount: p.amount,
        currency: p.currency.clone(),
        wallet: p
            .balance_after
            .filter(|_| p.provider == "dev")
            .map(|b| Wallet {
                balance: b,
                currency: p.currency.clone(),
            }),
    }
}

pub async fn recharge(
    State(app): State<AppState>,
    me: AuthUser,
    Json(req): Json<RechargeRequest>,
) -> Result<axum::Json<RechargeResponse>> {
    me.require(UserType::Customer)?;
    if !(1..=MAX_RECHARGE).contains(&req.amount) {
        return Err(Error::validation(format!(
            "amount must be a whole number from 1 to {MAX_RECHARGE}"
        ))
        .with_details(serde_json::json!({ "min": 1, "max": MAX_RECHARGE })));
    }
    let key = req.idempotency_key.trim();
    if key.is_empty() || key.chars().count() > 100 {
        return Err(Error::validation(
            "idempotency_key must be 1 to 100 characters",
        ));
    }
    let Some(provider) = app.payments.clone() else {
        return Err(Error::new(
            ErrorCode::PaymentsUnavailable,
            "recharges are not set up on this server",
        ));
    };
    let opened = app
        .store
        .open_payment(NewPayment {
            payment_id: uuid::Uuid::now_v7().to_string(),
            user_id: me.user_id,
            amount: req.amount,
            provider: provider.name().to_owned(),
            idempotency_key: key.to_owned(),
            capture_now: provider.captures_at_once(),
            now_ms: Timestamp::now().millis(),
        })
        .await?;
    let p = &opened.payment;
    if opened.existed && p.amount != req.amount {
        return Err(Error::validation(format!(
            "this idempotency_key was used for a recharge of {}",
            p.amount
        )));
    }
    if !opened.existed && p.status == PaymentStatus::Captured {
        app.wallet_credited(me.user_id).await;
    }
    Ok(axum::Json(answer(p)))
}

pub async fn webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookResponse>> {
    let Some(provider) = app.payments.clone() else {
        return Err(Error::auth("this server takes no payment webhooks"));
    };
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    provider.verify(signature, &body)?;
    let raw: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Error::validation(format!("the webhook body is not JSON: {e}")))?;
    let event: PaymentWebhook = serde_json::from_value(unwrap_envelope(raw))
        .map_err(|e| Error::validation(format!("the webhook body is not valid: {e}")))?;
    let now = Timestamp::now().millis();
    let kind = event.event.trim().trim_start_matches("payment.");
    let settled = match kind {
        "captured" => {
            let p = app.store.payment(&event.payment_id).await?;
            if let (Some(p), Some(cur)) = (&p, &event.currency) {
                if !p.currency.eq_ignore_ascii_case(cur) {
                    return Err(Error::validation(format!(
                        "payment {} is in {}, not {cur}",
                        p.payment_id, p.currency
                    )));
                }
            }
            let amount = match (event.amount, &p) {
                (Some(a), _) => a,
                (None, Some(p)) => p.amount,
                (None, None) => 0, // refused below as an unknown payment
            };
            app.store
                .capture_payment(&event.payment_id, amount, now)
                .await?
        }
        "failed" => app.store.fail_payment(&event.payment_id, now).await?,
        other => {
            return Err(Error::validation(format!(
                "unknown payment event {other:?}: captured or failed"
            )))
        }
    };
    if !settled.duplicate && settled.payment.status == PaymentStatus::Captured {
        app.wallet_credited(settled.payment.user_id).await;
    }
    Ok(axum::Json(WebhookResponse {
        payment_id: settled.payment.payment_id,
        status: settled.payment.status,
        duplicate: settled.duplicate,
    }))
}

/// Gateways often wrap the payment in `data` or `payload` beside the event's name: read the
/// inner object, keeping the outer event name when the inner one has none.
fn unwrap_envelope(v: serde_json::Value) -> serde_json::Value {
    let mut v = inner_payment(v);
    // One name for what happened: `event` wins over `type` over `status`.
    if let serde_json::Value::Object(map) = &mut v {
        let name = ["event", "type", "status"]
            .iter()
            .find_map(|n| map.get(*n).cloned());
        for n in ["event", "type", "status"] {
            map.remove(n);
        }
        if let Some(name) = name {
            map.insert("event".into(), name);
        }
    }
    v
}

fn inner_payment(v: serde_json::Value) -> serde_json::Value {
    if v.get("payment_id").is_some() {
        return v;
    }
    for key in ["data", "payload"] {
        if let Some(serde_json::Value::Object(inner)) = v.get(key) {
            if inner.contains_key("payment_id") {
                let mut inner = inner.clone();
                // The outer event's name says what happened; the payment's own status less so.
                if let Some(e) = ["event", "type"].iter().find_map(|n| v.get(*n)) {
                    inner.insert("event".into(), e.clone());
                }
                return serde_json::Value::Object(inner);
            }
        }
    }
    v
}

#[derive(Debug, Default, Deserialize)]
pub struct EarningsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    /// Minutes east of UTC of the caller's "today" (JavaScript's `-getTimezoneOffset()`).
    tz_offset_minutes: Option<i32>,
}

pub async fn earnings(
    State(app): State<AppState>,
    me: AuthUser,
    Query(q): Query<EarningsQuery>,
) -> Result<axum::Json<Earnings>> {
    me.require(UserType::Guide)?;
    let limit = page_size(q.limit, 20, 100);
    let before = seq_cursor(q.cursor.as_ref())?;
    let offset = i64::from(q.tz_offset_minutes.unwrap_or(0));
    if offset.abs() > 14 * 60 {
        return Err(Error::validation("tz_offset_minutes must be within ±840"));
    }
    let since = day_start(Timestamp::now().millis(), offset);
    let mut page = app
        .store
        .earnings(me.user_id, before, limit + 1, since)
        .await?;
    let next_cursor = if page.items.len() > limit {
        page.items.truncate(limit);
        page.items
            .last()
            .map(|(seq, _)| encode_cursor(&seq.to_string()))
    } else {
        None
    };
    let w = app.store.wallet(me.user_id).await?;
    Ok(axum::Json(Earnings {
        total: page.total,
        today: page.since,
        currency: w.currency,
        items: page.items.into_iter().map(|(_, e)| e).collect(),
        next_cursor,
    }))
}

/// The last midnight before `now_ms` (ms) for a clock `offset_minutes` east of UTC.
fn day_start(now_ms: i64, offset_minutes: i64) -> i64 {
    let day = 86_400_000;
    let local = now_ms + offset_minutes * 60_000;
    local - local.rem_euclid(day) - offset_minutes * 60_000
}

#[cfg(test)]
mod tests {
    use super::{day_start, unwrap_envelope};
    use serde_json::json;

    #[test]
    fn webhook_bodies_of_several_shapes_read_the_same() {
        let flat = json!({"event": "captured", "payment_id": "p", "amount": 5});
        assert_eq!(unwrap_envelope(flat.clone()), flat);
        assert_eq!(
            unwrap_envelope(json!({"status": "captured", "payment_id": "p"})),
            json!({"event": "captured", "payment_id": "p"})
        );
        assert_eq!(
            unwrap_envelope(
                json!({"event": "payment.captured", "payment_id": "p", "status": "captured"})
            ),
            json!({"event": "payment.captured", "payment_id": "p"})
        );
        assert_eq!(
            unwrap_envelope(
                json!({"type": "payment.captured", "data": {"payment_id": "p", "amount": 5, "status": "ok"}})
            ),
            json!({"event": "payment.captured", "payment_id": "p", "amount": 5})
        );
    }

    #[test]
    fn today_starts_at_local_midnight() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("time")
                .timestamp_millis()
        };
        // 20:00Z on the 3rd is 01:30 on the 4th in India: its day began at 18:30Z on the 3rd.
        assert_eq!(
            day_start(at("2026-12-03T20:00:00Z"), 330),
            at("2026-12-03T18:30:00Z")
        );
        assert_eq!(
            day_start(at("2026-12-03T20:00:00Z"), 0),
            at("2026-12-03T00:00:00Z")
        );
        assert_eq!(
            day_start(at("2026-12-03T02:00:00Z"), -300),
            at("2026-12-02T05:00:00Z")
        );
    }
}
