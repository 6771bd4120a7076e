//! Column lists and row mappers shared by the queries.

use crate::error::{Error, Result};
use crate::store::{GuideRow, MediaRow, SessionRow, User};
use rusqlite::{Connection, OptionalExtension, Row};
use tara_protocol::auth::UserType;
use tara_protocol::consultations::{Consultation, ConsultationStatus, EndedBy};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput};
use tara_protocol::ids::pair_id;
use tara_protocol::media::MediaInfo;
use tara_protocol::messages::{Message, MessageKind, SenderType};
use tara_protocol::{
    ClientMsgId, ConsultationId, MediaId, MessageId, SessionId, Timestamp, UserId,
};

pub const USER_COLS: &str =
    "u.id, u.user_type, u.phone, u.display_name, u.avatar_url, u.last_seen_at";

pub fn user(r: &Row<'_>, at: usize) -> rusqlite::Result<User> {
    let kind: String = r.get(at + 1)?;
    Ok(User {
        id: UserId(r.get(at)?),
        user_type: UserType::parse(&kind).unwrap_or(UserType::Customer),
        phone: r.get(at + 2)?,
        display_name: r.get(at + 3)?,
        avatar_url: r.get(at + 4)?,
        last_seen_ms: r.get(at + 5)?,
    })
}

pub fn load_user(c: &Connection, id: UserId) -> Result<Option<User>> {
    Ok(
        c.prepare_cached(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?1"))?
            .query_row([id.0], |r| user(r, 0))
            .optional()?,
    )
}

pub const GUIDE_SELECT: &str = "SELECT u.id, u.user_type, u.phone, u.display_name, u.avatar_url, u.last_seen_at,
        g.rate_per_minute, g.skills, g.languages, g.available, g.rating_sum, g.rating_count,
        EXISTS (SELECT 1 FROM consultations c WHERE c.guide_id = u.id AND c.status IN ('accepted', 'in_progress')),
        EXISTS (SELECT 1 FROM push_tokens p JOIN sessions s ON s.session_id = p.session_id
                WHERE p.user_id = u.id AND s.revoked_at IS NULL)
    FROM guides g JOIN users u ON u.id = g.user_id";

pub fn guide(r: &Row<'_>) -> rusqlite::Result<GuideRow> {
    let skills: String = r.get(7)?;
    let languages: String = r.get(8)?;
    let sum: i64 = r.get(10)?;
    let count: i64 = r.get(11)?;
    Ok(GuideRow {
        user: user(r, 0)?,
        rate_per_minute: r.get(6)?,
        skills: serde_json::from_str(&skills).unwrap_or_default(),
        languages: serde_json::from_str(&languages).unwrap_or_default(),
        available: r.get(9)?,
        rating_avg: if count == 0 {
            0.0
        } else {
            ((sum as f64 / count as f64) * 100.0).round() / 100.0
        },
        rating_count: count,
        busy: r.get(12)?,
        push_reachable: r.get(13)?,
    })
}

pub const SESSION_COLS: &str =
    "session_id, user_id, device_info, created_at, last_used_at, revoked_at";

pub fn session(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    let device: String = r.get(2)?;
    Ok(SessionRow {
        session_id: SessionId(r.get(0)?),
        user_id: UserId(r.get(1)?),
        device_info: serde_json::from_str(&device).unwrap_or_default(),
        created_ms: r.get(3)?,
        last_used_ms: r.get(4)?,
        revoked_ms: r.get(5)?,
    })
}

pub const PROFILE_COLS: &str =
    "profile_id, customer_id, is_primary, name, date_of_birth, time_of_birth,
    birth_city, birth_country, preferred_language, zodiac_sign, gender";

pub fn profile(r: &Row<'_>) -> rusqlite::Result<CustomerProfile> {
    Ok(CustomerProfile {
        profile_id: r.get(0)?,
        customer_id: r.get(1)?,
        is_primary: r.get(2)?,
        details: CustomerProfileInput {
            name: r.get(3)?,
            date_of_birth: r.get(4)?,
            time_of_birth: r.get(5)?,
            birth_city: r.get(6)?,
            birth_country: r.get(7)?,
            preferred_language: r.get(8)?,
            zodiac_sign: r.get(9)?,
            gender: r.get(10)?,
        },
    })
}

pub const CONSULTATION_SELECT: &str =
    "SELECT c.consultation_id, c.customer_id, c.guide_id, g.display_name,
        cu.display_name, c.mode, c.status, c.created_at, c.accepted_at, c.started_at, c.ended_at,
        c.ended_by, c.end_reason, c.rate_per_minute, c.intake, c.head_seq, c.total_messages,
        c.last_message_at, MAX(c.activity_at, COALESCE(c.last_message_at, 0)) AS activity,
        EXISTS (SELECT 1 FROM feedback f WHERE f.consultation_id = c.consultation_id) AS rated,
        COALESCE(w.balance, 0) AS customer_balance, c.amount_charged, c.minute_ms, c.guide_away_at
    FROM consultations c JOIN users g ON g.id = c.guide_id JOIN users cu ON cu.id = c.customer_id
    LEFT JOIN wallets w ON w.user_id = c.customer_id";

fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

pub fn consultation(r: &Row<'_>) -> rusqlite::Result<Consultation> {
    let customer = UserId(r.get(1)?);
    let guide = UserId(r.get(2)?);
    let status: String = r.get(6)?;
    let status = ConsultationStatus::parse(&status).unwrap_or(ConsultationStatus::Cancelled);
    let started: Option<i64> = r.get(9)?;
    let ended: Option<i64> = r.get(10)?;
    let ended_by: Option<String> = r.get(11)?;
    let intake: Option<String> = r.get(14)?;
    let rate: i64 = r.get(13)?;
    let balance: i64 = r.get(20)?;
    let ends_at = match (status, started) {
        (ConsultationStatus::InProgress, Some(s)) => {
            crate::billing::ends_at_ms(s, balance, rate, r.get(22)?)
        }
        _ => None,
    };
    let amount_charged: Option<i64> = match status {
        ConsultationStatus::Completed => Some(r.get::<_, Option<i64>>(21)?.unwrap_or(0)),
        _ => None,
    };
    let duration_seconds = match (status, started, ended) {
        (ConsultationStatus::Completed, Some(s), Some(e)) => Some(((e - s).max(0)) / 1000),
        (ConsultationStatus::Completed, None, Some(_)) => Some(0),
        _ => None,
    };
    Ok(Consultation {
        consultation_id: ConsultationId(r.get(0)?),
        pair_id: pair_id(customer, guide),
        guide_id: guide,
        customer_id: customer,
        guide_name: r.get(3)?,
        customer_name: r.get(4)?,
        mode: r.get(5)?,
        status,
        created_at: Timestamp::from_millis(r.get(7)?),
        accepted_at: ts(r.get(8)?),
        started_at: ts(started),
        ended_at: ts(ended),
        ended_by: ended_by.as_deref().and_then(EndedBy::parse),
        end_reason: r.get(12)?,
        duration_seconds,
        rate_per_minute: rate,
        intake: intake.and_then(|s| serde_json::from_str(&s).ok()),
        head_seq: r.get(15)?,
        total_messages: r.get(16)?,
        last_message_at: ts(r.get(17)?),
        rated: r.get(19)?,
        ends_at: ts(ends_at),
        amount_charged,
        guide_away_at: match status {
            ConsultationStatus::InProgress => ts(r.get(23)?),
            _ => None,
        },
    })
}

pub fn load_consultation(c: &Connection, id: &str) -> Result<Option<Consultation>> {
    Ok(c.prepare_cached(&format!(
        "{CONSULTATION_SELECT} WHERE c.consultation_id = ?1"
    ))?
    .query_row([id], consultation)
    .optional()?)
}

/// The consultation, or `CONSULTATION_NOT_FOUND`.
pub fn require_consultation(c: &Connection, id: &str) -> Result<Consultation> {
    load_consultation(c, id)?.ok_or_else(Error::consultation_not_found)
}

pub const MESSAGE_SELECT: &str =
    "SELECT m.message_id, m.consultation_id, m.seq, m.client_msg_id, m.sender_id,
        m.sender_type, m.kind, m.content, m.sent_at, m.is_deleted,
        md.media_id, md.content_type, md.width, md.height, md.bytes
    FROM messages m LEFT JOIN media md ON md.media_id = m.media_id";

pub fn media_url(id: &str) -> String {
    format!("/api/v1/media/{id}")
}

pub fn message(r: &Row<'_>) -> rusqlite::Result<Message> {
    let sender_type: String = r.get(5)?;
    let kind: String = r.get(6)?;
    let media_id: Option<String> = r.get(10)?;
    let media = match media_id {
        Some(id) => Some(MediaInfo {
            url: media_url(&id),
            media_id: MediaId(id),
            content_type: r.get(11)?,
            width: r.get(12)?,
            height: r.get(13)?,
            bytes: r.get(14)?,
        }),
        None => None,
    };
    Ok(Message {
        message_id: MessageId(r.get(0)?),
        consultation_id: ConsultationId(r.get(1)?),
        seq: r.get(2)?,
        client_msg_id: ClientMsgId(r.get(3)?),
        sender_id: UserId(r.get(4)?),
        sender_type: SenderType::parse(&sender_type).unwrap_or(SenderType::System),
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::System),
        content: r.get(7)?,
        media,
        sent_at: Timestamp::from_millis(r.get(8)?),
        is_deleted: r.get(9)?,
    })
}

pub const MEDIA_COLS: &str =
    "media_id, consultation_id, uploader_id, idempotency_key, content_type, width, height, bytes, created_at";

pub fn media(r: &Row<'_>) -> rusqlite::Result<MediaRow> {
    Ok(MediaRow {
        media_id: MediaId(r.get(0)?),
        consultation_id: ConsultationId(r.get(1)?),
        uploader_id: UserId(r.get(2)?),
        idempotency_key: r.get(3)?,
        content_type: r.get(4)?,
        width: r.get(5)?,
        height: r.get(6)?,
        bytes: r.get(7)?,
        created_ms: r.get(8)?,
    })
}
