//! Events on their way to the UI: held until the UI registers its channel (so nothing the
//! engine says during start-up or a reload of the page is lost), then delivered in order.

use serde_json::Value;
use std::sync::Mutex;
use tauri::ipc::Channel;

/// At most this many events wait for a UI that never comes; the oldest go first.
const HOLD_LIMIT: usize = 10_000;

#[derive(Default)]
struct Inner {
    channel: Option<Channel<Value>>,
    held: std::collections::VecDeque<Value>,
}

/// The one way events reach the UI.
#[derive(Default)]
pub struct EventHub {
    inner: Mutex<Inner>,
}

impl EventHub {
    /// Delivers `event` now, or holds it until the UI is ready.
    pub fn push(&self, event: Value) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = &g.channel {
            if ch.send(event.clone()).is_ok() {
                return;
            }
            g.channel = None;
        }
        if g.held.len() == HOLD_LIMIT {
            g.held.pop_front();
        }
        g.held.push_back(event);
    }

    /// The UI is ready: everything held goes out first, in order, then live events.
    pub fn subscribe(&self, channel: Channel<Value>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(e) = g.held.pop_front() {
            if channel.send(e.clone()).is_err() {
                g.held.push_front(e);
                return;
            }
        }
        g.channel = Some(channel);
    }

    /// The page is going away (reload, close): hold events until it subscribes again.
    pub fn detach(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).channel = None;
    }
}
