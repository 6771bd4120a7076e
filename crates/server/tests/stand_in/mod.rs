//! A small HTTP server on 127.0.0.1:0 that stands in for a provider the tests cannot reach (an
//! SMS gateway, FCM, APNs): it records every request and answers from a script. It speaks
//! HTTP/1.1 and HTTP/2 with prior knowledge (as APNs clients do over TLS), so a test can check
//! which one a client used.
//!
//! It sits beside `common`, not in it: the app's tests share `common` and have no axum.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// How long a test waits for requests that should come soon.
const WAIT: Duration = Duration::from_secs(10);

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{}: {e}", self.text()))
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Held back this long first (a gateway that hangs).
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = Box<dyn Fn(&Seen) -> Answer + Send + Sync>;

struct Inner {
    seen: Mutex<Vec<Seen>>,
    /// Answers given once each, in order, to requests whose path starts with the prefix.
    script: Mutex<VecDeque<(String, Answer)>>,
    fallback: Responder,
    arrived: Notify,
}

/// The stand-in; stops when dropped.
pub struct StandIn {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    inner: Arc<Inner>,
    _stop: oneshot::Sender<()>,
}

impl StandIn {
    /// Answers every request with `fallback` unless a scripted answer comes first.
    pub async fn start(fallback: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        let inner = Arc::new(Inner {
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            fallback: Box::new(fallback),
            arrived: Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url: format!("http://{addr}"),
            inner,
            _stop: stop,
        }
    }

    /// The next request under `prefix` gets `answer` (queued after earlier ones).
    pub fn then(&self, prefix: &str, answer: Answer) {
        self.inner
            .script
            .lock()
            .expect("script")
            .push_back((prefix.to_owned(), answer));
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().expect("seen").clone()
    }

    /// Requests so far whose path starts with `prefix`.
    pub fn seen_under(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with(prefix))
            .collect()
    }

    /// Waits until `n` requests under `prefix` have arrived (at most 10 s), and returns them.
    pub async fn wait_for(&self, prefix: &str, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.inner.arrived.notified();
            let got = self.seen_under(prefix);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "{} requests under {prefix} arrived, {n} expected",
                    got.len()
                );
            }
        }
    }

    /// Requests under `prefix` after giving stragglers `settle` to arrive.
    pub async fn settled(&self, prefix: &str, settle: Duration) -> Vec<Seen> {
        tokio::time::sleep(settle).await;
        self.seen_under(prefix)
    }
}

async fn record(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.to_string()),
        version: parts.version,
        headers: parts.headers,
        body,
    };
    let scripted = {
        let mut script = inner.script.lock().expect("script");
        let at = script.iter().position(|(p, _)| seen.path.starts_with(p));
        at.and_then(|i| script.remove(i)).map(|(_, a)| a)
    };
    let answer = scripted.unwrap_or_else(|| (inner.fallback)(&seen));
    inner.seen.lock().expect("seen").push(seen);
    inner.arrived.notify_waiters();
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let status = StatusCode::from_u16(answer.status).expect("a status");
    (status, [("content-type", "application/json")], answer.body).into_response()
}
