//! Users, OTP requests, device sessions and refresh tokens, guides, customer profiles.

use super::rows::{self, GUIDE_SELECT, PROFILE_COLS, SESSION_COLS, USER_COLS};
use crate::error::{Error, Result};
use crate::store::{GuideRow, NewGuide, OtpOutcome, OtpRecord, RefreshOutcome, SessionRow, User};
use rusqlite::{params, Connection, OptionalExtension};
use tara_protocol::auth::{DeviceInfo, ProfilePatch, UserType};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput};
use tara_protocol::{SessionId, UserId};

pub fn user_by_phone(c: &Connection, phone: &str, t: UserType) -> Result<Option<User>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users u WHERE u.phone = ?1 AND u.user_type = ?2"
    ))?
    .query_row(params![phone, t.as_str()], |r| rows::user(r, 0))
    .optional()?)
}

/// The customer with this phone, and whether it was created now.
pub fn ensure_customer(c: &Connection, phone: &str, name: &str, now: i64) -> Result<(User, bool)> {
    if let Some(u) = user_by_phone(c, phone, UserType::Customer)? {
        return Ok((u, false));
    }
    c.execute(
        "INSERT INTO users (user_type, phone, display_name, created_at) VALUES ('customer', ?1, ?2, ?3)",
        params![phone, name, now],
    )?;
    let id = UserId(c.last_insert_rowid());
    let user =
        rows::load_user(c, id)?.ok_or_else(|| Error::internal("customer vanished after insert"))?;
    Ok((user, true))
}

pub fn add_guide(c: &Connection, g: &NewGuide, now: i64) -> Result<UserId> {
    if user_by_phone(c, &g.phone, UserType::Guide)?.is_some() {
        return Err(Error::validation(format!(
            "a guide with phone {} already exists",
            g.phone
        )));
    }
    c.execute(
        "INSERT INTO users (user_type, phone, display_name, created_at) VALUES ('guide', ?1, ?2, ?3)",
        params![g.phone, g.name, now],
    )?;
    let id = c.last_insert_rowid();
    c.execute(
        "INSERT INTO guides (user_id, rate_per_minute, skills, languages, available) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            g.rate_per_minute,
            serde_json::to_string(&g.skills)?,
            serde_json::to_string(&g.languages)?,
            g.available
        ],
    )?;
    Ok(UserId(id))
}

pub fn update_profile(c: &Connection, id: UserId, patch: &ProfilePatch) -> Result<User> {
    if let Some(name) = &patch.display_name {
        c.execute(
            "UPDATE users SET display_name = ?1 WHERE id = ?2",
            params![name, id.0],
        )?;
    }
    if let Some(url) = &patch.avatar_url {
        let url = if url.is_empty() { None } else { Some(url) };
        c.execute(
            "UPDATE users SET avatar_url = ?1 WHERE id = ?2",
            params![url, id.0],
        )?;
    }
    rows::load_user(c, id)?.ok_or_else(|| Error::not_found("no such user"))
}

pub fn otp_times(c: &Connection, phone: &str, since: i64) -> Result<Vec<i64>> {
    let mut st = c.prepare_cached(
        "SELECT created_at FROM otp_requests WHERE phone = ?1 AND created_at >= ?2 ORDER BY created_at",
    )?;
    let times = st
        .query_map(params![phone, since], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(times)
}

pub fn insert_otp(c: &Connection, r: &OtpRecord) -> Result<()> {
    c.execute(
        "INSERT INTO otp_requests (request_id, phone, user_type, code_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            r.request_id,
            r.phone,
            r.user_type.as_str(),
            r.code_hash,
            r.created_ms,
            r.expires_ms
        ],
    )?;
    // Old requests are of no use after a day; keep the table small.
    c.execute(
        "DELETE FROM otp_requests WHERE created_at < ?1",
        [r.created_ms - 86_400_000],
    )?;
    Ok(())
}

pub fn check_otp(
    c: &Connection,
    request_id: &str,
    phone: &str,
    t: UserType,
    hash: &[u8],
    now: i64,
    max_attempts: u32,
) -> Result<OtpOutcome> {
    let row: Option<(Vec<u8>, i64, u32, String)> = c
        .prepare_cached(
            "SELECT code_hash, expires_at, attempts, state FROM otp_requests
             WHERE request_id = ?1 AND phone = ?2 AND user_type = ?3",
        )?
        .query_row(params![request_id, phone, t.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((stored, expires, attempts, state)) = row else {
        return Ok(OtpOutcome::Unknown);
    };
    match state.as_str() {
        "burned" => return Ok(OtpOutcome::AlreadyBurned),
        "used" => return Ok(OtpOutcome::Expired),
        _ => {}
    }
    if now >= expires {
        return Ok(OtpOutcome::Expired);
    }
    if crate::auth::tokens::constant_time_eq(&stored, hash) {
        c.execute(
            "UPDATE otp_requests SET state = 'used' WHERE request_id = ?1",
            [request_id],
        )?;
        return Ok(OtpOutcome::Accepted);
    }
    let attempts = attempts + 1;
    let burned = attempts >= max_attempts;
    c.execute(
        "UPDATE otp_requests SET attempts = ?1, state = ?2 WHERE request_id = ?3",
        params![attempts, if burned { "burned" } else { "open" }, request_id],
    )?;
    Ok(if burned {
        OtpOutcome::Burned
    } else {
        OtpOutcome::Wrong
    })
}

fn load_session(c: &Connection, id: &str) -> Result<Option<SessionRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE session_id = ?1"
    ))?
    .query_row([id], rows::session)
    .optional()?)
}

pub fn session(c: &Connection, id: &SessionId) -> Result<Option<SessionRow>> {
    load_session(c, id.as_str())
}

pub fn create_session(
    c: &Connection,
    user: UserId,
    device: &DeviceInfo,
    refresh_hash: &[u8],
    max: usize,
    now: i64,
) -> Result<(SessionRow, Vec<SessionId>)> {
    let id = uuid::Uuid::now_v7().to_string();
    c.execute(
        "INSERT INTO sessions (session_id, user_id, device_info, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![id, user.0, serde_json::to_string(device)?, now],
    )?;
    c.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?1, ?2, ?3)",
        params![refresh_hash, id, now],
    )?;
    // Past the limit, the least recently used sessions go.
    let live = sessions(c, user)?;
    let mut evicted = Vec::new();
    for old in live.iter().skip(max) {
        revoke(c, old.session_id.as_str(), now)?;
        evicted.push(old.session_id.clone());
    }
    let row =
        load_session(c, &id)?.ok_or_else(|| Error::internal("session vanished after insert"))?;
    Ok((row, evicted))
}

fn revoke(c: &Connection, id: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE sessions SET revoked_at = ?1 WHERE session_id = ?2 AND revoked_at IS NULL",
        params![now, id],
    )?;
    c.execute(
        "DELETE FROM refresh_tokens WHERE session_id = ?1 AND used_at IS NULL",
        [id],
    )?;
    Ok(())
}

pub fn rotate_refresh(
    c: &Connection,
    old: &[u8],
    new: &[u8],
    retry: Option<&[u8]>,
    now: i64,
) -> Result<RefreshOutcome> {
    type Found = (String, Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>);
    let found: Option<Found> = c
        .prepare_cached(
            "SELECT session_id, used_at, retry_key, successor FROM refresh_tokens WHERE token_hash = ?1",
        )?
        .query_row([old], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((sid, used, first_key, successor)) = found else {
        return Ok(RefreshOutcome::Unknown);
    };
    let Some(session) = load_session(c, &sid)? else {
        return Ok(RefreshOutcome::Unknown);
    };
    if session.revoked_ms.is_some() {
        return Ok(RefreshOutcome::Revoked);
    }
    if let Some(used) = used {
        // The answer to its first use was lost, and this is the same client asking again?
        let unused_successor = match (retry, &first_key, &successor) {
            (Some(k), Some(first), Some(next))
                if crate::store::refresh_retry_matches(k, first, used, now) =>
            {
                c.query_row(
                    "SELECT used_at IS NULL FROM refresh_tokens WHERE token_hash = ?1",
                    [next],
                    |r| r.get::<_, bool>(0),
                )
                .optional()?
                .unwrap_or(false)
            }
            _ => false,
        };
        if !unused_successor {
            // A dead token came back: someone holds a copy. End the whole device session.
            revoke(c, &sid, now)?;
            return Ok(RefreshOutcome::Reused {
                session_id: session.session_id,
            });
        }
        // The successor nobody received dies; the new one takes its place.
        c.execute(
            "UPDATE refresh_tokens SET used_at = ?1 WHERE token_hash = ?2",
            params![now, successor],
        )?;
        c.execute(
            "UPDATE refresh_tokens SET successor = ?1 WHERE token_hash = ?2",
            params![new, old],
        )?;
    } else {
        c.execute(
            "UPDATE refresh_tokens SET used_at = ?1, retry_key = ?2, successor = ?3 WHERE token_hash = ?4",
            params![now, retry, new, old],
        )?;
    }
    c.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?1, ?2, ?3)",
        params![new, sid, now],
    )?;
    c.execute(
        "UPDATE sessions SET last_used_at = ?1 WHERE session_id = ?2",
        params![now, sid],
    )?;
    let session = load_session(c, &sid)?.ok_or_else(|| Error::internal("session vanished"))?;
    Ok(RefreshOutcome::Rotated { session })
}

pub fn sessions(c: &Connection, user: UserId) -> Result<Vec<SessionRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL
         ORDER BY last_used_at DESC, created_at DESC"
    ))?;
    let rows = st
        .query_map([user.0], rows::session)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn revoke_session(c: &Connection, user: UserId, id: &SessionId, now: i64) -> Result<bool> {
    match load_session(c, id.as_str())? {
        Some(s) if s.user_id == user && s.revoked_ms.is_none() => {
            revoke(c, id.as_str(), now)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

pub fn guides(c: &Connection, after: Option<UserId>, limit: usize) -> Result<Vec<GuideRow>> {
    let mut st = c.prepare_cached(&format!(
        "{GUIDE_SELECT} WHERE u.id > ?1 ORDER BY u.id LIMIT ?2"
    ))?;
    let rows = st
        .query_map(
            params![after.map(|a| a.0).unwrap_or(0), limit as i64],
            rows::guide,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn guide(c: &Connection, id: UserId) -> Result<Option<GuideRow>> {
    Ok(
        c.prepare_cached(&format!("{GUIDE_SELECT} WHERE u.id = ?1"))?
            .query_row([id.0], rows::guide)
            .optional()?,
    )
}

pub fn profiles(c: &Connection, customer: UserId) -> Result<Vec<CustomerProfile>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {PROFILE_COLS} FROM customer_profiles WHERE customer_id = ?1 ORDER BY is_primary DESC, profile_id LIMIT 100"
    ))?;
    let rows = st
        .query_map([customer.0], rows::profile)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn profile(c: &Connection, id: i64) -> Result<Option<CustomerProfile>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {PROFILE_COLS} FROM customer_profiles WHERE profile_id = ?1"
    ))?
    .query_row([id], rows::profile)
    .optional()?)
}

pub fn save_profile(
    c: &Connection,
    customer: UserId,
    p: &CustomerProfileInput,
    primary: bool,
    now: i64,
) -> Result<CustomerProfile> {
    let existing: Option<i64> = if primary {
        c.query_row(
            "SELECT profile_id FROM customer_profiles WHERE customer_id = ?1 AND is_primary = 1",
            [customer.0],
            |r| r.get(0),
        )
        .optional()?
    } else {
        let count: i64 = c.query_row(
            "SELECT COUNT(*) FROM customer_profiles WHERE customer_id = ?1",
            [customer.0],
            |r| r.get(0),
        )?;
        if count >= 100 {
            return Err(Error::validation("at most 100 profiles per customer"));
        }
        None
    };
    let id = match existing {
        Some(id) => {
            c.execute(
                "UPDATE customer_profiles SET name = ?1, date_of_birth = ?2, time_of_birth = ?3, birth_city = ?4,
                 birth_country = ?5, preferred_language = ?6, zodiac_sign = ?7, gender = ?8 WHERE profile_id = ?9",
                params![
                    p.name, p.date_of_birth, p.time_of_birth, p.birth_city, p.birth_country,
                    p.preferred_language, p.zodiac_sign, p.gender, id
                ],
            )?;
            id
        }
        None => {
            c.execute(
                "INSERT INTO customer_profiles (customer_id, is_primary, name, date_of_birth, time_of_birth, birth_city,
                 birth_country, preferred_language, zodiac_sign, gender, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    customer.0, primary, p.name, p.date_of_birth, p.time_of_birth, p.birth_city,
                    p.birth_country, p.preferred_language, p.zodiac_sign, p.gender, now
                ],
            )?;
            c.last_insert_rowid()
        }
    };
    profile(c, id)?.ok_or_else(|| Error::internal("profile vanished after write"))
}
