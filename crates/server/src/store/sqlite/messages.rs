//! Messages (seq assignment, idempotency, history, receipts) and media records.

use super::rows::{self, MEDIA_COLS, MESSAGE_SELECT};
use crate::error::{Error, Result};
use crate::store::{
    Admission, Appended, Committed, HistoryRange, Mark, MediaRow, NewMessage, Progress,
};
use rusqlite::{params, Connection, OptionalExtension};
use tara_protocol::consultations::Consultation;
use tara_protocol::consultations::ConsultationStatus;
use tara_protocol::media::MediaInfo;
use tara_protocol::messages::{Message, MessageKind, SenderType};
use tara_protocol::{ClientMsgId, ConsultationId, MediaId, UserId};
use tara_protocol::{MessageId, Timestamp};

pub fn by_client_id(c: &Connection, sender: UserId, id: &ClientMsgId) -> Result<Option<Message>> {
    Ok(c.prepare_cached(&format!(
        "{MESSAGE_SELECT} WHERE m.sender_id = ?1 AND m.client_msg_id = ?2"
    ))?
    .query_row(params![sender.0, id.as_str()], rows::message)
    .optional()?)
}

fn by_seq(c: &Connection, id: &str, seq: i64) -> Result<Option<Message>> {
    Ok(c.prepare_cached(&format!(
        "{MESSAGE_SELECT} WHERE m.consultation_id = ?1 AND m.seq = ?2"
    ))?
    .query_row(params![id, seq], rows::message)
    .optional()?)
}

pub fn last_message(c: &Connection, cons: &Consultation) -> Result<Option<Message>> {
    if cons.head_seq == 0 {
        return Ok(None);
    }
    by_seq(c, cons.consultation_id.as_str(), cons.head_seq)
}

/// Where a message goes: the consultation and its two parties.
pub struct Target<'a> {
    /// The consultation.
    pub id: &'a str,
    /// Its customer.
    pub customer: UserId,
    /// Its guide.
    pub guide: UserId,
}

impl<'a> From<&'a Consultation> for Target<'a> {
    fn from(c: &'a Consultation) -> Self {
        Self {
            id: c.consultation_id.as_str(),
            customer: c.customer_id,
            guide: c.guide_id,
        }
    }
}

/// Appends a message with the next seq, bumps the counters, and records it for fan-out.
/// The message is built from what was written, not read back: this is the hot path.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    c: &Connection,
    to: &Target<'_>,
    sender: UserId,
    sender_type: SenderType,
    client_msg_id: &str,
    kind: MessageKind,
    content: &str,
    media: Option<&MediaRow>,
    now: i64,
    committed: &mut Vec<Committed>,
) -> Result<Message> {
    // Messages from a person count as unread for the other person; system lines do not. The
    // counters live on the consultation row, so a message touches one row besides its own, and
    // no indexed column of it: `activity_at` moves on state changes only, and the chat list
    // orders by the later of it and `last_message_at`.
    let (to_customer, to_guide) = match sender_type {
        SenderType::System => (0, 0),
        _ if sender == to.customer => (0, 1),
        _ => (1, 0),
    };
    let (seq, customer_unread, guide_unread): (i64, i64, i64) = c
        .prepare_cached(
            "UPDATE consultations SET head_seq = head_seq + 1, total_messages = total_messages + 1,
             last_message_at = ?2, customer_unread = customer_unread + ?3,
             guide_unread = guide_unread + ?4,
             last_active_at = CASE WHEN ?5 THEN ?2 ELSE last_active_at END
             WHERE consultation_id = ?1 RETURNING head_seq, customer_unread, guide_unread",
        )?
        .query_row(
            params![
                to.id,
                now,
                to_customer,
                to_guide,
                sender_type != SenderType::System
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
    let message_id = uuid::Uuid::now_v7().to_string();
    c.prepare_cached(
        "INSERT INTO messages (consultation_id, seq, message_id, client_msg_id, sender_id, sender_type, kind, content,
         media_id, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        to.id,
        seq,
        message_id,
        client_msg_id,
        sender.0,
        sender_type.as_str(),
        kind.as_str(),
        content,
        media.map(|m| m.media_id.as_str()),
        now
    ])?;
    let unread = match (to_customer, to_guide) {
        (1, _) => Some((to.customer, customer_unread)),
        (_, 1) => Some((to.guide, guide_unread)),
        _ => None,
    };
    let message = Message {
        message_id: MessageId(message_id),
        consultation_id: ConsultationId(to.id.to_owned()),
        seq,
        client_msg_id: ClientMsgId(client_msg_id.to_owned()),
        sender_id: sender,
        sender_type,
        kind,
        content: content.to_owned(),
        media: media.map(|m| MediaInfo {
            media_id: m.media_id.clone(),
            url: rows::media_url(m.media_id.as_str()),
            width: m.width,
            height: m.height,
            bytes: m.bytes,
            content_type: m.content_type.clone(),
        }),
        sent_at: Timestamp::from_millis(now),
        is_deleted: false,
    };
    committed.push(Committed {
        message: message.clone(),
        customer_id: to.customer,
        guide_id: to.guide,
        unread,
    });
    Ok(message)
}

pub fn append(
    c: &Connection,
    new: &NewMessage,
    now: i64,
    admit: Admission,
    committed: &mut Vec<Committed>,
) -> Result<Appended> {
    if let Some(existing) = by_client_id(c, new.sender_id, &new.client_msg_id)? {
        if existing.consultation_id != new.consultation_id {
            return Err(Error::validation(
                "this client_msg_id was used in another consultation",
            ));
        }
        return Ok(Appended {
            message: existing,
            duplicate: true,
        });
    }
    let cid = new.consultation_id.as_str();
    let found: Option<(i64, i64, String)> = c
        .prepare_cached(
            "SELECT customer_id, guide_id, status FROM consultations WHERE consultation_id = ?1",
        )?
        .query_row([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((customer, guide, status)) = found else {
        return Err(Error::consultation_not_found());
    };
    let to = Target {
        id: cid,
        customer: UserId(customer),
        guide: UserId(guide),
    };
    let sender_type = if new.sender_id == to.customer {
        SenderType::Customer
    } else if new.sender_id == to.guide {
        SenderType::Guide
    } else {
        return Err(Error::forbidden("you are not part of this consultation"));
    };
    let status = ConsultationStatus::parse(&status).unwrap_or(ConsultationStatus::Cancelled);
    if !status.accepts_messages() {
        return Err(Error::closed_for_messages(status));
    }
    admit()?;
    let media = match &new.media_id {
        Some(media_id) => match media(c, media_id)? {
            Some(m)
                if m.consultation_id == new.consultation_id && m.uploader_id == new.sender_id =>
            {
                Some(m)
            }
            _ => {
                return Err(Error::validation(
                    "media_id names no image you uploaded to this consultation",
                ))
            }
        },
        None => None,
    };
    let message = insert(
        c,
        &to,
        new.sender_id,
        sender_type,
        new.client_msg_id.as_str(),
        new.kind,
        &new.content,
        media.as_ref(),
        now,
        committed,
    )?;
    Ok(Appended {
        message,
        duplicate: false,
    })
}

/// `CONSULTATION_NOT_FOUND` unless the consultation exists, `FORBIDDEN` unless `user` is one of
/// its two sides: the participant check in one indexed lookup, without loading the rest.
pub fn check_participant(c: &Connection, id: &ConsultationId, user: UserId) -> Result<()> {
    let (customer, guide): (i64, i64) = c
        .prepare_cached(
            "SELECT customer_id, guide_id FROM consultations WHERE consultation_id = ?1",
        )?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(Error::consultation_not_found)?;
    crate::store::require_side(UserId(customer), UserId(guide), user)
}

pub fn history(
    c: &Connection,
    id: &ConsultationId,
    range: HistoryRange,
    limit: usize,
) -> Result<(Vec<Message>, bool)> {
    let fetch = (limit + 1) as i64;
    let cid = id.as_str();
    let (sql, a, b, descending) = match range {
        HistoryRange::Latest => (
            "m.consultation_id = ?1 AND m.seq > ?2 AND m.seq < ?3 ORDER BY m.seq DESC",
            0,
            i64::MAX,
            true,
        ),
        HistoryRange::Before(n) => (
            "m.consultation_id = ?1 AND m.seq > ?2 AND m.seq < ?3 ORDER BY m.seq DESC",
            0,
            n,
            true,
        ),
        HistoryRange::After(n) => (
            "m.consultation_id = ?1 AND m.seq > ?2 AND m.seq < ?3 ORDER BY m.seq ASC",
            n,
            i64::MAX,
            false,
        ),
        HistoryRange::Between(lo, hi) => (
            "m.consultation_id = ?1 AND m.seq > ?2 AND m.seq < ?3 ORDER BY m.seq ASC",
            lo,
            hi,
            false,
        ),
    };
    let mut st = c.prepare_cached(&format!("{MESSAGE_SELECT} WHERE {sql} LIMIT ?4"))?;
    let mut list: Vec<Message> = st
        .query_map(params![cid, a, b, fetch], rows::message)?
        .collect::<rusqlite::Result<_>>()?;
    let has_more = list.len() > limit;
    list.truncate(limit);
    if descending {
        list.reverse();
    }
    Ok((list, has_more))
}

pub fn mark(
    c: &Connection,
    id: &ConsultationId,
    user: UserId,
    mark: Mark,
    up_to: i64,
) -> Result<Progress> {
    let cons = rows::require_consultation(c, id.as_str())?;
    if user != cons.customer_id && user != cons.guide_id {
        return Err(Error::forbidden("you are not part of this consultation"));
    }
    let up_to = up_to.clamp(0, cons.head_seq);
    let (delivered, read, unread): (i64, i64, i64) = c.query_row(
        &format!(
            "SELECT p.delivered_seq, p.read_seq, {UNREAD} FROM participants p
         JOIN consultations k ON k.consultation_id = p.consultation_id
         WHERE p.consultation_id = ?1 AND p.user_id = ?2"
        ),
        params![id.as_str(), user.0],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (new_delivered, new_read) = match mark {
        Mark::Delivered => (delivered.max(up_to), read),
        // Whatever was read was also delivered.
        Mark::Read => (delivered.max(up_to), read.max(up_to)),
    };
    if (new_delivered, new_read) == (delivered, read) {
        return Ok(Progress {
            delivered_seq: delivered,
            read_seq: read,
            unread_count: unread,
            changed: false,
        });
    }
    let new_unread = if new_read != read {
        c.query_row(
            "SELECT COUNT(*) FROM messages WHERE consultation_id = ?1 AND seq > ?2 AND sender_id != ?3
             AND sender_type != 'system'",
            params![id.as_str(), new_read, user.0],
            |r| r.get(0),
        )?
    } else {
        unread
    };
    c.execute(
        "UPDATE participants SET delivered_seq = ?1, read_seq = ?2 WHERE consultation_id = ?3 AND user_id = ?4",
        params![new_delivered, new_read, id.as_str(), user.0],
    )?;
    let column = if user == cons.customer_id {
        "customer_unread"
    } else {
        "guide_unread"
    };
    c.execute(
        &format!("UPDATE consultations SET {column} = ?1 WHERE consultation_id = ?2"),
        params![new_unread, id.as_str()],
    )?;
    Ok(Progress {
        delivered_seq: new_delivered,
        read_seq: new_read,
        unread_count: new_unread,
        changed: true,
    })
}

/// A participant's unread count, in a query joining participants `p` and consultations `k`.
pub const UNREAD: &str =
    "CASE WHEN p.user_id = k.customer_id THEN k.customer_unread ELSE k.guide_unread END";

pub fn media(c: &Connection, id: &MediaId) -> Result<Option<MediaRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {MEDIA_COLS} FROM media WHERE media_id = ?1"
    ))?
    .query_row([id.as_str()], rows::media)
    .optional()?)
}

pub fn media_by_key(c: &Connection, uploader: UserId, key: &str) -> Result<Option<MediaRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {MEDIA_COLS} FROM media WHERE uploader_id = ?1 AND idempotency_key = ?2"
    ))?
    .query_row(params![uploader.0, key], rows::media)
    .optional()?)
}

pub fn insert_media(c: &Connection, m: &MediaRow) -> Result<MediaRow> {
    if let Some(key) = &m.idempotency_key {
        if let Some(existing) = media_by_key(c, m.uploader_id, key)? {
            return Ok(existing);
        }
    }
    c.execute(
        &format!("INSERT INTO media ({MEDIA_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            m.media_id.as_str(),
            m.consultation_id.as_str(),
            m.uploader_id.0,
            m.idempotency_key,
            m.content_type,
            m.width,
            m.height,
            m.bytes,
            m.created_ms
        ],
    )?;
    Ok(m.clone())
}
