//! Consultations: creation under the one-active rules, transitions, participants, chat list,
//! feedback and the ratings a guide received.
//!
//! A transition locks its consultation's row first, so two servers acting on one consultation
//! (a timeout firing on both, two accepts) decide one after the other: the second sees the
//! state the first left. The one-active rules are also partial unique indexes: two requests or
//! accepts racing on different rows end with exactly one in, the other refused.

use super::messages::{self, UNREAD};
use super::rows::{self, CONSULTATION_SELECT, USER_COLS};
use super::{execute, query, query_one, query_opt, unique_violation, wallet, Conn, Params};
use crate::billing;
use crate::error::{Error, Result};
use crate::state::{decide, Action, Role};
use crate::store::{
    Actor, ChatRow, Committed, NewConsultation, ParticipantRow, Tariff, Transitioned,
};
use tara_protocol::consultations::{
    Consultation, ConsultationStatus, FeedbackRequest, FeedbackResponse,
};
use tara_protocol::guides::GuideRating;
use tara_protocol::wallet::MIN_MINUTES_TO_REQUEST;
use tara_protocol::{ConsultationId, ErrorCode, Timestamp, UserId};

async fn active_of_customer(c: &Conn, customer: UserId) -> Result<Option<String>> {
    query_opt(
        c,
        "SELECT consultation_id FROM consultations WHERE customer_id = $1
         AND status IN ('requested', 'accepted', 'in_progress')",
        &[&customer.0],
    )
    .await?
    .map(|r| Ok(r.try_get(0)?))
    .transpose()
}

async fn engaged_guide(c: &Conn, guide: UserId) -> Result<Option<String>> {
    query_opt(
        c,
        "SELECT consultation_id FROM consultations WHERE guide_id = $1 AND status IN ('accepted', 'in_progress')",
        &[&guide.0],
    )
    .await?
    .map(|r| Ok(r.try_get(0)?))
    .transpose()
}

fn customer_active(active: Option<String>) -> Error {
    let e = Error::new(
        ErrorCode::ConsultationActive,
        "you already have a consultation open",
    );
    match active {
        Some(id) => e.with_details(serde_json::json!({ "consultation_id": id })),
        None => e,
    }
}

/// Runs a statement that a one-active index may refuse; `Ok(None)` names the index that did.
async fn guarded(
    c: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<std::result::Result<u64, String>> {
    let st = c.prepare_cached(sql).await?;
    match c.execute(&st, params).await {
        Ok(n) => Ok(Ok(n)),
        Err(e) => match unique_violation(&e) {
            Some(index) => Ok(Err(index.to_owned())),
            None => Err(e.into()),
        },
    }
}

pub async fn create(c: &Conn, n: &NewConsultation, minute_ms: i64) -> Result<Consultation> {
    if let Some(active) = active_of_customer(c, n.customer_id).await? {
        return Err(customer_active(Some(active)));
    }
    if engaged_guide(c, n.guide_id).await?.is_some() {
        return Err(guide_unavailable());
    }
    let needed = MIN_MINUTES_TO_REQUEST.saturating_mul(n.rate_per_minute.max(0));
    if needed > 0 {
        let balance = wallet::wallet(c, n.customer_id, "").await?.balance;
        if balance < needed {
            return Err(Error::new(
                ErrorCode::InsufficientBalance,
                format!(
                    "a consultation with this guide needs a balance of {needed} ({MIN_MINUTES_TO_REQUEST} minutes at {} a minute); yours is {balance}",
                    n.rate_per_minute
                ),
            )
            .with_details(serde_json::json!({ "balance": balance, "needed": needed })));
        }
    }
    let intake = n.intake.as_ref().map(serde_json::to_string).transpose()?;
    let inserted = guarded(
        c,
        "INSERT INTO consultations (consultation_id, customer_id, guide_id, mode, status, created_at, rate_per_minute,
         intake, activity_at, minute_ms) VALUES ($1, $2, $3, $4, 'requested', $5, $6, $7, $5, $8)",
        &[
            &n.consultation_id.as_str(),
            &n.customer_id.0,
            &n.guide_id.0,
            &n.mode,
            &n.now_ms,
            &n.rate_per_minute,
            &intake,
            &minute_ms,
        ],
    )
    .await?;
    if let Err(index) = inserted {
        // Another server let the same customer in a moment ago.
        return Err(if index == "one_active_per_customer" {
            customer_active(None)
        } else {
            Error::internal(format_args!("consultation refused by {index}"))
        });
    }
    for user in [n.customer_id, n.guide_id] {
        execute(
            c,
            "INSERT INTO participants (consultation_id, user_id) VALUES ($1, $2)",
            &[&n.consultation_id.as_str(), &user.0],
        )
        .await?;
    }
    rows::require_consultation(c, n.consultation_id.as_str()).await
}

fn guide_unavailable() -> Error {
    Error::new(
        ErrorCode::GuideUnavailable,
        "this guide is in another consultation",
    )
}

fn role_of(cons: &Consultation, actor: Actor) -> Result<Role> {
    match actor {
        Actor::System => Ok(Role::System),
        Actor::User(u) if u == cons.customer_id => Ok(Role::Customer),
        Actor::User(u) if u == cons.guide_id => Ok(Role::Guide),
        Actor::User(_) => Err(Error::forbidden("you are not part of this consultation")),
    }
}

/// The billed minute, the last activity and since when the guide is away, as stored.
async fn billing_row(c: &Conn, cons: &Consultation) -> Result<(i64, Option<i64>, Option<i64>)> {
    let r = query_one(
        c,
        "SELECT minute_ms, last_active_at, guide_away_at FROM consultations WHERE consultation_id = $1",
        &[&cons.consultation_id.as_str()],
    )
    .await?;
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
}

/// Prices a completion (before anything is written, so a refusal costs nothing): `None` for
/// other transitions. An `Exhaust` is refused unless the balance has really run out by now.
async fn price(
    c: &Conn,
    cons: &Consultation,
    action: &Action,
    to: ConsultationStatus,
    now: i64,
    tariff: &Tariff,
) -> Result<Option<billing::Bill>> {
    if to != ConsultationStatus::Completed {
        return Ok(None);
    }
    if *action == Action::Exhaust && cons.ends_at.is_none_or(|e| now < e.millis()) {
        return Err(Error::invalid_state("the balance has not run out"));
    }
    let balance = wallet::wallet(c, cons.customer_id, &tariff.currency)
        .await?
        .balance;
    let (minute_ms, last_active, guide_away) = billing_row(c, cons).await?;
    let started = match cons.status {
        ConsultationStatus::InProgress => cons.started_at.map(|t| t.millis()),
        _ => None,
    };
    // Nothing is billed past the last activity of a chat ended for silence, nor past the
    // moment the guide's connections all went away.
    let mut until = now;
    if let Action::Inactive { quiet_ms } = action {
        let last = last_active.or(started).unwrap_or(now);
        if now < last.saturating_add(*quiet_ms) {
            return Err(Error::invalid_state("the consultation was active recently"));
        }
        until = until.min(last);
    }
    if let Some(away) = guide_away {
        until = until.min(away);
    }
    Ok(Some(billing::bill(
        started,
        until,
        cons.rate_per_minute,
        balance,
        tariff.commission_percent,
        minute_ms,
    )))
}

/// A person did something in a running consultation (typed, read): its last activity moves.
pub async fn touch(c: &Conn, id: &ConsultationId, at: i64) -> Result<()> {
    execute(
        c,
        "UPDATE consultations SET last_active_at = GREATEST(COALESCE(last_active_at, 0), $2)
         WHERE consultation_id = $1 AND status = 'in_progress'",
        &[&id.as_str(), &at],
    )
    .await?;
    Ok(())
}

/// The last activity of a running consultation (its start if none yet); `None` if not running.
pub async fn last_active(c: &Conn, id: &ConsultationId) -> Result<Option<i64>> {
    Ok(query_opt(
        c,
        "SELECT COALESCE(last_active_at, started_at) FROM consultations
         WHERE consultation_id = $1 AND status = 'in_progress'",
        &[&id.as_str()],
    )
    .await?
    .map(|r| r.try_get::<_, Option<i64>>(0))
    .transpose()?
    .flatten())
}

/// Marks (or clears) since when a running consultation's guide is away; the consultation if
/// that changed it.
pub async fn set_guide_away(
    c: &Conn,
    id: &ConsultationId,
    since: Option<i64>,
) -> Result<Option<Consultation>> {
    let changed = execute(
        c,
        "UPDATE consultations SET guide_away_at = $2 WHERE consultation_id = $1
         AND status = 'in_progress' AND guide_away_at IS DISTINCT FROM $2",
        &[&id.as_str(), &since],
    )
    .await?;
    if changed == 0 {
        return Ok(None);
    }
    Ok(Some(rows::require_consultation(c, id.as_str()).await?))
}

pub async fn transition(
    c: &Conn,
    id: &ConsultationId,
    action: &Action,
    actor: Actor,
    now: i64,
    tariff: &Tariff,
    committed: &mut Vec<Committed>,
) -> Result<Transitioned> {
    if !rows::lock_consultation(c, id.as_str()).await? {
        return Err(Error::consultation_not_found());
    }
    let cons = rows::require_consultation(c, id.as_str()).await?;
    let role = role_of(&cons, actor)?;
    let mut both_joined = false;
    if *action == Action::Join {
        if let Actor::User(u) = actor {
            if cons.status.accepts_messages() {
                execute(
                    c,
                    "UPDATE participants SET joined_at = COALESCE(joined_at, $1) WHERE consultation_id = $2 AND user_id = $3",
                    &[&now, &id.as_str(), &u.0],
                )
                .await?;
            }
        }
        let joined: i64 = query_one(
            c,
            "SELECT COUNT(*) FROM participants WHERE consultation_id = $1 AND joined_at IS NOT NULL",
            &[&id.as_str()],
        )
        .await?
        .try_get(0)?;
        both_joined = joined >= 2;
    }
    let d = decide(cons.status, action, role, both_joined)?;
    let busy = || {
        Error::new(
            ErrorCode::ConsultationActive,
            "finish your current consultation before accepting another",
        )
    };
    if *action == Action::Accept && engaged_guide(c, cons.guide_id).await?.is_some() {
        return Err(busy());
    }
    let Some(to) = d.to else {
        return Ok(Transitioned {
            consultation: cons,
            event: None,
        });
    };
    let ended_by = d.ended_by.map(|e| e.as_str());
    let bill = price(c, &cons, action, to, now, tariff).await?;
    let written = match to {
        ConsultationStatus::Accepted => guarded(
            c,
            "UPDATE consultations SET status = $1, accepted_at = $2, activity_at = $2 WHERE consultation_id = $3",
            &[&to.as_str(), &now, &id.as_str()],
        )
        .await?,
        ConsultationStatus::InProgress => guarded(
            c,
            "UPDATE consultations SET status = $1, started_at = $2, activity_at = $2 WHERE consultation_id = $3",
            &[&to.as_str(), &now, &id.as_str()],
        )
        .await?,
        _ => {
            let ended = bill.map_or(now, |b| b.ended_ms);
            guarded(
                c,
                "UPDATE consultations SET status = $1, ended_at = $2, activity_at = $2, ended_by = $4, end_reason = $5
                 WHERE consultation_id = $3",
                &[&to.as_str(), &ended, &id.as_str(), &ended_by, &d.end_reason],
            )
            .await?
        }
    };
    if let Err(index) = written {
        // The guide accepted another request on another server a moment ago.
        return Err(if index == "one_active_per_guide" {
            busy()
        } else {
            Error::internal(format_args!("transition refused by {index}"))
        });
    }
    let mut system_text = d.system_text.clone();
    if let Some(b) = &bill {
        wallet::charge(c, &cons, b, now, &tariff.currency).await?;
        if let Some(t) = system_text.as_mut() {
            let minute_ms = billing_row(c, &cons).await?.0;
            t.push_str(&billing::charged_text(b, &tariff.currency, minute_ms));
        }
    }
    let mut cons = rows::require_consultation(c, id.as_str()).await?;
    if let Some(text) = &system_text {
        let cmid = uuid::Uuid::now_v7().to_string();
        messages::insert_system(c, &cons, &cmid, text, now, committed).await?;
        cons = rows::require_consultation(c, id.as_str()).await?;
    }
    Ok(Transitioned {
        consultation: cons,
        event: d.event,
    })
}

pub async fn participants(c: &Conn, id: &ConsultationId) -> Result<Vec<ParticipantRow>> {
    let cons = rows::require_consultation(c, id.as_str()).await?;
    let list = query(
        c,
        &format!(
            "SELECT {USER_COLS}, p.joined_at, p.delivered_seq, p.read_seq, {UNREAD}
             FROM participants p JOIN users u ON u.id = p.user_id
             JOIN consultations k ON k.consultation_id = p.consultation_id WHERE p.consultation_id = $1"
        ),
        &[&id.as_str()],
    )
    .await?;
    let mut list = rows::all(list, |r| {
        Ok(ParticipantRow {
            user: rows::user(r, 0)?,
            joined_ms: r.try_get(6)?,
            delivered_seq: r.try_get(7)?,
            read_seq: r.try_get(8)?,
            unread_count: r.try_get(9)?,
        })
    })?;
    list.sort_by_key(|p| p.user.id != cons.customer_id);
    Ok(list)
}

pub async fn active(c: &Conn, user: UserId) -> Result<Vec<Consultation>> {
    let list = query(
        c,
        &format!(
            "{CONSULTATION_SELECT} WHERE (c.customer_id = $1 OR c.guide_id = $1)
             AND c.status IN ('requested', 'accepted', 'in_progress') ORDER BY c.created_at DESC LIMIT 100"
        ),
        &[&user.0],
    )
    .await?;
    rows::all(list, rows::consultation)
}

pub async fn in_state(c: &Conn, status: ConsultationStatus) -> Result<Vec<Consultation>> {
    let list = query(
        c,
        &format!("{CONSULTATION_SELECT} WHERE c.status = $1 ORDER BY c.created_at"),
        &[&status.as_str()],
    )
    .await?;
    rows::all(list, rows::consultation)
}

pub async fn chat_list(
    c: &Conn,
    user: UserId,
    cursor: Option<(i64, ConsultationId)>,
    limit: usize,
) -> Result<Vec<ChatRow>> {
    let (at, after_id) = cursor
        .map(|(a, id)| (Some(a), Some(id.0)))
        .unwrap_or_default();
    let list = query(
        c,
        &format!(
            "SELECT * FROM ({CONSULTATION_SELECT} JOIN participants p ON p.consultation_id = c.consultation_id
               AND p.user_id = $1 WHERE c.customer_id = $1 OR c.guide_id = $1) AS x
             WHERE $2::BIGINT IS NULL OR activity < $2 OR (activity = $2 AND consultation_id < $3::TEXT)
             ORDER BY activity DESC, consultation_id DESC LIMIT $4"
        ),
        &[&user.0, &at, &after_id, &(limit as i64)],
    )
    .await?;
    let list = rows::all(list, |r| {
        Ok((rows::consultation(r)?, r.try_get::<_, i64>(18)?))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for (cons, activity_ms) in list {
        let other_id = if cons.customer_id == user {
            cons.guide_id
        } else {
            cons.customer_id
        };
        let other = rows::load_user(c, other_id)
            .await?
            .ok_or_else(|| Error::internal("participant vanished"))?;
        let unread_count: i64 = query_one(
            c,
            &format!(
                "SELECT {UNREAD} FROM participants p JOIN consultations k ON k.consultation_id = p.consultation_id
                 WHERE p.consultation_id = $1 AND p.user_id = $2"
            ),
            &[&cons.consultation_id.as_str(), &user.0],
        )
        .await?
        .try_get(0)?;
        let last_message = messages::last_message(c, &cons).await?;
        out.push(ChatRow {
            consultation: cons,
            other,
            last_message,
            unread_count,
            activity_ms,
        });
    }
    Ok(out)
}

pub async fn feedback(
    c: &Conn,
    id: &ConsultationId,
    customer: UserId,
    f: &FeedbackRequest,
    now: i64,
) -> Result<FeedbackResponse> {
    if !rows::lock_consultation(c, id.as_str()).await? {
        return Err(Error::consultation_not_found());
    }
    let cons = rows::require_consultation(c, id.as_str()).await?;
    if cons.customer_id != customer {
        if cons.guide_id == customer {
            return Err(Error::forbidden("only the customer rates a consultation"));
        }
        return Err(Error::forbidden("you are not part of this consultation"));
    }
    if cons.status != ConsultationStatus::Completed {
        return Err(
            Error::invalid_state("a consultation can be rated once it is completed")
                .with_details(serde_json::json!({ "status": cons.status.as_str() })),
        );
    }
    let exists: bool = query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM feedback WHERE consultation_id = $1)",
        &[&id.as_str()],
    )
    .await?
    .try_get(0)?;
    if exists {
        return Err(Error::new(
            ErrorCode::AlreadyRated,
            "this consultation has been rated already",
        ));
    }
    let feedback_id = uuid::Uuid::now_v7().to_string();
    execute(
        c,
        "INSERT INTO feedback (feedback_id, consultation_id, customer_id, guide_id, rating, feedback_text, issues, submitted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &feedback_id,
            &id.as_str(),
            &customer.0,
            &cons.guide_id.0,
            &f.rating,
            &f.feedback_text,
            &f.issues.as_ref().map(serde_json::to_string).transpose()?,
            &now,
        ],
    )
    .await?;
    execute(
        c,
        "UPDATE guides SET rating_sum = rating_sum + $1, rating_count = rating_count + 1 WHERE user_id = $2",
        &[&f.rating, &cons.guide_id.0],
    )
    .await?;
    Ok(FeedbackResponse {
        feedback_id,
        rating: f.rating,
        submitted_at: Timestamp::from_millis(now),
    })
}

pub async fn guide_ratings(
    c: &Conn,
    guide: UserId,
    cursor: Option<(i64, ConsultationId)>,
    limit: usize,
) -> Result<Vec<GuideRating>> {
    let (at, before_id) = cursor
        .map(|(a, id)| (Some(a), Some(id.0)))
        .unwrap_or_default();
    let list = query(
        c,
        "SELECT f.consultation_id, u.display_name, f.rating, f.feedback_text, f.issues, f.submitted_at
         FROM feedback f JOIN users u ON u.id = f.customer_id
         WHERE f.guide_id = $1 AND ($2::BIGINT IS NULL OR f.submitted_at < $2
               OR (f.submitted_at = $2 AND f.consultation_id < $3::TEXT))
         ORDER BY f.submitted_at DESC, f.consultation_id DESC LIMIT $4",
        &[&guide.0, &at, &before_id, &(limit as i64)],
    )
    .await?;
    rows::all(list, |r| {
        let issues: Option<String> = r.try_get(4)?;
        Ok(GuideRating {
            consultation_id: ConsultationId(r.try_get(0)?),
            customer_name: r.try_get(1)?,
            rating: r.try_get(2)?,
            feedback_text: r.try_get(3)?,
            issues: issues
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            submitted_at: Timestamp::from_millis(r.try_get(5)?),
        })
    })
}
