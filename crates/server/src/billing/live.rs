//! Billing on a running server: a balance timer per running consultation, wallet frames to
//! every device of the owner, and notices of wallet changes made by operator commands.

use super::timer::{self, Billed};
use crate::app::{App, AppState};
use crate::state::Action;
use crate::store::Actor;
use async_trait::async_trait;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tara_protocol::consultations::{Consultation, ConsultationEvent, ConsultationStatus};
use tara_protocol::realtime::ServerFrame;
use tara_protocol::{ConsultationId, ErrorCode, Timestamp, UserId};
use tokio::sync::Notify;

impl AppState {
    /// Starts the balance timer of a running consultation (once; a second call only wakes it).
    pub fn arm_balance_timer(&self, c: &Consultation) {
        if c.status != ConsultationStatus::InProgress || c.ends_at.is_none() {
            return;
        }
        let id = c.consultation_id.clone();
        let changed = {
            // Held only to look up or insert; never across an await.
            let Ok(mut timers) = self.timers.lock() else {
                return;
            };
            if let Some(n) = timers.get(&id) {
                n.notify_one();
                return;
            }
            let n = Arc::new(Notify::new());
            timers.insert(id.clone(), n.clone());
            n
        };
        let billed = Running {
            app: Arc::downgrade(self.arc()),
            id: id.clone(),
        };
        let app = Arc::downgrade(self.arc());
        let lead = self.config.billing_minute.as_millis().max(1) as i64;
        tokio::spawn(async move {
            timer::run(billed, changed, lead, || Timestamp::now().millis()).await;
            if let Some(app) = app.upgrade() {
                if let Ok(mut timers) = app.timers.lock() {
                    timers.remove(&id);
                }
            }
        });
    }

    /// Wakes a consultation's balance timer: its balance or state moved.
    pub fn balance_moved(&self, id: &ConsultationId) {
        if let Ok(timers) = self.timers.lock() {
            if let Some(n) = timers.get(id) {
                n.notify_one();
            }
        }
    }

    /// Sends each user's balance to every device of theirs.
    pub async fn push_wallets(&self, users: &[UserId]) {
        for user in users {
            match self.store.wallet(*user).await {
                Ok(w) => self.hub.send_to_users(
                    &[*user],
                    &ServerFrame::Wallet {
                        balance: w.balance,
                        currency: w.currency,
                    },
                ),
                Err(e) => tracing::warn!(user = %user, error = %e, "could not read a wallet"),
            }
        }
    }

    /// A user's wallet gained money: their devices hear the balance, and a consultation of
    /// theirs that runs on it gets its later `ends_at` (`extended`, to both sides).
    pub async fn wallet_credited(&self, user: UserId) {
        self.push_wallets(&[user]).await;
        let active = match self.store.active_consultations(user).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "could not look for a running consultation");
                return;
            }
        };
        for c in active {
            if c.customer_id == user
                && c.status == ConsultationStatus::InProgress
                && c.ends_at.is_some()
            {
                self.announce(ConsultationEvent::Extended, &c);
                self.arm_balance_timer(&c);
            }
        }
    }
}

/// The timer's view of one consultation, through the app.
struct Running {
    app: Weak<App>,
    id: ConsultationId,
}

impl Running {
    fn state(&self) -> Option<AppState> {
        self.app.upgrade().map(AppState::from_arc)
    }
}

#[async_trait]
impl Billed for Running {
    async fn ends_at(&self) -> Option<i64> {
        loop {
            let state = self.state()?;
            match state.store.consultation(&self.id).await {
                Ok(Some(c)) if c.status == ConsultationStatus::InProgress => {
                    return c.ends_at.map(|t| t.millis())
                }
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(consultation = %self.id, error = %e, "balance timer cannot read; retrying");
                    drop(state);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn warn(&self, _ends_at: i64) {
        let Some(state) = self.state() else { return };
        if let Ok(Some(c)) = state.store.consultation(&self.id).await {
            state.announce(ConsultationEvent::EndingSoon, &c);
        }
    }

    async fn end(&self) -> bool {
        let Some(state) = self.state() else {
            return true;
        };
        match state.act(&self.id, Action::Exhaust, Actor::System).await {
            Ok(_) => {
                tracing::info!(consultation = %self.id, "ended: the balance ran out");
                true
            }
            Err(e) if e.code == ErrorCode::InvalidState => false,
            Err(e) => {
                tracing::warn!(consultation = %self.id, error = %e, "could not end for balance");
                false
            }
        }
    }
}

/// Pushes wallet changes made outside this server (`tara-server wallet credit`) to the owners'
/// devices within a poll interval, and extends their running consultations.
pub async fn watch_notices(app: Weak<App>) {
    let mut last: Option<i64> = None;
    loop {
        let Some(state) = app.upgrade().map(AppState::from_arc) else {
            return;
        };
        let every = state.config.wallet_poll;
        match state.store.wallet_notices(last).await {
            Ok((newest, users)) => {
                last = Some(newest);
                for user in users {
                    state.wallet_credited(user).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not read wallet notices"),
        }
        drop(state);
        tokio::time::sleep(every).await;
    }
}

impl AppState {
    /// Starts the silence timer of a running consultation (once).
    pub fn arm_quiet_timer(&self, c: &Consultation) {
        if c.status != ConsultationStatus::InProgress {
            return;
        }
        let id = c.consultation_id.clone();
        {
            // Held only to look up or insert; never across an await.
            let Ok(mut quiet) = self.quiet.lock() else {
                return;
            };
            if quiet.contains_key(&id) {
                return;
            }
            quiet.insert(id.clone(), tokio::time::Instant::now());
        }
        let idle = self.config.idle_after.as_millis() as i64;
        let grace = self.config.idle_grace.as_millis() as i64;
        let watched = Running {
            app: Arc::downgrade(self.arc()),
            id: id.clone(),
        };
        let app = Arc::downgrade(self.arc());
        tokio::spawn(async move {
            super::quiet::run(watched, idle, grace, || Timestamp::now().millis()).await;
            if let Some(app) = app.upgrade() {
                if let Ok(mut quiet) = app.quiet.lock() {
                    quiet.remove(&id);
                }
            }
        });
    }

    /// Someone typed or read in a consultation: its last activity moves. Written at most a few
    /// times per silence period, so typing costs the store next to nothing.
    pub fn activity(&self, id: &ConsultationId) {
        let every = (self.config.idle_after / 8).min(Duration::from_secs(15));
        let now = tokio::time::Instant::now();
        {
            let Ok(mut quiet) = self.quiet.lock() else {
                return;
            };
            match quiet.get_mut(id) {
                Some(last) if now.duration_since(*last) >= every => *last = now,
                // Not running (no timer), or touched a moment ago.
                _ => return,
            }
        }
        let state = self.clone();
        let id = id.clone();
        tokio::spawn(async move {
            if let Err(e) = state
                .store
                .touch_consultation(&id, Timestamp::now().millis())
                .await
            {
                tracing::warn!(consultation = %id, error = %e, "could not record activity");
            }
        });
    }

    /// A guide's connections came or went. Gone for [`crate::Config::guide_away_after`] (the
    /// presence grace included), the customer of their running consultation is told and
    /// charged nothing after the moment they went; back, the customer is told that too.
    pub fn guide_connected(&self, guide: UserId, online: bool) {
        let state = self.clone();
        tokio::spawn(async move {
            let running = |list: Vec<Consultation>| -> Vec<Consultation> {
                list.into_iter()
                    .filter(|c| c.guide_id == guide && c.status == ConsultationStatus::InProgress)
                    .collect()
            };
            let Ok(active) = state.store.active_consultations(guide).await else {
                return;
            };
            let active = running(active);
            if active.is_empty() {
                return;
            }
            if online {
                for c in active.iter().filter(|c| c.guide_away_at.is_some()) {
                    state.mark_guide_away(&c.consultation_id, None).await;
                }
                return;
            }
            let grace = state.config.presence_grace.as_millis() as i64;
            let now = Timestamp::now().millis();
            let gone_at = state
                .hub
                .last_seen_ms(guide)
                .map_or(now, |seen| seen - grace)
                .min(now);
            let due = gone_at + state.config.guide_away_after.as_millis() as i64;
            tokio::time::sleep(Duration::from_millis((due - now).max(0) as u64)).await;
            if state.hub.is_online(guide) {
                return;
            }
            for c in active {
                state
                    .mark_guide_away(&c.consultation_id, Some(gone_at))
                    .await;
            }
        });
    }

    async fn mark_guide_away(&self, id: &ConsultationId, since: Option<i64>) {
        match self.store.set_guide_away(id, since).await {
            Ok(Some(c)) => {
                let event = if since.is_some() {
                    ConsultationEvent::GuideAway
                } else {
                    ConsultationEvent::GuideBack
                };
                self.announce(event, &c);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(consultation = %id, error = %e, "could not mark the guide away")
            }
        }
    }
}

#[async_trait]
impl super::quiet::Watched for Running {
    async fn last_active(&self) -> Option<i64> {
        loop {
            let state = self.state()?;
            match state.store.last_active(&self.id).await {
                Ok(last) => return last,
                Err(e) => {
                    tracing::warn!(consultation = %self.id, error = %e, "silence timer cannot read; retrying");
                    drop(state);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn warn(&self, _ends_at: i64) {
        let Some(state) = self.state() else { return };
        if let Ok(Some(c)) = state.store.consultation(&self.id).await {
            state.announce(ConsultationEvent::IdleWarning, &c);
        }
    }

    async fn end(&self) -> bool {
        let Some(state) = self.state() else {
            return true;
        };
        let quiet_ms = state.config.idle_after.as_millis() as i64;
        let quiet_ms = quiet_ms + state.config.idle_grace.as_millis() as i64;
        match state
            .act(&self.id, Action::Inactive { quiet_ms }, Actor::System)
            .await
        {
            Ok(_) => {
                tracing::info!(consultation = %self.id, "ended: nobody was active");
                true
            }
            Err(e) if e.code == ErrorCode::InvalidState => false,
            Err(e) => {
                tracing::warn!(consultation = %self.id, error = %e, "could not end a quiet consultation");
                false
            }
        }
    }
}
