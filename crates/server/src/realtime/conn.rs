//! One realtime connection: a reader loop that handles client frames and a writer task that
//! owns the socket's sending half, fed by one bounded queue.
//!
//! Sends are pipelined: the reader checks each `send` and queues it for the store's writer
//! without waiting for the commit, keeping up to [`MAX_PIPELINE`] in flight, and answers them
//! (`ack` or `error`) in the order they came. Queued in order, they are stored in order; and a
//! refusal that may pass (a rate limit, a failed commit) breaks the connection's [`SendChain`],
//! so every send after it is refused too until the refused one is sent again. A later message
//! never overtakes an earlier one.
//!
//! The writer keeps, per subscribed consultation, the highest seq it has sent. A live message
//! at or below it is a duplicate and skipped; one above the next expected seq means something
//! was missed, and the gap is read from storage first. So each connection sees every message
//! once, in seq order, whatever order the fan-out raced in.

use super::hub::{encode, ConnId, Outgoing};
use crate::app::AppState;
use crate::auth::extract::{authenticate, AuthUser};
use crate::error::Error;
use crate::metrics::METRICS;
use crate::store::{Appended, HistoryRange, Mark, SendChain};
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tara_protocol::realtime::{
    ClientFrame, ServerFrame, CLOSE_AUTH_ENDED, CLOSE_FRAME_TOO_BIG, CLOSE_GOING_AWAY,
    CLOSE_SLOW_CONSUMER, CLOSE_TOO_MANY_BAD_FRAMES,
};
use tara_protocol::{ClientMsgId, ConsultationId, ErrorCode, Timestamp, MAX_FRAME_BYTES};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

const REPLAY_PAGE: usize = 100;
/// Sends one connection keeps in flight; past it the reader waits for answers. Each send
/// answered puts two frames in the connection's outgoing queue (its `message` and its `ack`),
/// so a connection may also keep only a quarter of that queue's length in flight.
pub const MAX_PIPELINE: usize = 256;
/// A broken chain of sends whose refused message is never sent again starts anew after this.
const CHAIN_RESET_AFTER: Duration = Duration::from_secs(60);

/// A send in flight: its id, when it came, the chain it was queued on, and its answer.
type SendAnswer = (
    ClientMsgId,
    Instant,
    Arc<SendChain>,
    Result<Appended, Error>,
);
type InFlight = std::pin::Pin<Box<dyn std::future::Future<Output = SendAnswer> + Send>>;

/// Whether a read failed because the peer sent a frame over the size limit.
fn too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    use tokio_tungstenite::tungstenite::Error as WsError;
    matches!(
        e.source().and_then(|s| s.downcast_ref::<WsError>()),
        Some(WsError::Capacity(_))
    )
}

/// Serves one upgraded connection until it closes.
pub async fn serve(socket: WebSocket, state: AppState, user: AuthUser) {
    let (sink, stream) = socket.split();
    let (tx, rx) = mpsc::channel(state.config.outgoing_queue.max(1));
    let kill = Arc::new(Notify::new());
    // `hello` is queued before the hub knows the connection, so nothing can overtake it.
    let hello = ServerFrame::Hello {
        user_id: user.user_id,
        server_time: Timestamp::now(),
        heartbeat_interval_ms: state.config.heartbeat_interval.as_millis() as u64,
        node: Some(state.config.node_id.clone()),
    };
    let _ = tx.try_send(Outgoing::Frame(encode(&hello)));
    let id = state.hub.register(
        user.user_id,
        user.session_id.clone(),
        tx.clone(),
        kill.clone(),
    );
    let _done = state.shutdown_guard();
    let mut writer = tokio::spawn(write_loop(sink, rx, state.clone()));
    let mut conn = Connection {
        state: state.clone(),
        id,
        user,
        tx,
        kill: kill.clone(),
        bad_frames: VecDeque::new(),
        sends: FuturesOrdered::new(),
        chain: SendChain::new(),
        waiting_for: None,
    };
    let end = conn.read_loop(stream, &mut writer, &kill).await;
    state.hub.unregister(id);
    match end {
        End::Close(code, reason) => {
            // Ask the writer to say goodbye; if its queue is stuck, give up on it.
            let closing = conn.tx.try_send(Outgoing::Close {
                code,
                reason: reason.into(),
            });
            if closing.is_err()
                || tokio::time::timeout(Duration::from_secs(2), &mut writer)
                    .await
                    .is_err()
            {
                writer.abort();
            }
        }
        End::Drop => writer.abort(),
        End::WriterDone => {}
    }
}

enum End {
    Close(u16, &'static str),
    Drop,
    WriterDone,
}

struct Connection {
    state: AppState,
    id: ConnId,
    user: AuthUser,
    tx: mpsc::Sender<Outgoing>,
    kill: Arc<Notify>,
    bad_frames: VecDeque<Instant>,
    /// Sends queued and not yet answered, in the order they came.
    sends: FuturesOrdered<InFlight>,
    /// The chain new sends are queued on.
    chain: Arc<SendChain>,
    /// The send that broke the chain, and when its refusal was answered.
    waiting_for: Option<(ClientMsgId, Instant)>,
}

impl Connection {
    async fn read_loop(
        &mut self,
        mut stream: SplitStream<WebSocket>,
        writer: &mut tokio::task::JoinHandle<()>,
        kill: &Notify,
    ) -> End {
        let cfg = self.state.config.clone();
        let mut shutdown = self.state.shutdown_signal();
        let mut heartbeat = tokio::time::interval(cfg.heartbeat_interval);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        let mut expiry = Box::pin(tokio::time::sleep_until(token_deadline(
            self.user.expires_at,
        )));
        let pipeline = (cfg.outgoing_queue / 4).clamp(1, MAX_PIPELINE);
        loop {
            let room = self.sends.len() < pipeline;
            tokio::select! {
                Some(answer) = self.sends.next(), if !self.sends.is_empty() => {
                    if let Some(end) = self.answer(answer) {
                        return end;
                    }
                }
                frame = stream.next(), if room => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(e)) if too_big(&e) => {
                            // The rest of the frame is still on the wire, so the connection cannot
                            // go on; say why before closing.
                            self.error(&Error::new(ErrorCode::PayloadTooLarge, "a frame over 1 MiB cannot be read; reconnect"), None);
                            return End::Close(CLOSE_FRAME_TOO_BIG, "frame too big");
                        }
                        _ => return End::Drop,
                    };
                    last_heard = Instant::now();
                    match frame {
                        WsMessage::Text(text) => {
                            if let Some(end) = self.on_text(text, &mut expiry).await {
                                return end;
                            }
                        }
                        WsMessage::Binary(bytes) => {
                            let code = if bytes.len() > MAX_FRAME_BYTES { ErrorCode::PayloadTooLarge } else { ErrorCode::ValidationFailed };
                            if let Some(end) = self.bad_frame(code, "frames are JSON text", None) {
                                return end;
                            }
                        }
                        WsMessage::Close(_) => return End::Drop,
                        WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() >= cfg.idle_timeout {
                        return End::Close(1000, "no frames for too long");
                    }
                    if self.tx.try_send(Outgoing::Ping).is_err() {
                        METRICS.slow_consumers.fetch_add(1, Relaxed);
                        return End::Drop;
                    }
                }
                _ = &mut expiry => return End::Close(CLOSE_AUTH_ENDED, "the access token expired"),
                _ = kill.notified() => {
                    METRICS.slow_consumers.fetch_add(1, Relaxed);
                    return End::Close(CLOSE_SLOW_CONSUMER, "too slow to read what was sent");
                }
                _ = AppState::going_away(&mut shutdown) => {
                    // What is in flight is answered before the goodbye.
                    let flush = async { while let Some(a) = self.sends.next().await { self.answer(a); } };
                    let _ = tokio::time::timeout(cfg.shutdown_grace, flush).await;
                    return End::Close(CLOSE_GOING_AWAY, "the server is going away");
                }
                _ = &mut *writer => return End::WriterDone,
            }
        }
    }

    fn send(&self, frame: &ServerFrame) -> bool {
        self.tx.try_send(Outgoing::Frame(encode(frame))).is_ok()
    }

    fn error(&self, e: &Error, reference: Option<ClientMsgId>) {
        METRICS.realtime_errors.fetch_add(1, Relaxed);
        self.send(&ServerFrame::Error {
            code: e.code,
            message: e.message.clone(),
            reference,
        });
    }

    /// Answers a bad frame with an error and counts it.
    fn bad_frame(
        &mut self,
        code: ErrorCode,
        message: &str,
        reference: Option<ClientMsgId>,
    ) -> Option<End> {
        self.error(&Error::new(code, message), reference);
        self.count_bad_frame()
    }

    /// Counts a bad frame; more than the limit within a minute closes the connection with 4008.
    fn count_bad_frame(&mut self) -> Option<End> {
        let now = Instant::now();
        self.bad_frames.push_back(now);
        while self
            .bad_frames
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.bad_frames.pop_front();
        }
        (self.bad_frames.len() > self.state.config.max_bad_frames as usize)
            .then_some(End::Close(CLOSE_TOO_MANY_BAD_FRAMES, "too many bad frames"))
    }

    async fn on_text(
        &mut self,
        text: Utf8Bytes,
        expiry: &mut std::pin::Pin<Box<tokio::time::Sleep>>,
    ) -> Option<End> {
        if text.len() > MAX_FRAME_BYTES {
            return self.bad_frame(
                ErrorCode::PayloadTooLarge,
                "frames may be at most 64 KiB",
                None,
            );
        }
        let frame = match parse_frame(text.as_str()) {
            Ok(f) => f,
            Err(bad) => {
                return self.bad_frame(ErrorCode::ValidationFailed, &bad.message, bad.reference);
            }
        };
        if let ClientFrame::Send {
            client_msg_id,
            consultation_id,
            kind,
            content,
            media_id,
        } = frame
        {
            self.queue_send(client_msg_id, consultation_id, kind, content, media_id)
                .await;
            return None;
        }
        match self.handle(frame, expiry).await {
            Ok(()) => None,
            Err(e) => self.refused(&e, None),
        }
    }

    /// Answers a refused frame; refusals that name what the caller may not touch, or a frame
    /// it got wrong, count as bad frames.
    fn refused(&mut self, e: &Error, reference: Option<ClientMsgId>) -> Option<End> {
        self.error(e, reference);
        if matches!(
            e.code,
            ErrorCode::Forbidden | ErrorCode::ConsultationNotFound | ErrorCode::ValidationFailed
        ) {
            self.count_bad_frame()
        } else {
            None
        }
    }

    /// Checks a send and queues it for the store without waiting for the commit; its answer
    /// goes out, in order, from [`Self::answer`].
    async fn queue_send(
        &mut self,
        client_msg_id: ClientMsgId,
        consultation_id: ConsultationId,
        kind: tara_protocol::messages::MessageKind,
        content: String,
        media_id: Option<tara_protocol::MediaId>,
    ) {
        let started = Instant::now();
        // The refused message sent again starts a new chain; so does a long wait for it.
        if let Some((refused, since)) = &self.waiting_for {
            if *refused == client_msg_id || since.elapsed() > CHAIN_RESET_AFTER {
                self.chain = SendChain::new();
                self.waiting_for = None;
            }
        }
        let chain = self.chain.clone();
        let queued = self
            .state
            .queue_send(
                &self.user,
                &consultation_id,
                client_msg_id.clone(),
                kind,
                content,
                media_id,
                Some(chain.clone()),
            )
            .await;
        let fut: InFlight = match queued {
            Ok(answer) => Box::pin(async move { (client_msg_id, started, chain, answer.await) }),
            Err(e) => {
                chain.break_with(&e);
                Box::pin(std::future::ready((client_msg_id, started, chain, Err(e))))
            }
        };
        self.sends.push_back(fut);
    }

    /// Sends the answer to one send: `ack`, or `error` with its `ref`.
    fn answer(&mut self, (cmid, started, chain, answer): SendAnswer) -> Option<End> {
        match answer {
            Ok(appended) => {
                let m = appended.message;
                let queued = self.send(&ServerFrame::Ack {
                    client_msg_id: m.client_msg_id,
                    consultation_id: m.consultation_id,
                    seq: m.seq,
                    message_id: m.message_id,
                    sent_at: m.sent_at,
                });
                METRICS.send_latency.observe(started.elapsed());
                if !queued {
                    // An ack that cannot be queued is not dropped silently: the connection goes,
                    // and the client sends again (stored once) when it is back.
                    METRICS.slow_consumers.fetch_add(1, Relaxed);
                    return Some(End::Close(
                        CLOSE_SLOW_CONSUMER,
                        "too slow to read what was sent",
                    ));
                }
                None
            }
            Err(e) => {
                // The first refusal of the current chain is the one to wait for.
                if self.waiting_for.is_none()
                    && matches!(e.code, ErrorCode::RateLimited | ErrorCode::Internal)
                    && Arc::ptr_eq(&chain, &self.chain)
                    && chain.broken().is_some()
                {
                    self.waiting_for = Some((cmid.clone(), Instant::now()));
                }
                self.refused(&e, Some(cmid))
            }
        }
    }

    async fn handle(
        &mut self,
        frame: ClientFrame,
        expiry: &mut std::pin::Pin<Box<tokio::time::Sleep>>,
    ) -> Result<(), Error> {
        let state = self.state.clone();
        let me = self.user.user_id;
        match frame {
            ClientFrame::Subscribe {
                consultation_id,
                after_seq,
            } => {
                state.participant_consultation(&consultation_id, me).await?;
                state.hub.subscribe(self.id, &consultation_id);
                let item = Outgoing::Subscribe {
                    consultation_id,
                    after_seq: after_seq.max(0),
                };
                if self.tx.try_send(item).is_err() {
                    // The queue is full: this connection cannot keep up; it will resume later.
                    self.kill.notify_one();
                }
            }
            ClientFrame::Unsubscribe { consultation_id } => {
                state.hub.unsubscribe(self.id, &consultation_id);
                let _ = self.tx.try_send(Outgoing::Unsubscribe { consultation_id });
            }
            ClientFrame::Send { .. } => {
                return Err(Error::internal("a send reached the frame handler"));
            }
            ClientFrame::Typing {
                consultation_id,
                is_typing,
            } => {
                let c = state.participant_consultation(&consultation_id, me).await?;
                if !c.status.accepts_messages() && is_typing {
                    return Err(Error::invalid_state(
                        "this consultation is not open for chat",
                    ));
                }
                if is_typing {
                    state.activity(&consultation_id);
                }
                state
                    .hub
                    .typing(&consultation_id, me, [c.customer_id, c.guide_id], is_typing);
            }
            ClientFrame::Delivered {
                consultation_id,
                up_to_seq,
            } => {
                state
                    .receipt(&consultation_id, me, Mark::Delivered, up_to_seq)
                    .await?;
            }
            ClientFrame::Read {
                consultation_id,
                up_to_seq,
            } => {
                state
                    .receipt(&consultation_id, me, Mark::Read, up_to_seq)
                    .await?;
            }
            ClientFrame::WatchGuides => state.watch_guides(self.id),
            ClientFrame::Auth { access_token } => {
                let fresh = authenticate(&state, &access_token).await?;
                if fresh.user_id != me || fresh.session_id != self.user.session_id {
                    // The connection is registered under its session; revoking that session must close it.
                    return Err(Error::auth("send a token of this connection's own session"));
                }
                expiry.as_mut().reset(token_deadline(fresh.expires_at));
                self.user = fresh;
            }
            ClientFrame::Ping => {
                self.send(&ServerFrame::Pong);
            }
        }
        Ok(())
    }
}

/// A text frame the server could not read as a [`ClientFrame`].
#[derive(Debug)]
pub struct BadFrame {
    /// What is wrong, for the `error` frame.
    pub message: String,
    /// The message a broken `send` still names, so the app can mark it failed.
    pub reference: Option<ClientMsgId>,
}

/// Reads one client text frame (of at most 64 KiB: the caller checks the size first).
pub fn parse_frame(text: &str) -> std::result::Result<ClientFrame, BadFrame> {
    serde_json::from_str(text).map_err(|e| BadFrame {
        message: format!("not a frame Tara knows: {e}"),
        reference: unreadable_send_ref(text),
    })
}

/// The `client_msg_id` of a `send` frame that did not parse as one, if it names one.
fn unreadable_send_ref(text: &str) -> Option<ClientMsgId> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v.get("type")?.as_str()? != "send" {
        return None;
    }
    Some(ClientMsgId::from(v.get("client_msg_id")?.as_str()?))
}

/// The instant a token expiring at `exp` (Unix seconds) dies.
fn token_deadline(exp: i64) -> Instant {
    let left = exp - chrono::Utc::now().timestamp();
    Instant::now() + Duration::from_secs(left.max(0) as u64)
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut rx: mpsc::Receiver<Outgoing>,
    state: AppState,
) {
    let mut cursors: HashMap<ConsultationId, i64> = HashMap::new();
    while let Some(item) = rx.recv().await {
        let ok = match item {
            // Frames are fed and flushed once the queue is empty: one write for a burst.
            Outgoing::Frame(text) => sink.feed(WsMessage::Text(text)).await.is_ok(),
            Outgoing::Message {
                consultation_id,
                seq,
                frame,
            } => {
                match cursors.get(&consultation_id).copied() {
                    Some(cursor) if seq == cursor + 1 => {
                        cursors.insert(consultation_id, seq);
                        sink.feed(WsMessage::Text(frame)).await.is_ok()
                    }
                    Some(cursor) if seq > cursor + 1 => {
                        // Fan-out raced; read what came between from storage first.
                        let range = HistoryRange::Between(cursor, seq);
                        let ok = replay(&mut sink, &state, &consultation_id, range, &mut cursors)
                            .await
                            && sink.send(WsMessage::Text(frame)).await.is_ok();
                        cursors.insert(consultation_id, seq);
                        ok
                    }
                    _ => true,
                }
            }
            Outgoing::Subscribe {
                consultation_id,
                after_seq,
            } => {
                let head = match state.store.consultation(&consultation_id).await {
                    Ok(Some(c)) => c.head_seq,
                    _ => 0,
                };
                cursors.insert(consultation_id.clone(), after_seq.min(head));
                let ok = replay(
                    &mut sink,
                    &state,
                    &consultation_id,
                    HistoryRange::After(after_seq.min(head)),
                    &mut cursors,
                )
                .await;
                let head_seq = cursors
                    .get(&consultation_id)
                    .copied()
                    .unwrap_or(head)
                    .max(head);
                ok && sink
                    .send(WsMessage::Text(encode(&ServerFrame::Subscribed {
                        consultation_id: consultation_id.clone(),
                        head_seq,
                    })))
                    .await
                    .is_ok()
                    && receipts(&mut sink, &state, &consultation_id).await
            }
            Outgoing::CatchUp { consultation_id } => match cursors.get(&consultation_id) {
                // Only what it follows, from what it was last sent.
                Some(&cursor) => {
                    replay(
                        &mut sink,
                        &state,
                        &consultation_id,
                        HistoryRange::After(cursor),
                        &mut cursors,
                    )
                    .await
                        && receipts(&mut sink, &state, &consultation_id).await
                }
                None => true,
            },
            Outgoing::Unsubscribe { consultation_id } => {
                cursors.remove(&consultation_id);
                true
            }
            Outgoing::Ping => sink.send(WsMessage::Ping(Default::default())).await.is_ok(),
            Outgoing::Close { code, reason } => {
                let _ = sink
                    .send(WsMessage::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                let _ = sink.close().await;
                return;
            }
        };
        let ok = ok && (!rx.is_empty() || sink.flush().await.is_ok());
        if !ok {
            return;
        }
    }
}

/// Sends each participant's stored delivery and read progress (those with any), after a
/// subscription or a catch-up: a `receipt` fanned out while this connection was away (a cut
/// link, a node that missed a Redis publication) would otherwise leave its ticks behind for
/// good, since receipts, unlike messages, are not replayed by seq. Found by the chaos run.
async fn receipts(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    state: &AppState,
    cid: &ConsultationId,
) -> bool {
    let Ok(parts) = state.store.participants(cid).await else {
        return true;
    };
    for p in parts {
        if p.delivered_seq == 0 && p.read_seq == 0 {
            continue;
        }
        let frame = ServerFrame::Receipt {
            consultation_id: cid.clone(),
            user_id: p.user.id,
            delivered_seq: p.delivered_seq,
            read_seq: p.read_seq,
        };
        if sink.feed(WsMessage::Text(encode(&frame))).await.is_err() {
            return false;
        }
    }
    true
}

/// Sends stored messages of `range` page by page, moving the cursor; false if the socket failed.
async fn replay(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    state: &AppState,
    cid: &ConsultationId,
    range: HistoryRange,
    cursors: &mut HashMap<ConsultationId, i64>,
) -> bool {
    let mut range = range;
    loop {
        let (page, more) = match state.store.messages(cid, range, REPLAY_PAGE).await {
            Ok(p) => p,
            Err(_) => return false,
        };
        for m in page {
            let seq = m.seq;
            if sink
                .send(WsMessage::Text(encode(&ServerFrame::Message {
                    message: m,
                })))
                .await
                .is_err()
            {
                return false;
            }
            cursors.insert(cid.clone(), seq);
        }
        if !more {
            return true;
        }
        let cursor = cursors.get(cid).copied().unwrap_or(0);
        range = match range {
            HistoryRange::Between(_, hi) => HistoryRange::Between(cursor, hi),
            _ => HistoryRange::After(cursor),
        };
    }
}
