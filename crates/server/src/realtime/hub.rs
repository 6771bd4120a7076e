//! The realtime hub: who is connected, who listens to which consultation, presence with its
//! grace period, typing with its throttle and expiry, and fan-out of committed messages.
//!
//! All state sits behind one std `Mutex` that is never held across an `.await`: every method
//! takes the lock, updates maps and pushes frames into the connections' bounded queues with
//! `try_send`, then returns. A connection whose queue is full is told to drop (it resumes by seq
//! later); the hub never buffers for it.

use crate::metrics::METRICS;
use crate::realtime::bus::{Envelope, Publisher};
use crate::store::{CommitListener, Committed};
use axum::extract::ws::Utf8Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tara_protocol::realtime::ServerFrame;
use tara_protocol::{ConsultationId, SessionId, UserId};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

/// A connection's number within this process.
pub type ConnId = u64;

/// What goes into a connection's queue.
#[derive(Debug)]
pub enum Outgoing {
    /// A serialized frame, sent as is.
    Frame(Utf8Bytes),
    /// A serialized `message` frame; the writer keeps per-consultation order with `seq`.
    Message {
        /// Its consultation.
        consultation_id: ConsultationId,
        /// Its seq.
        seq: i64,
        /// The frame.
        frame: Utf8Bytes,
    },
    /// Replay everything above `after_seq`, then follow live messages.
    Subscribe {
        /// The consultation.
        consultation_id: ConsultationId,
        /// The client's highest contiguous seq.
        after_seq: i64,
    },
    /// Bring this consultation up to the store's head (after the node missed publications).
    CatchUp {
        /// The consultation.
        consultation_id: ConsultationId,
    },
    /// Stop following a consultation.
    Unsubscribe {
        /// The consultation.
        consultation_id: ConsultationId,
    },
    /// A WebSocket ping.
    Ping,
    /// Close with this code, then stop.
    Close {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
}

/// Serializes a frame once for every connection it goes to.
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

struct Conn {
    user: UserId,
    session: SessionId,
    tx: mpsc::Sender<Outgoing>,
    kill: Arc<Notify>,
    subs: HashSet<ConsultationId>,
}

#[derive(Default)]
struct Presence {
    conns: usize,
    pinned: bool,
    online: bool,
    last_seen_ms: Option<i64>,
    generation: u64,
}

struct Typing {
    parts: [UserId; 2],
    shown: bool,
    last_fanout: Option<Instant>,
    pending: Option<bool>,
    trailing: bool,
    expiry_gen: u64,
}

#[derive(Default)]
struct State {
    next_id: ConnId,
    conns: HashMap<ConnId, Conn>,
    by_user: HashMap<UserId, Vec<ConnId>>,
    watchers: HashSet<ConnId>,
    presence: HashMap<UserId, Presence>,
    typing: HashMap<(ConsultationId, UserId), Typing>,
    polls: HashMap<ConsultationId, watch::Sender<i64>>,
    /// The other nodes, when there are any (`--redis-url`).
    publisher: Option<Publisher>,
    /// Who is online on each other node, and when that node was last heard from.
    remote: HashMap<String, (Instant, HashSet<UserId>)>,
}

impl State {
    /// Online on this node (or within its grace), or on any other.
    fn online_anywhere(&self, user: UserId) -> bool {
        self.presence.get(&user).is_some_and(|p| p.online) || self.online_elsewhere(user)
    }

    fn online_elsewhere(&self, user: UserId) -> bool {
        self.remote.values().any(|(_, users)| users.contains(&user))
    }

    /// Tells the other nodes, if any.
    fn publish(&self, envelope: impl FnOnce() -> Envelope) {
        if let Some(p) = &self.publisher {
            p.publish(envelope());
        }
    }

    fn to_users(&self, users: &[UserId], frame: &Utf8Bytes) {
        for user in users {
            for (_, conn) in self.user_conns(*user) {
                deliver(conn, Outgoing::Frame(frame.clone()));
            }
        }
    }

    /// [`State::to_subscribers`] here, and the same on every other node.
    fn to_subscribers_everywhere(&self, cid: &ConsultationId, users: &[UserId], frame: &Utf8Bytes) {
        self.to_subscribers(cid, users, frame);
        self.publish(|| Envelope::Subscribers {
            consultation_id: cid.clone(),
            users: users.to_vec(),
            frame: frame.as_str().to_owned(),
        });
    }

    fn to_watchers(&self, frame: &Utf8Bytes) {
        for id in &self.watchers {
            self.deliver(*id, Outgoing::Frame(frame.clone()));
        }
    }

    fn close_session(&self, session: &SessionId, code: u16, reason: &str) {
        for conn in self.conns.values().filter(|c| &c.session == session) {
            deliver(
                conn,
                Outgoing::Close {
                    code,
                    reason: reason.to_owned(),
                },
            );
        }
    }

    /// A committed message to the subscribed connections of both sides, its unread count to
    /// the other side, and a wake-up to long polls.
    fn committed(&self, c: &Committed) {
        let m = &c.message;
        let frame = encode(&ServerFrame::Message { message: m.clone() });
        for user in [c.customer_id, c.guide_id] {
            for (_, conn) in self.user_conns(user) {
                if conn.subs.contains(&m.consultation_id) {
                    deliver(
                        conn,
                        Outgoing::Message {
                            consultation_id: m.consultation_id.clone(),
                            seq: m.seq,
                            frame: frame.clone(),
                        },
                    );
                }
            }
        }
        if let Some((user, count)) = c.unread {
            let frame = encode(&ServerFrame::Unread {
                consultation_id: m.consultation_id.clone(),
                unread_count: count,
            });
            for (_, conn) in self.user_conns(user) {
                deliver(conn, Outgoing::Frame(frame.clone()));
            }
        }
        if let Some(tx) = self.polls.get(&m.consultation_id) {
            tx.send_replace(m.seq);
        }
    }

    fn deliver(&self, id: ConnId, item: Outgoing) {
        if let Some(conn) = self.conns.get(&id) {
            deliver(conn, item);
        }
    }

    fn user_conns(&self, user: UserId) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.conns.get(id).map(|c| (*id, c)))
    }

    fn to_subscribers(&self, cid: &ConsultationId, users: &[UserId], frame: &Utf8Bytes) {
        for user in users {
            for (_, conn) in self.user_conns(*user) {
                if conn.subs.contains(cid) {
                    deliver(conn, Outgoing::Frame(frame.clone()));
                }
            }
        }
    }
}

fn deliver(conn: &Conn, item: Outgoing) {
    match conn.tx.try_send(item) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        // The connection counts itself as a slow consumer once, when it ends.
        Err(mpsc::error::TrySendError::Full(_)) => conn.kill.notify_one(),
    }
}

/// Settings of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Online this long after the last connection closes.
    pub presence_grace: Duration,
    /// At most one typing fan-out per sender per this interval.
    pub typing_interval: Duration,
    /// Typing ends this long after the last `true`.
    pub typing_expiry: Duration,
}

/// The realtime hub.
pub struct Hub {
    state: Mutex<State>,
    config: HubConfig,
    presence_changes: mpsc::UnboundedSender<UserId>,
}

impl Hub {
    /// A hub; user ids whose presence changed are sent to `presence_changes`.
    pub fn new(config: HubConfig, presence_changes: mpsc::UnboundedSender<UserId>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            config,
            presence_changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; keep serving with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection; the user comes online if they were not.
    pub fn register(
        &self,
        user: UserId,
        session: SessionId,
        tx: mpsc::Sender<Outgoing>,
        kill: Arc<Notify>,
    ) -> ConnId {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.conns.insert(
            id,
            Conn {
                user,
                session,
                tx,
                kill,
                subs: HashSet::new(),
            },
        );
        st.by_user.entry(user).or_default().push(id);
        let p = st.presence.entry(user).or_default();
        p.conns += 1;
        p.generation += 1;
        let came_online = !p.online;
        p.online = true;
        if came_online {
            st.publish(|| Envelope::Presence {
                user_id: user,
                online: true,
            });
            let _ = self.presence_changes.send(user);
        }
        METRICS
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        id
    }

    /// Removes a connection; after the grace period with none left, the user goes offline.
    pub fn unregister(self: &Arc<Self>, id: ConnId) {
        let mut st = self.lock();
        let Some(conn) = st.conns.remove(&id) else {
            return;
        };
        METRICS
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        st.watchers.remove(&id);
        if let Some(list) = st.by_user.get_mut(&conn.user) {
            list.retain(|c| *c != id);
            if list.is_empty() {
                st.by_user.remove(&conn.user);
            }
        }
        let p = st.presence.entry(conn.user).or_default();
        p.conns = p.conns.saturating_sub(1);
        if p.conns > 0 || p.pinned {
            return;
        }
        p.generation += 1;
        let generation = p.generation;
        let user = conn.user;
        let hub = self.clone();
        let grace = self.config.presence_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let mut st = hub.lock();
            let went_offline = match st.presence.get_mut(&user) {
                Some(p) if p.conns == 0 && p.generation == generation && p.online => {
                    p.online = false;
                    p.last_seen_ms = Some(chrono::Utc::now().timestamp_millis());
                    true
                }
                _ => false,
            };
            if went_offline {
                st.publish(|| Envelope::Presence {
                    user_id: user,
                    online: false,
                });
                let _ = hub.presence_changes.send(user);
            }
        });
    }

    /// Keeps a user online with no connection (demo guides).
    pub fn pin_online(&self, user: UserId) {
        let mut st = self.lock();
        let p = st.presence.entry(user).or_default();
        p.pinned = true;
        p.online = true;
    }

    /// Online now, or within the grace period, on this node or any other.
    pub fn is_online(&self, user: UserId) -> bool {
        self.lock().online_anywhere(user)
    }

    /// Whether the user has an open connection right now (here the grace period is not
    /// counted; on another node it is).
    pub fn has_connection(&self, user: UserId) -> bool {
        let st = self.lock();
        st.by_user.get(&user).is_some_and(|c| !c.is_empty()) || st.online_elsewhere(user)
    }

    /// When the user was last connected: now if online, else when they went offline.
    pub fn last_seen_ms(&self, user: UserId) -> Option<i64> {
        let st = self.lock();
        if st.online_elsewhere(user) {
            return Some(chrono::Utc::now().timestamp_millis());
        }
        let p = st.presence.get(&user)?;
        if p.online {
            Some(chrono::Utc::now().timestamp_millis())
        } else {
            p.last_seen_ms
        }
    }

    /// Follows a consultation's messages, typing and receipts on this connection.
    pub fn subscribe(&self, id: ConnId, cid: &ConsultationId) {
        if let Some(c) = self.lock().conns.get_mut(&id) {
            c.subs.insert(cid.clone());
        }
    }

    /// Stops following a consultation.
    pub fn unsubscribe(&self, id: ConnId, cid: &ConsultationId) {
        if let Some(c) = self.lock().conns.get_mut(&id) {
            c.subs.remove(cid);
        }
    }

    /// Sends guide presence changes to this connection from now on; false if it has closed.
    pub fn watch_guides(&self, id: ConnId) -> bool {
        let mut st = self.lock();
        if !st.conns.contains_key(&id) {
            return false;
        }
        st.watchers.insert(id);
        true
    }

    /// A frame to one connection.
    pub fn send_to_conn(&self, id: ConnId, frame: &ServerFrame) {
        self.lock().deliver(id, Outgoing::Frame(encode(frame)));
    }

    /// A frame to every connection of these users, on every node.
    pub fn send_to_users(&self, users: &[UserId], frame: &ServerFrame) {
        let bytes = encode(frame);
        let st = self.lock();
        st.to_users(users, &bytes);
        st.publish(|| Envelope::Users {
            users: users.to_vec(),
            frame: bytes.as_str().to_owned(),
        });
    }

    /// A frame to connections of these users that follow the consultation, on every node.
    pub fn send_to_subscribers(&self, cid: &ConsultationId, users: &[UserId], frame: &ServerFrame) {
        self.lock()
            .to_subscribers_everywhere(cid, users, &encode(frame));
    }

    /// A frame to every connection watching guides, on every node.
    pub fn send_to_watchers(&self, frame: &ServerFrame) {
        let bytes = encode(frame);
        let st = self.lock();
        st.to_watchers(&bytes);
        st.publish(|| Envelope::Watchers {
            frame: bytes.as_str().to_owned(),
        });
    }

    /// Closes every connection of a session (logout, revocation) with `code`, on every node.
    pub fn close_session(&self, session: &SessionId, code: u16, reason: &str) {
        let st = self.lock();
        st.close_session(session, code, reason);
        st.publish(|| Envelope::CloseSession {
            session: session.clone(),
            code,
            reason: reason.to_owned(),
        });
    }

    /// Publishes what this hub fans out to the other nodes from now on.
    pub fn set_publisher(&self, publisher: Publisher) {
        self.lock().publisher = Some(publisher);
    }

    /// Tells the other nodes who is online here.
    pub fn publish_alive(&self) {
        let st = self.lock();
        st.publish(|| Envelope::Alive {
            online: st
                .presence
                .iter()
                .filter(|(_, p)| p.online && !p.pinned)
                .map(|(u, _)| *u)
                .collect(),
        });
    }

    /// Forgets nodes not heard from within `after`; their users who are online nowhere else
    /// now go offline (announced as any presence change is).
    pub fn forget_silent_nodes(&self, after: Duration) {
        let mut st = self.lock();
        let now = Instant::now();
        let dead: Vec<String> = st
            .remote
            .iter()
            .filter(|(_, (seen, _))| now.duration_since(*seen) >= after)
            .map(|(n, _)| n.clone())
            .collect();
        for node in dead {
            tracing::warn!(node = %node, "no word from a node for {} s: taking it for dead", after.as_secs());
            if let Some((_, users)) = st.remote.remove(&node) {
                for user in users {
                    if !st.online_anywhere(user) {
                        let _ = self.presence_changes.send(user);
                    }
                }
            }
        }
    }

    /// Applies what another node published to this node's connections (and publishes nothing).
    pub fn apply_remote(&self, node: &str, envelope: Envelope) {
        let mut st = self.lock();
        let now = Instant::now();
        st.remote
            .entry(node.to_owned())
            .or_insert_with(|| (now, HashSet::new()))
            .0 = now;
        match envelope {
            // The node where it changed announces it; here it only counts.
            Envelope::Presence { user_id, online } => {
                if let Some((_, users)) = st.remote.get_mut(node) {
                    if online {
                        users.insert(user_id);
                    } else {
                        users.remove(&user_id);
                    }
                }
            }
            Envelope::Alive { online } => {
                let online: HashSet<UserId> = online.into_iter().collect();
                let gone: Vec<UserId> = match st.remote.get_mut(node) {
                    Some((_, users)) => {
                        let gone = users.difference(&online).copied().collect();
                        *users = online;
                        gone
                    }
                    None => Vec::new(),
                };
                // An offline that was missed: announced here, if nobody else has them.
                for user in gone {
                    if !st.online_anywhere(user) {
                        let _ = self.presence_changes.send(user);
                    }
                }
            }
            Envelope::Committed { batch } => {
                for c in &batch {
                    st.committed(c);
                }
            }
            Envelope::Users { users, frame } => st.to_users(&users, &frame.into()),
            Envelope::Subscribers {
                consultation_id,
                users,
                frame,
            } => st.to_subscribers(&consultation_id, &users, &frame.into()),
            Envelope::Watchers { frame } => st.to_watchers(&frame.into()),
            Envelope::CloseSession {
                session,
                code,
                reason,
            } => st.close_session(&session, code, &reason),
        }
    }

    /// Has every connection read what the store holds beyond what it was sent, in every
    /// consultation it follows: after this node may have missed publications.
    pub fn catch_up_all(&self) {
        let st = self.lock();
        for conn in st.conns.values() {
            for cid in &conn.subs {
                deliver(
                    conn,
                    Outgoing::CatchUp {
                        consultation_id: cid.clone(),
                    },
                );
            }
        }
    }

    /// Wakes when a message with a higher seq is committed in `cid` (long poll).
    pub fn poll_receiver(&self, cid: &ConsultationId) -> watch::Receiver<i64> {
        let mut st = self.lock();
        st.polls.retain(|_, tx| tx.receiver_count() > 0);
        st.polls
            .entry(cid.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// A typing frame from `user`: fanned out to the other side at most once per interval
    /// (the latest state always follows), and ended by the hub after the expiry.
    pub fn typing(
        self: &Arc<Self>,
        cid: &ConsultationId,
        user: UserId,
        parts: [UserId; 2],
        is_typing: bool,
    ) {
        let now = Instant::now();
        let mut st = self.lock();
        let key = (cid.clone(), user);
        let t = st.typing.entry(key.clone()).or_insert(Typing {
            parts,
            shown: false,
            last_fanout: None,
            pending: None,
            trailing: false,
            expiry_gen: 0,
        });
        if is_typing {
            t.expiry_gen += 1;
            let generation = t.expiry_gen;
            let hub = self.clone();
            let key = key.clone();
            let expiry = self.config.typing_expiry;
            tokio::spawn(async move {
                tokio::time::sleep(expiry).await;
                hub.expire_typing(&key, generation);
            });
        }
        let interval = self.config.typing_interval;
        let free = t
            .last_fanout
            .is_none_or(|at| now.duration_since(at) >= interval);
        if free {
            t.shown = is_typing;
            t.pending = None;
            t.last_fanout = Some(now);
            let parts = t.parts;
            fan_out_typing(&st, cid, user, parts, is_typing);
            return;
        }
        if is_typing == t.shown && t.pending.is_none() && !is_typing {
            return;
        }
        t.pending = Some(is_typing);
        if !t.trailing {
            t.trailing = true;
            let at = t.last_fanout.map_or(now, |l| l + interval);
            let hub = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                hub.flush_typing(&key);
            });
        }
    }

    fn flush_typing(&self, key: &(ConsultationId, UserId)) {
        let mut st = self.lock();
        let Some(t) = st.typing.get_mut(key) else {
            return;
        };
        t.trailing = false;
        let Some(p) = t.pending.take() else { return };
        if p == t.shown && !p {
            return;
        }
        t.shown = p;
        t.last_fanout = Some(Instant::now());
        let parts = t.parts;
        fan_out_typing(&st, &key.0, key.1, parts, p);
    }

    fn expire_typing(&self, key: &(ConsultationId, UserId), generation: u64) {
        let mut st = self.lock();
        let Some(t) = st.typing.get(key) else { return };
        if t.expiry_gen != generation {
            return;
        }
        let (shown, parts) = (t.shown || t.pending == Some(true), t.parts);
        st.typing.remove(key);
        if shown {
            fan_out_typing(&st, &key.0, key.1, parts, false);
        }
    }

    /// Ends a typing state without waiting for the expiry (the user sent a message).
    fn clear_typing(st: &mut State, cid: &ConsultationId, user: UserId) {
        let key = (cid.clone(), user);
        if let Some(t) = st.typing.get(&key) {
            let (shown, parts) = (t.shown || t.pending == Some(true), t.parts);
            st.typing.remove(&key);
            if shown {
                fan_out_typing(st, cid, user, parts, false);
            }
        }
    }

    /// Whether a user is typing in a consultation now.
    pub fn is_typing(&self, cid: &ConsultationId, user: UserId) -> bool {
        self.lock()
            .typing
            .get(&(cid.clone(), user))
            .is_some_and(|t| t.shown)
    }
}

fn fan_out_typing(
    st: &State,
    cid: &ConsultationId,
    user: UserId,
    parts: [UserId; 2],
    is_typing: bool,
) {
    let frame = encode(&ServerFrame::Typing {
        consultation_id: cid.clone(),
        user_id: user,
        is_typing,
    });
    let others: Vec<UserId> = parts.into_iter().filter(|p| *p != user).collect();
    st.to_subscribers_everywhere(cid, &others, &frame);
}

impl CommitListener for Hub {
    fn committed(&self, batch: &[Committed]) {
        METRICS
            .messages_stored
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut st = self.lock();
        for c in batch {
            st.committed(c);
            Hub::clear_typing(&mut st, &c.message.consultation_id, c.message.sender_id);
        }
        st.publish(|| Envelope::Committed {
            batch: batch.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> (Arc<Hub>, mpsc::UnboundedReceiver<UserId>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = HubConfig {
            presence_grace: Duration::from_secs(10),
            typing_interval: Duration::from_millis(500),
            typing_expiry: Duration::from_secs(6),
        };
        (Arc::new(Hub::new(config, tx)), rx)
    }

    fn connect(hub: &Hub, user: i64) -> (ConnId, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(64);
        let id = hub.register(
            UserId(user),
            SessionId(format!("s{user}")),
            tx,
            Arc::new(Notify::new()),
        );
        (id, rx)
    }

    fn typing_frames(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<bool> {
        let mut out = Vec::new();
        while let Ok(item) = rx.try_recv() {
            if let Outgoing::Frame(bytes) = item {
                let v: serde_json::Value = serde_json::from_str(bytes.as_str()).expect("json");
                if v["type"] == "typing" {
                    out.push(v["is_typing"].as_bool().expect("bool"));
                }
            }
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_stays_online_through_the_grace_and_goes_offline_after_it() {
        let (hub, mut changes) = hub();
        let (a, _rx) = connect(&hub, 7);
        assert_eq!(
            changes.try_recv().ok(),
            Some(UserId(7)),
            "coming online is a change"
        );
        hub.unregister(a);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(hub.is_online(UserId(7)), "still online within the grace");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!hub.is_online(UserId(7)));
        assert_eq!(
            changes.try_recv().ok(),
            Some(UserId(7)),
            "going offline is a change"
        );
        assert!(hub.last_seen_ms(UserId(7)).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn reconnecting_within_the_grace_is_no_change_at_all() {
        let (hub, mut changes) = hub();
        let (a, _rx) = connect(&hub, 7);
        let _ = changes.try_recv();
        hub.unregister(a);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (_b, _rx2) = connect(&hub, 7);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(hub.is_online(UserId(7)));
        assert!(changes.try_recv().is_err(), "nobody is told anything");
    }

    #[tokio::test(start_paused = true)]
    async fn typing_is_thinned_to_two_a_second_and_ends_by_itself() {
        let (hub, _changes) = hub();
        let cid = ConsultationId("c".into());
        let (_typist, _rx) = connect(&hub, 1);
        let (reader, mut rx) = connect(&hub, 2);
        hub.subscribe(reader, &cid);
        for _ in 0..20 {
            hub.typing(&cid, UserId(1), [UserId(1), UserId(2)], true);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // 20 frames over one second: at most two fan-outs per second, plus the trailing one.
        let seen = typing_frames(&mut rx);
        assert!(!seen.is_empty() && seen.len() <= 3, "{seen:?}");
        assert!(seen.iter().all(|t| *t));
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(
            typing_frames(&mut rx).last(),
            Some(&false),
            "the server ends it 6 s after the last true"
        );
        assert!(!hub.is_typing(&cid, UserId(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_right_after_a_start_still_arrives() {
        let (hub, _changes) = hub();
        let cid = ConsultationId("c".into());
        let (reader, mut rx) = connect(&hub, 2);
        hub.subscribe(reader, &cid);
        hub.typing(&cid, UserId(1), [UserId(1), UserId(2)], true);
        hub.typing(&cid, UserId(1), [UserId(1), UserId(2)], false);
        assert_eq!(
            typing_frames(&mut rx),
            [true],
            "the stop waits for the throttle"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(typing_frames(&mut rx), [false], "and then it is delivered");
    }
}
