//! The test harness: a real server on 127.0.0.1:0 with its own data dir, real HTTP and
//! WebSocket clients, and helpers that log people in the way an app would.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tara_server::store::postgres::PostgresStore;
use tara_server::store::sqlite::SqliteStore;
use tara_server::store::{CommitListener, Committed, NewGuide, Store};

pub mod pg;
pub mod redis;
use tara_server::Config;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen soon.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server running in this process on a loopback port; shuts down when dropped.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    pub http: reqwest::Client,
}

impl TestServer {
    /// A dev-mode server with default settings in a fresh data dir.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A dev-mode server whose config `tweak` may change.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, tweak).await;
        s._tmp = Some(tmp);
        s
    }

    /// A dev-mode server on an existing data dir (for restarts).
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_at(dir, "127.0.0.1:0", tweak).await
    }

    /// A dev-mode server on a data dir and a given address (a restart on the same port).
    pub async fn start_at(dir: &Path, bind: &str, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::new(dir).dev(true);
        config.database_url = pg::chosen(dir);
        lift_per_ip_limits(&mut config);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tara_server::launch(config, listener, async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .expect("client");
        let server = Self {
            addr,
            base: format!("http://{addr}/api/v1"),
            data_dir: dir.to_path_buf(),
            _tmp: None,
            stop: Some(stop),
            task: Some(task),
            http,
        };
        // launch opens storage before it serves; wait until it answers.
        for _ in 0..200 {
            if let Ok(r) = server
                .http
                .get(format!("{}/health", server.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not come up");
    }

    /// Stops the server gracefully and waits for it to finish; keeps the data dir.
    pub async fn stop(&mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
        self._tmp.take()
    }

    /// Adds a guide straight into the data dir, as `tara-server guide add` does.
    pub async fn add_guide(&self, phone: &str, name: &str) -> i64 {
        add_guide_in(&self.data_dir, phone, name, 20).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/realtime", self.addr)
    }

    /// Logs in with the OTP flow (dev mode gives the code back).
    pub async fn login(&self, area: &str, phone: &str, user_type: &str) -> User {
        let gen: Value = self
            .post("/auth/otp/generate", None, json!({"area_code": area, "phone_number": phone, "user_type": user_type, "purpose": "login"}))
            .await
            .ok();
        let tokens: Value = self
            .post(
                "/auth/otp/validate",
                None,
                json!({
                    "request_id": gen["request_id"], "otp_code": gen["dev_otp"], "user_type": user_type,
                    "device_info": {"device_type": "test", "platform": "linux"},
                    "phone_number": phone, "area_code": area
                }),
            )
            .await
            .ok();
        User {
            id: tokens["auth_user_id"].as_i64().expect("user id"),
            token: tokens["access_token"].as_str().expect("token").to_owned(),
            refresh: tokens["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
            session_id: tokens["session_id"].as_str().expect("session").to_owned(),
        }
    }

    /// A customer logged in with a fresh phone, with a balance of [`START_BALANCE`] (credited by
    /// the operator command's path), enough for any consultation the tests run.
    pub async fn customer(&self, phone: &str) -> User {
        // Opened with its balance before the first login, as the demo's welcome credit is, so
        // no wallet frame arrives later on a test's sockets.
        let store = open_store(&self.data_dir).await;
        let last4 = &phone[phone.len().saturating_sub(4)..];
        store
            .ensure_customer(
                &format!("+91{phone}"),
                &format!("Customer {last4}"),
                chrono::Utc::now().timestamp_millis(),
                START_BALANCE,
            )
            .await
            .expect("open the customer's account");
        drop(store);
        self.login("+91", phone, "customer").await
    }

    /// A customer logged in with nothing in their wallet.
    pub async fn penniless_customer(&self, phone: &str) -> User {
        self.login("+91", phone, "customer").await
    }

    /// A guide added, logged in, connected and set online. The socket keeps the guide online.
    pub async fn online_guide(&self, phone: &str, name: &str) -> (User, Ws) {
        self.add_guide(&format!("+91{phone}"), name).await;
        let guide = self.login("+91", phone, "guide").await;
        let ws = Ws::connect(self, &guide.token).await;
        self.post("/guide/status", Some(&guide), json!({"status": "online"}))
            .await
            .ok::<Value>();
        (guide, ws)
    }

    pub async fn get(&self, path: &str, user: Option<&User>) -> Reply {
        let mut req = self.http.get(self.url(path));
        if let Some(u) = user {
            req = req.bearer_auth(&u.token);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, user: Option<&User>, body: Value) -> Reply {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(u) = user {
            req = req.bearer_auth(&u.token);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    /// `user` ends consultation `id`, which must succeed.
    pub async fn complete(&self, user: &User, id: &str) -> Value {
        self.patch(
            &format!("/consultation/{id}/complete"),
            Some(user),
            json!({}),
        )
        .await
        .ok()
    }

    pub async fn patch(&self, path: &str, user: Option<&User>, body: Value) -> Reply {
        let mut req = self.http.patch(self.url(path)).json(&body);
        if let Some(u) = user {
            req = req.bearer_auth(&u.token);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    pub async fn delete(&self, path: &str, user: Option<&User>) -> Reply {
        let mut req = self.http.delete(self.url(path));
        if let Some(u) = user {
            req = req.bearer_auth(&u.token);
        }
        Reply::from(req.send().await.expect("request")).await
    }

    /// A customer requests a chat with a guide, which must be created: the consultation.
    pub async fn request_consultation(&self, customer: &User, guide: &User) -> Value {
        self.post(
            "/consultation",
            Some(customer),
            json!({"guide_id": guide.id, "mode": "chat", "service_type": "consultation"}),
        )
        .await
        .created()
    }

    /// A customer requests a guide, the guide accepts, both join: an in-progress consultation id.
    pub async fn open_consultation(&self, customer: &User, guide: &User) -> String {
        let c = self.request_consultation(customer, guide).await;
        let id = c["consultation_id"].as_str().expect("id").to_owned();
        self.post(
            &format!("/consultation/{id}/accept"),
            Some(guide),
            json!({}),
        )
        .await
        .ok::<Value>();
        self.post(
            &format!("/consultation/{id}/join"),
            Some(customer),
            json!({"mode": "chat"}),
        )
        .await
        .ok::<Value>();
        let joined: Value = self
            .post(
                &format!("/consultation/{id}/join"),
                Some(guide),
                json!({"mode": "chat"}),
            )
            .await
            .ok();
        assert_eq!(joined["consultation"]["status"], "in_progress");
        id
    }
}

/// Every test talks from 127.0.0.1, so the per-address limits are lifted unless a test sets them
/// (tests/abuse.rs does).
pub fn lift_per_ip_limits(config: &mut Config) {
    config.otp_per_ip_burst = u32::MAX / 2;
    config.otp_per_ip_per_hour = u32::MAX / 2;
    config.logins_per_ip_burst = u32::MAX / 2;
    config.logins_per_ip_per_minute = u32::MAX / 2;
    config.max_connections_per_ip = usize::MAX / 2;
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Quiet;
impl CommitListener for Quiet {
    fn committed(&self, _batch: &[Committed]) {}
}

/// A store of its own on a data dir's database (SQLite in it, or its PostgreSQL database), as
/// the operator commands open one.
pub async fn open_store(dir: &Path) -> Arc<dyn Store> {
    if let Some(url) = pg::chosen(dir) {
        Arc::new(
            PostgresStore::open(&url, Arc::new(Quiet))
                .await
                .expect("open the PostgreSQL store"),
        )
    } else {
        Arc::new(SqliteStore::open(dir, Arc::new(Quiet)).expect("open store"))
    }
}

/// What [`TestServer::customer`] starts with.
pub const START_BALANCE: i64 = 10_000;

/// Credits a wallet in a data dir with a store of its own, as `tara-server wallet credit` does.
pub async fn credit_in(dir: &Path, user: i64, amount: i64) -> i64 {
    let store = open_store(dir).await;
    store
        .credit(tara_server::store::Credit {
            user_id: tara_protocol::UserId(user),
            amount,
            note: Some("test credit".into()),
            now_ms: chrono::Utc::now().timestamp_millis(),
        })
        .await
        .expect("credit")
        .balance
}

/// Adds a guide to a data dir with a store of its own.
pub async fn add_guide_in(dir: &Path, phone: &str, name: &str, rate: i64) -> i64 {
    let store = open_store(dir).await;
    let guide = NewGuide {
        phone: phone.into(),
        name: name.into(),
        rate_per_minute: rate,
        skills: vec!["vedic".into()],
        languages: vec!["en".into()],
        available: false,
    };
    store
        .add_guide(guide, chrono::Utc::now().timestamp_millis())
        .await
        .expect("add guide")
        .0
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
    pub refresh: String,
    pub session_id: String,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }

    /// The body of a 200, parsed.
    pub fn ok<T: DeserializeOwned>(self) -> T {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.body
        );
        serde_json::from_value(self.body).expect("body shape")
    }

    /// The body of a 201, parsed.
    pub fn created<T: DeserializeOwned>(self) -> T {
        assert_eq!(
            self.status, 201,
            "expected 201, got {}: {}",
            self.status, self.body
        );
        serde_json::from_value(self.body).expect("body shape")
    }

    /// Asserts a failure with this status and code.
    pub fn fails(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.body["error"]["code"].as_str()),
            (status, Some(code)),
            "expected {status} {code}, got {}: {}",
            self.status,
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "errors say something"
        );
    }
}

/// A realtime client.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub user_id: i64,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Code(u16),
    NoFrame,
}

impl Ws {
    /// Connects with a bearer header and reads `hello`.
    pub async fn connect(server: &TestServer, token: &str) -> Self {
        Self::try_connect(server, token)
            .await
            .expect("websocket connects")
    }

    pub async fn try_connect(
        server: &TestServer,
        token: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = server.ws_url().into_client_request()?;
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (stream, _) = tokio_tungstenite::connect_async(req).await?;
        let mut ws = Self { stream, user_id: 0 };
        let hello = ws.next_of("hello").await;
        ws.user_id = hello["user_id"].as_i64().expect("hello names the user");
        Ok(ws)
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .expect("send frame");
    }

    pub async fn send_raw(&mut self, text: String) {
        self.stream
            .send(WsMessage::Text(text.into()))
            .await
            .expect("send frame");
    }

    /// The next JSON frame, or None if none came within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(within, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                WsMessage::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).expect("frames are JSON"))
                }
                WsMessage::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next frame of this type, skipping others.
    pub async fn next_of(&mut self, ty: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(f) if f["type"] == ty => return f,
                Some(_) => continue,
                None => panic!("no {ty} frame arrived"),
            }
        }
    }

    /// The next `consultation` frame with this event, skipping others.
    pub async fn next_event(&mut self, event: &str) -> Value {
        loop {
            let f = self.next_of("consultation").await;
            if f["event"] == event {
                return f;
            }
        }
    }

    /// Frames of this type arriving within `within`, skipping others.
    pub async fn collect_of(&mut self, ty: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next_within(left).await {
                Some(f) if f["type"] == ty => out.push(f),
                Some(_) => continue,
                None => return out,
            }
        }
    }

    /// Subscribes and collects the replayed messages up to `subscribed`.
    pub async fn subscribe(&mut self, consultation_id: &str, after_seq: i64) -> (Vec<Value>, i64) {
        self.send(json!({"type": "subscribe", "consultation_id": consultation_id, "after_seq": after_seq})).await;
        let mut messages = Vec::new();
        loop {
            let f = self.next_within(WAIT).await.expect("subscription answers");
            match f["type"].as_str() {
                Some("message") if f["message"]["consultation_id"] == consultation_id => {
                    messages.push(f["message"].clone())
                }
                Some("subscribed") if f["consultation_id"] == consultation_id => {
                    return (messages, f["head_seq"].as_i64().expect("head_seq"))
                }
                Some("error") => panic!("subscribe refused: {f}"),
                _ => {}
            }
        }
    }

    /// Sends a text and waits for its ack (or error).
    pub async fn send_text(
        &mut self,
        consultation_id: &str,
        client_msg_id: &str,
        text: &str,
    ) -> Value {
        self.send(json!({"type": "send", "client_msg_id": client_msg_id, "consultation_id": consultation_id, "kind": "text", "content": text})).await;
        loop {
            let f = self.next_within(WAIT).await.expect("an answer to send");
            let is_answer = (f["type"] == "ack" && f["client_msg_id"] == client_msg_id)
                || (f["type"] == "error" && f["ref"] == client_msg_id);
            if is_answer {
                return f;
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed(&mut self) -> Closed {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => panic!("the socket was not closed"),
                Ok(None) | Ok(Some(Err(_))) => return Closed::NoFrame,
                Ok(Some(Ok(WsMessage::Close(frame)))) => {
                    return frame.map_or(Closed::NoFrame, |f| Closed::Code(u16::from(f.code)))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// A fresh client message id.
pub fn cmid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The value of a counter on `GET /metrics`.
pub async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = server
        .http
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not on /metrics"))
}

/// A connection with a tiny receive buffer, so the server's writes back up quickly once the
/// client stops reading.
pub async fn tight_connection(server: &TestServer, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(server.addr).await.expect("connect");
    let mut req = server.ws_url().into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (stream, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp))
        .await
        .expect("upgrade");
    let mut ws = Ws { stream, user_id: 0 };
    ws.next_of("hello").await;
    ws
}

/// Runs the shell command `then` once this test process is gone, however it ended (a server
/// the tests started must not outlive them); `and_while` adds a condition to keep watching.
/// The watcher is never waited for: it outlives this process on purpose.
pub fn when_gone(and_while: &str, then: &str) {
    let script = format!(
        "while kill -0 {} 2>/dev/null {and_while}; do sleep 0.5; done; {then}",
        std::process::id()
    );
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the watcher starts");
}
