//! `/api/v1/consultation/{id}/messages`: history, REST send, long poll.

use super::{page_size, Json, Path, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::store::HistoryRange;
use axum::extract::State;
use axum::http::StatusCode;
use std::time::Duration;
use tara_protocol::messages::{HistoryQuery, Message, MessagePage, SendMessageRequest};
use tara_protocol::ConsultationId;

fn range(q: &HistoryQuery) -> Result<HistoryRange> {
    Ok(match (q.after_seq, q.before_seq) {
        (None, None) => HistoryRange::Latest,
        (None, Some(b)) => HistoryRange::Before(b),
        (Some(a), None) => HistoryRange::After(a),
        (Some(a), Some(b)) if a < b => HistoryRange::Between(a, b),
        (Some(_), Some(_)) => return Err(Error::validation("after_seq must be below before_seq")),
    })
}

pub async fn history(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<MessagePage>> {
    let id = ConsultationId(id);
    let limit = page_size(q.limit, 50, 100);
    let range = match range(&q) {
        Ok(r) => r,
        Err(e) => {
            // Who may not read it learns that first, whatever the query.
            app.participant_consultation(&id, me.user_id).await?;
            return Err(e);
        }
    };
    let (messages, has_more) = app.store.history_for(&id, me.user_id, range, limit).await?;
    Ok(axum::Json(MessagePage { messages, has_more }))
}

pub async fn send(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<SendMessageRequest>,
) -> Result<(StatusCode, axum::Json<Message>)> {
    let id = ConsultationId(id);
    let appended = app
        .send_message(
            &me,
            &id,
            req.client_msg_id,
            req.kind,
            req.content,
            req.media_id,
        )
        .await?;
    let status = if appended.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(appended.message)))
}

pub async fn poll(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<MessagePage>> {
    let id = ConsultationId(id);
    app.participant_consultation(&id, me.user_id).await?;
    let after = q.after_seq.unwrap_or(0);
    let limit = page_size(q.limit, 50, 100);
    let wait = Duration::from_secs(q.timeout.unwrap_or(25).min(30));
    // Take the receiver before reading, so a commit between the read and the wait still wakes us.
    let mut wake = app.hub.poll_receiver(&id);
    let mut shutdown = app.shutdown_signal();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (messages, has_more) = app
            .store
            .messages(&id, HistoryRange::After(after), limit)
            .await?;
        if !messages.is_empty() {
            return Ok(axum::Json(MessagePage { messages, has_more }));
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = AppState::going_away(&mut shutdown) => break,
        }
    }
    Ok(axum::Json(MessagePage {
        messages: Vec::new(),
        has_more: false,
    }))
}
