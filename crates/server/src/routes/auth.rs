//! `/api/v1/auth/*`: OTP login, refresh, profile, device sessions, logout.

use super::{Json, Path, PeerIp};
use crate::app::AppState;
use crate::auth::otp::{allowance, full_phone, new_code, phone_lock};
use crate::auth::tokens::{new_refresh_token, refresh_hash, Claims};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::store::{OtpOutcome, OtpRecord, RefreshOutcome, SessionRow, User};
use axum::extract::State;
use axum::http::StatusCode;
use tara_protocol::auth::*;
use tara_protocol::realtime::CLOSE_AUTH_ENDED;
use tara_protocol::{ErrorCode, SessionId, Timestamp};

pub async fn generate(
    State(app): State<AppState>,
    PeerIp(ip): PeerIp,
    Json(req): Json<OtpGenerateRequest>,
) -> Result<axum::Json<OtpGenerateResponse>> {
    // Codes cost an SMS each: one address may not ask for many, whatever the phones.
    app.otp_per_ip.take(&ip).map_err(|wait| {
        Error::rate_limited(
            wait,
            format!("too many login codes asked for from this address; try again in {wait} s"),
        )
    })?;
    if req.purpose != "login" {
        return Err(Error::validation("purpose must be \"login\""));
    }
    let phone = full_phone(&req.area_code, &req.phone_number).map_err(Error::validation)?;
    let cfg = &app.config;
    // Check and insert under one lock: concurrent requests for a phone see each other's codes.
    let held = phone_lock(&phone).await;
    let now = Timestamp::now().millis();
    let recent = app.store.otp_times(&phone, now - 3_600_000).await?;
    if let Err(wait) = allowance(
        &recent,
        now,
        cfg.otp_resend_after.as_millis() as i64,
        cfg.otp_per_hour as usize,
    ) {
        return Err(Error::rate_limited(
            wait,
            format!("too many codes for this phone; try again in {wait} s"),
        ));
    }
    let code = new_code();
    let request_id = uuid::Uuid::now_v7().to_string();
    app.store
        .insert_otp(OtpRecord {
            code_hash: app.keys.otp_hash(&request_id, &code),
            request_id: request_id.clone(),
            phone: phone.clone(),
            user_type: req.user_type,
            created_ms: now,
            expires_ms: now + cfg.otp_ttl.as_millis() as i64,
        })
        .await?;
    drop(held);
    if let Err(e) = app.sms.send_code(&phone, &code).await {
        // The code never left: take it back, so it neither works nor counts against the
        // phone's 30 s and hourly limits.
        tracing::warn!(%phone, error = %e, "no login code was sent");
        app.store.delete_otp(&request_id).await?;
        return Err(Error::new(
            ErrorCode::SmsUnavailable,
            "the login code could not be sent by SMS just now; try again in a minute",
        ));
    }
    Ok(axum::Json(OtpGenerateResponse {
        request_id,
        expires_in: cfg.otp_ttl.as_secs(),
        resend_after: cfg.otp_resend_after.as_secs(),
        dev_otp: cfg.dev.then_some(code),
    }))
}

pub async fn validate(
    State(app): State<AppState>,
    PeerIp(ip): PeerIp,
    Json(req): Json<OtpValidateRequest>,
) -> Result<axum::Json<AuthTokens>> {
    app.logins_per_ip.take(&ip).map_err(|wait| {
        Error::rate_limited(
            wait,
            format!("too many login attempts from this address; try again in {wait} s"),
        )
    })?;
    let phone = full_phone(&req.area_code, &req.phone_number).map_err(Error::validation)?;
    let code = req.otp_code.trim();
    let now = Timestamp::now().millis();
    let hash = app.keys.otp_hash(&req.request_id, code);
    let outcome = app
        .store
        .check_otp(
            &req.request_id,
            &phone,
            req.user_type,
            hash,
            now,
            app.config.otp_max_attempts,
        )
        .await?;
    match outcome {
        OtpOutcome::Accepted => {}
        OtpOutcome::Wrong => {
            return Err(Error::new(ErrorCode::OtpInvalid, "that code is not right"))
        }
        OtpOutcome::Unknown => {
            return Err(Error::new(
                ErrorCode::OtpInvalid,
                "no code was sent for this request and phone",
            ))
        }
        OtpOutcome::Expired => {
            return Err(Error::new(
                ErrorCode::OtpExpired,
                "this code has expired or was used; ask for a new one",
            ))
        }
        OtpOutcome::Burned | OtpOutcome::AlreadyBurned => {
            return Err(Error::new(
                ErrorCode::OtpAttemptsExceeded,
                "too many wrong codes; ask for a new one",
            ))
        }
    }
    let user = match req.user_type {
        UserType::Customer => {
            let last4: String = phone
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            app.store
                .ensure_customer(
                    &phone,
                    &format!("Customer {last4}"),
                    now,
                    app.config.welcome_credit(),
                )
                .await?
        }
        UserType::Guide => app
            .store
            .user_by_phone(&phone, UserType::Guide)
            .await?
            .ok_or_else(|| Error::forbidden("this phone is not registered as a guide"))?,
    };
    Ok(axum::Json(
        open_session(&app, &user, req.device_info).await?,
    ))
}

async fn open_session(app: &AppState, user: &User, device: DeviceInfo) -> Result<AuthTokens> {
    let refresh = new_refresh_token();
    let now = Timestamp::now().millis();
    let (session, evicted) = app
        .store
        .create_session(
            user.id,
            device,
            refresh_hash(&refresh),
            app.config.max_sessions,
            now,
        )
        .await?;
    for sid in evicted {
        app.hub
            .close_session(&sid, CLOSE_AUTH_ENDED, "signed out: too many devices");
    }
    Ok(tokens(app, user, &session, refresh))
}

fn tokens(app: &AppState, user: &User, session: &SessionRow, refresh_token: String) -> AuthTokens {
    let iat = chrono::Utc::now().timestamp();
    let ttl = app.config.access_ttl.as_secs();
    let claims = Claims {
        sub: user.id.0.to_string(),
        role: user.user_type.as_str().into(),
        sid: session.session_id.0.clone(),
        iat,
        exp: iat + ttl as i64,
    };
    AuthTokens {
        access_token: app.keys.sign(&claims),
        refresh_token,
        expires_in: ttl,
        auth_user_id: user.id,
        user_type: user.user_type,
        user_roles: vec![user.user_type.as_str().into()],
        session_id: session.session_id.clone(),
    }
}

pub async fn refresh(
    State(app): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> Result<axum::Json<AuthTokens>> {
    let new = new_refresh_token();
    let now = Timestamp::now().millis();
    let retry = match req.idempotency_key.as_deref() {
        Some(k) if k.is_empty() || k.len() > 128 => {
            return Err(Error::validation(
                "idempotency_key is 1 to 128 characters when given",
            ))
        }
        // Hashed with a prefix of its own, so it never equals a token's hash.
        Some(k) => Some(refresh_hash(&format!("retry:{k}"))),
        None => None,
    };
    match app
        .store
        .rotate_refresh(
            refresh_hash(&req.refresh_token),
            refresh_hash(&new),
            retry,
            now,
        )
        .await?
    {
        RefreshOutcome::Rotated { session } => {
            let user = app
                .store
                .user(session.user_id)
                .await?
                .ok_or_else(|| Error::auth("the account is gone"))?;
            Ok(axum::Json(tokens(&app, &user, &session, new)))
        }
        RefreshOutcome::Reused { session_id } => {
            tracing::warn!(session = %session_id, "a used refresh token came back; the session is revoked");
            app.hub.close_session(
                &session_id,
                CLOSE_AUTH_ENDED,
                "signed out: the session was revoked",
            );
            Err(Error::auth(
                "this refresh token was already used; the session has been signed out",
            ))
        }
        RefreshOutcome::Revoked => Err(Error::auth("this session has been signed out")),
        RefreshOutcome::Unknown => Err(Error::auth("this refresh token is not valid")),
    }
}

fn profile_view(u: User) -> Profile {
    Profile {
        id: u.id,
        user_type: u.user_type,
        display_name: u.display_name,
        phone: u.phone,
        avatar_url: u.avatar_url,
    }
}

pub async fn profile(State(app): State<AppState>, me: AuthUser) -> Result<axum::Json<Profile>> {
    let user = app
        .store
        .user(me.user_id)
        .await?
        .ok_or_else(|| Error::not_found("no such user"))?;
    Ok(axum::Json(profile_view(user)))
}

pub async fn update_profile(
    State(app): State<AppState>,
    me: AuthUser,
    Json(patch): Json<ProfilePatch>,
) -> Result<axum::Json<Profile>> {
    let mut patch = patch;
    if let Some(name) = &mut patch.display_name {
        *name = name.trim().to_owned();
        let n = name.chars().count();
        if n == 0 || n > 80 {
            return Err(Error::validation("display_name must be 1 to 80 characters"));
        }
    }
    if let Some(url) = &patch.avatar_url {
        if url.len() > 2000
            || !(url.is_empty() || url.starts_with("https://") || url.starts_with("/api/v1/media/"))
        {
            return Err(Error::validation(
                "avatar_url must be an https URL or an uploaded image",
            ));
        }
    }
    let user = app.store.update_profile(me.user_id, patch).await?;
    Ok(axum::Json(profile_view(user)))
}

pub async fn sessions(
    State(app): State<AppState>,
    me: AuthUser,
) -> Result<axum::Json<Vec<SessionInfo>>> {
    let list = app.store.sessions(me.user_id).await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|s| SessionInfo {
                current: s.session_id == me.session_id,
                session_id: s.session_id,
                device_info: s.device_info,
                created_at: Timestamp::from_millis(s.created_ms),
                last_used_at: Timestamp::from_millis(s.last_used_ms),
            })
            .collect(),
    ))
}

pub async fn delete_session(
    State(app): State<AppState>,
    me: AuthUser,
    Path(session_id): Path<String>,
) -> Result<StatusCode> {
    let sid = SessionId(session_id);
    if !app
        .store
        .revoke_session(me.user_id, &sid, Timestamp::now().millis())
        .await?
    {
        return Err(Error::not_found("no such session of yours"));
    }
    app.hub
        .close_session(&sid, CLOSE_AUTH_ENDED, "signed out from another device");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn logout(State(app): State<AppState>, me: AuthUser) -> Result<StatusCode> {
    app.store
        .revoke_session(me.user_id, &me.session_id, Timestamp::now().millis())
        .await?;
    app.hub
        .close_session(&me.session_id, CLOSE_AUTH_ENDED, "signed out");
    Ok(StatusCode::NO_CONTENT)
}
