//! The commands the UI may call (listed in commands.list, allowed by capabilities/): each one
//! is a thin call into tara-core. Failures reach the UI as `{code, message, retry_after?}`.

use crate::shell::Shell;
use serde_json::{json, Value};
use std::sync::Arc;
use tara_core::{Error, Identity, LocalMessage, Result};
use tara_protocol::auth::{OtpGenerateResponse, Profile, SessionInfo, UserType};
use tara_protocol::consultations::{ChatListItem, Consultation, FeedbackResponse, JoinResponse};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput};
use tara_protocol::guides::{Guide, GuideRatings};
use tara_protocol::wallet::{Earnings, LedgerPage, RechargeResponse, Wallet};
use tara_protocol::{ConsultationId, UserId};
use tauri::ipc::{Channel, InvokeBody, Request, Response};
use tauri::State;

type S<'a> = State<'a, Arc<Shell>>;

fn bad_input(message: impl Into<String>) -> Error {
    Error::new(tara_core::error::codes::BAD_INPUT, message)
}

fn role(s: &str) -> Result<UserType> {
    match s {
        "customer" => Ok(UserType::Customer),
        "guide" | "astrologer" => Ok(UserType::Guide),
        other => Err(bad_input(format!("no such role: {other}"))),
    }
}

#[tauri::command]
pub fn events_subscribe(shell: S<'_>, on_event: Channel<Value>) {
    shell.events.subscribe(on_event);
}

#[tauri::command]
pub async fn app_info(shell: S<'_>) -> Result<Value> {
    Ok(shell.info().await)
}

#[tauri::command]
pub async fn set_server_url(shell: S<'_>, url: String) -> Result<Value> {
    let url = crate::options::normalize_server(&url).map_err(bad_input)?;
    shell.switch_server(url).await?;
    Ok(shell.info().await)
}

#[tauri::command]
pub async fn otp_request(
    shell: S<'_>,
    area_code: String,
    phone: String,
    role: String,
) -> Result<OtpGenerateResponse> {
    let r = self::role(&role)?;
    shell.client().request_otp(&area_code, &phone, r).await
}

#[tauri::command]
pub async fn otp_verify(
    shell: S<'_>,
    area_code: String,
    phone: String,
    role: String,
    request_id: String,
    code: String,
) -> Result<Identity> {
    let r = self::role(&role)?;
    shell
        .client()
        .verify_otp(&area_code, &phone, r, &request_id, &code)
        .await
}

#[tauri::command]
pub async fn sign_out(shell: S<'_>) -> Result<()> {
    shell.client().sign_out().await
}

#[tauri::command]
pub async fn me(shell: S<'_>) -> Result<Profile> {
    shell.client().whoami().await
}

#[tauri::command]
pub async fn sessions(shell: S<'_>) -> Result<Vec<SessionInfo>> {
    shell.client().sessions().await
}

#[tauri::command]
pub async fn session_revoke(shell: S<'_>, session_id: String) -> Result<()> {
    shell.client().session_revoke(&session_id).await
}

#[tauri::command]
pub async fn guides(shell: S<'_>) -> Result<Vec<Guide>> {
    let client = shell.client();
    // Watch first: a change while the list is on its way still arrives.
    client.watch_guides();
    client.guides(false).await
}

#[tauri::command]
pub async fn guide_me(shell: S<'_>) -> Result<Guide> {
    shell.client().guide_me().await
}

#[tauri::command]
pub async fn guide_set_online(shell: S<'_>, online: bool) -> Result<Guide> {
    shell.client().set_status(online).await
}

#[tauri::command]
pub async fn guide_ratings(shell: S<'_>) -> Result<GuideRatings> {
    shell.client().guide_ratings().await
}

#[tauri::command]
pub async fn profiles(shell: S<'_>) -> Result<Vec<CustomerProfile>> {
    shell.client().profiles().await
}

#[tauri::command]
pub async fn profile_create(
    shell: S<'_>,
    details: CustomerProfileInput,
) -> Result<CustomerProfile> {
    shell.client().profile_create(&details).await
}

#[tauri::command]
pub async fn requests(shell: S<'_>) -> Result<Vec<Consultation>> {
    shell.client().requests().await
}

#[tauri::command]
pub async fn chat_list(shell: S<'_>) -> Result<Vec<ChatListItem>> {
    shell.client().chat_list().await
}

#[tauri::command]
pub async fn consultation_get(shell: S<'_>, id: ConsultationId) -> Result<Consultation> {
    shell.client().consultation(&id).await
}

#[tauri::command]
pub async fn consultation_request(
    shell: S<'_>,
    guide_id: i64,
    profile_id: Option<i64>,
) -> Result<Consultation> {
    shell.client().request(UserId(guide_id), profile_id).await
}

#[tauri::command]
pub async fn consultation_cancel(shell: S<'_>, id: ConsultationId) -> Result<Consultation> {
    shell.client().cancel(&id).await
}

#[tauri::command]
pub async fn consultation_accept(shell: S<'_>, id: ConsultationId) -> Result<Consultation> {
    shell.client().accept(&id).await
}

#[tauri::command]
pub async fn consultation_reject(
    shell: S<'_>,
    id: ConsultationId,
    reason: Option<String>,
) -> Result<Consultation> {
    shell.client().reject(&id, reason).await
}

#[tauri::command]
pub async fn consultation_join(shell: S<'_>, id: ConsultationId) -> Result<JoinResponse> {
    shell.client().join(&id).await
}

#[tauri::command]
pub async fn consultation_complete(shell: S<'_>, id: ConsultationId) -> Result<Consultation> {
    shell.client().complete(&id, None).await
}

#[tauri::command]
pub async fn consultation_rate(
    shell: S<'_>,
    id: ConsultationId,
    rating: i64,
    text: Option<String>,
    issues: Option<Vec<String>>,
) -> Result<FeedbackResponse> {
    if !(1..=5).contains(&rating) {
        return Err(bad_input("a rating is 1 to 5 stars"));
    }
    let text = text.filter(|t| !t.trim().is_empty());
    shell.client().rate(&id, rating, text, issues).await
}

#[tauri::command]
pub async fn messages(
    shell: S<'_>,
    id: ConsultationId,
    before_seq: Option<i64>,
    limit: Option<usize>,
) -> Result<Vec<LocalMessage>> {
    let limit = limit.unwrap_or(50).clamp(1, 100);
    shell.client().history(&id, before_seq, limit).await
}

#[tauri::command]
pub async fn send_text(shell: S<'_>, id: ConsultationId, text: String) -> Result<LocalMessage> {
    shell.client().send_text(&id, &text).await
}

/// The image's bytes come as the raw body (no JSON array of numbers), the consultation in the
/// `x-consultation-id` header.
#[tauri::command]
pub async fn send_image(shell: S<'_>, request: Request<'_>) -> Result<LocalMessage> {
    let InvokeBody::Raw(bytes) = request.body() else {
        return Err(bad_input("send the image's bytes as the body"));
    };
    let id = request
        .headers()
        .get("x-consultation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_input("the x-consultation-id header names the consultation"))?;
    shell
        .client()
        .send_image_bytes(&ConsultationId(id.to_owned()), bytes.clone())
        .await
}

#[tauri::command]
pub async fn retry(shell: S<'_>, client_msg_id: String) -> Result<LocalMessage> {
    shell.client().retry(&client_msg_id).await
}

#[tauri::command]
pub fn typing(shell: S<'_>, id: ConsultationId, is_typing: bool) {
    shell.client().typing(&id, is_typing);
}

#[tauri::command]
pub async fn mark_read(shell: S<'_>, id: ConsultationId, up_to_seq: i64) -> Result<()> {
    shell.client().mark_read(&id, up_to_seq).await
}

#[tauri::command]
pub async fn image(shell: S<'_>, id: ConsultationId, client_msg_id: String) -> Result<Response> {
    let bytes = shell.client().image(&id, &client_msg_id).await?;
    Ok(Response::new(bytes))
}

/// What the shell knows about itself, for the UI's first paint and the settings screen.
pub fn info_json(
    profile: &str,
    server_url: &str,
    data_dir: &std::path::Path,
    identity: Option<Identity>,
    connection: tara_core::ConnectionState,
    queued: i64,
) -> Value {
    json!({
        "profile": profile,
        "server_url": server_url,
        "data_dir": data_dir,
        "version": env!("CARGO_PKG_VERSION"),
        "identity": identity,
        "connection": connection,
        "queued": queued,
    })
}

// ---- money

#[tauri::command]
pub async fn wallet(shell: S<'_>) -> Result<Wallet> {
    shell.client().wallet().await
}

#[tauri::command]
pub async fn wallet_ledger(
    shell: S<'_>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<LedgerPage> {
    shell
        .client()
        .ledger(limit.unwrap_or(20), cursor.as_deref())
        .await
}

#[tauri::command]
pub async fn wallet_recharge(
    shell: S<'_>,
    amount: i64,
    idempotency_key: Option<String>,
) -> Result<RechargeResponse> {
    shell.client().recharge(amount, idempotency_key).await
}

#[tauri::command]
pub async fn guide_earnings(
    shell: S<'_>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<Earnings> {
    shell
        .client()
        .earnings(limit.unwrap_or(20), cursor.as_deref())
        .await
}
