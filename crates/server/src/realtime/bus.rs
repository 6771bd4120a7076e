//! Realtime across nodes, over Redis pub/sub (`--redis-url`).
//!
//! Every node publishes what its hub fans out (committed messages with their unread counts,
//! frames for users, for a consultation's subscribers, for guide watchers, session closes) on
//! one channel, `tara:realtime`, tagged with its node id; every node applies what other nodes
//! published to its own connections. The store stays the truth: a publication is a hint that
//! makes delivery fast, never the only way a message arrives.
//!
//! - A missed publication leaves a gap that the connection's writer notices when the next
//!   message of that consultation arrives (a `seq` that is not the next) and fills from the
//!   store before sending it.
//! - When the subscription comes back after Redis went away, the node brings every subscribed
//!   connection up to the store's head ([`Hub::catch_up_all`]), so even the last message of a
//!   quiet consultation is not left behind.
//! - Publishing never waits on Redis: frames go into an unbounded channel that one task drains;
//!   while Redis is down they are dropped (and counted), and the two rules above repair that.

use crate::metrics::METRICS;
use crate::realtime::hub::Hub;
use crate::store::Committed;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tara_protocol::{ConsultationId, SessionId, UserId};
use tokio::sync::{mpsc, watch};

/// The one channel of the cluster.
pub const CHANNEL: &str = "tara:realtime";
/// How long to wait before connecting to Redis again.
const RETRY: Duration = Duration::from_millis(500);
/// How often a node says who is online on it.
pub const ALIVE_EVERY: Duration = Duration::from_secs(5);
/// A node not heard from for this long is taken for dead: its users go offline (unless they
/// are online elsewhere). With a check every second, a node that dies is noticed within
/// 16 s, the issue's bound being 30.
pub const NODE_DEAD_AFTER: Duration = Duration::from_secs(15);
/// How often silent nodes are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What crosses nodes: each is applied on the other nodes as the hub applies it locally.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Envelope {
    /// Messages committed on the publishing node, in commit order.
    Committed {
        /// The batch.
        batch: Vec<Committed>,
    },
    /// A serialized frame for every connection of these users.
    Users {
        /// Who.
        users: Vec<UserId>,
        /// The frame, as sent.
        frame: String,
    },
    /// A serialized frame for these users' connections that follow a consultation.
    Subscribers {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Who.
        users: Vec<UserId>,
        /// The frame, as sent.
        frame: String,
    },
    /// A serialized frame for every connection watching guides.
    Watchers {
        /// The frame, as sent.
        frame: String,
    },
    /// A user came online on the publishing node, or went offline there (after the grace).
    Presence {
        /// Who.
        user_id: UserId,
        /// Online on that node now.
        online: bool,
    },
    /// Every user online on the publishing node, sent every [`ALIVE_EVERY`]: how a node that
    /// joined late, or missed publications, learns who is online elsewhere, and how the others
    /// notice a node that died without a word ([`NODE_DEAD_AFTER`] of silence).
    Alive {
        /// Who is online there.
        online: Vec<UserId>,
    },
    /// Close every connection of a session.
    CloseSession {
        /// The session.
        session: SessionId,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
}

/// An envelope with the node that sent it.
#[derive(Debug, Serialize, Deserialize)]
struct Publication {
    node: String,
    #[serde(flatten)]
    envelope: Envelope,
}

/// The publishing side the hub holds.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Envelope>,
}

impl Publisher {
    /// Queues an envelope for the other nodes; never waits.
    pub fn publish(&self, envelope: Envelope) {
        let _ = self.tx.send(envelope);
    }
}

/// Whether this node's Redis link answers, as `/api/v1/health` reports it.
#[derive(Clone)]
pub struct BusHealth(watch::Receiver<Option<String>>);

impl BusHealth {
    /// `None` when connected, else why not.
    pub fn error(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Follows changes.
    pub fn watch(&self) -> watch::Receiver<Option<String>> {
        self.0.clone()
    }
}

/// Connects this node's hub to the cluster: starts the publishing and the subscribing task.
/// Fails when the URL is not a Redis URL; a Redis that does not answer yet is retried.
pub fn start(
    url: &str,
    node: String,
    hub: Arc<Hub>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(BusHealth, Vec<tokio::task::JoinHandle<()>>)> {
    let client = redis::Client::open(url)
        .map_err(|e| anyhow::anyhow!("--redis-url {url:?} is not a Redis URL: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    hub.set_publisher(Publisher { tx });
    let (health_tx, health_rx) = watch::channel(Some("not connected yet".to_owned()));
    let publish = tokio::spawn(publish_loop(
        client.clone(),
        node.clone(),
        rx,
        shutdown.clone(),
    ));
    let subscribe = tokio::spawn(subscribe_loop(
        client,
        node,
        hub.clone(),
        health_tx,
        shutdown.clone(),
    ));
    let alive = tokio::spawn(alive_loop(hub, shutdown));
    Ok((BusHealth(health_rx), vec![publish, subscribe, alive]))
}

/// Says who is online here every [`ALIVE_EVERY`], and forgets nodes gone silent.
async fn alive_loop(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = alive.tick() => hub.publish_alive(),
            _ = sweep.tick() => hub.forget_silent_nodes(NODE_DEAD_AFTER),
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

async fn publish_loop(
    client: redis::Client,
    node: String,
    mut rx: mpsc::UnboundedReceiver<Envelope>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    // While Redis is away, one connection attempt per RETRY, not one per publication.
    let mut next_attempt = tokio::time::Instant::now();
    loop {
        let envelope = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if conn.is_none() && tokio::time::Instant::now() >= next_attempt {
            conn = client.get_multiplexed_async_connection().await.ok();
            next_attempt = tokio::time::Instant::now() + RETRY;
        }
        let Some(c) = conn.as_mut() else {
            // Redis is away: this one is dropped; gap fill and catch-up repair it.
            METRICS.bus_dropped.fetch_add(1, Relaxed);
            continue;
        };
        let payload = match serde_json::to_string(&Publication {
            node: node.clone(),
            envelope,
        }) {
            Ok(p) => p,
            Err(_) => continue,
        };
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .query_async(c)
            .await;
        match sent {
            Ok(_) => {
                METRICS.bus_published.fetch_add(1, Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "publishing to Redis failed");
                METRICS.bus_dropped.fetch_add(1, Relaxed);
                conn = None;
            }
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    node: String,
    hub: Arc<Hub>,
    health: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut first = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let pubsub = async {
            let mut p = client.get_async_pubsub().await?;
            p.subscribe(CHANNEL).await?;
            redis::RedisResult::Ok(p)
        };
        let mut pubsub = match pubsub.await {
            Ok(p) => p,
            Err(e) => {
                health.send_replace(Some(e.to_string()));
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => continue,
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        };
        health.send_replace(None);
        if !first {
            // What was published while this node was not listening is in the store.
            tracing::info!(node = %node, "Redis is back: bringing every subscribed connection up to the store");
            hub.catch_up_all();
        }
        // Who is online here, for nodes that started or lost track meanwhile.
        hub.publish_alive();
        first = false;
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                m = messages.next() => m,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let Some(msg) = msg else { break };
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<Publication>(&payload) {
                Ok(p) if p.node == node => {}
                Ok(p) => {
                    METRICS.bus_received.fetch_add(1, Relaxed);
                    hub.apply_remote(&p.node, p.envelope);
                }
                Err(e) => tracing::warn!(error = %e, "an unreadable publication on {CHANNEL}"),
            }
        }
        drop(messages);
        health.send_replace(Some("the Redis subscription ended".to_owned()));
        tracing::warn!(node = %node, "lost the Redis subscription; reconnecting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_reads_back_as_it_was_written() {
        let p = Publication {
            node: "a:1".into(),
            envelope: Envelope::Subscribers {
                consultation_id: ConsultationId("c".into()),
                users: vec![UserId(1), UserId(2)],
                frame: r#"{"type":"typing"}"#.into(),
            },
        };
        let text = serde_json::to_string(&p).expect("json");
        assert!(text.contains(r#""op":"subscribers""#), "{text}");
        let back: Publication = serde_json::from_str(&text).expect("back");
        assert_eq!(back.node, "a:1");
        match back.envelope {
            Envelope::Subscribers { users, frame, .. } => {
                assert_eq!(users, vec![UserId(1), UserId(2)]);
                assert_eq!(frame, r#"{"type":"typing"}"#);
            }
            other => panic!("{other:?}"),
        }
    }
}
