//! Pushes to phones whose app is not connected: a new request for a guide, a new message for
//! either side.
//!
//! # Layout
//!
//! - [`PushSender`]: one provider; [`fcm::Fcm`] (Android) and [`apns::Apns`] (iOS) implement it.
//! - [`PushQueue`]: what the request and message paths hold. `offer` never waits: it puts an
//!   [`Event`] into a bounded queue, or drops it (and counts it) when the queue is full.
//! - [`run`]: the task behind the queue. It looks up the recipient's tokens and sends, at most
//!   `concurrency` at a time. Events for one recipient and consultation are collapsed: while a
//!   push for them is on its way, newer events replace each other and only the latest follows.
//!   Providers collapse too: every push carries the consultation id as its collapse key.
//! - [`CommitFanout`]: the storage's commit listener: the hub first, then a message event for
//!   a recipient with no open connection.
//!
//! A device whose token was registered with `private_previews` gets pushes that say only
//! that something happened, never message text or names.

pub mod apns;
pub mod fcm;
pub mod jwt;

use crate::metrics::METRICS;
use crate::realtime::hub::Hub;
use crate::store::{CommitListener, Committed, PushTokenRow, Store};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tara_protocol::devices::PushPlatform;
use tara_protocol::messages::{Message, MessageKind, SenderType};
use tara_protocol::{ConsultationId, UserId};
use tokio::sync::{mpsc, Semaphore};

/// What a push is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// A customer asks the guide for a consultation.
    Request,
    /// A new message.
    Message,
}

impl PushKind {
    /// As written in the push's data (`type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Message => "message",
        }
    }
}

/// One push to one device, as the provider shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// What it is about.
    pub kind: PushKind,
    /// Which consultation: the app opens it, and providers collapse by it.
    pub consultation_id: ConsultationId,
    /// The notification's title.
    pub title: String,
    /// The notification's text.
    pub body: String,
    /// Worth nothing after this long (a request times out); None: the provider's default.
    pub expires_in: Option<Duration>,
}

impl Push {
    /// The collapse key: one notification per consultation on the device.
    pub fn collapse_id(&self) -> &str {
        self.consultation_id.as_str()
    }
}

/// Why a push did not go out.
#[derive(Debug)]
pub enum PushError {
    /// The provider says the token is dead (app uninstalled, token rotated): forget it.
    Unregistered,
    /// Anything else; the token stays.
    Failed(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unregistered => f.write_str("the provider no longer knows this token"),
            Self::Failed(why) => f.write_str(why),
        }
    }
}

/// A push provider.
#[async_trait]
pub trait PushSender: Send + Sync + 'static {
    /// Delivers `push` to the device with `token`.
    async fn send(&self, token: &str, push: &Push) -> Result<(), PushError>;
}

/// Something that may deserve a push.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request for `guide`.
    Request {
        /// The consultation.
        consultation_id: ConsultationId,
        /// Who is asked.
        guide: UserId,
        /// Who asks.
        customer: UserId,
        /// When the request times out.
        expires_in: Duration,
    },
    /// A new message for `recipient`.
    Message {
        /// Who should hear of it.
        recipient: UserId,
        /// The message.
        message: Message,
    },
}

impl Event {
    fn recipient(&self) -> UserId {
        match self {
            Self::Request { guide, .. } => *guide,
            Self::Message { recipient, .. } => *recipient,
        }
    }

    fn consultation(&self) -> &ConsultationId {
        match self {
            Self::Request {
                consultation_id, ..
            } => consultation_id,
            Self::Message { message, .. } => &message.consultation_id,
        }
    }
}

/// The sending side of the push queue. Cheap to clone; a queue with no provider behind it
/// takes nothing.
#[derive(Clone)]
pub struct PushQueue {
    tx: Option<mpsc::Sender<Event>>,
}

impl PushQueue {
    /// A queue of `capacity` events and its receiving end; `enabled: false` gives one that
    /// drops everything (no provider is configured).
    pub fn new(capacity: usize, enabled: bool) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx: enabled.then_some(tx),
            },
            rx,
        )
    }

    /// Whether any provider is behind the queue.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues an event if there is room; never waits.
    pub fn offer(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                METRICS.pushes_dropped.fetch_add(1, Relaxed);
                tracing::debug!("push queue full; a push was dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The providers there are, by platform.
#[derive(Clone, Default)]
pub struct Providers {
    /// Android.
    pub fcm: Option<Arc<dyn PushSender>>,
    /// iOS.
    pub apns: Option<Arc<dyn PushSender>>,
}

impl Providers {
    /// Whether there is at least one.
    pub fn any(&self) -> bool {
        self.fcm.is_some() || self.apns.is_some()
    }

    fn for_platform(&self, p: PushPlatform) -> Option<&Arc<dyn PushSender>> {
        match p {
            PushPlatform::Android => self.fcm.as_ref(),
            PushPlatform::Ios => self.apns.as_ref(),
        }
    }
}

/// The providers the settings name.
pub fn providers(config: &crate::config::PushConfig) -> anyhow::Result<Providers> {
    let fcm = match &config.fcm {
        Some(c) => Some(Arc::new(fcm::Fcm::new(c, config.timeout)?) as Arc<dyn PushSender>),
        None => None,
    };
    let apns = match &config.apns {
        Some(c) => Some(Arc::new(apns::Apns::new(c, config.timeout)?) as Arc<dyn PushSender>),
        None => None,
    };
    Ok(Providers { fcm, apns })
}

type Key = (UserId, ConsultationId);

/// Sends what comes through the queue until it closes. `forgotten` hears of users one of
/// whose tokens the provider declared dead (a guide may no longer be reachable).
pub async fn run(
    mut rx: mpsc::Receiver<Event>,
    store: Arc<dyn Store>,
    providers: Providers,
    concurrency: usize,
    forgotten: mpsc::UnboundedSender<UserId>,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    // Per recipient and consultation being sent: the newest event that came meanwhile.
    // Held only to look up or swap an entry, never across an await.
    let busy: Arc<Mutex<HashMap<Key, Option<Event>>>> = Arc::default();
    while let Some(event) = rx.recv().await {
        let key = (event.recipient(), event.consultation().clone());
        {
            let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(waiting) = busy.get_mut(&key) {
                if waiting.replace(event).is_some() {
                    METRICS.pushes_collapsed.fetch_add(1, Relaxed);
                }
                continue;
            }
            busy.insert(key.clone(), None);
        }
        // Waiting for a permit here (not in the task) bounds the tasks too: while all are
        // busy the queue fills, and `offer` starts dropping.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (store, providers, busy, forgotten) = (
            store.clone(),
            providers.clone(),
            busy.clone(),
            forgotten.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let mut event = event;
            loop {
                deliver(&*store, &providers, &forgotten, &event).await;
                let mut map = busy.lock().unwrap_or_else(|e| e.into_inner());
                match map.get_mut(&key).and_then(Option::take) {
                    Some(next) => event = next,
                    None => {
                        map.remove(&key);
                        return;
                    }
                }
            }
        });
    }
}

async fn deliver(
    store: &dyn Store,
    providers: &Providers,
    forgotten: &mpsc::UnboundedSender<UserId>,
    event: &Event,
) {
    let recipient = event.recipient();
    let tokens = match store.push_tokens(recipient).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(user = %recipient, error = %e, "cannot read push tokens");
            return;
        }
    };
    let tokens: Vec<(PushTokenRow, Arc<dyn PushSender>)> = tokens
        .into_iter()
        .filter_map(|t| providers.for_platform(t.platform).cloned().map(|p| (t, p)))
        .collect();
    if tokens.is_empty() {
        return;
    }
    let from = match event {
        Event::Request { customer, .. } => *customer,
        Event::Message { message, .. } => message.sender_id,
    };
    let name = match store.user(from).await {
        Ok(Some(u)) => u.display_name,
        _ => "Someone".to_owned(),
    };
    for (token, provider) in tokens {
        let push = compose(event, &name, token.private_previews);
        match provider.send(&token.token, &push).await {
            Ok(()) => {
                METRICS.pushes_sent.fetch_add(1, Relaxed);
            }
            Err(PushError::Unregistered) => {
                tracing::info!(user = %recipient, platform = token.platform.as_str(), "a push token is dead; forgetting it");
                if let Err(e) = store.delete_push_token(None, &token.token).await {
                    tracing::warn!(error = %e, "cannot forget a dead push token");
                }
                let _ = forgotten.send(recipient);
            }
            Err(PushError::Failed(why)) => {
                METRICS.pushes_failed.fetch_add(1, Relaxed);
                tracing::warn!(user = %recipient, platform = token.platform.as_str(), "push failed: {why}");
            }
        }
    }
}

/// The most characters of a message a push shows.
const PREVIEW_CHARS: usize = 160;

/// What one device is shown. With private previews: no text and no names.
pub fn compose(event: &Event, from_name: &str, private_previews: bool) -> Push {
    let (kind, title, body, expires_in) = match event {
        Event::Request { expires_in, .. } => {
            let (title, body) = if private_previews {
                ("Tara".to_owned(), "New consultation request".to_owned())
            } else {
                (
                    "New consultation request".to_owned(),
                    format!("{from_name} would like a chat consultation"),
                )
            };
            (PushKind::Request, title, body, Some(*expires_in))
        }
        Event::Message { message, .. } => {
            let (title, body) = if private_previews {
                ("Tara".to_owned(), "New message".to_owned())
            } else {
                let body = match message.kind {
                    MessageKind::Image => "Sent a picture".to_owned(),
                    _ => preview(&message.content),
                };
                (from_name.to_owned(), body)
            };
            (PushKind::Message, title, body, None)
        }
    };
    Push {
        kind,
        consultation_id: event.consultation().clone(),
        title,
        body,
        expires_in,
    }
}

fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}

/// The commit listener: the hub fans committed messages out, then each user message whose
/// recipient has no open connection is offered to the push queue. Runs on the storage's
/// writer thread, so it only takes the hub's lock and `try_send`s.
pub struct CommitFanout {
    /// The realtime hub.
    pub hub: Arc<Hub>,
    /// The push queue.
    pub push: PushQueue,
}

impl CommitListener for CommitFanout {
    fn committed(&self, batch: &[Committed]) {
        self.hub.committed(batch);
        if !self.push.enabled() {
            return;
        }
        for c in batch {
            let m = &c.message;
            let recipient = match m.sender_type {
                SenderType::Customer => c.guide_id,
                SenderType::Guide => c.customer_id,
                SenderType::System => continue,
            };
            if !self.hub.has_connection(recipient) {
                self.push.offer(Event::Message {
                    recipient,
                    message: m.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tara_protocol::{ClientMsgId, MessageId, Timestamp};

    fn message(kind: MessageKind, content: &str) -> Event {
        Event::Message {
            recipient: UserId(2),
            message: Message {
                message_id: MessageId("m".into()),
                consultation_id: ConsultationId("c1".into()),
                seq: 3,
                client_msg_id: ClientMsgId("x".into()),
                sender_id: UserId(1),
                sender_type: SenderType::Customer,
                kind,
                content: content.into(),
                media: None,
                sent_at: Timestamp::from_millis(0),
                is_deleted: false,
            },
        }
    }

    #[test]
    fn a_message_push_shows_the_sender_and_the_start_of_the_text() {
        let long = "ä".repeat(200);
        let p = compose(&message(MessageKind::Text, &long), "Asha", false);
        assert_eq!((p.kind, p.title.as_str()), (PushKind::Message, "Asha"));
        assert_eq!(p.body.chars().count(), PREVIEW_CHARS + 1);
        assert_eq!(p.collapse_id(), "c1");
        let img = compose(&message(MessageKind::Image, ""), "Asha", false);
        assert_eq!(img.body, "Sent a picture");
    }

    #[test]
    fn private_previews_leave_out_the_text_and_the_name() {
        let p = compose(
            &message(MessageKind::Text, "my secret question"),
            "Asha",
            true,
        );
        assert!(!p.body.contains("secret") && !p.title.contains("secret"));
        assert!(!p.body.contains("Asha") && !p.title.contains("Asha"));
        let r = compose(
            &Event::Request {
                consultation_id: ConsultationId("c1".into()),
                guide: UserId(2),
                customer: UserId(1),
                expires_in: Duration::from_secs(120),
            },
            "Ravi",
            true,
        );
        assert!(!r.body.contains("Ravi") && !r.title.contains("Ravi"));
        assert_eq!(r.expires_in, Some(Duration::from_secs(120)));
    }
}
