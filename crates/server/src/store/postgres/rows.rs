//! Column lists and row mappers shared by the queries.

use super::{query_opt, Conn};
use crate::error::{Error, Result};
use crate::store::{GuideRow, MediaRow, SessionRow, User};
use tara_protocol::auth::UserType;
use tara_protocol::consultations::{Consultation, ConsultationStatus, EndedBy};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput};
use tara_protocol::ids::pair_id;
use tara_protocol::media::MediaInfo;
use tara_protocol::messages::{Message, MessageKind, SenderType};
use tara_protocol::{
    ClientMsgId, ConsultationId, MediaId, MessageId, SessionId, Timestamp, UserId,
};
use tokio_postgres::Row;

pub const USER_COLS: &str =
    "u.id, u.user_type, u.phone, u.display_name, u.avatar_url, u.last_seen_at";

pub fn user(r: &Row, at: usize) -> Result<User> {
    let kind: String = r.try_get(at + 1)?;
    Ok(User {
        id: UserId(r.try_get(at)?),
        user_type: UserType::parse(&kind).unwrap_or(UserType::Customer),
        phone: r.try_get(at + 2)?,
        display_name: r.try_get(at + 3)?,
        avatar_url: r.try_get(at + 4)?,
        last_seen_ms: r.try_get(at + 5)?,
    })
}

pub async fn load_user(c: &Conn, id: UserId) -> Result<Option<User>> {
    query_opt(
        c,
        &format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"),
        &[&id.0],
    )
    .await?
    .map(|r| user(&r, 0))
    .transpose()
}

pub const GUIDE_SELECT: &str = "SELECT u.id, u.user_type, u.phone, u.display_name, u.avatar_url, u.last_seen_at,
        g.rate_per_minute, g.skills, g.languages, g.available, g.rating_sum, g.rating_count,
        EXISTS (SELECT 1 FROM consultations c WHERE c.guide_id = u.id AND c.status IN ('accepted', 'in_progress')),
        EXISTS (SELECT 1 FROM push_tokens p JOIN sessions s ON s.session_id = p.session_id
                WHERE p.user_id = u.id AND s.revoked_at IS NULL)
    FROM guides g JOIN users u ON u.id = g.user_id";

pub fn guide(r: &Row) -> Result<GuideRow> {
    let skills: String = r.try_get(7)?;
    let languages: String = r.try_get(8)?;
    let sum: i64 = r.try_get(10)?;
    let count: i64 = r.try_get(11)?;
    Ok(GuideRow {
        user: user(r, 0)?,
        rate_per_minute: r.try_get(6)?,
        skills: serde_json::from_str(&skills).unwrap_or_default(),
        languages: serde_json::from_str(&languages).unwrap_or_default(),
        available: r.try_get(9)?,
        rating_avg: if count == 0 {
            0.0
        } else {
            ((sum as f64 / count as f64) * 100.0).round() / 100.0
        },
        rating_count: count,
        busy: r.try_get(12)?,
        push_reachable: r.try_get(13)?,
    })
}

pub const SESSION_COLS: &str =
    "session_id, user_id, device_info, created_at, last_used_at, revoked_at";

pub fn session(r: &Row) -> Result<SessionRow> {
    let device: String = r.try_get(2)?;
    Ok(SessionRow {
        session_id: SessionId(r.try_get(0)?),
        user_id: UserId(r.try_get(1)?),
        device_info: serde_json::from_str(&device).unwrap_or_default(),
        created_ms: r.try_get(3)?,
        last_used_ms: r.try_get(4)?,
        revoked_ms: r.try_get(5)?,
    })
}

pub const PROFILE_COLS: &str =
    "profile_id, customer_id, is_primary, name, date_of_birth, time_of_birth,
    birth_city, birth_country, preferred_language, zodiac_sign, gender";

pub fn profile(r: &Row) -> Result<CustomerProfile> {
    Ok(CustomerProfile {
        profile_id: r.try_get(0)?,
        customer_id: r.try_get(1)?,
        is_primary: r.try_get(2)?,
        details: CustomerProfileInput {
            name: r.try_get(3)?,
            date_of_birth: r.try_get(4)?,
            time_of_birth: r.try_get(5)?,
            birth_city: r.try_get(6)?,
            birth_country: r.try_get(7)?,
            preferred_language: r.try_get(8)?,
            zodiac_sign: r.try_get(9)?,
            gender: r.try_get(10)?,
        },
    })
}

pub const CONSULTATION_SELECT: &str =
    "SELECT c.consultation_id, c.customer_id, c.guide_id, g.display_name,
        cu.display_name, c.mode, c.status, c.created_at, c.accepted_at, c.started_at, c.ended_at,
        c.ended_by, c.end_reason, c.rate_per_minute, c.intake, c.head_seq, c.total_messages,
        c.last_message_at, GREATEST(c.activity_at, COALESCE(c.last_message_at, 0)) AS activity,
        EXISTS (SELECT 1 FROM feedback f WHERE f.consultation_id = c.consultation_id) AS rated,
        COALESCE(w.balance, 0) AS customer_balance, c.amount_charged, c.minute_ms, c.guide_away_at
    FROM consultations c JOIN users g ON g.id = c.guide_id JOIN users cu ON cu.id = c.customer_id
    LEFT JOIN wallets w ON w.user_id = c.customer_id";

fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

pub fn consultation(r: &Row) -> Result<Consultation> {
    let customer = UserId(r.try_get(1)?);
    let guide = UserId(r.try_get(2)?);
    let status: String = r.try_get(6)?;
    let status = ConsultationStatus::parse(&status).unwrap_or(ConsultationStatus::Cancelled);
    let started: Option<i64> = r.try_get(9)?;
    let ended: Option<i64> = r.try_get(10)?;
    let ended_by: Option<String> = r.try_get(11)?;
    let intake: Option<String> = r.try_get(14)?;
    let rate: i64 = r.try_get(13)?;
    let balance: i64 = r.try_get(20)?;
    let ends_at = match (status, started) {
        (ConsultationStatus::InProgress, Some(s)) => {
            crate::billing::ends_at_ms(s, balance, rate, r.try_get(22)?)
        }
        _ => None,
    };
    let amount_charged: Option<i64> = match status {
        ConsultationStatus::Completed => Some(r.try_get::<_, Option<i64>>(21)?.unwrap_or(0)),
        _ => None,
    };
    let duration_seconds = match (status, started, ended) {
        (ConsultationStatus::Completed, Some(s), Some(e)) => Some(((e - s).max(0)) / 1000),
        (ConsultationStatus::Completed, None, Some(_)) => Some(0),
        _ => None,
    };
    Ok(Consultation {
        consultation_id: ConsultationId(r.try_get(0)?),
        pair_id: pair_id(customer, guide),
        guide_id: guide,
        customer_id: customer,
        guide_name: r.try_get(3)?,
        customer_name: r.try_get(4)?,
        mode: r.try_get(5)?,
        status,
        created_at: Timestamp::from_millis(r.try_get(7)?),
        accepted_at: ts(r.try_get(8)?),
        started_at: ts(started),
        ended_at: ts(ended),
        ended_by: ended_by.as_deref().and_then(EndedBy::parse),
        end_reason: r.try_get(12)?,
        duration_seconds,
        rate_per_minute: rate,
        intake: intake.and_then(|s| serde_json::from_str(&s).ok()),
        head_seq: r.try_get(15)?,
        total_messages: r.try_get(16)?,
        last_message_at: ts(r.try_get(17)?),
        rated: r.try_get(19)?,
        ends_at: ts(ends_at),
        amount_charged,
        guide_away_at: match status {
            ConsultationStatus::InProgress => ts(r.try_get(23)?),
            _ => None,
        },
    })
}

pub async fn load_consultation(c: &Conn, id: &str) -> Result<Option<Consultation>> {
    query_opt(
        c,
        &format!("{CONSULTATION_SELECT} WHERE c.consultation_id = $1"),
        &[&id],
    )
    .await?
    .map(|r| consultation(&r))
    .transpose()
}

/// The consultation, or `CONSULTATION_NOT_FOUND`.
pub async fn require_consultation(c: &Conn, id: &str) -> Result<Consultation> {
    load_consultation(c, id)
        .await?
        .ok_or_else(Error::consultation_not_found)
}

/// Locks a consultation's row until the transaction ends; false if there is none. Every write
/// that reads a consultation to decide takes this first, so servers sharing the database
/// decide one after the other.
pub async fn lock_consultation(c: &Conn, id: &str) -> Result<bool> {
    Ok(query_opt(
        c,
        "SELECT 1 FROM consultations WHERE consultation_id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    .is_some())
}

pub const MESSAGE_SELECT: &str =
    "SELECT m.message_id, m.consultation_id, m.seq, m.client_msg_id, m.sender_id,
        m.sender_type, m.kind, m.content, m.sent_at, m.is_deleted,
        md.media_id, md.content_type, md.width, md.height, md.bytes
    FROM messages m LEFT JOIN media md ON md.media_id = m.media_id";

pub fn media_url(id: &str) -> String {
    format!("/api/v1/media/{id}")
}

fn uint<T: TryFrom<i64>>(v: i64) -> Result<T> {
    T::try_from(v).map_err(|_| Error::internal(format_args!("stored size {v} out of range")))
}

pub fn message(r: &Row) -> Result<Message> {
    let sender_type: String = r.try_get(5)?;
    let kind: String = r.try_get(6)?;
    let media_id: Option<String> = r.try_get(10)?;
    let media = match media_id {
        Some(id) => Some(MediaInfo {
            url: media_url(&id),
            media_id: MediaId(id),
            content_type: r.try_get(11)?,
            width: uint(r.try_get(12)?)?,
            height: uint(r.try_get(13)?)?,
            bytes: uint(r.try_get(14)?)?,
        }),
        None => None,
    };
    Ok(Message {
        message_id: MessageId(r.try_get(0)?),
        consultation_id: ConsultationId(r.try_get(1)?),
        seq: r.try_get(2)?,
        client_msg_id: ClientMsgId(r.try_get(3)?),
        sender_id: UserId(r.try_get(4)?),
        sender_type: SenderType::parse(&sender_type).unwrap_or(SenderType::System),
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::System),
        content: r.try_get(7)?,
        media,
        sent_at: Timestamp::from_millis(r.try_get(8)?),
        is_deleted: r.try_get(9)?,
    })
}

pub const MEDIA_COLS: &str =
    "media_id, consultation_id, uploader_id, idempotency_key, content_type, width, height, bytes, created_at";

pub fn media(r: &Row) -> Result<MediaRow> {
    Ok(MediaRow {
        media_id: MediaId(r.try_get(0)?),
        consultation_id: ConsultationId(r.try_get(1)?),
        uploader_id: UserId(r.try_get(2)?),
        idempotency_key: r.try_get(3)?,
        content_type: r.try_get(4)?,
        width: uint(r.try_get(5)?)?,
        height: uint(r.try_get(6)?)?,
        bytes: uint(r.try_get(7)?)?,
        created_ms: r.try_get(8)?,
    })
}

/// Maps every row with `f`.
pub fn all<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}
