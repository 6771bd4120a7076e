//! The application: shared state and the operations that touch both storage and the hub
//! (sending, receipts, consultation transitions, presence). Routes and realtime frames are
//! thin translations onto these.

use crate::auth::sms::{ConsoleSms, NoSms, SmsSender};
use crate::auth::sms_gateway::HttpSms;
use crate::auth::tokens::Keys;
use crate::auth::AuthUser;
use crate::billing::payments::{DevProvider, PaymentProvider, WebhookProvider};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::METRICS;
use crate::push::{self, CommitFanout, PushQueue};
use crate::ratelimit::{RateLimiter, Slots};
use crate::realtime::hub::{ConnId, Hub, HubConfig};
use crate::state::Action;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    Actor, Admission, Appended, GuideRow, Mark, NewMessage, SendChain, Store, Tariff, User,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tara_protocol::auth::UserType;
use tara_protocol::consultations::{Consultation, ConsultationEvent, ConsultationStatus};
use tara_protocol::guides::{Guide, PresenceStatus};
use tara_protocol::messages::MessageKind;
use tara_protocol::realtime::ServerFrame;
use tara_protocol::{ClientMsgId, ConsultationId, MediaId, Timestamp, UserId, MAX_TEXT_CHARS};
use tokio::sync::{mpsc, watch};

/// Shared state, cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Everything the handlers share.
pub struct App {
    /// Settings.
    pub config: Config,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Realtime fan-out and presence.
    pub hub: Arc<Hub>,
    /// Signing keys.
    pub keys: Keys,
    /// Delivers login codes.
    pub sms: Arc<dyn SmsSender>,
    /// Pushes to phones with no open connection.
    pub push: PushQueue,
    /// Message rate per sender per consultation.
    pub limiter: Arc<RateLimiter<(UserId, ConsultationId)>>,
    /// Login codes asked for per IP address.
    pub otp_per_ip: RateLimiter<IpAddr>,
    /// Login attempts per IP address.
    pub logins_per_ip: RateLimiter<IpAddr>,
    /// Realtime connections held per user.
    pub connections_per_user: Slots<UserId>,
    /// Realtime connections held per IP address.
    pub connections_per_ip: Slots<IpAddr>,
    /// Where uploaded images live.
    pub media_dir: PathBuf,
    /// Where recharges go; `None` when none is set up (recharges are refused).
    pub payments: Option<Arc<dyn PaymentProvider>>,
    /// The balance timer of each running consultation, woken when its balance moves.
    pub(crate) timers: Mutex<HashMap<ConsultationId, Arc<tokio::sync::Notify>>>,
    /// Running consultations whose silence timer runs, and when each was last touched.
    pub(crate) quiet: Mutex<HashMap<ConsultationId, tokio::time::Instant>>,
    presence_tx: mpsc::UnboundedSender<UserId>,
    watch_tx: mpsc::UnboundedSender<ConnId>,
    shutdown_tx: watch::Sender<bool>,
    // Each realtime connection holds a clone; shutdown waits until all are dropped.
    done_tx: Mutex<Option<mpsc::Sender<()>>>,
    done_rx: tokio::sync::Mutex<mpsc::Receiver<()>>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The link to the other nodes, when `--redis-url` is set.
    pub(crate) bus: std::sync::OnceLock<crate::realtime::bus::BusHealth>,
}

impl AppState {
    pub(crate) fn arc(&self) -> &Arc<App> {
        &self.0
    }

    pub(crate) fn from_arc(app: Arc<App>) -> Self {
        AppState(app)
    }

    /// Opens storage, loads keys, seeds the demo, re-arms request timeouts.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let media_dir = config.data_dir.join("media");
        std::fs::create_dir_all(&media_dir)?;
        let keys = Keys::load_or_create(&config.data_dir)?;
        let (presence_tx, presence_rx) = mpsc::unbounded_channel();
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(
            HubConfig {
                presence_grace: config.presence_grace,
                typing_interval: config.typing_interval,
                typing_expiry: config.typing_expiry,
            },
            presence_tx.clone(),
        ));
        let tariff = Tariff {
            commission_percent: config.commission_percent,
            currency: config.currency.clone(),
            minute_ms: config.billing_minute.as_millis().max(1) as i64,
        };
        let providers = push::providers(&config.push)?;
        let (push_queue, push_rx) = PushQueue::new(config.push.queue, providers.any());
        let fanout = Arc::new(CommitFanout {
            hub: hub.clone(),
            push: push_queue.clone(),
        });
        let store: Arc<dyn Store> = match &config.database_url {
            Some(url) => Arc::new(
                PostgresStore::open(url, fanout)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot open the PostgreSQL store: {e}"))?
                    .with_tariff(tariff),
            ),
            None => Arc::new(SqliteStore::open(&config.data_dir, fanout)?.with_tariff(tariff)),
        };
        let payments: Option<Arc<dyn PaymentProvider>> = match &config.payment_webhook_secret {
            Some(secret) => Some(Arc::new(WebhookProvider::new(secret.as_bytes()))),
            None if config.dev => Some(Arc::new(DevProvider)),
            None => None,
        };
        let sms: Arc<dyn SmsSender> = match &config.sms {
            Some(gateway) => Arc::new(HttpSms::new(gateway.clone())?),
            None if config.dev => Arc::new(ConsoleSms),
            None => Arc::new(NoSms),
        };
        let (done_tx, done_rx) = mpsc::channel(1);
        let state = AppState(Arc::new(App {
            limiter: Arc::new(RateLimiter::new(
                config.message_burst,
                config.messages_per_minute,
            )),
            otp_per_ip: RateLimiter::per_hour(config.otp_per_ip_burst, config.otp_per_ip_per_hour),
            logins_per_ip: RateLimiter::new(
                config.logins_per_ip_burst,
                config.logins_per_ip_per_minute,
            ),
            connections_per_user: Slots::new(config.max_connections_per_user),
            connections_per_ip: Slots::new(config.max_connections_per_ip),
            config,
            store,
            hub,
            keys,
            sms,
            push: push_queue,
            media_dir,
            payments,
            timers: Mutex::new(HashMap::new()),
            quiet: Mutex::new(HashMap::new()),
            presence_tx,
            watch_tx,
            shutdown_tx: watch::channel(false).0,
            done_tx: Mutex::new(Some(done_tx)),
            done_rx: tokio::sync::Mutex::new(done_rx),
            background: Mutex::new(Vec::new()),
            bus: std::sync::OnceLock::new(),
        }));
        if let Some(url) = &state.config.redis_url {
            let (health, tasks) = crate::realtime::bus::start(
                url,
                state.config.node_id.clone(),
                state.hub.clone(),
                state.shutdown_signal(),
            )?;
            // Serve once the cluster can hear this node, as storage is opened before serving;
            // a Redis that does not answer within seconds is retried while the node serves
            // (and says so on /api/v1/health).
            let mut connected = health.watch();
            if tokio::time::timeout(Duration::from_secs(3), connected.wait_for(|e| e.is_none()))
                .await
                .is_err()
            {
                tracing::warn!(error = ?health.error(), "Redis does not answer yet; serving, and retrying");
            }
            let _ = state.bus.set(health);
            if let Ok(mut bg) = state.background.lock() {
                bg.extend(tasks);
            }
        }
        if state.config.demo {
            crate::demo::seed(&state).await?;
        }
        let presence = tokio::spawn(presence_loop(
            Arc::downgrade(&state.0),
            presence_rx,
            watch_rx,
        ));
        let pushing = tokio::spawn(push::run(
            push_rx,
            state.store.clone(),
            providers,
            state.config.push.concurrency,
            state.presence_tx.clone(),
        ));
        if let Ok(mut bg) = state.background.lock() {
            bg.push(presence);
            bg.push(pushing);
        }
        for c in state.store.requested_consultations().await? {
            let age = Timestamp::now().millis() - c.created_at.millis();
            let left = state
                .config
                .request_timeout
                .saturating_sub(Duration::from_millis(age.max(0) as u64));
            state.schedule_timeout(c.consultation_id, left);
        }
        // Balance timers: one whose end passed while the server was down ends it at once,
        // billed up to that end.
        for c in state.store.running_consultations().await? {
            state.arm_balance_timer(&c);
            state.arm_quiet_timer(&c);
        }
        let notices = tokio::spawn(crate::billing::live::watch_notices(Arc::downgrade(
            &state.0,
        )));
        if let Ok(mut bg) = state.background.lock() {
            bg.push(notices);
        }
        Ok(state)
    }

    /// A guard each realtime connection holds until it ends.
    pub fn shutdown_guard(&self) -> Option<mpsc::Sender<()>> {
        self.done_tx.lock().ok().and_then(|g| g.clone())
    }

    /// Changes to `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn going_away(signal: &mut watch::Receiver<bool>) {
        let _ = signal.wait_for(|going| *going).await;
    }

    /// Tells every connection and long poll to finish.
    pub fn begin_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    /// Waits for realtime connections to close and for storage to commit what it holds.
    pub async fn finish_shutdown(&self) {
        self.begin_shutdown();
        if let Ok(mut g) = self.done_tx.lock() {
            g.take();
        }
        let mut rx = self.done_rx.lock().await;
        let _ = tokio::time::timeout(self.config.shutdown_grace, rx.recv()).await;
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        if let Ok(mut bg) = self.background.lock() {
            for task in bg.drain(..) {
                task.abort();
            }
        }
    }

    /// The consultation if `user` takes part in it: `CONSULTATION_NOT_FOUND` or `FORBIDDEN` otherwise.
    pub async fn participant_consultation(
        &self,
        id: &ConsultationId,
        user: UserId,
    ) -> Result<Consultation> {
        let c = self
            .store
            .consultation(id)
            .await?
            .ok_or_else(Error::consultation_not_found)?;
        crate::store::require_side(c.customer_id, c.guide_id, user)?;
        Ok(c)
    }

    /// Stores a message from `user` once per client_msg_id; the hub fans it out after commit.
    pub async fn send_message(
        &self,
        user: &AuthUser,
        cid: &ConsultationId,
        client_msg_id: ClientMsgId,
        kind: MessageKind,
        content: String,
        media_id: Option<MediaId>,
    ) -> Result<Appended> {
        self.queue_send(user, cid, client_msg_id, kind, content, media_id, None)
            .await?
            .await
    }

    /// Checks a send and queues it for the writer, returning once it is queued: the future
    /// returned gives the answer after the commit. Sends queued one after another on `chain`
    /// are stored in that order or refused (see [`SendChain`]); a realtime connection keeps
    /// many in flight this way.
    #[allow(clippy::too_many_arguments)]
    pub async fn queue_send(
        &self,
        user: &AuthUser,
        cid: &ConsultationId,
        client_msg_id: ClientMsgId,
        kind: MessageKind,
        content: String,
        media_id: Option<MediaId>,
        chain: Option<Arc<SendChain>>,
    ) -> Result<impl std::future::Future<Output = Result<Appended>> + Send + 'static> {
        let cmid = client_msg_id.as_str();
        if cmid.trim().is_empty() || cmid.len() > 100 {
            return Err(Error::validation(
                "client_msg_id must be 1 to 100 characters",
            ));
        }
        let content = content.trim().to_owned();
        let chars = content.chars().count();
        match kind {
            MessageKind::Text if chars == 0 => {
                return Err(Error::validation("a message cannot be empty"))
            }
            MessageKind::Text if media_id.is_some() => {
                return Err(Error::validation("a text message carries no media_id"))
            }
            MessageKind::Image if media_id.is_none() => {
                return Err(Error::validation(
                    "an image message needs the media_id of an upload",
                ))
            }
            MessageKind::System => {
                return Err(Error::validation("only the server writes system messages"))
            }
            _ => {}
        }
        if chars > MAX_TEXT_CHARS {
            return Err(Error::validation(format!(
                "a message may be at most {MAX_TEXT_CHARS} characters; this one has {chars}"
            ))
            .with_details(serde_json::json!({ "max": MAX_TEXT_CHARS, "length": chars })));
        }
        // The rate limit is asked inside the write, after duplicates are answered: a retry of
        // something already stored is never refused for speed, and a refused send costs nothing.
        let limiter = self.limiter.clone();
        let key = (user.user_id, cid.clone());
        let link = chain.clone();
        let admit: Admission = Box::new(move || {
            if let Some(refused) = link.as_ref().and_then(|c| c.broken()) {
                return Err(refused);
            }
            limiter.take(&key).map_err(|wait| {
                Error::rate_limited(wait, "you are sending messages too fast; wait a moment")
            })
        });
        let new = NewMessage {
            consultation_id: cid.clone(),
            sender_id: user.user_id,
            client_msg_id,
            kind,
            content,
            media_id,
            chain,
        };
        let pending = self
            .store
            .queue_message(new, Timestamp::now().millis(), admit)
            .await?;
        Ok(async move {
            let appended = pending.wait().await?;
            if appended.duplicate {
                METRICS.messages_duplicate.fetch_add(1, Relaxed);
            }
            Ok(appended)
        })
    }

    /// Moves a delivered or read mark and tells whoever follows the consultation.
    pub async fn receipt(
        &self,
        cid: &ConsultationId,
        user: UserId,
        mark: Mark,
        up_to: i64,
    ) -> Result<()> {
        let c = self.participant_consultation(cid, user).await?;
        let p = self.store.mark(cid, user, mark, up_to).await?;
        if !p.changed {
            return Ok(());
        }
        let frame = ServerFrame::Receipt {
            consultation_id: cid.clone(),
            user_id: user,
            delivered_seq: p.delivered_seq,
            read_seq: p.read_seq,
        };
        self.hub
            .send_to_subscribers(cid, &[c.customer_id, c.guide_id], &frame);
        if mark == Mark::Read {
            self.activity(cid);
            let unread = ServerFrame::Unread {
                consultation_id: cid.clone(),
                unread_count: p.unread_count,
            };
            self.hub.send_to_users(&[user], &unread);
        }
        Ok(())
    }

    /// A guide's status as customers see it.
    pub fn guide_status(&self, g: &GuideRow) -> PresenceStatus {
        if g.busy {
            PresenceStatus::Busy
        } else if g.available
            && (self.hub.is_online(g.user.id) || (g.push_reachable && self.push.enabled()))
        {
            // A guide whose phone is asleep stays requestable while it can be woken by push.
            PresenceStatus::Online
        } else {
            PresenceStatus::Offline
        }
    }

    /// A user's status: a guide's as [`Self::guide_status`], a customer's online or offline.
    pub async fn live_status(&self, user: &User) -> Result<PresenceStatus> {
        if user.user_type == UserType::Guide {
            if let Some(g) = self.store.guide(user.id).await? {
                return Ok(self.guide_status(&g));
            }
        }
        Ok(if self.hub.is_online(user.id) {
            PresenceStatus::Online
        } else {
            PresenceStatus::Offline
        })
    }

    /// When the user was last connected.
    pub fn last_seen(&self, user: &User) -> Option<Timestamp> {
        self.hub
            .last_seen_ms(user.id)
            .or(user.last_seen_ms)
            .map(Timestamp::from_millis)
    }

    /// A guide for the list.
    pub fn guide_view(&self, g: GuideRow) -> Guide {
        Guide {
            status: self.guide_status(&g),
            last_seen: self.last_seen(&g.user),
            id: g.user.id,
            display_name: g.user.display_name,
            avatar_url: g.user.avatar_url,
            skills: g.skills,
            languages: g.languages,
            rate_per_minute: g.rate_per_minute,
            rating_avg: g.rating_avg,
            rating_count: g.rating_count,
        }
    }

    /// The presence of every guide, for `watch_guides`.
    pub async fn guide_presence_frames(&self) -> Result<Vec<ServerFrame>> {
        let mut frames = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.guides(after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.user.id);
            for g in page {
                let g = self.guide_view(g);
                frames.push(ServerFrame::Presence {
                    user_id: g.id,
                    status: g.status,
                    last_seen: g.last_seen,
                });
            }
        }
        Ok(frames)
    }

    /// Starts sending guide presence to a connection: the current state of every guide, then
    /// each change. Done by the presence task, in turn with the changes it announces, so a
    /// snapshot read before a change can never arrive after it.
    pub fn watch_guides(&self, conn: ConnId) {
        let _ = self.watch_tx.send(conn);
    }

    /// Asks the presence task to recompute and announce a user's status.
    pub fn presence_changed(&self, user: UserId) {
        let _ = self.presence_tx.send(user);
    }

    /// Applies a state change and tells both parties.
    pub async fn act(
        &self,
        id: &ConsultationId,
        action: Action,
        actor: Actor,
    ) -> Result<Consultation> {
        let t = self
            .store
            .transition(id, action, actor, Timestamp::now().millis())
            .await?;
        if let Some(event) = t.event {
            self.announce(event, &t.consultation);
        }
        let c = &t.consultation;
        match c.status {
            ConsultationStatus::InProgress if t.event.is_some() => {
                self.arm_balance_timer(c);
                self.arm_quiet_timer(c);
            }
            ConsultationStatus::Completed if t.event.is_some() => {
                self.balance_moved(&c.consultation_id);
                if c.amount_charged.unwrap_or(0) > 0 {
                    self.push_wallets(&[c.customer_id, c.guide_id]).await;
                }
            }
            _ => {}
        }
        Ok(t.consultation)
    }

    /// Sends a `consultation` event to every connection of both parties.
    pub fn announce(&self, event: ConsultationEvent, c: &Consultation) {
        let frame = ServerFrame::Consultation {
            event,
            consultation: c.clone(),
            ends_at: c.ends_at,
        };
        self.hub.send_to_users(&[c.customer_id, c.guide_id], &frame);
        // The guide's busy state follows the consultation's; customers see the change live.
        self.presence_changed(c.guide_id);
    }

    /// Wakes the guide's phone for a new request if no app of theirs is connected.
    pub fn push_request(&self, c: &Consultation) {
        if !self.hub.has_connection(c.guide_id) {
            self.push.offer(push::Event::Request {
                consultation_id: c.consultation_id.clone(),
                guide: c.guide_id,
                customer: c.customer_id,
                expires_in: self.config.request_timeout,
            });
        }
    }

    /// Cancels a request nobody answered after `after`.
    pub fn schedule_timeout(&self, id: ConsultationId, after: Duration) {
        let weak: Weak<App> = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(app) = weak.upgrade() else { return };
            let state = AppState(app);
            match state.act(&id, Action::Timeout, Actor::System).await {
                Ok(_) => tracing::info!(consultation = %id, "request timed out"),
                Err(e) if e.code == tara_protocol::ErrorCode::InvalidState => {}
                Err(e) => {
                    tracing::warn!(consultation = %id, error = %e, "could not time out a request")
                }
            }
        });
    }
}

/// Recomputes and announces presence for users the hub or a transition reports, and starts
/// watchers off with a snapshot. One task does both, one thing at a time, so what a watcher
/// receives about a guide is in the order it happened.
async fn presence_loop(
    app: Weak<App>,
    mut rx: mpsc::UnboundedReceiver<UserId>,
    mut watches: mpsc::UnboundedReceiver<ConnId>,
) {
    let mut last: HashMap<UserId, PresenceStatus> = HashMap::new();
    loop {
        tokio::select! {
            changed = rx.recv() => {
                let Some(user_id) = changed else { return };
                let Some(app) = app.upgrade() else { return };
                let state = AppState(app);
                if let Err(e) = announce_presence(&state, user_id, &mut last).await {
                    tracing::warn!(user = %user_id, error = %e, "presence update failed");
                }
            }
            watch = watches.recv() => {
                let Some(conn) = watch else { return };
                let Some(app) = app.upgrade() else { return };
                let state = AppState(app);
                // Registered first: a change announced after the snapshot reaches it too.
                if !state.hub.watch_guides(conn) {
                    continue; // closed in the meantime
                }
                match state.guide_presence_frames().await {
                    Ok(frames) => {
                        for frame in &frames {
                            state.hub.send_to_conn(conn, frame);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "guide presence snapshot failed"),
                }
            }
        }
    }
}

async fn announce_presence(
    state: &AppState,
    user_id: UserId,
    last: &mut HashMap<UserId, PresenceStatus>,
) -> Result<()> {
    let Some(user) = state.store.user(user_id).await? else {
        return Ok(());
    };
    let status = state.live_status(&user).await?;
    let online = state.hub.is_online(user_id);
    if user.user_type == UserType::Guide {
        // Before the dedupe below: a busy guide stays "busy" whether connected or not.
        state.guide_connected(user_id, online);
    }
    if !online {
        if let Some(seen) = state.hub.last_seen_ms(user_id) {
            state.store.set_last_seen(user_id, seen).await?;
        }
    }
    if last.insert(user_id, status) == Some(status) {
        return Ok(());
    }
    let frame = ServerFrame::Presence {
        user_id,
        status,
        last_seen: state.last_seen(&user),
    };
    let counterparts: Vec<UserId> = state
        .store
        .active_consultations(user_id)
        .await?
        .iter()
        .map(|c| {
            if c.customer_id == user_id {
                c.guide_id
            } else {
                c.customer_id
            }
        })
        .collect();
    state.hub.send_to_users(&counterparts, &frame);
    if user.user_type == UserType::Guide {
        state.hub.send_to_watchers(&frame);
    }
    Ok(())
}
