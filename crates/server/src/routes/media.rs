//! `/api/v1/media`: image upload with type sniffing and size limits, participant-only download.

use super::{Path, Query};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::media::{inspect, Inspection};
use crate::store::MediaRow;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tara_protocol::media::{MediaInfo, UploadQuery};
use tara_protocol::{ConsultationId, ErrorCode, MediaId, Timestamp, MAX_MEDIA_BYTES};

fn info(m: &MediaRow) -> MediaInfo {
    MediaInfo {
        url: format!("/api/v1/media/{}", m.media_id),
        media_id: m.media_id.clone(),
        width: m.width,
        height: m.height,
        bytes: m.bytes,
        content_type: m.content_type.clone(),
    }
}

fn too_large() -> Error {
    Error::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "images may be at most {} MiB",
            MAX_MEDIA_BYTES / (1024 * 1024)
        ),
    )
}

/// Keys are per uploader; answering with an upload to another consultation would hand the
/// client a media_id it cannot send here.
fn key_reused() -> Error {
    Error::validation("this Idempotency-Key was used for an upload to another consultation")
}

pub async fn upload(
    State(app): State<AppState>,
    me: AuthUser,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<MediaInfo>)> {
    let cid = ConsultationId(q.consultation_id);
    let consultation = app.participant_consultation(&cid, me.user_id).await?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 100) {
        return Err(Error::validation(
            "Idempotency-Key must be 1 to 100 characters",
        ));
    }
    if let Some(k) = &key {
        if let Some(existing) = app.store.media_by_key(me.user_id, k).await? {
            if existing.consultation_id != cid {
                return Err(key_reused());
            }
            return Ok((StatusCode::CREATED, axum::Json(info(&existing))));
        }
    }
    // An image can only be sent while the chat is open, so it is not stored after (or before).
    // A retry of an upload that went through is answered above, whatever the state now.
    if !consultation.status.accepts_messages() {
        return Err(Error::closed_for_messages(consultation.status));
    }
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_MEDIA_BYTES)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_MEDIA_BYTES)
        .await
        .map_err(|_| too_large())?;
    let Inspection {
        content_type,
        width,
        height,
    } = inspect(&declared, &bytes)?;
    let media_id = MediaId(uuid::Uuid::now_v7().to_string());
    let path = app.media_dir.join(media_id.as_str());
    let tmp = app.media_dir.join(format!("{media_id}.part"));
    tokio::fs::write(&tmp, &bytes).await?;
    tokio::fs::rename(&tmp, &path).await?;
    let row = MediaRow {
        media_id,
        consultation_id: cid,
        uploader_id: me.user_id,
        idempotency_key: key,
        content_type: content_type.to_owned(),
        width,
        height,
        bytes: bytes.len() as u64,
        created_ms: Timestamp::now().millis(),
    };
    let stored = app.store.insert_media(row.clone()).await?;
    if stored.media_id != row.media_id {
        // A concurrent upload with the same key won; ours is a spare copy.
        let _ = tokio::fs::remove_file(&path).await;
        if stored.consultation_id != row.consultation_id {
            return Err(key_reused());
        }
    }
    Ok((StatusCode::CREATED, axum::Json(info(&stored))))
}

pub async fn download(
    State(app): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let media = app
        .store
        .media(&MediaId(id))
        .await?
        .ok_or_else(|| Error::not_found("no such image"))?;
    app.participant_consultation(&media.consultation_id, me.user_id)
        .await?;
    let bytes = tokio::fs::read(app.media_dir.join(media.media_id.as_str())).await?;
    Ok((
        [
            (header::CONTENT_TYPE, media.content_type),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable".to_owned(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
