//! Users, OTP requests, device sessions and refresh tokens, guides, customer profiles.

use super::rows::{self, GUIDE_SELECT, PROFILE_COLS, SESSION_COLS, USER_COLS};
use super::{execute, query, query_one, query_opt, Conn};
use crate::error::{Error, Result};
use crate::store::{GuideRow, NewGuide, OtpOutcome, OtpRecord, RefreshOutcome, SessionRow, User};
use tara_protocol::auth::{DeviceInfo, ProfilePatch, UserType};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput};
use tara_protocol::{SessionId, UserId};

pub async fn user_by_phone(c: &Conn, phone: &str, t: UserType) -> Result<Option<User>> {
    query_opt(
        c,
        &format!("SELECT {USER_COLS} FROM users u WHERE u.phone = $1 AND u.user_type = $2"),
        &[&phone, &t.as_str()],
    )
    .await?
    .map(|r| rows::user(&r, 0))
    .transpose()
}

/// The customer with this phone, and whether it was created now.
pub async fn ensure_customer(c: &Conn, phone: &str, name: &str, now: i64) -> Result<(User, bool)> {
    if let Some(u) = user_by_phone(c, phone, UserType::Customer).await? {
        return Ok((u, false));
    }
    // Another server may create the same customer at the same moment: then its row wins.
    let inserted = query_opt(
        c,
        "INSERT INTO users (user_type, phone, display_name, created_at) VALUES ('customer', $1, $2, $3)
         ON CONFLICT (phone, user_type) DO NOTHING RETURNING id",
        &[&phone, &name, &now],
    )
    .await?;
    match inserted {
        Some(row) => {
            let id = UserId(row.try_get(0)?);
            let user = rows::load_user(c, id)
                .await?
                .ok_or_else(|| Error::internal("customer vanished after insert"))?;
            Ok((user, true))
        }
        None => {
            let user = user_by_phone(c, phone, UserType::Customer)
                .await?
                .ok_or_else(|| Error::internal("customer vanished"))?;
            Ok((user, false))
        }
    }
}

pub async fn add_guide(c: &Conn, g: &NewGuide, now: i64) -> Result<UserId> {
    let taken = || Error::validation(format!("a guide with phone {} already exists", g.phone));
    if user_by_phone(c, &g.phone, UserType::Guide).await?.is_some() {
        return Err(taken());
    }
    let row = query_opt(
        c,
        "INSERT INTO users (user_type, phone, display_name, created_at) VALUES ('guide', $1, $2, $3)
         ON CONFLICT (phone, user_type) DO NOTHING RETURNING id",
        &[&g.phone, &g.name, &now],
    )
    .await?
    .ok_or_else(taken)?;
    let id: i64 = row.try_get(0)?;
    execute(
        c,
        "INSERT INTO guides (user_id, rate_per_minute, skills, languages, available) VALUES ($1, $2, $3, $4, $5)",
        &[
            &id,
            &g.rate_per_minute,
            &serde_json::to_string(&g.skills)?,
            &serde_json::to_string(&g.languages)?,
            &g.available,
        ],
    )
    .await?;
    Ok(UserId(id))
}

pub async fn update_profile(c: &Conn, id: UserId, patch: &ProfilePatch) -> Result<User> {
    if let Some(name) = &patch.display_name {
        execute(
            c,
            "UPDATE users SET display_name = $1 WHERE id = $2",
            &[name, &id.0],
        )
        .await?;
    }
    if let Some(url) = &patch.avatar_url {
        let url = if url.is_empty() { None } else { Some(url) };
        execute(
            c,
            "UPDATE users SET avatar_url = $1 WHERE id = $2",
            &[&url, &id.0],
        )
        .await?;
    }
    rows::load_user(c, id)
        .await?
        .ok_or_else(|| Error::not_found("no such user"))
}

pub async fn otp_times(c: &Conn, phone: &str, since: i64) -> Result<Vec<i64>> {
    let list = query(
        c,
        "SELECT created_at FROM otp_requests WHERE phone = $1 AND created_at >= $2 ORDER BY created_at",
        &[&phone, &since],
    )
    .await?;
    rows::all(list, |r| Ok(r.try_get(0)?))
}

pub async fn insert_otp(c: &Conn, r: &OtpRecord) -> Result<()> {
    execute(
        c,
        "INSERT INTO otp_requests (request_id, phone, user_type, code_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &r.request_id,
            &r.phone,
            &r.user_type.as_str(),
            &r.code_hash,
            &r.created_ms,
            &r.expires_ms,
        ],
    )
    .await?;
    // Old requests are of no use after a day; keep the table small.
    execute(
        c,
        "DELETE FROM otp_requests WHERE created_at < $1",
        &[&(r.created_ms - 86_400_000)],
    )
    .await?;
    Ok(())
}

pub async fn check_otp(
    c: &Conn,
    request_id: &str,
    phone: &str,
    t: UserType,
    hash: &[u8],
    now: i64,
    max_attempts: u32,
) -> Result<OtpOutcome> {
    // Locked: two servers checking codes for one request count every wrong try.
    let row = query_opt(
        c,
        "SELECT code_hash, expires_at, attempts, state FROM otp_requests
         WHERE request_id = $1 AND phone = $2 AND user_type = $3 FOR UPDATE",
        &[&request_id, &phone, &t.as_str()],
    )
    .await?;
    let Some(row) = row else {
        return Ok(OtpOutcome::Unknown);
    };
    let stored: Vec<u8> = row.try_get(0)?;
    let expires: i64 = row.try_get(1)?;
    let attempts: i64 = row.try_get(2)?;
    let state: String = row.try_get(3)?;
    match state.as_str() {
        "burned" => return Ok(OtpOutcome::AlreadyBurned),
        "used" => return Ok(OtpOutcome::Expired),
        _ => {}
    }
    if now >= expires {
        return Ok(OtpOutcome::Expired);
    }
    if crate::auth::tokens::constant_time_eq(&stored, hash) {
        execute(
            c,
            "UPDATE otp_requests SET state = 'used' WHERE request_id = $1",
            &[&request_id],
        )
        .await?;
        return Ok(OtpOutcome::Accepted);
    }
    let attempts = attempts + 1;
    let burned = attempts >= i64::from(max_attempts);
    execute(
        c,
        "UPDATE otp_requests SET attempts = $1, state = $2 WHERE request_id = $3",
        &[
            &attempts,
            &if burned { "burned" } else { "open" },
            &request_id,
        ],
    )
    .await?;
    Ok(if burned {
        OtpOutcome::Burned
    } else {
        OtpOutcome::Wrong
    })
}

async fn load_session(c: &Conn, id: &str) -> Result<Option<SessionRow>> {
    query_opt(
        c,
        &format!("SELECT {SESSION_COLS} FROM sessions WHERE session_id = $1"),
        &[&id],
    )
    .await?
    .map(|r| rows::session(&r))
    .transpose()
}

pub async fn session(c: &Conn, id: &SessionId) -> Result<Option<SessionRow>> {
    load_session(c, id.as_str()).await
}

pub async fn create_session(
    c: &Conn,
    user: UserId,
    device: &DeviceInfo,
    refresh_hash: &[u8],
    max: usize,
    now: i64,
) -> Result<(SessionRow, Vec<SessionId>)> {
    let id = uuid::Uuid::now_v7().to_string();
    execute(
        c,
        "INSERT INTO sessions (session_id, user_id, device_info, created_at, last_used_at) VALUES ($1, $2, $3, $4, $4)",
        &[&id, &user.0, &serde_json::to_string(device)?, &now],
    )
    .await?;
    execute(
        c,
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
        &[&refresh_hash, &id, &now],
    )
    .await?;
    // Past the limit, the least recently used sessions go.
    let live = sessions(c, user).await?;
    let mut evicted = Vec::new();
    for old in live.iter().skip(max) {
        revoke(c, old.session_id.as_str(), now).await?;
        evicted.push(old.session_id.clone());
    }
    let row = load_session(c, &id)
        .await?
        .ok_or_else(|| Error::internal("session vanished after insert"))?;
    Ok((row, evicted))
}

async fn revoke(c: &Conn, id: &str, now: i64) -> Result<()> {
    execute(
        c,
        "UPDATE sessions SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL",
        &[&now, &id],
    )
    .await?;
    execute(
        c,
        "DELETE FROM refresh_tokens WHERE session_id = $1 AND used_at IS NULL",
        &[&id],
    )
    .await?;
    Ok(())
}

pub async fn rotate_refresh(
    c: &Conn,
    old: &[u8],
    new: &[u8],
    retry: Option<&[u8]>,
    now: i64,
) -> Result<RefreshOutcome> {
    // Locked: the same token presented to two servers at once rotates once.
    let found = query_opt(
        c,
        "SELECT session_id, used_at, retry_key, successor FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        &[&old],
    )
    .await?;
    let Some(found) = found else {
        return Ok(RefreshOutcome::Unknown);
    };
    let sid: String = found.try_get(0)?;
    let used: Option<i64> = found.try_get(1)?;
    let first_key: Option<Vec<u8>> = found.try_get(2)?;
    let successor: Option<Vec<u8>> = found.try_get(3)?;
    let Some(session) = load_session(c, &sid).await? else {
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
                query_opt(
                    c,
                    "SELECT used_at IS NULL FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                    &[next],
                )
                .await?
                .map(|r| r.try_get::<_, bool>(0))
                .transpose()?
                .unwrap_or(false)
            }
            _ => false,
        };
        if !unused_successor {
            // A dead token came back: someone holds a copy. End the whole device session.
            revoke(c, &sid, now).await?;
            return Ok(RefreshOutcome::Reused {
                session_id: session.session_id,
            });
        }
        // The successor nobody received dies; the new one takes its place.
        execute(
            c,
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2",
            &[&now, &successor],
        )
        .await?;
        execute(
            c,
            "UPDATE refresh_tokens SET successor = $1 WHERE token_hash = $2",
            &[&new, &old],
        )
        .await?;
    } else {
        execute(
            c,
            "UPDATE refresh_tokens SET used_at = $1, retry_key = $2, successor = $3 WHERE token_hash = $4",
            &[&now, &retry, &new, &old],
        )
        .await?;
    }
    execute(
        c,
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
        &[&new, &sid, &now],
    )
    .await?;
    execute(
        c,
        "UPDATE sessions SET last_used_at = $1 WHERE session_id = $2",
        &[&now, &sid],
    )
    .await?;
    let session = load_session(c, &sid)
        .await?
        .ok_or_else(|| Error::internal("session vanished"))?;
    Ok(RefreshOutcome::Rotated { session })
}

pub async fn sessions(c: &Conn, user: UserId) -> Result<Vec<SessionRow>> {
    let list = query(
        c,
        &format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL
             ORDER BY last_used_at DESC, created_at DESC"
        ),
        &[&user.0],
    )
    .await?;
    rows::all(list, rows::session)
}

pub async fn revoke_session(c: &Conn, user: UserId, id: &SessionId, now: i64) -> Result<bool> {
    match load_session(c, id.as_str()).await? {
        Some(s) if s.user_id == user && s.revoked_ms.is_none() => {
            revoke(c, id.as_str(), now).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

pub async fn guides(c: &Conn, after: Option<UserId>, limit: usize) -> Result<Vec<GuideRow>> {
    let list = query(
        c,
        &format!("{GUIDE_SELECT} WHERE u.id > $1 ORDER BY u.id LIMIT $2"),
        &[&after.map(|a| a.0).unwrap_or(0), &(limit as i64)],
    )
    .await?;
    rows::all(list, rows::guide)
}

pub async fn guide(c: &Conn, id: UserId) -> Result<Option<GuideRow>> {
    query_opt(c, &format!("{GUIDE_SELECT} WHERE u.id = $1"), &[&id.0])
        .await?
        .map(|r| rows::guide(&r))
        .transpose()
}

pub async fn profiles(c: &Conn, customer: UserId) -> Result<Vec<CustomerProfile>> {
    let list = query(
        c,
        &format!(
            "SELECT {PROFILE_COLS} FROM customer_profiles WHERE customer_id = $1
             ORDER BY is_primary DESC, profile_id LIMIT 100"
        ),
        &[&customer.0],
    )
    .await?;
    rows::all(list, rows::profile)
}

pub async fn profile(c: &Conn, id: i64) -> Result<Option<CustomerProfile>> {
    query_opt(
        c,
        &format!("SELECT {PROFILE_COLS} FROM customer_profiles WHERE profile_id = $1"),
        &[&id],
    )
    .await?
    .map(|r| rows::profile(&r))
    .transpose()
}

pub async fn save_profile(
    c: &Conn,
    customer: UserId,
    p: &CustomerProfileInput,
    primary: bool,
    now: i64,
) -> Result<CustomerProfile> {
    // The customer's row, locked, keeps two servers from adding a primary (or the 101st) at once.
    query_opt(
        c,
        "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
        &[&customer.0],
    )
    .await?;
    let existing: Option<i64> = if primary {
        query_opt(
            c,
            "SELECT profile_id FROM customer_profiles WHERE customer_id = $1 AND is_primary",
            &[&customer.0],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
    } else {
        let count: i64 = query_one(
            c,
            "SELECT COUNT(*) FROM customer_profiles WHERE customer_id = $1",
            &[&customer.0],
        )
        .await?
        .try_get(0)?;
        if count >= 100 {
            return Err(Error::validation("at most 100 profiles per customer"));
        }
        None
    };
    let id = match existing {
        Some(id) => {
            execute(
                c,
                "UPDATE customer_profiles SET name = $1, date_of_birth = $2, time_of_birth = $3, birth_city = $4,
                 birth_country = $5, preferred_language = $6, zodiac_sign = $7, gender = $8 WHERE profile_id = $9",
                &[
                    &p.name, &p.date_of_birth, &p.time_of_birth, &p.birth_city, &p.birth_country,
                    &p.preferred_language, &p.zodiac_sign, &p.gender, &id,
                ],
            )
            .await?;
            id
        }
        None => query_one(
            c,
            "INSERT INTO customer_profiles (customer_id, is_primary, name, date_of_birth, time_of_birth, birth_city,
             birth_country, preferred_language, zodiac_sign, gender, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING profile_id",
            &[
                &customer.0, &primary, &p.name, &p.date_of_birth, &p.time_of_birth, &p.birth_city,
                &p.birth_country, &p.preferred_language, &p.zodiac_sign, &p.gender, &now,
            ],
        )
        .await?
        .try_get(0)?,
    };
    profile(c, id)
        .await?
        .ok_or_else(|| Error::internal("profile vanished after write"))
}
