//! Wallets, the double-entry ledger, payments and earnings.
//!
//! Money moves only through [`post`]: one ledger row for one account and the same amount added
//! to that account's cached balance, in the caller's transaction. A movement between accounts
//! is several posts in one transaction whose amounts add up to zero (a charge: the customer's
//! `-charge`, the guide's earning, the platform's commission).

use crate::billing::Bill;
use crate::error::{Error, Result};
use crate::store::{
    Credit, EarningsPage, NewPayment, Opened, PaymentRow, Settled, WalletRow, PLATFORM,
};
use rusqlite::{params, Connection, OptionalExtension};
use tara_protocol::consultations::Consultation;
use tara_protocol::wallet::{Earning, LedgerEntry, LedgerKind, PaymentStatus};
use tara_protocol::{ConsultationId, Timestamp, UserId};

/// A user's wallet; balance 0 in `currency` if none was opened yet.
pub fn wallet(c: &Connection, user: UserId, currency: &str) -> Result<WalletRow> {
    let row: Option<(i64, String)> = c
        .prepare_cached("SELECT balance, currency FROM wallets WHERE user_id = ?1")?
        .query_row([user.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (balance, currency) = row.unwrap_or((0, currency.to_owned()));
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
pub fn post(
    c: &Connection,
    user: UserId,
    kind: LedgerKind,
    amount: i64,
    refs: Refs<'_>,
    now: i64,
    currency: &str,
) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO wallets (user_id, balance, currency, updated_at) VALUES (?1, 0, ?2, ?3)
         ON CONFLICT (user_id) DO NOTHING",
    )?
    .execute(params![user.0, currency, now])?;
    let balance: i64 = c
        .prepare_cached(
            "UPDATE wallets SET balance = balance + ?2, updated_at = ?3 WHERE user_id = ?1 RETURNING balance",
        )?
        .query_row(params![user.0, amount, now], |r| r.get(0))?;
    c.prepare_cached(
        "INSERT INTO ledger (entry_id, user_id, kind, amount, balance_after, consultation_id, payment_id, note, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        uuid::Uuid::now_v7().to_string(),
        user.0,
        kind.as_str(),
        amount,
        balance,
        refs.consultation_id,
        refs.payment_id,
        refs.note,
        now
    ])?;
    Ok(balance)
}

/// Charges a completed consultation: the customer's charge, the guide's earning and the
/// platform's commission. Accounts a zero amount would not touch get no row.
pub fn charge(c: &Connection, cons: &Consultation, bill: &Bill, now: i64, cur: &str) -> Result<()> {
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
            post(c, user, kind, amount, refs, now, cur)?;
        }
    }
    c.prepare_cached("UPDATE consultations SET amount_charged = ?1 WHERE consultation_id = ?2")?
        .execute(params![bill.charge, cons.consultation_id.as_str()])?;
    Ok(())
}

/// An operator's credit; a notice tells running servers to push the new balance.
pub fn credit(c: &Connection, credit: &Credit, currency: &str) -> Result<WalletRow> {
    if credit.amount <= 0 {
        return Err(Error::validation("a credit must be a positive amount"));
    }
    let exists: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)",
        [credit.user_id.0],
        |r| r.get(0),
    )?;
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
    )?;
    c.prepare_cached("INSERT INTO wallet_notices (user_id, created_at) VALUES (?1, ?2)")?
        .execute(params![credit.user_id.0, credit.now_ms])?;
    // Notices are read within a second; a day's worth is plenty to keep.
    c.prepare_cached("DELETE FROM wallet_notices WHERE created_at < ?1")?
        .execute([credit.now_ms - 86_400_000])?;
    wallet(c, credit.user_id, currency)
}

/// The newest notice id, and whose wallets changed after `after`.
pub fn notices(c: &Connection, after: Option<i64>) -> Result<(i64, Vec<UserId>)> {
    let newest: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM wallet_notices", [], |r| {
        r.get(0)
    })?;
    let Some(after) = after else {
        return Ok((newest, Vec::new()));
    };
    let mut st =
        c.prepare_cached("SELECT DISTINCT user_id FROM wallet_notices WHERE id > ?1 AND id <= ?2")?;
    let users = st
        .query_map(params![after, newest], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((newest, users))
}

/// A page of a user's ledger, newest first, below seq `before`.
pub fn ledger(
    c: &Connection,
    user: UserId,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<(i64, LedgerEntry)>> {
    let mut st = c.prepare_cached(
        "SELECT seq, entry_id, kind, amount, balance_after, consultation_id, payment_id, note, created_at
         FROM ledger WHERE user_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = st
        .query_map(
            params![user.0, before.unwrap_or(i64::MAX), limit as i64],
            |r| {
                let kind: String = r.get(2)?;
                let cid: Option<String> = r.get(5)?;
                Ok((
                    r.get(0)?,
                    LedgerEntry {
                        entry_id: r.get(1)?,
                        kind: LedgerKind::parse(&kind).unwrap_or(LedgerKind::Adjustment),
                        amount: r.get(3)?,
                        balance_after: r.get(4)?,
                        consultation_id: cid.map(ConsultationId),
                        payment_id: r.get(6)?,
                        note: r.get(7)?,
                        created_at: Timestamp::from_millis(r.get(8)?),
                    },
                ))
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn payment_row(c: &Connection, id: &str) -> Result<Option<PaymentRow>> {
    let row = c
        .prepare_cached(
            "SELECT p.payment_id, p.user_id, p.amount, p.currency, p.provider, p.status, p.idempotency_key,
             (SELECT l.balance_after FROM ledger l WHERE l.payment_id = p.payment_id AND l.user_id = p.user_id)
             FROM payments p WHERE p.payment_id = ?1",
        )?
        .query_row([id], |r| {
            let status: String = r.get(5)?;
            Ok(PaymentRow {
                payment_id: r.get(0)?,
                user_id: UserId(r.get(1)?),
                amount: r.get(2)?,
                currency: r.get(3)?,
                provider: r.get(4)?,
                status: PaymentStatus::parse(&status).unwrap_or(PaymentStatus::Failed),
                idempotency_key: r.get(6)?,
                balance_after: r.get(7)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// One payment.
pub fn payment(c: &Connection, id: &str) -> Result<Option<PaymentRow>> {
    payment_row(c, id)
}

/// Opens a recharge once per (user, key); credits it at once when asked.
pub fn open_payment(c: &Connection, p: &NewPayment, currency: &str) -> Result<Opened> {
    let existing: Option<String> = c
        .prepare_cached(
            "SELECT payment_id FROM payments WHERE user_id = ?1 AND idempotency_key = ?2",
        )?
        .query_row(params![p.user_id.0, p.idempotency_key], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        let payment = payment_row(c, &id)?.ok_or_else(|| Error::internal("payment vanished"))?;
        return Ok(Opened {
            payment,
            existed: true,
        });
    }
    let status = if p.capture_now {
        PaymentStatus::Captured
    } else {
        PaymentStatus::Created
    };
    c.prepare_cached(
        "INSERT INTO payments (payment_id, user_id, amount, currency, provider, status, idempotency_key, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?
    .execute(params![
        p.payment_id,
        p.user_id.0,
        p.amount,
        currency,
        p.provider,
        status.as_str(),
        p.idempotency_key,
        p.now_ms
    ])?;
    if p.capture_now {
        credit_payment(c, &p.payment_id, p.user_id, p.amount, p.now_ms, currency)?;
    }
    let payment =
        payment_row(c, &p.payment_id)?.ok_or_else(|| Error::internal("payment vanished"))?;
    Ok(Opened {
        payment,
        existed: false,
    })
}

fn credit_payment(
    c: &Connection,
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
    post(c, user, LedgerKind::Recharge, amount, refs, now, cur)
}

fn require_payment(c: &Connection, id: &str) -> Result<PaymentRow> {
    payment_row(c, id)?.ok_or_else(|| Error::validation(format!("no payment {id} was opened here")))
}

/// The gateway captured the payment: the wallet is credited once.
pub fn capture(c: &Connection, id: &str, amount: i64, now: i64) -> Result<Settled> {
    let p = require_payment(c, id)?;
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
    c.prepare_cached(
        "UPDATE payments SET status = 'captured', updated_at = ?2 WHERE payment_id = ?1",
    )?
    .execute(params![id, now])?;
    credit_payment(c, id, p.user_id, p.amount, now, &p.currency)?;
    let payment = require_payment(c, id)?;
    Ok(Settled {
        payment,
        duplicate: false,
    })
}

/// The gateway says the payment failed.
pub fn fail(c: &Connection, id: &str, now: i64) -> Result<Settled> {
    let p = require_payment(c, id)?;
    if p.status != PaymentStatus::Created {
        return Ok(Settled {
            payment: p,
            duplicate: true,
        });
    }
    c.prepare_cached(
        "UPDATE payments SET status = 'failed', updated_at = ?2 WHERE payment_id = ?1",
    )?
    .execute(params![id, now])?;
    Ok(Settled {
        payment: require_payment(c, id)?,
        duplicate: false,
    })
}

/// A guide's earnings below seq `before`, newest first, and the sums.
pub fn earnings(
    c: &Connection,
    guide: UserId,
    before: Option<i64>,
    limit: usize,
    since: i64,
) -> Result<EarningsPage> {
    let mut st = c.prepare_cached(
        "SELECT l.seq, l.consultation_id, cu.display_name, k.started_at, k.ended_at, l.amount, l.created_at
         FROM ledger l JOIN consultations k ON k.consultation_id = l.consultation_id
         JOIN users cu ON cu.id = k.customer_id
         WHERE l.user_id = ?1 AND l.kind = 'earning' AND l.seq < ?2 ORDER BY l.seq DESC LIMIT ?3",
    )?;
    let items = st
        .query_map(
            params![guide.0, before.unwrap_or(i64::MAX), limit as i64],
            |r| {
                let started: Option<i64> = r.get(3)?;
                let ended: Option<i64> = r.get(4)?;
                Ok((
                    r.get(0)?,
                    Earning {
                        consultation_id: ConsultationId(r.get(1)?),
                        customer_name: r.get(2)?,
                        duration_seconds: match (started, ended) {
                            (Some(s), Some(e)) => (e - s).max(0) / 1000,
                            _ => 0,
                        },
                        amount: r.get(5)?,
                        created_at: Timestamp::from_millis(r.get(6)?),
                    },
                ))
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    let (total, since): (i64, i64) = c
        .prepare_cached(
            "SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(CASE WHEN created_at >= ?2 THEN amount END), 0)
             FROM ledger WHERE user_id = ?1 AND kind = 'earning'",
        )?
        .query_row(params![guide.0, since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(EarningsPage {
        items,
        total,
        since,
    })
}

/// Wallets whose cached balance is not the sum of their ledger rows (or whose last row's
/// `balance_after` is not the balance), and ledger accounts with no wallet.
pub fn audit(c: &Connection) -> Result<Vec<(UserId, i64, i64)>> {
    let mut st = c.prepare(
        "SELECT a.user_id, COALESCE(w.balance, 0), COALESCE(s.total, 0), s.last_after
         FROM (SELECT user_id FROM wallets UNION SELECT DISTINCT user_id FROM ledger) a
         LEFT JOIN wallets w ON w.user_id = a.user_id
         LEFT JOIN (SELECT user_id, SUM(amount) AS total,
                    (SELECT l2.balance_after FROM ledger l2 WHERE l2.user_id = l.user_id ORDER BY l2.seq DESC LIMIT 1) AS last_after
                    FROM ledger l GROUP BY user_id) s ON s.user_id = a.user_id",
    )?;
    let rows: Vec<(i64, i64, i64, Option<i64>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, cached, sum, last)| cached != sum || last.is_some_and(|l| l != *cached))
        .map(|(u, cached, sum, _)| (UserId(u), cached, sum))
        .collect())
}
