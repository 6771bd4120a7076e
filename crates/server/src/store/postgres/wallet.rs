//! Wallets, the double-entry ledger, payments and earnings.
//!
//! Money moves only through [`post`]: one ledger row for one account and the same amount added
//! to that account's cached balance (the wallet row, locked by the update), in the caller's
//! transaction. The unique indexes on the ledger make a consultation charge once and a payment
//! credit once, whichever server tries.

use super::{execute, query, query_one, query_opt, Conn};
use crate::billing::Bill;
use crate::error::{Error, Result};
use crate::store::{
    Credit, EarningsPage, NewPayment, Opened, PaymentRow, Settled, WalletRow, PLATFORM,
};
use tara_protocol::consultations::Consultation;
use tara_protocol::wallet::{Earning, LedgerEntry, LedgerKind, PaymentStatus};
use tara_protocol::{ConsultationId, Timestamp, UserId};

/// A user's wallet; balance 0 in `currency` if none was opened yet.
pub async fn wallet(c: &Conn, user: UserId, currency: &str) -> Result<WalletRow> {
    let row = query_opt(
        c,
        "SELECT balance, currency FROM wallets WHERE user_id = $1",
        &[&user.0],
    )
    .await?;
    let (balance, currency) = match row {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, currency.to_owned()),
    };
    Ok(WalletRow {
        user_id: user,
        balance,
        currency,
    })
}

/// What one post records besides account, kind and amount.
#[derive(Default)]
pub struct Refs<'a> {
    /// The consultation paid for.
    pub consultation_id: Option<&'a str>,
    /// The payment it came from.
    pub payment_id: Option<&'a str>,
    /// Words for a person.
    pub note: Option<&'a str>,
}

/// Adds `amount` (signed) to one account and writes its ledger row; returns the new balance.
pub async fn post(
    c: &Conn,
    user: UserId,
    kind: LedgerKind,
    amount: i64,
    refs: Refs<'_>,
    now: i64,
    currency: &str,
) -> Result<i64> {
    execute(
        c,
        "INSERT INTO wallets (user_id, balance, currency, updated_at) VALUES ($1, 0, $2, $3)
         ON CONFLICT (user_id) DO NOTHING",
        &[&user.0, &currency, &now],
    )
    .await?;
    let balance: i64 = query_one(
        c,
        "UPDATE wallets SET balance = balance + $2, updated_at = $3 WHERE user_id = $1 RETURNING balance",
        &[&user.0, &amount, &now],
    )
    .await?
    .try_get(0)?;
    execute(
        c,
        "INSERT INTO ledger (entry_id, user_id, kind, amount, balance_after, consultation_id, payment_id, note, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &uuid::Uuid::now_v7().to_string(),
            &user.0,
            &kind.as_str(),
            &amount,
            &balance,
            &refs.consultation_id,
            &refs.payment_id,
            &refs.note,
            &now,
        ],
    )
    .await?;
    Ok(balance)
}

/// Charges a completed consultation: the customer's charge, the guide's earning and the
/// platform's commission. Accounts a zero amount would not touch get no row.
pub async fn charge(c: &Conn, cons: &Consultation, bill: &Bill, now: i64, cur: &str) -> Result<()> {
    let id = Some(cons.consultation_id.as_str());
    let rows = [
        (cons.customer_id, LedgerKind::Charge, -bill.charge),
        (cons.guide_id, LedgerKind::Earning, bill.earning),
        (PLATFORM, LedgerKind::Commission, bill.commission),
    ];
    for (user, kind, amount) in rows {
        if amount != 0 {
            let refs = Refs {
                consultation_id: id,
                ..Refs::default()
            };
            post(c, user, kind, amount, refs, now, cur).await?;
        }
    }
    execute(
        c,
        "UPDATE consultations SET amount_charged = $1 WHERE consultation_id = $2",
        &[&bill.charge, &cons.consultation_id.as_str()],
    )
    .await?;
    Ok(())
}

/// An operator's credit; a notice tells running servers to push the new balance.
pub async fn credit(c: &Conn, credit: &Credit, currency: &str) -> Result<WalletRow> {
    if credit.amount <= 0 {
        return Err(Error::validation("a credit must be a positive amount"));
    }
    let exists: bool = query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)",
        &[&credit.user_id.0],
    )
    .await?
    .try_get(0)?;
    if !exists {
        return Err(Error::not_found(format!("no user {}", credit.user_id)));
    }
    let refs = Refs {
        note: credit.note.as_deref(),
        ..Refs::default()
    };
    post(
        c,
        credit.user_id,
        LedgerKind::Adjustment,
        credit.amount,
        refs,
        credit.now_ms,
        currency,
    )
    .await?;
    // Notices are read by id: one writer at a time, so ids commit in order and a reader that
    // saw id n never misses a smaller one committed later.
    c.batch_execute("LOCK TABLE wallet_notices IN EXCLUSIVE MODE")
        .await?;
    execute(
        c,
        "INSERT INTO wallet_notices (user_id, created_at) VALUES ($1, $2)",
        &[&credit.user_id.0, &credit.now_ms],
    )
    .await?;
    // Notices are read within a second; a day's worth is plenty to keep.
    execute(
        c,
        "DELETE FROM wallet_notices WHERE created_at < $1",
        &[&(credit.now_ms - 86_400_000)],
    )
    .await?;
    wallet(c, credit.user_id, currency).await
}

/// The newest notice id, and whose wallets changed after `after`.
pub async fn notices(c: &Conn, after: Option<i64>) -> Result<(i64, Vec<UserId>)> {
    let newest: i64 = query_one(c, "SELECT COALESCE(MAX(id), 0) FROM wallet_notices", &[])
        .await?
        .try_get(0)?;
    let Some(after) = after else {
        return Ok((newest, Vec::new()));
    };
    let list = query(
        c,
        "SELECT DISTINCT user_id FROM wallet_notices WHERE id > $1 AND id <= $2",
        &[&after, &newest],
    )
    .await?;
    let users = list
        .iter()
        .map(|r| Ok(UserId(r.try_get(0)?)))
        .collect::<Result<_>>()?;
    Ok((newest, users))
}

/// A page of a user's ledger, newest first, below seq `before`.
pub async fn ledger(
    c: &Conn,
    user: UserId,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<(i64, LedgerEntry)>> {
    let list = query(
        c,
        "SELECT seq, entry_id, kind, amount, balance_after, consultation_id, payment_id, note, created_at
         FROM ledger WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        &[&user.0, &before.unwrap_or(i64::MAX), &(limit as i64)],
    )
    .await?;
    list.iter()
        .map(|r| {
            let kind: String = r.try_get(2)?;
            let cid: Option<String> = r.try_get(5)?;
            Ok((
                r.try_get(0)?,
                LedgerEntry {
                    entry_id: r.try_get(1)?,
                    kind: LedgerKind::parse(&kind).unwrap_or(LedgerKind::Adjustment),
                    amount: r.try_get(3)?,
                    balance_after: r.try_get(4)?,
                    consultation_id: cid.map(ConsultationId),
                    payment_id: r.try_get(6)?,
                    note: r.try_get(7)?,
                    created_at: Timestamp::from_millis(r.try_get(8)?),
                },
            ))
        })
        .collect()
}

/// One payment.
pub async fn payment(c: &Conn, id: &str) -> Result<Option<PaymentRow>> {
    let row = query_opt(
        c,
        "SELECT p.payment_id, p.user_id, p.amount, p.currency, p.provider, p.status, p.idempotency_key,
         (SELECT l.balance_after FROM ledger l WHERE l.payment_id = p.payment_id AND l.user_id = p.user_id)
         FROM payments p WHERE p.payment_id = $1",
        &[&id],
    )
    .await?;
    let Some(r) = row else { return Ok(None) };
    let status: String = r.try_get(5)?;
    Ok(Some(PaymentRow {
        payment_id: r.try_get(0)?,
        user_id: UserId(r.try_get(1)?),
        amount: r.try_get(2)?,
        currency: r.try_get(3)?,
        provider: r.try_get(4)?,
        status: PaymentStatus::parse(&status).unwrap_or(PaymentStatus::Failed),
        idempotency_key: r.try_get(6)?,
        balance_after: r.try_get(7)?,
    }))
}

/// Opens a recharge once per (user, key); credits it at once when asked.
pub async fn open_payment(c: &Conn, p: &NewPayment, currency: &str) -> Result<Opened> {
    let status = if p.capture_now {
        PaymentStatus::Captured
    } else {
        PaymentStatus::Created
    };
    // The unique (user, key) decides, whichever server opens it first.
    let inserted = execute(
        c,
        "INSERT INTO payments (payment_id, user_id, amount, currency, provider, status, idempotency_key, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (user_id, idempotency_key) DO NOTHING",
        &[
            &p.payment_id,
            &p.user_id.0,
            &p.amount,
            &currency,
            &p.provider,
            &status.as_str(),
            &p.idempotency_key,
            &p.now_ms,
        ],
    )
    .await?;
    if inserted == 0 {
        let id: String = query_one(
            c,
            "SELECT payment_id FROM payments WHERE user_id = $1 AND idempotency_key = $2",
            &[&p.user_id.0, &p.idempotency_key],
        )
        .await?
        .try_get(0)?;
        let payment = payment(c, &id)
            .await?
            .ok_or_else(|| Error::internal("payment vanished"))?;
        return Ok(Opened {
            payment,
            existed: true,
        });
    }
    if p.capture_now {
        credit_payment(c, &p.payment_id, p.user_id, p.amount, p.now_ms, currency).await?;
    }
    let payment = payment(c, &p.payment_id)
        .await?
        .ok_or_else(|| Error::internal("payment vanished"))?;
    Ok(Opened {
        payment,
        existed: false,
    })
}

async fn credit_payment(
    c: &Conn,
    id: &str,
    user: UserId,
    amount: i64,
    now: i64,
    cur: &str,
) -> Result<i64> {
    let refs = Refs {
        payment_id: Some(id),
        ..Refs::default()
    };
    post(c, user, LedgerKind::Recharge, amount, refs, now, cur).await
}

/// The payment, locked until the transaction ends: two webhooks for it settle one at a time.
async fn require_payment(c: &Conn, id: &str) -> Result<PaymentRow> {
    query_opt(
        c,
        "SELECT 1 FROM payments WHERE payment_id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    payment(c, id)
        .await?
        .ok_or_else(|| Error::validation(format!("no payment {id} was opened here")))
}

/// The gateway captured the payment: the wallet is credited once.
pub async fn capture(c: &Conn, id: &str, amount: i64, now: i64) -> Result<Settled> {
    let p = require_payment(c, id).await?;
    if p.amount != amount {
        return Err(Error::validation(format!(
            "payment {id} was opened for {}, not {amount}",
            p.amount
        ))
        .with_details(serde_json::json!({ "expected": p.amount, "amount": amount })));
    }
    if p.status != PaymentStatus::Created {
        return Ok(Settled {
            payment: p,
            duplicate: true,
        });
    }
    execute(
        c,
        "UPDATE payments SET status = 'captured', updated_at = $2 WHERE payment_id = $1",
        &[&id, &now],
    )
    .await?;
    credit_payment(c, id, p.user_id, p.amount, now, &p.currency).await?;
    let payment = require_payment(c, id).await?;
    Ok(Settled {
        payment,
        duplicate: false,
    })
}

/// The gateway says the payment failed.
pub async fn fail(c: &Conn, id: &str, now: i64) -> Result<Settled> {
    let p = require_payment(c, id).await?;
    if p.status != PaymentStatus::Created {
        return Ok(Settled {
            payment: p,
            duplicate: true,
        });
    }
    execute(
        c,
        "UPDATE payments SET status = 'failed', updated_at = $2 WHERE payment_id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(Settled {
        payment: require_payment(c, id).await?,
        duplicate: false,
    })
}

/// A guide's earnings below seq `before`, newest first, and the sums.
pub async fn earnings(
    c: &Conn,
    guide: UserId,
    before: Option<i64>,
    limit: usize,
    since: i64,
) -> Result<EarningsPage> {
    let list = query(
        c,
        "SELECT l.seq, l.consultation_id, cu.display_name, k.started_at, k.ended_at, l.amount, l.created_at
         FROM ledger l JOIN consultations k ON k.consultation_id = l.consultation_id
         JOIN users cu ON cu.id = k.customer_id
         WHERE l.user_id = $1 AND l.kind = 'earning' AND l.seq < $2 ORDER BY l.seq DESC LIMIT $3",
        &[&guide.0, &before.unwrap_or(i64::MAX), &(limit as i64)],
    )
    .await?;
    let items = list
        .iter()
        .map(|r| {
            let started: Option<i64> = r.try_get(3)?;
            let ended: Option<i64> = r.try_get(4)?;
            Ok((
                r.try_get(0)?,
                Earning {
                    consultation_id: ConsultationId(r.try_get(1)?),
                    customer_name: r.try_get(2)?,
                    duration_seconds: match (started, ended) {
                        (Some(s), Some(e)) => (e - s).max(0) / 1000,
                        _ => 0,
                    },
                    amount: r.try_get(5)?,
                    created_at: Timestamp::from_millis(r.try_get(6)?),
                },
            ))
        })
        .collect::<Result<_>>()?;
    let sums = query_one(
        c,
        "SELECT COALESCE(SUM(amount), 0)::BIGINT,
                COALESCE(SUM(CASE WHEN created_at >= $2 THEN amount END), 0)::BIGINT
         FROM ledger WHERE user_id = $1 AND kind = 'earning'",
        &[&guide.0, &since],
    )
    .await?;
    Ok(EarningsPage {
        items,
        total: sums.try_get(0)?,
        since: sums.try_get(1)?,
    })
}

/// Wallets whose cached balance is not the sum of their ledger rows (or whose last row's
/// `balance_after` is not the balance), and ledger accounts with no wallet.
pub async fn audit(c: &Conn) -> Result<Vec<(UserId, i64, i64)>> {
    let list = query(
        c,
        "SELECT a.user_id, COALESCE(w.balance, 0), COALESCE(s.total, 0)::BIGINT, s.last_after
         FROM (SELECT user_id FROM wallets UNION SELECT DISTINCT user_id FROM ledger) a
         LEFT JOIN wallets w ON w.user_id = a.user_id
         LEFT JOIN (SELECT user_id, SUM(amount) AS total,
                    (SELECT l2.balance_after FROM ledger l2 WHERE l2.user_id = l.user_id ORDER BY l2.seq DESC LIMIT 1) AS last_after
                    FROM ledger l GROUP BY user_id) s ON s.user_id = a.user_id",
        &[],
    )
    .await?;
    let mut out = Vec::new();
    for r in &list {
        let (u, cached, sum, last): (i64, i64, i64, Option<i64>) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        if cached != sum || last.is_some_and(|l| l != cached) {
            out.push((UserId(u), cached, sum));
        }
    }
    Ok(out)
}
