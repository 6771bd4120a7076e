//! The `Client` handle: cheap to clone; REST commands run from the handle, everything that
//! needs the live connection (sending, typing, receipts) goes to the realtime actor.

use crate::api::{Api, Identity};
use crate::config::ClientConfig;
use crate::db::{self, Db, OutboxItem};
use crate::error::{codes, Error, Result};
use crate::events::{ConnectionState, Event, LocalMessage};
use crate::realtime::{self, ConnCmd};
use crate::tokens::TokenStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tara_protocol::auth::{
    OtpGenerateRequest, OtpGenerateResponse, OtpValidateRequest, Profile, UserType,
};
use tara_protocol::consultations::*;
use tara_protocol::guides::{Guide, GuideAvailability, GuideList, GuideStatusRequest};
use tara_protocol::messages::{MessageKind, MessagePage};
use tara_protocol::realtime::ClientFrame;
use tara_protocol::{ConsultationId, UserId, MAX_TEXT_CHARS};
use tokio::sync::{mpsc, watch};

/// Everything the handle and the actor share.
pub(crate) struct Inner {
    pub config: ClientConfig,
    pub api: Api,
    pub db: Db,
    pub events: mpsc::UnboundedSender<Event>,
    pub conn: mpsc::UnboundedSender<ConnCmd>,
    pub state: watch::Sender<ConnectionState>,
    pub media_dir: PathBuf,
    /// Guide presence was asked for: asked again on every new connection.
    pub watching_guides: std::sync::atomic::AtomicBool,
}

impl Inner {
    pub fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    pub fn me(&self) -> Result<Identity> {
        self.api
            .identity()
            .ok_or_else(|| Error::new(codes::SIGNED_OUT, "sign in first"))
    }

    pub async fn emit_outbox(&self) {
        if let Ok(n) = self.db.call(|c| db::queued_count(c)).await {
            self.emit(Event::Outbox { queued: n });
        }
    }
}

/// Tells the shell when the session ends, however it ended (sign-out here, revoked elsewhere,
/// a refresh token found dead), and stops the connection.
async fn watch_sign_out(inner: std::sync::Weak<Inner>) {
    let Some(mut rx) = inner.upgrade().map(|i| i.api.signed_out()) else {
        return;
    };
    while rx.changed().await.is_ok() {
        let reason = rx.borrow().clone();
        let Some(me) = inner.upgrade() else { return };
        if let Some(reason) = reason {
            let _ = me.conn.send(ConnCmd::Stop);
            me.emit(Event::SignedOut { reason });
        }
    }
}

/// What a sync found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// Messages still queued.
    pub queued: i64,
    /// Messages refused for good.
    pub failed: i64,
    /// Whether the realtime connection (or the polling fallback) was up at the end.
    pub connected: bool,
}

/// The engine.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Opens the local store, restores a stored session, and starts the realtime actor.
    /// Events come out of the returned receiver, in order.
    pub async fn start(config: ClientConfig) -> Result<(Client, mpsc::UnboundedReceiver<Event>)> {
        std::fs::create_dir_all(&config.data_dir)?;
        let media_dir = config.data_dir.join("media");
        std::fs::create_dir_all(&media_dir)?;
        let db = Db::open(&config.data_dir)?;
        let api = Api::new(
            &config,
            TokenStore::new(config.token_store.clone(), &config.data_dir),
        )?;
        let (events, rx) = mpsc::unbounded_channel();
        let (conn, conn_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            config,
            api,
            db,
            events,
            conn,
            state: watch::channel(ConnectionState::Idle).0,
            media_dir,
            watching_guides: std::sync::atomic::AtomicBool::new(false),
        });
        let client = Client {
            inner: inner.clone(),
        };
        client.restore().await?;
        tokio::spawn(realtime::run(Arc::downgrade(&inner), conn_rx));
        tokio::spawn(watch_sign_out(Arc::downgrade(&inner)));
        Ok((client, rx))
    }

    /// Resumes the session a previous run left: identity from the store, tokens when online.
    async fn restore(&self) -> Result<()> {
        if !self.inner.api.has_session().await? {
            return Ok(());
        }
        let saved = self
            .inner
            .db
            .call(|c| {
                Ok((
                    db::meta_get(c, "user_id")?,
                    db::meta_get(c, "user_type")?,
                    db::meta_get(c, "session_id")?,
                ))
            })
            .await?;
        if let (Some(id), Some(t), Some(sid)) = saved {
            if let (Ok(id), Some(t)) = (id.parse(), UserType::parse(&t)) {
                self.inner.api.set_identity(Identity {
                    user_id: UserId(id),
                    user_type: t,
                    session_id: sid,
                });
                self.inner.emit(Event::SignedIn {
                    user_id: UserId(id),
                    user_type: t,
                });
            }
        }
        Ok(())
    }

    /// The link's state, live.
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// Who is signed in on this device.
    pub fn identity(&self) -> Option<Identity> {
        self.inner.api.identity()
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    // ---- auth

    /// Asks for a login code by SMS.
    pub async fn request_otp(
        &self,
        area_code: &str,
        phone: &str,
        user_type: UserType,
    ) -> Result<OtpGenerateResponse> {
        let body = OtpGenerateRequest {
            area_code: area_code.into(),
            phone_number: phone.into(),
            user_type,
            purpose: "login".into(),
        };
        self.inner.api.call_open("/auth/otp/generate", &body).await
    }

    /// Logs in with the code; the realtime connection starts.
    pub async fn verify_otp(
        &self,
        area_code: &str,
        phone: &str,
        user_type: UserType,
        request_id: &str,
        code: &str,
    ) -> Result<Identity> {
        let body = OtpValidateRequest {
            request_id: request_id.into(),
            otp_code: code.trim().into(),
            user_type,
            device_info: self.inner.config.device_info.clone(),
            phone_number: phone.into(),
            area_code: area_code.into(),
        };
        let tokens: tara_protocol::auth::AuthTokens = self
            .inner
            .api
            .call_open("/auth/otp/validate", &body)
            .await?;
        let previous = self.inner.db.call(|c| db::meta_get(c, "user_id")).await?;
        if previous.is_some_and(|p| p != tokens.auth_user_id.0.to_string()) {
            // Another person used this profile before: their chats are not ours to show.
            self.inner.db.call(db::clear_user_data).await?;
        }
        self.inner.api.adopt(&tokens).await?;
        let (id, t, sid) = (
            tokens.auth_user_id,
            tokens.user_type,
            tokens.session_id.0.clone(),
        );
        self.inner
            .db
            .call(move |c| {
                db::meta_set(c, "user_id", &id.0.to_string())?;
                db::meta_set(c, "user_type", t.as_str())?;
                db::meta_set(c, "session_id", &sid)
            })
            .await?;
        self.inner.emit(Event::SignedIn {
            user_id: id,
            user_type: t,
        });
        let _ = self.inner.conn.send(ConnCmd::Start);
        self.identity()
            .ok_or_else(|| Error::new(codes::SIGNED_OUT, "login did not stick"))
    }

    /// Signs out here: tells the server (if it can be reached) and forgets the session and chats.
    pub async fn sign_out(&self) -> Result<()> {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.inner
                .api
                .post::<serde_json::Value>("/auth/logout", &serde_json::json!({})),
        )
        .await;
        let _ = self.inner.conn.send(ConnCmd::Stop);
        self.inner.db.call(db::clear_user_data).await?;
        // The sign-out watcher tells the shell.
        self.inner.api.forget("signed out").await?;
        Ok(())
    }

    /// The signed-in user's profile.
    pub async fn whoami(&self) -> Result<Profile> {
        self.inner.api.get("/auth/profile").await
    }

    // ---- guides

    /// Guides, every page (at most 500).
    pub async fn guides(&self, online_only: bool) -> Result<Vec<Guide>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/guide/all?mode=chat&limit=100&online={online_only}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: GuideList = self.inner.api.get(&path).await?;
            out.extend(page.guides);
            match page.next_cursor {
                Some(c) if out.len() < 500 => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// A guide sets themself online or offline.
    pub async fn set_status(&self, online: bool) -> Result<Guide> {
        let status = if online {
            GuideAvailability::Online
        } else {
            GuideAvailability::Offline
        };
        self.inner
            .api
            .post("/guide/status", &GuideStatusRequest { status })
            .await
    }

    /// Presence of every guide from now on (for a guide list), over every connection to come.
    pub fn watch_guides(&self) {
        self.inner
            .watching_guides
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self
            .inner
            .conn
            .send(ConnCmd::Frame(ClientFrame::WatchGuides));
    }

    // ---- consultations

    async fn keep(&self, c: Consultation) -> Result<Consultation> {
        let k = c.clone();
        self.inner
            .db
            .call(move |db| db::upsert_consultation(db, &k))
            .await?;
        if c.status.is_active() {
            let _ = self
                .inner
                .conn
                .send(ConnCmd::Follow(c.consultation_id.clone()));
        }
        Ok(c)
    }

    /// Asks a guide for a consultation, with birth details if given.
    pub async fn request(&self, guide_id: UserId, profile_id: Option<i64>) -> Result<Consultation> {
        let body = CreateConsultationRequest {
            guide_id,
            mode: "chat".into(),
            service_type: "consultation".into(),
            customer_profile_id: profile_id,
        };
        let c = self.inner.api.post("/consultation", &body).await?;
        self.keep(c).await
    }

    /// A guide's pending requests.
    pub async fn requests(&self) -> Result<Vec<Consultation>> {
        let list: RequestList = self.inner.api.get("/consultation/requests").await?;
        for c in &list.requests {
            let k = c.clone();
            self.inner
                .db
                .call(move |db| db::upsert_consultation(db, &k))
                .await?;
        }
        Ok(list.requests)
    }

    /// One consultation, fresh from the server.
    pub async fn consultation(&self, id: &ConsultationId) -> Result<Consultation> {
        let c = self.inner.api.get(&format!("/consultation/{id}")).await?;
        self.keep(c).await
    }

    async fn act(
        &self,
        id: &ConsultationId,
        verb: &str,
        body: serde_json::Value,
    ) -> Result<Consultation> {
        let c = self
            .inner
            .api
            .post(&format!("/consultation/{id}/{verb}"), &body)
            .await?;
        self.keep(c).await
    }

    /// The guide accepts.
    pub async fn accept(&self, id: &ConsultationId) -> Result<Consultation> {
        self.act(id, "accept", serde_json::json!({})).await
    }

    /// The guide declines.
    pub async fn reject(
        &self,
        id: &ConsultationId,
        reason: Option<String>,
    ) -> Result<Consultation> {
        self.act(id, "reject", serde_json::json!({ "reason": reason }))
            .await
    }

    /// The customer withdraws a request.
    pub async fn cancel(&self, id: &ConsultationId) -> Result<Consultation> {
        self.act(id, "cancel", serde_json::json!({})).await
    }

    /// Opens the chat; the second party to join starts it.
    pub async fn join(&self, id: &ConsultationId) -> Result<JoinResponse> {
        let r: JoinResponse = self
            .inner
            .api
            .post(&format!("/consultation/{id}/join"), &JoinRequest::default())
            .await?;
        self.keep(r.consultation.clone()).await?;
        Ok(r)
    }

    /// Ends the consultation.
    pub async fn complete(
        &self,
        id: &ConsultationId,
        reason: Option<String>,
    ) -> Result<Consultation> {
        let body = ReasonRequest { reason };
        let c = self
            .inner
            .api
            .call(
                reqwest::Method::PATCH,
                &format!("/consultation/{id}/complete"),
                Some(&body),
            )
            .await?;
        self.keep(c).await
    }

    /// The customer rates a completed consultation.
    pub async fn rate(
        &self,
        id: &ConsultationId,
        stars: i64,
        text: Option<String>,
        issues: Option<Vec<String>>,
    ) -> Result<FeedbackResponse> {
        let body = FeedbackRequest {
            rating: stars,
            feedback_text: text,
            issues,
        };
        self.inner
            .api
            .post(&format!("/consultation/{id}/feedback"), &body)
            .await
    }

    /// The chat list from the server; each consultation and its unread count are kept locally,
    /// so the realtime actor follows them and history opens from the device.
    pub async fn chat_list(&self) -> Result<Vec<ChatListItem>> {
        let list: ChatList = self.inner.api.get("/consultations?limit=100").await?;
        for item in &list.items {
            let k = item.consultation.clone();
            let unread = item.unread_count;
            self.inner
                .db
                .call(move |db| {
                    db::upsert_consultation(db, &k)?;
                    db::set_unread(db, k.consultation_id.as_str(), unread)
                })
                .await?;
        }
        Ok(list.items)
    }

    // ---- messages

    /// Queues a text; it goes out (once, in order) whenever the link allows.
    pub async fn send_text(&self, id: &ConsultationId, text: &str) -> Result<LocalMessage> {
        let text = text.trim().to_owned();
        let n = text.chars().count();
        if n == 0 {
            return Err(Error::api(
                tara_protocol::ErrorCode::ValidationFailed,
                "a message cannot be empty",
            ));
        }
        if n > MAX_TEXT_CHARS {
            return Err(Error::api(
                tara_protocol::ErrorCode::ValidationFailed,
                format!("a message may be at most {MAX_TEXT_CHARS} characters; this one has {n}"),
            ));
        }
        self.queue(id, MessageKind::Text, text, None).await
    }

    /// Compresses an image (EXIF orientation applied, metadata stripped, at most 1200 px) and
    /// queues it; it is uploaded and sent in order with the texts around it.
    pub async fn send_image(&self, id: &ConsultationId, path: &Path) -> Result<LocalMessage> {
        let input = path.to_path_buf();
        self.queue_image(id, move |out| crate::media::compress_file(&input, out))
            .await
    }

    /// Like [`Client::send_image`], from the image's bytes (a file picked in a web view).
    pub async fn send_image_bytes(
        &self,
        id: &ConsultationId,
        bytes: Vec<u8>,
    ) -> Result<LocalMessage> {
        self.queue_image(id, move |out| crate::media::compress_bytes(&bytes, out))
            .await
    }

    /// Compresses (off the async threads) into the media folder, then queues the image.
    async fn queue_image(
        &self,
        id: &ConsultationId,
        compress: impl FnOnce(&Path) -> Result<crate::media::Compressed, crate::media::MediaError>
            + Send
            + 'static,
    ) -> Result<LocalMessage> {
        let out = self.inner.media_dir.clone();
        let compressed = tokio::task::spawn_blocking(move || compress(&out))
            .await
            .map_err(|e| Error::new(codes::IMAGE_INVALID, e.to_string()))?
            .map_err(|e| Error::new(codes::IMAGE_INVALID, e.to_string()))?;
        let local = compressed.path.to_string_lossy().into_owned();
        self.queue(id, MessageKind::Image, String::new(), Some(local))
            .await
    }

    /// The bytes of an image message: the copy on this device, or downloaded once and kept.
    pub async fn image(&self, id: &ConsultationId, client_msg_id: &str) -> Result<Vec<u8>> {
        let (cid, cmid) = (id.as_str().to_owned(), client_msg_id.to_owned());
        let m = self
            .inner
            .db
            .call(move |c| db::message_by_cmid(c, &cid, &cmid))
            .await?
            .ok_or_else(|| {
                Error::api(tara_protocol::ErrorCode::NotFound, "no such message here")
            })?;
        if let Some(path) = &m.local_path {
            match tokio::fs::read(path).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => tracing::debug!(%path, error = %e, "local image gone; downloading"),
            }
        }
        let media = m.media.ok_or_else(|| {
            Error::api(
                tara_protocol::ErrorCode::NotFound,
                "this message has no image",
            )
        })?;
        // The id names a file here: only an id that cannot leave the media folder.
        let id_ok = |id: &str| {
            !id.is_empty()
                && id.len() <= 100
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !id_ok(media.media_id.as_str()) {
            return Err(Error::new(
                codes::PROTOCOL,
                "the server sent an unusable media id",
            ));
        }
        let res = self
            .inner
            .api
            .authed(reqwest::Method::GET, &format!("/media/{}", media.media_id))
            .await?
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(crate::api::error_of(res).await);
        }
        let bytes = res.bytes().await?.to_vec();
        let path = self.inner.media_dir.join(format!("{}.img", media.media_id));
        tokio::fs::write(&path, &bytes).await?;
        let (cid, cmid) = (id.as_str().to_owned(), client_msg_id.to_owned());
        let p = path.to_string_lossy().into_owned();
        self.inner
            .db
            .call(move |c| db::set_local_path(c, &cid, &cmid, &p))
            .await?;
        Ok(bytes)
    }

    async fn queue(
        &self,
        id: &ConsultationId,
        kind: MessageKind,
        content: String,
        upload: Option<String>,
    ) -> Result<LocalMessage> {
        let me = self.inner.me()?;
        let sender_type = crate::realtime::sender_type(me.user_type);
        let cmid = uuid::Uuid::now_v7().to_string();
        // One trip to the device's database: the message, its outbox entry and the new count.
        let attempt = |learned: bool| {
            let (cid, content, upload, cmid) =
                (id.clone(), content.clone(), upload.clone(), cmid.clone());
            self.inner.db.call(move |c| {
                if !db::has_consultation(c, cid.as_str())? {
                    if learned {
                        return Err(Error::api(
                            tara_protocol::ErrorCode::ConsultationNotFound,
                            "open the consultation first",
                        ));
                    }
                    return Ok(None);
                }
                let m = db::queue(
                    c,
                    &cid,
                    me.user_id,
                    sender_type,
                    kind,
                    &content,
                    upload.as_deref(),
                    &cmid,
                )?;
                Ok(Some((m, db::queued_count(c)?)))
            })
        };
        let (m, queued) = match attempt(false).await? {
            Some(done) => done,
            None => {
                // First message on this device: learn the consultation from the server.
                self.consultation(id).await?;
                attempt(true).await?.ok_or_else(|| {
                    Error::api(
                        tara_protocol::ErrorCode::ConsultationNotFound,
                        "open the consultation first",
                    )
                })?
            }
        };
        self.inner.emit(Event::MessageAdded { message: m.clone() });
        self.inner.emit(Event::Outbox { queued });
        let _ = self.inner.conn.send(ConnCmd::Kick);
        Ok(m)
    }

    /// Puts a failed message back in the queue with its client_msg_id.
    pub async fn retry(&self, client_msg_id: &str) -> Result<LocalMessage> {
        let me = self.inner.me()?;
        let cmid = client_msg_id.to_owned();
        let m = self
            .inner
            .db
            .call(move |c| db::requeue(c, me.user_id, &cmid))
            .await?
            .ok_or_else(|| {
                Error::api(
                    tara_protocol::ErrorCode::NotFound,
                    "no such message in the outbox",
                )
            })?;
        self.inner
            .emit(Event::MessageUpdated { message: m.clone() });
        self.inner.emit_outbox().await;
        let _ = self.inner.conn.send(ConnCmd::Kick);
        Ok(m)
    }

    /// A page of history, oldest first: from the device, and from the server when the device
    /// holds less than asked (kept afterwards).
    pub async fn history(
        &self,
        id: &ConsultationId,
        before_seq: Option<i64>,
        limit: usize,
    ) -> Result<Vec<LocalMessage>> {
        let cid = id.clone();
        let local = self
            .inner
            .db
            .call(move |c| db::history(c, cid.as_str(), before_seq, limit))
            .await?;
        let stored = local.iter().filter(|m| m.seq.is_some()).count();
        let lowest = local.iter().filter_map(|m| m.seq).min();
        let complete_down_to_one = lowest == Some(1);
        if stored >= limit || complete_down_to_one {
            return Ok(local);
        }
        let below = lowest.or(before_seq);
        let path = match below {
            Some(b) => format!(
                "/consultation/{id}/messages?before_seq={b}&limit={}",
                limit.min(100)
            ),
            None => format!("/consultation/{id}/messages?limit={}", limit.min(100)),
        };
        let page: MessagePage = match self.inner.api.get(&path).await {
            Ok(p) => p,
            Err(e) if e.is_transient() => return Ok(local),
            Err(e) => return Err(e),
        };
        let me = self.inner.me()?.user_id;
        self.inner
            .db
            .call(move |c| {
                for m in &page.messages {
                    db::store_remote(c, me, m)?;
                }
                Ok(())
            })
            .await?;
        let cid = id.clone();
        self.inner
            .db
            .call(move |c| db::history(c, cid.as_str(), before_seq, limit))
            .await
    }

    /// Everything in the outbox, queued and failed, in order.
    pub async fn outbox(&self) -> Result<Vec<OutboxItem>> {
        self.inner.db.call(|c| db::outbox(c)).await
    }

    /// Tells the other side this user is (or stopped) typing. Dropped when offline.
    pub fn typing(&self, id: &ConsultationId, is_typing: bool) {
        let _ = self.inner.conn.send(ConnCmd::Frame(ClientFrame::Typing {
            consultation_id: id.clone(),
            is_typing,
        }));
    }

    /// The person has seen everything up to `up_to_seq`. Sent now or on the next connection.
    pub async fn mark_read(&self, id: &ConsultationId, up_to_seq: i64) -> Result<()> {
        let cid = id.clone();
        if self
            .inner
            .db
            .call(move |c| db::set_my_read(c, cid.as_str(), up_to_seq))
            .await?
        {
            let _ = self.inner.conn.send(ConnCmd::Frame(ClientFrame::Read {
                consultation_id: id.clone(),
                up_to_seq,
            }));
        }
        Ok(())
    }

    /// Follows a consultation's messages on the live connection.
    pub fn follow(&self, id: &ConsultationId) {
        let _ = self.inner.conn.send(ConnCmd::Follow(id.clone()));
    }

    /// Waits until the outbox is empty or `timeout` passes.
    pub async fn sync(&self, timeout: Duration) -> Result<SyncReport> {
        let _ = self.inner.conn.send(ConnCmd::Kick);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let items = self.outbox().await?;
            let queued = items.iter().filter(|i| i.state == "queued").count() as i64;
            let failed = items.iter().filter(|i| i.state == "failed").count() as i64;
            let state = *self.inner.state.borrow();
            let connected = matches!(state, ConnectionState::Online | ConnectionState::Polling);
            if (queued == 0 && connected) || tokio::time::Instant::now() >= deadline {
                return Ok(SyncReport {
                    queued,
                    failed,
                    connected,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the realtime connection (the handle stays usable for REST).
    pub fn disconnect(&self) {
        let _ = self.inner.conn.send(ConnCmd::Stop);
    }

    /// Starts (or restarts) the realtime connection.
    pub fn connect(&self) {
        let _ = self.inner.conn.send(ConnCmd::Start);
    }
}
