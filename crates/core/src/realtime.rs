//! The realtime actor: one task that holds the connection, resumes consultations by seq, drains
//! the outbox in order, and turns server frames into events.
//!
//! The outbox drains pipelined: up to [`WINDOW`] sends are in flight on one connection, sent in
//! outbox order, and the server stores them in the order they arrive. When one is refused for a
//! reason that may pass (a rate limit, a server failure), the server refuses every later one
//! of the connection too until it is sent again; the actor stops sending, waits for the answers
//! to what it had sent, and after a pause starts again from the first unacked message with a
//! window of one that doubles with each ack. So a later message never overtakes an earlier one,
//! each is stored once (the client_msg_id), and one refused for good is marked failed.
//! Frames that arrive together are handled together: their messages and acks are written to the
//! device's database in one transaction, and receipts and the outbox count go out once.
//!
//! Reconnects use exponential backoff with full jitter (0.5 s doubling up to 30 s). A link with
//! no frame for 30 s is taken for dead (the client pings every 10 s). Where the WebSocket cannot
//! be opened at all (a proxy refusing upgrades) the actor falls back to long polls and REST sends,
//! and tries the WebSocket again every 30 s.

use crate::client::Inner;
use crate::db::{self, OutboxItem, Stored};
use crate::error::{codes, Error, Result};
use crate::events::{ConnectionState, Event, LocalMessage, NoticeKind};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rand::Rng;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tara_protocol::auth::UserType;
use tara_protocol::consultations::{Consultation, ConsultationEvent};
use tara_protocol::media::MediaInfo;
use tara_protocol::messages::{Message, MessageKind, MessagePage, SendMessageRequest, SenderType};
use tara_protocol::realtime::{ClientFrame, ServerFrame, CLOSE_AUTH_ENDED};
use tara_protocol::{ClientMsgId, ConsultationId, ErrorCode, MediaId, UserId};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What the handle asks of the actor.
#[derive(Debug)]
pub enum ConnCmd {
    /// Connect (after login, or again after `Stop`).
    Start,
    /// Disconnect and stay disconnected.
    Stop,
    /// Something was queued: drain the outbox.
    Kick,
    /// Follow a consultation's messages.
    Follow(ConsultationId),
    /// Send this frame if connected.
    Frame(ClientFrame),
}

/// The sender type of a user type.
pub fn sender_type(t: UserType) -> SenderType {
    match t {
        UserType::Customer => SenderType::Customer,
        UserType::Guide => SenderType::Guide,
    }
}

const PING_EVERY: Duration = Duration::from_secs(10);
const DEAD_AFTER: Duration = Duration::from_secs(30);
const ACK_WAIT: Duration = Duration::from_secs(20);
const RETRY_WS_EVERY: Duration = Duration::from_secs(30);
/// Sends in flight at most on one connection.
pub const WINDOW: usize = 256;
/// Frames read and handled together at most.
const BURST: usize = 512;

/// An `ack` frame as the device's database records it; None for any other frame.
fn ack_row(frame: ServerFrame) -> Option<db::AckRow> {
    match frame {
        ServerFrame::Ack {
            client_msg_id,
            seq,
            message_id,
            sent_at,
            ..
        } => Some(db::AckRow {
            client_msg_id: client_msg_id.0,
            seq,
            message_id: message_id.0,
            sent_at: sent_at.millis(),
        }),
        _ => None,
    }
}

/// Exponential backoff with full jitter.
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// 0.5 s doubling up to 30 s.
    pub fn new() -> Self {
        Self {
            attempt: 0,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }

    /// The next wait: uniform in [0, min(cap, base·2^attempt)].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// The current upper bound.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(16));
        (self.base * factor).min(self.cap)
    }

    /// After a good connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

enum Ended {
    Stopped,
    Lost,
    SignedOut,
}

enum ConnectError {
    /// The token was refused; refresh and try again.
    Auth(Error),
    /// The server (or a proxy) answered but refused the upgrade: fall back to polling.
    Blocked(u16),
    /// Nothing answered.
    Network(String),
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The actor's main loop; ends when the client is dropped.
pub(crate) async fn run(inner: Weak<Inner>, mut cmds: mpsc::UnboundedReceiver<ConnCmd>) {
    let mut backoff = Backoff::new();
    let mut stopped = inner.upgrade().is_none_or(|me| !me.config.auto_connect);
    let mut pending_frames: Vec<ClientFrame> = Vec::new();
    loop {
        let Some(me) = inner.upgrade() else { return };
        let signed_in = me.api.identity().is_some() && me.api.has_session().await.unwrap_or(false);
        if stopped || !signed_in {
            me.state.send_replace(ConnectionState::Idle);
            drop(me);
            match cmds.recv().await {
                None => return,
                Some(ConnCmd::Start) => stopped = false,
                Some(ConnCmd::Stop) => stopped = true,
                Some(_) => {}
            }
            continue;
        }
        me.set_state(ConnectionState::Connecting);
        match connect(&me).await {
            Ok(ws) => {
                backoff.reset();
                me.set_state(ConnectionState::Online);
                let mut session = Session::new(me.clone());
                let ended = session.run(ws, &mut cmds, &mut pending_frames).await;
                match ended {
                    Ended::Stopped => stopped = true,
                    Ended::SignedOut => {}
                    Ended::Lost => {
                        me.set_state(ConnectionState::Offline);
                        drop(session);
                        drop(me);
                        if wait_or_cmd(&mut cmds, backoff.next_delay(), &mut stopped).await {
                            return;
                        }
                    }
                }
            }
            Err(ConnectError::Auth(e)) => {
                if let Err(e) = me.api.refresh(None).await {
                    tracing::info!(error = %e, "cannot renew the session");
                    if e.code == codes::SIGNED_OUT {
                        continue;
                    }
                }
                tracing::debug!(error = %e, "token refused at connect; refreshed");
                drop(me);
                if wait_or_cmd(&mut cmds, backoff.next_delay(), &mut stopped).await {
                    return;
                }
            }
            Err(ConnectError::Blocked(status)) => {
                tracing::info!(
                    status,
                    "the WebSocket is blocked here; falling back to long polling"
                );
                me.set_state(ConnectionState::Polling);
                let mut poller = Poller::new(me.clone());
                if poller.run(&mut cmds, &mut stopped).await {
                    return;
                }
            }
            Err(ConnectError::Network(why)) => {
                tracing::debug!(%why, "cannot connect");
                me.set_state(ConnectionState::Offline);
                drop(me);
                if wait_or_cmd(&mut cmds, backoff.next_delay(), &mut stopped).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `d`, or less if told to start again; true if the client is gone.
async fn wait_or_cmd(
    cmds: &mut mpsc::UnboundedReceiver<ConnCmd>,
    d: Duration,
    stopped: &mut bool,
) -> bool {
    let deadline = Instant::now() + d;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return false,
            cmd = cmds.recv() => match cmd {
                None => return true,
                Some(ConnCmd::Stop) => { *stopped = true; return false }
                Some(ConnCmd::Start) => return false,
                Some(_) => {}
            },
        }
    }
}

async fn connect(me: &Inner) -> Result<Socket, ConnectError> {
    let token = me.api.access_token().await.map_err(|e| {
        if e.code == codes::SIGNED_OUT {
            ConnectError::Auth(e)
        } else {
            ConnectError::Network(e.message)
        }
    })?;
    let mut req = me
        .config
        .realtime_url()
        .into_client_request()
        .map_err(|e| ConnectError::Network(e.to_string()))?;
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.headers_mut().insert("authorization", v);
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(tara_protocol::realtime::SOCKET_READ_BYTES);
    let connecting = tokio_tungstenite::connect_async_with_config(req, Some(config), false);
    match tokio::time::timeout(Duration::from_secs(15), connecting).await {
        Err(_) => Err(ConnectError::Network("timed out".into())),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(res))) => {
            let status = res.status().as_u16();
            if status == 401 {
                Err(ConnectError::Auth(Error::new(
                    "AUTHENTICATION_FAILED",
                    "the token was refused",
                )))
            } else {
                Err(ConnectError::Blocked(status))
            }
        }
        Ok(Err(e)) => Err(ConnectError::Network(e.to_string())),
    }
}

impl Inner {
    pub(crate) fn set_state(&self, s: ConnectionState) {
        if *self.state.borrow() != s {
            self.state.send_replace(s);
            self.emit(Event::Connection { state: s });
        }
    }
}

struct InFlight {
    cmid: String,
    since: Instant,
}

/// One live connection.
struct Session {
    me: Arc<Inner>,
    user: UserId,
    /// Sent and not answered, in outbox order.
    in_flight: VecDeque<InFlight>,
    /// Outbox position of the last item sent on this connection.
    sent_through: i64,
    /// Sends in flight allowed now: 1 after a refusal, doubling with each ack up to [`WINDOW`].
    window: usize,
    /// A refusal that may pass was seen: nothing more is sent until every send in flight is
    /// answered and `retry_at` has passed.
    halted: bool,
    uploading: Option<String>,
    retry_at: Option<Instant>,
    delivered: HashMap<ConsultationId, i64>,
    following: HashSet<ConsultationId>,
    uploads_tx: mpsc::UnboundedSender<(String, Result<MediaInfo>)>,
    uploads_rx: mpsc::UnboundedReceiver<(String, Result<MediaInfo>)>,
    /// Consultations whose `delivered` receipt may have moved, sent after a burst.
    to_deliver: HashSet<ConsultationId>,
    /// The outbox changed: its count is told after the burst.
    outbox_changed: bool,
    /// Room opened in the window: fill it after the burst.
    want_drain: bool,
}

impl Session {
    fn new(me: Arc<Inner>) -> Self {
        let user = me.api.identity().map(|i| i.user_id).unwrap_or(UserId(0));
        let (uploads_tx, uploads_rx) = mpsc::unbounded_channel();
        Self {
            me,
            user,
            in_flight: VecDeque::new(),
            sent_through: 0,
            window: WINDOW,
            halted: false,
            uploading: None,
            retry_at: None,
            delivered: HashMap::new(),
            following: HashSet::new(),
            uploads_tx,
            uploads_rx,
            to_deliver: HashSet::new(),
            outbox_changed: false,
            want_drain: false,
        }
    }

    /// The highest seq this device holds without a gap (0 when unknown).
    async fn contiguous(&self, id: &ConsultationId) -> i64 {
        let cid = id.clone();
        self.me
            .db
            .call(move |c| db::contiguous_seq(c, cid.as_str()))
            .await
            .unwrap_or(0)
    }

    /// Subscribes to a consultation not yet followed on this connection, from what the device
    /// holds. False when the connection is lost.
    async fn follow(&mut self, ws: &mut Socket, id: ConsultationId) -> bool {
        if !self.following.insert(id.clone()) {
            return true;
        }
        let seq = self.contiguous(&id).await;
        Self::send(
            ws,
            &ClientFrame::Subscribe {
                consultation_id: id,
                after_seq: seq,
            },
        )
        .await
    }

    async fn send(ws: &mut Socket, frame: &ClientFrame) -> bool {
        match serde_json::to_string(frame) {
            Ok(text) => ws.send(WsMessage::Text(text.into())).await.is_ok(),
            Err(_) => true,
        }
    }

    async fn run(
        &mut self,
        mut ws: Socket,
        cmds: &mut mpsc::UnboundedReceiver<ConnCmd>,
        pending: &mut Vec<ClientFrame>,
    ) -> Ended {
        let follow = self
            .me
            .db
            .call(|c| db::to_follow(c))
            .await
            .unwrap_or_default();
        for (id, seq) in follow {
            self.following.insert(id.clone());
            if !Self::send(
                &mut ws,
                &ClientFrame::Subscribe {
                    consultation_id: id,
                    after_seq: seq,
                },
            )
            .await
            {
                return Ended::Lost;
            }
        }
        if self
            .me
            .watching_guides
            .load(std::sync::atomic::Ordering::Relaxed)
            && !Self::send(&mut ws, &ClientFrame::WatchGuides).await
        {
            return Ended::Lost;
        }
        for f in pending.drain(..) {
            if !Self::send(&mut ws, &f).await {
                return Ended::Lost;
            }
        }
        if !self.drain(&mut ws).await {
            return Ended::Lost;
        }
        let mut signed_out = self.me.api.signed_out();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut last_heard = Instant::now();
        loop {
            let refresh_at = self
                .me
                .api
                .renew_at()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let retry_at = self
                .retry_at
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                frame = ws.next() => {
                    let Some(Ok(first)) = frame else { return Ended::Lost };
                    last_heard = Instant::now();
                    // Whatever else has already arrived is handled with it.
                    let mut burst = vec![first];
                    let mut lost = false;
                    while burst.len() < BURST {
                        match ws.next().now_or_never() {
                            Some(Some(Ok(f))) => burst.push(f),
                            Some(_) => {
                                lost = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    let mut frames = Vec::with_capacity(burst.len());
                    let mut closed = None;
                    for frame in burst {
                        match frame {
                            WsMessage::Text(t) => match serde_json::from_str::<ServerFrame>(t.as_str()) {
                                Ok(f) => frames.push(f),
                                Err(e) => tracing::debug!(error = %e, "a frame this version does not know"),
                            },
                            WsMessage::Close(frame) => {
                                closed = Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                                break;
                            }
                            _ => {}
                        }
                    }
                    if !self.on_frames(&mut ws, frames).await || !self.after_burst(&mut ws).await {
                        return Ended::Lost;
                    }
                    if let Some(code) = closed {
                        if code == CLOSE_AUTH_ENDED {
                            // The session may simply need a fresh token; if it was revoked, refresh says so.
                            if let Err(e) = self.me.api.refresh(None).await {
                                if e.code == codes::SIGNED_OUT {
                                    return Ended::SignedOut;
                                }
                            }
                        }
                        return Ended::Lost;
                    }
                    if lost {
                        return Ended::Lost;
                    }
                }
                cmd = cmds.recv() => match cmd {
                    None | Some(ConnCmd::Stop) => {
                        let _ = ws.close(None).await;
                        self.me.set_state(ConnectionState::Idle);
                        return Ended::Stopped;
                    }
                    Some(ConnCmd::Start) => {}
                    Some(ConnCmd::Kick) => {
                        if !self.drain(&mut ws).await { return Ended::Lost }
                    }
                    Some(ConnCmd::Follow(id)) => {
                        if !self.follow(&mut ws, id).await {
                            return Ended::Lost;
                        }
                    }
                    Some(ConnCmd::Frame(f)) => {
                        if !Self::send(&mut ws, &f).await {
                            if matches!(f, ClientFrame::Read { .. }) { pending.push(f); }
                            return Ended::Lost;
                        }
                    }
                },
                done = self.uploads_rx.recv() => {
                    if let Some((cmid, result)) = done {
                        self.uploading = None;
                        self.on_uploaded(&cmid, result).await;
                        if !self.drain(&mut ws).await { return Ended::Lost }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > DEAD_AFTER {
                        tracing::info!("no frame for 30 s; reconnecting");
                        return Ended::Lost;
                    }
                    if self.in_flight.front().is_some_and(|f| f.since.elapsed() > ACK_WAIT) {
                        tracing::info!("no ack in time; reconnecting to resend");
                        return Ended::Lost;
                    }
                    if !Self::send(&mut ws, &ClientFrame::Ping).await { return Ended::Lost }
                }
                _ = tokio::time::sleep_until(refresh_at) => {
                    match self.me.api.access_token().await {
                        Ok(token) => {
                            if !Self::send(&mut ws, &ClientFrame::Auth { access_token: token }).await { return Ended::Lost }
                        }
                        Err(e) if e.code == codes::SIGNED_OUT => return Ended::SignedOut,
                        Err(_) => return Ended::Lost,
                    }
                }
                _ = tokio::time::sleep_until(retry_at) => {
                    self.retry_at = None;
                    if !self.drain(&mut ws).await { return Ended::Lost }
                }
                _ = signed_out.changed() => {
                    if signed_out.borrow().is_some() {
                        let _ = ws.close(None).await;
                        return Ended::SignedOut;
                    }
                }
            }
        }
    }

    /// Fills the window with the next queued items, in outbox order, stopping before an image
    /// still to upload (its upload starts). False if the socket failed.
    async fn drain(&mut self, ws: &mut Socket) -> bool {
        self.want_drain = false;
        if self.halted || self.retry_at.is_some() {
            return true;
        }
        let room = self.window.saturating_sub(self.in_flight.len());
        if room == 0 {
            return true;
        }
        let after = self.sent_through;
        let next = match self
            .me
            .db
            .call(move |c| db::queued_after(c, after, room))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return true;
            }
        };
        let mut sent = Vec::with_capacity(next.len());
        let mut ok = true;
        for item in next {
            if item.kind == MessageKind::Image && item.media.is_none() {
                if self.uploading.is_none() {
                    self.uploading = Some(item.client_msg_id.clone());
                    let me = self.me.clone();
                    let tx = self.uploads_tx.clone();
                    tokio::spawn(async move {
                        let result = upload(&me, &item).await;
                        let _ = tx.send((item.client_msg_id.clone(), result));
                    });
                }
                break;
            }
            if !self.follow(ws, item.consultation_id.clone()).await {
                ok = false;
                break;
            }
            let text = match serde_json::to_string(&send_frame(&item)) {
                Ok(t) => t,
                Err(_) => continue,
            };
            if ws.feed(WsMessage::Text(text.into())).await.is_err() {
                ok = false;
                break;
            }
            self.sent_through = item.position;
            self.in_flight.push_back(InFlight {
                cmid: item.client_msg_id.clone(),
                since: Instant::now(),
            });
            sent.push(item.client_msg_id);
        }
        if !sent.is_empty() {
            let _ = self.me.db.call(move |c| db::count_attempts(c, &sent)).await;
        }
        ok && ws.flush().await.is_ok()
    }

    async fn on_uploaded(&mut self, cmid: &str, result: Result<MediaInfo>) {
        match result {
            Ok(media) => {
                let (user, cmid) = (self.user, cmid.to_owned());
                if let Err(e) = self
                    .me
                    .db
                    .call(move |c| db::set_uploaded(c, user, &cmid, &media))
                    .await
                {
                    tracing::error!(error = %e, "cannot record an upload");
                }
            }
            Err(e) if e.is_transient() => {
                self.retry_at =
                    Some(Instant::now() + Duration::from_secs(e.retry_after.unwrap_or(3).max(1)));
            }
            Err(e) => self.refuse(cmid, &e.message).await,
        }
    }

    async fn refuse(&mut self, cmid: &str, reason: &str) {
        refuse(&self.me, self.user, cmid, reason).await;
    }

    /// Takes an answered send out of the window; false if it was not in flight.
    fn settle(&mut self, cmid: &str) -> bool {
        let Some(at) = self.in_flight.iter().position(|f| f.cmid == cmid) else {
            return false;
        };
        self.in_flight.remove(at);
        self.want_drain = true;
        if self.halted && self.in_flight.is_empty() {
            // Everything sent before the pause is answered: start again from the first unacked.
            self.halted = false;
            self.sent_through = 0;
        }
        true
    }

    /// Handles a burst of server frames in order: runs of messages and of acks are each
    /// written in one transaction. False if the socket failed.
    async fn on_frames(&mut self, ws: &mut Socket, frames: Vec<ServerFrame>) -> bool {
        let mut frames = frames.into_iter().peekable();
        while let Some(frame) = frames.next() {
            let ok = match frame {
                ServerFrame::Message { message } => {
                    let mut run = vec![message];
                    while let Some(ServerFrame::Message { message }) =
                        frames.next_if(|f| matches!(f, ServerFrame::Message { .. }))
                    {
                        run.push(message);
                    }
                    self.on_messages(run).await
                }
                frame @ ServerFrame::Ack { .. } => {
                    let mut run: Vec<db::AckRow> = ack_row(frame).into_iter().collect();
                    while let Some(more) = frames
                        .next_if(|f| matches!(f, ServerFrame::Ack { .. }))
                        .and_then(ack_row)
                    {
                        run.push(more);
                    }
                    self.on_acks(run).await;
                    true
                }
                other => self.on_frame(ws, other).await,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// What a burst left to do: receipts, the outbox count, refilling the window.
    async fn after_burst(&mut self, ws: &mut Socket) -> bool {
        for id in std::mem::take(&mut self.to_deliver) {
            let seq = self.contiguous(&id).await;
            if !self.deliver_up_to(ws, id, seq).await {
                return false;
            }
        }
        if std::mem::take(&mut self.outbox_changed) {
            self.me.emit_outbox().await;
        }
        if self.want_drain {
            return self.drain(ws).await;
        }
        true
    }

    /// Acks of ours. One whose message frame came first is already settled and stored.
    async fn on_acks(&mut self, acks: Vec<db::AckRow>) {
        let open: Vec<db::AckRow> = acks
            .into_iter()
            .filter(|a| self.in_flight.iter().any(|f| f.cmid == a.client_msg_id))
            .collect();
        if open.is_empty() {
            return;
        }
        for a in &open {
            self.settle(&a.client_msg_id);
            self.window = (self.window * 2).min(WINDOW);
        }
        let user = self.user;
        match self.me.db.call(move |c| db::ack_many(c, user, &open)).await {
            Ok(stored) => {
                for m in stored {
                    self.me.emit(Event::MessageUpdated { message: m });
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot record acks"),
        }
        self.outbox_changed = true;
    }

    /// Handles one server frame. False if the socket failed.
    async fn on_frame(&mut self, ws: &mut Socket, frame: ServerFrame) -> bool {
        match frame {
            ServerFrame::Hello { .. } | ServerFrame::Pong => true,
            frame @ ServerFrame::Ack { .. } => {
                self.on_acks(ack_row(frame).into_iter().collect()).await;
                true
            }
            ServerFrame::Error {
                code,
                message,
                reference,
            } => {
                let Some(cmid) = reference else {
                    tracing::debug!(%code, %message, "the server refused a frame");
                    return true;
                };
                if !self.in_flight.iter().any(|f| f.cmid == cmid.as_str()) {
                    return true;
                }
                if matches!(code, ErrorCode::RateLimited | ErrorCode::Internal) {
                    // It goes again, and so does everything sent after it (which the server
                    // refuses until then), once the window is answered and the pause is over.
                    if !self.halted {
                        self.halted = true;
                        self.window = 1;
                        self.retry_at = Some(Instant::now() + Duration::from_secs(2));
                    }
                } else {
                    self.refuse(cmid.as_str(), &message).await;
                }
                self.settle(cmid.as_str());
                true
            }
            ServerFrame::Message { message } => self.on_messages(vec![message]).await,
            ServerFrame::Subscribed {
                consultation_id, ..
            } => {
                let cid = consultation_id.clone();
                let read = self
                    .me
                    .db
                    .call(move |c| {
                        Ok(c.query_row(
                            "SELECT my_read FROM consultations WHERE consultation_id = ?1",
                            [cid.as_str()],
                            |r| r.get::<_, i64>(0),
                        )
                        .unwrap_or(0))
                    })
                    .await
                    .unwrap_or(0);
                if read > 0 {
                    let f = ClientFrame::Read {
                        consultation_id: consultation_id.clone(),
                        up_to_seq: read,
                    };
                    if !Self::send(ws, &f).await {
                        return false;
                    }
                }
                // The delivered receipt goes out after the burst, from what the device holds.
                self.to_deliver.insert(consultation_id);
                true
            }
            ServerFrame::Typing {
                consultation_id,
                user_id,
                is_typing,
            } => {
                self.me.emit(Event::Typing {
                    consultation_id,
                    user_id,
                    is_typing,
                });
                true
            }
            ServerFrame::Receipt {
                consultation_id,
                user_id,
                delivered_seq,
                read_seq,
            } => {
                if user_id != self.user {
                    let cid = consultation_id.clone();
                    let changed = self
                        .me
                        .db
                        .call(move |c| db::set_peer_marks(c, cid.as_str(), delivered_seq, read_seq))
                        .await
                        .unwrap_or_default();
                    for m in changed {
                        self.me.emit(Event::MessageUpdated { message: m });
                    }
                }
                self.me.emit(Event::Receipt {
                    consultation_id,
                    user_id,
                    delivered_seq,
                    read_seq,
                });
                true
            }
            ServerFrame::Presence {
                user_id,
                status,
                last_seen,
            } => {
                self.me.emit(Event::Presence {
                    user_id,
                    status,
                    last_seen,
                });
                true
            }
            ServerFrame::Consultation {
                event,
                consultation,
                ..
            } => self.on_consultation(ws, event, consultation).await,
            ServerFrame::Wallet { balance, currency } => {
                self.me.emit(Event::Wallet { balance, currency });
                true
            }
            ServerFrame::Unread {
                consultation_id,
                unread_count,
            } => {
                let cid = consultation_id.clone();
                let _ = self
                    .me
                    .db
                    .call(move |c| db::set_unread(c, cid.as_str(), unread_count))
                    .await;
                self.me.emit(Event::Unread {
                    consultation_id,
                    unread_count,
                });
                true
            }
        }
    }

    /// Messages from the server, stored in one transaction; receipts go out after the burst.
    async fn on_messages(&mut self, messages: Vec<Message>) -> bool {
        let user = self.user;
        let ms = messages.clone();
        let stored = self
            .me
            .db
            .call(move |c| db::store_remote_many(c, user, &ms))
            .await;
        match stored {
            Ok(stored) => {
                for s in stored {
                    match s {
                        Stored::Added(local) => {
                            if local.sender_id != self.user && local.kind != MessageKind::System {
                                self.notice_message(&local).await;
                            }
                            self.me.emit(Event::MessageAdded { message: local });
                        }
                        Stored::Acked(local) => {
                            let cmid = local.client_msg_id.clone();
                            self.me.emit(Event::MessageUpdated { message: local });
                            self.outbox_changed = true;
                            if self.settle(&cmid) {
                                self.window = (self.window * 2).min(WINDOW);
                            }
                        }
                        Stored::Known => {}
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot store messages"),
        }
        for m in &messages {
            self.to_deliver.insert(m.consultation_id.clone());
        }
        true
    }

    /// Tells the server this device holds everything up to `seq`, once per advance.
    async fn deliver_up_to(&mut self, ws: &mut Socket, id: ConsultationId, seq: i64) -> bool {
        let sent = self.delivered.get(&id).copied().unwrap_or(0);
        if seq <= sent {
            return true;
        }
        self.delivered.insert(id.clone(), seq);
        Self::send(
            ws,
            &ClientFrame::Delivered {
                consultation_id: id,
                up_to_seq: seq,
            },
        )
        .await
    }

    async fn notice_message(&self, m: &LocalMessage) {
        let cid = m.consultation_id.clone();
        let consultation = self
            .me
            .db
            .call(move |c| db::consultation(c, cid.as_str()))
            .await
            .ok()
            .flatten();
        let title = consultation
            .map(|c| {
                if m.sender_id == c.guide_id {
                    c.guide_name
                } else {
                    c.customer_name
                }
            })
            .unwrap_or_else(|| "New message".into());
        let body = if m.kind == MessageKind::Image {
            "📷 Photo".to_owned()
        } else {
            preview(&m.content)
        };
        self.me.emit(Event::Notice {
            kind: NoticeKind::Message,
            consultation_id: m.consultation_id.clone(),
            title,
            body,
        });
    }

    async fn on_consultation(
        &mut self,
        ws: &mut Socket,
        event: ConsultationEvent,
        c: Consultation,
    ) -> bool {
        let k = c.clone();
        let _ = self
            .me
            .db
            .call(move |db| db::upsert_consultation(db, &k))
            .await;
        let i_am_guide = c.guide_id == self.user;
        let notice = match event {
            ConsultationEvent::Requested if i_am_guide => Some((
                NoticeKind::Request,
                format!("{} asks for a reading", c.customer_name),
                "Accept or decline".to_owned(),
            )),
            ConsultationEvent::Accepted if !i_am_guide => Some((
                NoticeKind::Accepted,
                c.guide_name.clone(),
                "accepted your request".to_owned(),
            )),
            ConsultationEvent::EndingSoon if !i_am_guide => Some((
                NoticeKind::EndingSoon,
                c.guide_name.clone(),
                "Your balance runs out in a minute. Recharge to keep talking.".to_owned(),
            )),
            ConsultationEvent::Completed => {
                let other = if i_am_guide {
                    &c.customer_name
                } else {
                    &c.guide_name
                };
                Some((
                    NoticeKind::Ended,
                    other.clone(),
                    "The consultation has ended".to_owned(),
                ))
            }
            _ => None,
        };
        if let Some((kind, title, body)) = notice {
            self.me.emit(Event::Notice {
                kind,
                consultation_id: c.consultation_id.clone(),
                title,
                body,
            });
        }
        let follow = c.status.is_active() && !self.following.contains(&c.consultation_id);
        let id = c.consultation_id.clone();
        self.me.emit(Event::Consultation {
            event,
            consultation: c,
        });
        if follow {
            return self.follow(ws, id).await;
        }
        // A consultation that opened for messages may have queued ones waiting.
        self.drain(ws).await
    }
}

/// Marks one of ours refused for good (one transaction) and tells the shell.
async fn refuse(me: &Inner, user: UserId, cmid: &str, reason: &str) {
    let (c2, r) = (cmid.to_owned(), reason.to_owned());
    if let Ok(Some(m)) = me.db.call(move |c| db::failed(c, user, &c2, &r)).await {
        me.emit(Event::MessageUpdated { message: m });
    }
    me.emit_outbox().await;
}

fn preview(text: &str) -> String {
    let mut p: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        p.push('…');
    }
    p
}

fn send_frame(item: &OutboxItem) -> ClientFrame {
    ClientFrame::Send {
        client_msg_id: ClientMsgId(item.client_msg_id.clone()),
        consultation_id: item.consultation_id.clone(),
        kind: item.kind,
        content: item.content.clone(),
        media_id: item.media.as_ref().map(|m| m.media_id.clone()),
    }
}

/// Uploads an outbox item's compressed image, reporting progress; the client_msg_id is the
/// Idempotency-Key, so an upload retried after a lost answer is stored once.
async fn upload(me: &Inner, item: &OutboxItem) -> Result<MediaInfo> {
    let Some(path) = &item.upload_path else {
        return Err(Error::new(
            codes::IMAGE_INVALID,
            "the image to send is missing",
        ));
    };
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        Error::new(
            codes::IMAGE_INVALID,
            format!("the prepared image is gone: {e}"),
        )
    })?;
    let bytes = bytes::Bytes::from(bytes);
    let total = bytes.len() as u64;
    let path = format!("/media?consultation_id={}", item.consultation_id);
    for attempt in 0..2 {
        let events = me.events.clone();
        let cmid = item.client_msg_id.clone();
        let chunks: Vec<bytes::Bytes> = (0..bytes.len())
            .step_by(64 * 1024)
            .map(|at| bytes.slice(at..(at + 64 * 1024).min(bytes.len())))
            .collect();
        let mut sent = 0u64;
        let body = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
            sent += chunk.len() as u64;
            let _ = events.send(Event::UploadProgress {
                client_msg_id: cmid.clone(),
                sent,
                total,
            });
            Ok::<_, std::io::Error>(chunk)
        }));
        let res = me
            .api
            .authed(reqwest::Method::POST, &path)
            .await?
            .header(reqwest::header::CONTENT_TYPE, "image/jpeg")
            .header(reqwest::header::CONTENT_LENGTH, total)
            .header("Idempotency-Key", item.client_msg_id.as_str())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?;
        if res.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
            me.api.refresh(None).await?;
            continue;
        }
        return crate::api::parse(res).await;
    }
    Err(Error::new(
        codes::SIGNED_OUT,
        "the session could not be renewed",
    ))
}

/// The polling fallback: REST sends and long polls, trying the WebSocket again every 30 s.
struct Poller {
    me: Arc<Inner>,
}

impl Poller {
    fn new(me: Arc<Inner>) -> Self {
        Self { me }
    }

    /// True if the client is gone.
    async fn run(
        &mut self,
        cmds: &mut mpsc::UnboundedReceiver<ConnCmd>,
        stopped: &mut bool,
    ) -> bool {
        let until = Instant::now() + RETRY_WS_EVERY;
        let user = self
            .me
            .api
            .identity()
            .map(|i| i.user_id)
            .unwrap_or(UserId(0));
        while Instant::now() < until {
            self.drain_rest(user).await;
            let follow = self
                .me
                .db
                .call(|c| db::to_follow(c))
                .await
                .unwrap_or_default();
            let polls = follow.into_iter().map(|(id, seq)| {
                let me = self.me.clone();
                async move {
                    let page: Result<MessagePage> = me
                        .api
                        .get(&format!(
                            "/consultation/{id}/messages/poll?after_seq={seq}&timeout=10"
                        ))
                        .await;
                    (id, page)
                }
            });
            let all = futures_util::future::join_all(polls);
            tokio::select! {
                results = all => {
                    for (_, page) in results {
                        match page {
                            Ok(p) => {
                                for m in p.messages {
                                    let stored = self.me.db.call(move |c| db::store_remote(c, user, &m)).await;
                                    match stored {
                                        Ok(Stored::Added(local)) => self.me.emit(Event::MessageAdded { message: local }),
                                        Ok(Stored::Acked(local)) => self.me.emit(Event::MessageUpdated { message: local }),
                                        _ => {}
                                    }
                                }
                            }
                            Err(e) if e.code == codes::OFFLINE => return false,
                            Err(_) => {}
                        }
                    }
                }
                cmd = cmds.recv() => match cmd {
                    None => return true,
                    Some(ConnCmd::Stop) => { *stopped = true; return false }
                    _ => {}
                },
            }
            if self
                .me
                .db
                .call(|c| db::to_follow(c))
                .await
                .map(|f| f.is_empty())
                .unwrap_or(true)
            {
                sleep(Duration::from_secs(2)).await;
            }
        }
        false
    }

    async fn drain_rest(&mut self, user: UserId) {
        loop {
            let Ok(Some(item)) = self.me.db.call(|c| db::next_queued(c)).await else {
                return;
            };
            let mut item = item;
            if item.kind == MessageKind::Image && item.media.is_none() {
                match upload(&self.me, &item).await {
                    Ok(media) => {
                        let (cmid, m2) = (item.client_msg_id.clone(), media.clone());
                        let _ = self
                            .me
                            .db
                            .call(move |c| db::set_uploaded(c, user, &cmid, &m2))
                            .await;
                        item.media = Some(media);
                    }
                    Err(e) if e.is_transient() => return,
                    Err(e) => {
                        refuse(&self.me, user, &item.client_msg_id, &e.message).await;
                        continue;
                    }
                }
            }
            let body = SendMessageRequest {
                client_msg_id: ClientMsgId(item.client_msg_id.clone()),
                kind: item.kind,
                content: item.content.clone(),
                media_id: item.media.as_ref().map(|m| MediaId(m.media_id.0.clone())),
            };
            let sent: Result<Message> = self
                .me
                .api
                .post(
                    &format!("/consultation/{}/messages", item.consultation_id),
                    &body,
                )
                .await;
            match sent {
                Ok(stored) => {
                    if let Ok(local) = self.me.db.call(move |c| db::acked(c, user, &stored)).await {
                        self.me.emit(Event::MessageUpdated { message: local });
                    }
                }
                Err(e) if e.is_transient() => return,
                Err(e) => {
                    refuse(&self.me, user, &item.client_msg_id, &e.message).await;
                }
            }
            self.me.emit_outbox().await;
        }
    }
}
