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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex as StdMutex};
    use tauri::ipc::InvokeResponseBody;

    /// A channel whose deliveries land in a list, as the page would receive them.
    fn page() -> (Channel<Value>, Arc<StdMutex<Vec<Value>>>) {
        let got = Arc::new(StdMutex::new(Vec::new()));
        let sink = got.clone();
        let ch = Channel::new(move |body| {
            if let InvokeResponseBody::Json(s) = body {
                sink.lock().unwrap().push(serde_json::from_str(&s).unwrap());
            }
            Ok(())
        });
        (ch, got)
    }

    #[test]
    fn events_before_the_page_is_ready_arrive_first_and_in_order() {
        let hub = EventHub::default();
        hub.push(json!({"n": 1}));
        hub.push(json!({"n": 2}));
        let (ch, got) = page();
        hub.subscribe(ch);
        hub.push(json!({"n": 3}));
        let n: Vec<i64> = got
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["n"].as_i64().unwrap())
            .collect();
        assert_eq!(n, [1, 2, 3]);
    }

    #[test]
    fn a_reloading_page_misses_nothing() {
        let hub = EventHub::default();
        let (first, got_first) = page();
        hub.subscribe(first);
        hub.push(json!({"n": 1}));
        hub.detach();
        hub.push(json!({"n": 2}));
        let (second, got_second) = page();
        hub.subscribe(second);
        hub.push(json!({"n": 3}));
        assert_eq!(got_first.lock().unwrap().len(), 1);
        let n: Vec<i64> = got_second
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["n"].as_i64().unwrap())
            .collect();
        assert_eq!(n, [2, 3]);
    }
}
