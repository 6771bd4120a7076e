//! `/api/v1/consultation*`: requests, the state machine's actions, the chat list.

use super::{decode_cursor, encode_cursor, page_size, Json, OptionalJson, Path, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::state::Action;
use crate::store::{Actor, NewConsultation};
use axum::extract::State;
use axum::http::StatusCode;
use tara_protocol::auth::UserType;
use tara_protocol::consultations::*;
use tara_protocol::guides::PresenceStatus;
use tara_protocol::{ConsultationId, ErrorCode, Timestamp};

pub async fn create(
    State(app): State<AppState>,
    me: AuthUser,
    Json(req): Json<CreateConsultationRequest>,
) -> Result<(StatusCode, axum::Json<Consultation>)> {
    me.require(UserType::Customer)?;
    if req.mode != "chat" {
        return Err(Error::validation("only chat consultations exist today"));
    }
    let guide = app
        .store
        .guide(req.guide_id)
        .await?
        .ok_or_else(|| Error::not_found("no such guide"))?;
    match app.guide_status(&guide) {
        PresenceStatus::Online => {}
        PresenceStatus::Busy => {
            return Err(Error::new(
                ErrorCode::GuideUnavailable,
                "this guide is in another consultation",
            ))
        }
        PresenceStatus::Offline => {
            return Err(Error::new(
                ErrorCode::GuideUnavailable,
                "this guide is offline",
            ))
        }
    }
    let intake = match req.customer_profile_id {
        Some(pid) => {
            let p = app
                .store
                .profile(pid)
                .await?
                .ok_or_else(|| Error::not_found("no such profile"))?;
            if p.customer_id != me.user_id.0 {
                return Err(Error::forbidden("that profile is someone else's"));
            }
            Some(p)
        }
        None => None,
    };
    // Count and create under one lock per guide, so a storm of requests cannot all pass the
    // count before any is stored.
    let held = guide_lock(guide.user.id.0).await;
    let waiting = app
        .store
        .active_consultations(guide.user.id)
        .await?
        .iter()
        .filter(|c| c.status == ConsultationStatus::Requested && c.guide_id == guide.user.id)
        .count();
    let cap = app.config.max_pending_requests_per_guide;
    if waiting >= cap {
        return Err(Error::new(
            ErrorCode::GuideUnavailable,
            format!("this guide has {cap} requests waiting already; try again in a little while"),
        )
        .with_details(serde_json::json!({ "pending_requests": waiting })));
    }
    let id = ConsultationId(uuid::Uuid::now_v7().to_string());
    let c = app
        .store
        .create_consultation(NewConsultation {
            consultation_id: id.clone(),
            customer_id: me.user_id,
            guide_id: guide.user.id,
            mode: req.mode,
            rate_per_minute: guide.rate_per_minute,
            intake,
            now_ms: Timestamp::now().millis(),
        })
        .await?;
    drop(held);
    app.announce(ConsultationEvent::Requested, &c);
    app.push_request(&c);
    app.schedule_timeout(id, app.config.request_timeout);
    Ok((StatusCode::CREATED, axum::Json(c)))
}

pub async fn get_one(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Consultation>> {
    Ok(axum::Json(
        app.participant_consultation(&ConsultationId(id), me.user_id)
            .await?,
    ))
}

async fn act(
    app: &AppState,
    me: &AuthUser,
    id: String,
    action: Action,
) -> Result<axum::Json<Consultation>> {
    let id = ConsultationId(id);
    app.participant_consultation(&id, me.user_id).await?;
    Ok(axum::Json(
        app.act(&id, action, Actor::User(me.user_id)).await?,
    ))
}

pub async fn accept(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Consultation>> {
    act(&app, &me, id, Action::Accept).await
}

pub async fn reject(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<ReasonRequest>,
) -> Result<axum::Json<Consultation>> {
    act(
        &app,
        &me,
        id,
        Action::Reject {
            reason: clean_reason(req.reason)?,
        },
    )
    .await
}

pub async fn cancel(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Consultation>> {
    act(&app, &me, id, Action::Cancel).await
}

pub async fn complete(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<ReasonRequest>,
) -> Result<axum::Json<Consultation>> {
    act(
        &app,
        &me,
        id,
        Action::Complete {
            reason: clean_reason(req.reason)?,
        },
    )
    .await
}

fn clean_reason(r: Option<String>) -> Result<Option<String>> {
    let r = r.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if r.as_ref().is_some_and(|s| s.chars().count() > 500) {
        return Err(Error::validation("reason may be at most 500 characters"));
    }
    Ok(r)
}

pub async fn join(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<JoinRequest>,
) -> Result<axum::Json<JoinResponse>> {
    if req.mode != "chat" {
        return Err(Error::validation("only chat consultations exist today"));
    }
    let id = ConsultationId(id);
    app.participant_consultation(&id, me.user_id).await?;
    let consultation = app.act(&id, Action::Join, Actor::User(me.user_id)).await?;
    let mut participants = Vec::new();
    for p in app.store.participants(&id).await? {
        participants.push(Participant {
            user_id: p.user.id,
            user_type: p.user.user_type,
            display_name: p.user.display_name.clone(),
            is_online: app.hub.is_online(p.user.id),
            is_typing: app.hub.is_typing(&id, p.user.id),
            last_seen: app.last_seen(&p.user),
            unread_count: p.unread_count,
            delivered_seq: p.delivered_seq,
            read_seq: p.read_seq,
        });
    }
    Ok(axum::Json(JoinResponse {
        consultation,
        participants,
    }))
}

pub async fn feedback(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<FeedbackRequest>,
) -> Result<(StatusCode, axum::Json<FeedbackResponse>)> {
    if !(1..=5).contains(&req.rating) {
        return Err(Error::validation("rating must be 1 to 5"));
    }
    if req
        .feedback_text
        .as_ref()
        .is_some_and(|t| t.chars().count() > 2000)
    {
        return Err(Error::validation(
            "feedback_text may be at most 2000 characters",
        ));
    }
    if req
        .issues
        .as_ref()
        .is_some_and(|i| i.len() > 20 || i.iter().any(|s| s.chars().count() > 100))
    {
        return Err(Error::validation(
            "issues: at most 20, each at most 100 characters",
        ));
    }
    let id = ConsultationId(id);
    app.participant_consultation(&id, me.user_id).await?;
    let f = app
        .store
        .add_feedback(&id, me.user_id, req, Timestamp::now().millis())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(f)))
}

pub async fn customer_current(
    State(app): State<AppState>,
    me: AuthUser,
) -> Result<axum::Json<Consultation>> {
    me.require(UserType::Customer)?;
    current(&app, &me, |_| true).await
}

pub async fn guide_current(
    State(app): State<AppState>,
    me: AuthUser,
) -> Result<axum::Json<Consultation>> {
    me.require(UserType::Guide)?;
    current(&app, &me, |c| c.status.accepts_messages()).await
}

async fn current(
    app: &AppState,
    me: &AuthUser,
    keep: impl Fn(&Consultation) -> bool,
) -> Result<axum::Json<Consultation>> {
    app.store
        .active_consultations(me.user_id)
        .await?
        .into_iter()
        .find(|c| keep(c))
        .map(axum::Json)
        .ok_or_else(|| Error::new(ErrorCode::ConsultationNotFound, "no active consultation"))
}

/// Serializes request creation per guide. Guides share 64 stripes.
async fn guide_lock(guide: i64) -> tokio::sync::MutexGuard<'static, ()> {
    static STRIPES: std::sync::OnceLock<Vec<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let stripes = STRIPES.get_or_init(|| (0..64).map(|_| tokio::sync::Mutex::new(())).collect());
    stripes[guide.rem_euclid(stripes.len() as i64) as usize]
        .lock()
        .await
}

pub async fn requests(
    State(app): State<AppState>,
    me: AuthUser,
) -> Result<axum::Json<RequestList>> {
    me.require(UserType::Guide)?;
    let mut requests: Vec<Consultation> = app
        .store
        .active_consultations(me.user_id)
        .await?
        .into_iter()
        .filter(|c| c.status == ConsultationStatus::Requested && c.guide_id == me.user_id)
        .collect();
    requests.sort_by_key(|c| c.created_at);
    Ok(axum::Json(RequestList { requests }))
}

pub async fn chat_list(
    State(app): State<AppState>,
    me: AuthUser,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<ChatList>> {
    let limit = page_size(q.limit, 20, 100);
    let cursor = match &q.cursor {
        Some(c) => {
            let raw = decode_cursor(c)?;
            let (at, id) = raw
                .split_once(':')
                .ok_or_else(|| Error::validation("bad cursor"))?;
            Some((
                at.parse().map_err(|_| Error::validation("bad cursor"))?,
                ConsultationId(id.to_owned()),
            ))
        }
        None => None,
    };
    let rows = app.store.chat_list(me.user_id, cursor, limit + 1).await?;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(limit);
    let mut next_cursor = None;
    for row in rows.into_iter().take(limit) {
        if more {
            next_cursor = Some(encode_cursor(&format!(
                "{}:{}",
                row.activity_ms, row.consultation.consultation_id
            )));
        }
        let status = app.live_status(&row.other).await?;
        items.push(ChatListItem {
            other_party: OtherParty {
                id: row.other.id,
                display_name: row.other.display_name,
                avatar_url: row.other.avatar_url,
                status,
            },
            consultation: row.consultation,
            last_message: row.last_message,
            unread_count: row.unread_count,
        });
    }
    Ok(axum::Json(ChatList { items, next_cursor }))
}
