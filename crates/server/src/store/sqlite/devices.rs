//! Push tokens, one per device session.

use crate::error::Result;
use crate::store::PushTokenRow;
use rusqlite::{params, Connection, Row};
use tara_protocol::devices::PushPlatform;
use tara_protocol::{SessionId, UserId};

pub fn set(c: &Connection, row: &PushTokenRow) -> Result<()> {
    c.execute(
        "DELETE FROM push_tokens WHERE token = ?1 AND session_id <> ?2",
        params![row.token, row.session_id.as_str()],
    )?;
    c.execute(
        "INSERT INTO push_tokens (session_id, user_id, platform, token, private_previews, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (session_id) DO UPDATE SET platform = excluded.platform,
             token = excluded.token, private_previews = excluded.private_previews,
             updated_at = excluded.updated_at",
        params![
            row.session_id.as_str(),
            row.user_id.0,
            row.platform.as_str(),
            row.token,
            row.private_previews,
            row.updated_ms
        ],
    )?;
    Ok(())
}

pub fn delete_for_session(c: &Connection, session: &SessionId) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM push_tokens WHERE session_id = ?1",
        [session.as_str()],
    )? > 0)
}

pub fn delete_token(c: &Connection, user: Option<UserId>, token: &str) -> Result<bool> {
    let n = match user {
        Some(u) => c.execute(
            "DELETE FROM push_tokens WHERE token = ?1 AND user_id = ?2",
            params![token, u.0],
        )?,
        None => c.execute("DELETE FROM push_tokens WHERE token = ?1", [token])?,
    };
    Ok(n > 0)
}

pub fn for_user(c: &Connection, user: UserId) -> Result<Vec<PushTokenRow>> {
    let mut st = c.prepare_cached(
        "SELECT p.session_id, p.user_id, p.platform, p.token, p.private_previews, p.updated_at
         FROM push_tokens p JOIN sessions s ON s.session_id = p.session_id
         WHERE p.user_id = ?1 AND s.revoked_at IS NULL
         ORDER BY p.updated_at DESC",
    )?;
    let rows = st
        .query_map([user.0], token_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().flatten().collect())
}

/// A stored row; one with a platform this build does not know is skipped.
fn token_row(r: &Row<'_>) -> rusqlite::Result<Option<PushTokenRow>> {
    let platform: String = r.get(2)?;
    let Some(platform) = PushPlatform::parse(&platform) else {
        return Ok(None);
    };
    Ok(Some(PushTokenRow {
        session_id: SessionId(r.get(0)?),
        user_id: UserId(r.get(1)?),
        platform,
        token: r.get(3)?,
        private_previews: r.get(4)?,
        updated_ms: r.get(5)?,
    }))
}
