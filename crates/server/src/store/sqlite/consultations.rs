//! Consultations: creation under the one-active rules, transitions, participants, chat list,
//! feedback and the ratings a guide received.

use super::messages::{self, UNREAD};
use super::rows::{self, CONSULTATION_SELECT, USER_COLS};
use super::wallet;
use crate::billing;
use crate::error::{Error, Result};
use crate::state::{decide, Action, Role};
use crate::store::{
    Actor, ChatRow, Committed, NewConsultation, ParticipantRow, Tariff, Transitioned,
};
use rusqlite::{params, Connection, OptionalExtension};
use tara_protocol::consultations::{
    Consultation, ConsultationStatus, FeedbackRequest, FeedbackResponse,
};
use tara_protocol::guides::GuideRating;
use tara_protocol::messages::{MessageKind, SenderType};
use tara_protocol::wallet::MIN_MINUTES_TO_REQUEST;
use tara_protocol::{ConsultationId, ErrorCode, Timestamp, UserId};

fn active_of_customer(c: &Connection, customer: UserId) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT consultation_id FROM consultations WHERE customer_id = ?1
         AND status IN ('requested', 'accepted', 'in_progress')",
        [customer.0],
        |r| r.get(0),
    )
    .optional()?)
}

fn engaged_guide(c: &Connection, guide: UserId) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT consultation_id FROM consultations WHERE guide_id = ?1 AND status IN ('accepted', 'in_progress')",
        [guide.0],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn create(c: &Connection, n: &NewConsultation, minute_ms: i64) -> Result<Consultation> {
    if let Some(active) = active_of_customer(c, n.customer_id)? {
        return Err(Error::new(
            ErrorCode::ConsultationActive,
            "you already have a consultation open",
        )
        .with_details(serde_json::json!({ "consultation_id": active })));
    }
    if engaged_guide(c, n.guide_id)?.is_some() {
        return Err(Error::new(
            ErrorCode::GuideUnavailable,
            "this guide is in another consultation",
        ));
    }
    let needed = MIN_MINUTES_TO_REQUEST.saturating_mul(n.rate_per_minute.max(0));
    if needed > 0 {
        let balance = wallet::wallet(c, n.customer_id, "")?.balance;
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
    c.execute(
        "INSERT INTO consultations (consultation_id, customer_id, guide_id, mode, status, created_at, rate_per_minute,
         intake, activity_at, minute_ms) VALUES (?1, ?2, ?3, ?4, 'requested', ?5, ?6, ?7, ?5, ?8)",
        params![
            n.consultation_id.as_str(),
            n.customer_id.0,
            n.guide_id.0,
            n.mode,
            n.now_ms,
            n.rate_per_minute,
            intake,
            minute_ms
        ],
    )?;
    for user in [n.customer_id, n.guide_id] {
        c.execute(
            "INSERT INTO participants (consultation_id, user_id) VALUES (?1, ?2)",
            params![n.consultation_id.as_str(), user.0],
        )?;
    }
    rows::require_consultation(c, n.consultation_id.as_str())
}

fn role_of(cons: &Consultation, actor: Actor) -> Result<Role> {
    match actor {
        Actor::System => Ok(Role::System),
        Actor::User(u) if u == cons.customer_id => Ok(Role::Customer),
        Actor::User(u) if u == cons.guide_id => Ok(Role::Guide),
        Actor::User(_) => Err(Error::forbidden("you are not part of this consultation")),
    }
}

/// Prices a completion (before anything is written, so a refusal costs nothing): `None` for
/// other transitions. An `Exhaust` is refused unless the balance has really run out by now.
fn price(
    c: &Connection,
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
    let balance = wallet::wallet(c, cons.customer_id, &tariff.currency)?.balance;
    let (minute_ms, last_active, guide_away) = billing_row(c, cons)?;
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

/// The billed minute a consultation was sold by.
fn minute_of(c: &Connection, cons: &Consultation) -> Result<i64> {
    Ok(billing_row(c, cons)?.0)
}

/// The billed minute, the last activity and since when the guide is away, as stored.
fn billing_row(c: &Connection, cons: &Consultation) -> Result<(i64, Option<i64>, Option<i64>)> {
    Ok(c.prepare_cached(
        "SELECT minute_ms, last_active_at, guide_away_at FROM consultations WHERE consultation_id = ?1",
    )?
    .query_row([cons.consultation_id.as_str()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?)
}

/// A person did something in a running consultation (typed, read): its last activity moves.
pub fn touch(c: &Connection, id: &ConsultationId, at: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE consultations SET last_active_at = MAX(COALESCE(last_active_at, 0), ?2)
         WHERE consultation_id = ?1 AND status = 'in_progress'",
    )?
    .execute(params![id.as_str(), at])?;
    Ok(())
}

/// The last activity of a running consultation (its start if none yet); `None` if not running.
pub fn last_active(c: &Connection, id: &ConsultationId) -> Result<Option<i64>> {
    Ok(c.prepare_cached(
        "SELECT COALESCE(last_active_at, started_at) FROM consultations
         WHERE consultation_id = ?1 AND status = 'in_progress'",
    )?
    .query_row([id.as_str()], |r| r.get(0))
    .optional()?
    .flatten())
}

/// Marks (or clears) since when a running consultation's guide is away; the consultation if
/// that changed it.
pub fn set_guide_away(
    c: &Connection,
    id: &ConsultationId,
    since: Option<i64>,
) -> Result<Option<Consultation>> {
    let changed = c
        .prepare_cached(
            "UPDATE consultations SET guide_away_at = ?2 WHERE consultation_id = ?1
             AND status = 'in_progress' AND guide_away_at IS NOT ?2",
        )?
        .execute(params![id.as_str(), since])?;
    if changed == 0 {
        return Ok(None);
    }
    Ok(Some(rows::require_consultation(c, id.as_str())?))
}

pub fn transition(
    c: &Connection,
    id: &ConsultationId,
    action: &Action,
    actor: Actor,
    now: i64,
    tariff: &Tariff,
    committed: &mut Vec<Committed>,
) -> Result<Transitioned> {
    let cons = rows::require_consultation(c, id.as_str())?;
    let role = role_of(&cons, actor)?;
    let mut both_joined = false;
    if *action == Action::Join {
        if let Actor::User(u) = actor {
            if cons.status.accepts_messages() {
                c.execute(
                    "UPDATE participants SET joined_at = COALESCE(joined_at, ?1) WHERE consultation_id = ?2 AND user_id = ?3",
                    params![now, id.as_str(), u.0],
                )?;
            }
        }
        let joined: i64 = c.query_row(
            "SELECT COUNT(*) FROM participants WHERE consultation_id = ?1 AND joined_at IS NOT NULL",
            [id.as_str()],
            |r| r.get(0),
        )?;
        both_joined = joined >= 2;
    }
    let d = decide(cons.status, action, role, both_joined)?;
    if *action == Action::Accept && engaged_guide(c, cons.guide_id)?.is_some() {
        return Err(Error::new(
            ErrorCode::ConsultationActive,
            "finish your current consultation before accepting another",
        ));
    }
    let Some(to) = d.to else {
        return Ok(Transitioned {
            consultation: cons,
            event: None,
        });
    };
    let sql = match to {
        ConsultationStatus::Accepted => "UPDATE consultations SET status = ?1, accepted_at = ?2, activity_at = ?2 WHERE consultation_id = ?3",
        ConsultationStatus::InProgress => "UPDATE consultations SET status = ?1, started_at = ?2, activity_at = ?2 WHERE consultation_id = ?3",
        _ => "UPDATE consultations SET status = ?1, ended_at = ?2, activity_at = ?2, ended_by = ?4, end_reason = ?5 WHERE consultation_id = ?3",
    };
    let ended_by = d.ended_by.map(|e| e.as_str());
    let bill = price(c, &cons, action, to, now, tariff)?;
    if to.is_active() {
        c.execute(sql, params![to.as_str(), now, id.as_str()])?;
    } else {
        let ended = bill.map_or(now, |b| b.ended_ms);
        c.execute(
            sql,
            params![to.as_str(), ended, id.as_str(), ended_by, d.end_reason],
        )?;
    }
    let mut system_text = d.system_text.clone();
    if let Some(b) = &bill {
        wallet::charge(c, &cons, b, now, &tariff.currency)?;
        if let Some(t) = system_text.as_mut() {
            t.push_str(&billing::charged_text(
                b,
                &tariff.currency,
                minute_of(c, &cons)?,
            ));
        }
    }
    let mut cons = rows::require_consultation(c, id.as_str())?;
    if let Some(text) = &system_text {
        let cmid = uuid::Uuid::now_v7().to_string();
        messages::insert(
            c,
            &messages::Target::from(&cons),
            UserId(0),
            SenderType::System,
            &cmid,
            MessageKind::System,
            text,
            None,
            now,
            committed,
        )?;
        cons = rows::require_consultation(c, id.as_str())?;
    }
    Ok(Transitioned {
        consultation: cons,
        event: d.event,
    })
}

pub fn participants(c: &Connection, id: &ConsultationId) -> Result<Vec<ParticipantRow>> {
    let cons = rows::require_consultation(c, id.as_str())?;
    let mut st = c.prepare_cached(&format!(
        "SELECT {USER_COLS}, p.joined_at, p.delivered_seq, p.read_seq, {UNREAD}
         FROM participants p JOIN users u ON u.id = p.user_id
         JOIN consultations k ON k.consultation_id = p.consultation_id WHERE p.consultation_id = ?1"
    ))?;
    let mut list: Vec<ParticipantRow> = st
        .query_map([id.as_str()], |r| {
            Ok(ParticipantRow {
                user: rows::user(r, 0)?,
                joined_ms: r.get(6)?,
                delivered_seq: r.get(7)?,
                read_seq: r.get(8)?,
                unread_count: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    list.sort_by_key(|p| p.user.id != cons.customer_id);
    Ok(list)
}

pub fn active(c: &Connection, user: UserId) -> Result<Vec<Consultation>> {
    let mut st = c.prepare_cached(&format!(
        "{CONSULTATION_SELECT} WHERE (c.customer_id = ?1 OR c.guide_id = ?1)
         AND c.status IN ('requested', 'accepted', 'in_progress') ORDER BY c.created_at DESC LIMIT 100"
    ))?;
    let rows = st
        .query_map([user.0], rows::consultation)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn in_state(c: &Connection, status: ConsultationStatus) -> Result<Vec<Consultation>> {
    let mut st = c.prepare_cached(&format!(
        "{CONSULTATION_SELECT} WHERE c.status = ?1 ORDER BY c.created_at"
    ))?;
    let rows = st
        .query_map([status.as_str()], rows::consultation)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn chat_list(
    c: &Connection,
    user: UserId,
    cursor: Option<(i64, ConsultationId)>,
    limit: usize,
) -> Result<Vec<ChatRow>> {
    let (at, after_id) = cursor
        .map(|(a, id)| (a, id.0))
        .unwrap_or((i64::MAX, String::new()));
    let mut st = c.prepare_cached(&format!(
        "SELECT * FROM ({CONSULTATION_SELECT} JOIN participants p ON p.consultation_id = c.consultation_id
           AND p.user_id = ?1 WHERE c.customer_id = ?1 OR c.guide_id = ?1)
         WHERE (activity < ?2 OR (activity = ?2 AND consultation_id < ?3))
         ORDER BY activity DESC, consultation_id DESC LIMIT ?4"
    ))?;
    let list: Vec<(Consultation, i64)> = st
        .query_map(
            params![
                user.0,
                at,
                if after_id.is_empty() {
                    "\u{10FFFF}".to_owned()
                } else {
                    after_id
                },
                limit as i64
            ],
            |r| Ok((rows::consultation(r)?, r.get(18)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(list.len());
    for (cons, activity_ms) in list {
        let other_id = if cons.customer_id == user {
            cons.guide_id
        } else {
            cons.customer_id
        };
        let other =
            rows::load_user(c, other_id)?.ok_or_else(|| Error::internal("participant vanished"))?;
        let unread_count: i64 = c.query_row(
            &format!(
                "SELECT {UNREAD} FROM participants p JOIN consultations k ON k.consultation_id = p.consultation_id
                 WHERE p.consultation_id = ?1 AND p.user_id = ?2"
            ),
            params![cons.consultation_id.as_str(), user.0],
            |r| r.get(0),
        )?;
        let last_message = messages::last_message(c, &cons)?;
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

pub fn feedback(
    c: &Connection,
    id: &ConsultationId,
    customer: UserId,
    f: &FeedbackRequest,
    now: i64,
) -> Result<FeedbackResponse> {
    let cons = rows::require_consultation(c, id.as_str())?;
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
    let exists: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM feedback WHERE consultation_id = ?1)",
        [id.as_str()],
        |r| r.get(0),
    )?;
    if exists {
        return Err(Error::new(
            ErrorCode::AlreadyRated,
            "this consultation has been rated already",
        ));
    }
    let feedback_id = uuid::Uuid::now_v7().to_string();
    c.execute(
        "INSERT INTO feedback (feedback_id, consultation_id, customer_id, guide_id, rating, feedback_text, issues, submitted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            feedback_id,
            id.as_str(),
            customer.0,
            cons.guide_id.0,
            f.rating,
            f.feedback_text,
            f.issues.as_ref().map(serde_json::to_string).transpose()?,
            now
        ],
    )?;
    c.execute(
        "UPDATE guides SET rating_sum = rating_sum + ?1, rating_count = rating_count + 1 WHERE user_id = ?2",
        params![f.rating, cons.guide_id.0],
    )?;
    Ok(FeedbackResponse {
        feedback_id,
        rating: f.rating,
        submitted_at: Timestamp::from_millis(now),
    })
}

pub fn guide_ratings(
    c: &Connection,
    guide: UserId,
    cursor: Option<(i64, ConsultationId)>,
    limit: usize,
) -> Result<Vec<GuideRating>> {
    let (at, before_id) = cursor
        .map(|(a, id)| (a, id.0))
        .unwrap_or((i64::MAX, "\u{10FFFF}".to_owned()));
    let mut st = c.prepare_cached(
        "SELECT f.consultation_id, u.display_name, f.rating, f.feedback_text, f.issues, f.submitted_at
         FROM feedback f JOIN users u ON u.id = f.customer_id
         WHERE f.guide_id = ?1 AND (f.submitted_at < ?2 OR (f.submitted_at = ?2 AND f.consultation_id < ?3))
         ORDER BY f.submitted_at DESC, f.consultation_id DESC LIMIT ?4",
    )?;
    let list = st
        .query_map(params![guide.0, at, before_id, limit as i64], |r| {
            let issues: Option<String> = r.get(4)?;
            Ok(GuideRating {
                consultation_id: ConsultationId(r.get(0)?),
                customer_name: r.get(1)?,
                rating: r.get(2)?,
                feedback_text: r.get(3)?,
                issues: issues
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or_default(),
                submitted_at: Timestamp::from_millis(r.get(5)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}
