//! Push tokens, one per device session.

use super::{execute, query, Conn};
use crate::error::Result;
use crate::store::PushTokenRow;
use tara_protocol::devices::PushPlatform;
use tara_protocol::{SessionId, UserId};
use tokio_postgres::Row;

pub async fn set(c: &Conn, row: &PushTokenRow) -> Result<()> {
    execute(
        c,
        "DELETE FROM push_tokens WHERE token = $1 AND session_id <> $2",
        &[&row.token, &row.session_id.as_str()],
    )
    .await?;
    execute(
        c,
        "INSERT INTO push_tokens (session_id, user_id, platform, token, private_previews, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (session_id) DO UPDATE SET platform = excluded.platform,
             token = excluded.token, private_previews = excluded.private_previews,
             updated_at = excluded.updated_at",
        &[
            &row.session_id.as_str(),
            &row.user_id.0,
            &row.platform.as_str(),
            &row.token,
            &row.private_previews,
            &row.updated_ms,
        ],
    )
    .await?;
    Ok(())
}

pub async fn delete_for_session(c: &Conn, session: &SessionId) -> Result<bool> {
    Ok(execute(
        c,
        "DELETE FROM push_tokens WHERE session_id = $1",
        &[&session.as_str()],
    )
    .await?
        > 0)
}

pub async fn delete_token(c: &Conn, user: Option<UserId>, token: &str) -> Result<bool> {
    let n = match user {
        Some(u) => {
            execute(
                c,
                "DELETE FROM push_tokens WHERE token = $1 AND user_id = $2",
                &[&token, &u.0],
            )
            .await?
        }
        None => execute(c, "DELETE FROM push_tokens WHERE token = $1", &[&token]).await?,
    };
    Ok(n > 0)
}

pub async fn for_user(c: &Conn, user: UserId) -> Result<Vec<PushTokenRow>> {
    let list = query(
        c,
        "SELECT p.session_id, p.user_id, p.platform, p.token, p.private_previews, p.updated_at
         FROM push_tokens p JOIN sessions s ON s.session_id = p.session_id
         WHERE p.user_id = $1 AND s.revoked_at IS NULL
         ORDER BY p.updated_at DESC",
        &[&user.0],
    )
    .await?;
    let mut out = Vec::with_capacity(list.len());
    for r in &list {
        if let Some(row) = token_row(r)? {
            out.push(row);
        }
    }
    Ok(out)
}

/// A stored row; one with a platform this build does not know is skipped.
fn token_row(r: &Row) -> Result<Option<PushTokenRow>> {
    let platform: String = r.try_get(2)?;
    let Some(platform) = PushPlatform::parse(&platform) else {
        return Ok(None);
    };
    Ok(Some(PushTokenRow {
        session_id: SessionId(r.try_get(0)?),
        user_id: UserId(r.try_get(1)?),
        platform,
        token: r.try_get(3)?,
        private_previews: r.try_get(4)?,
        updated_ms: r.try_get(5)?,
    }))
}
