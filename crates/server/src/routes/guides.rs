//! `/api/v1/guide/*`: the guide list, a guide's own profile, online/offline, and (an extension)
//! the ratings a guide received.

use super::{decode_cursor, encode_cursor, page_size, Json, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use axum::extract::State;
use tara_protocol::auth::UserType;
use tara_protocol::consultations::PageQuery;
use tara_protocol::guides::{
    Guide, GuideAvailability, GuideList, GuideListQuery, GuideRatings, GuideStatusRequest,
    PresenceStatus,
};
use tara_protocol::{ConsultationId, UserId};

pub async fn list(
    State(app): State<AppState>,
    _me: AuthUser,
    Query(q): Query<GuideListQuery>,
) -> Result<axum::Json<GuideList>> {
    if q.mode.as_deref().is_some_and(|m| m != "chat") {
        return Err(Error::validation("mode must be chat"));
    }
    let limit = page_size(q.limit, 50, 100);
    let mut after = match &q.cursor {
        Some(c) => Some(UserId(decode_cursor(c)?.parse().map_err(|_| {
            Error::validation("cursor is not one this server gave out")
        })?)),
        None => None,
    };
    let only_online = q.online.unwrap_or(false);
    // Filtering by live status happens here, so read in chunks until the page is full, plus one
    // more match to know whether another page exists (a filtered list never ends on an empty page).
    let mut guides: Vec<Guide> = Vec::with_capacity(limit + 1);
    loop {
        let chunk = app.store.guides(after, 200).await?;
        let exhausted = chunk.len() < 200;
        for g in chunk {
            after = Some(g.user.id);
            let g = app.guide_view(g);
            if !only_online || g.status == PresenceStatus::Online {
                guides.push(g);
                if guides.len() > limit {
                    break;
                }
            }
        }
        if exhausted || guides.len() > limit {
            break;
        }
    }
    let more = guides.len() > limit;
    guides.truncate(limit);
    let next_cursor = if more {
        guides.last().map(|g| encode_cursor(&g.id.0.to_string()))
    } else {
        None
    };
    Ok(axum::Json(GuideList {
        guides,
        next_cursor,
    }))
}

pub async fn own_profile(State(app): State<AppState>, me: AuthUser) -> Result<axum::Json<Guide>> {
    me.require(UserType::Guide)?;
    let g = app
        .store
        .guide(me.user_id)
        .await?
        .ok_or_else(|| Error::not_found("no guide profile"))?;
    Ok(axum::Json(app.guide_view(g)))
}

pub async fn set_status(
    State(app): State<AppState>,
    me: AuthUser,
    Json(req): Json<GuideStatusRequest>,
) -> Result<axum::Json<Guide>> {
    me.require(UserType::Guide)?;
    app.store
        .set_guide_available(me.user_id, req.status == GuideAvailability::Online)
        .await?;
    app.presence_changed(me.user_id);
    let g = app
        .store
        .guide(me.user_id)
        .await?
        .ok_or_else(|| Error::not_found("no guide profile"))?;
    Ok(axum::Json(app.guide_view(g)))
}

/// `GET /api/v1/guide/ratings`: the caller's ratings, newest first, with the average and count.
pub async fn ratings(
    State(app): State<AppState>,
    me: AuthUser,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<GuideRatings>> {
    me.require(UserType::Guide)?;
    let limit = page_size(q.limit, 50, 100);
    let cursor = match &q.cursor {
        Some(c) => {
            let bad = || Error::validation("cursor is not one this server gave out");
            let raw = decode_cursor(c)?;
            let (at, id) = raw.split_once(':').ok_or_else(bad)?;
            if id.is_empty() {
                return Err(bad());
            }
            Some((
                at.parse::<i64>().map_err(|_| bad())?,
                ConsultationId(id.to_owned()),
            ))
        }
        None => None,
    };
    let g = app
        .store
        .guide(me.user_id)
        .await?
        .ok_or_else(|| Error::not_found("no guide profile"))?;
    let mut ratings = app
        .store
        .guide_ratings(me.user_id, cursor, limit + 1)
        .await?;
    let more = ratings.len() > limit;
    ratings.truncate(limit);
    let next_cursor = if more {
        ratings.last().map(|r| {
            encode_cursor(&format!(
                "{}:{}",
                r.submitted_at.millis(),
                r.consultation_id
            ))
        })
    } else {
        None
    };
    Ok(axum::Json(GuideRatings {
        rating_avg: g.rating_avg,
        rating_count: g.rating_count,
        ratings,
        next_cursor,
    }))
}
