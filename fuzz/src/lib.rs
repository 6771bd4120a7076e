//! One real tara-server per fuzzing process, in process on a loopback port, with a customer and
//! a guide in a running consultation: the targets that need the whole server send it what they
//! were given and check it is still answering.

use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tara_server::store::{sqlite::SqliteStore, CommitListener, Committed, NewGuide, Store};
use tara_server::Config;

/// How long the server may take to answer anything before the input counts as a hang.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    /// Their id.
    pub id: i64,
    /// Their access token.
    pub token: String,
}

/// The running server and the people in it.
pub struct Live {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Pays for the consultation.
    pub customer: User,
    /// Answers it.
    pub guide: User,
    /// In progress between them.
    pub consultation_id: String,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

struct Quiet;
impl CommitListener for Quiet {
    fn committed(&self, _batch: &[Committed]) {}
}

/// The runtime every target runs its async work on.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// The server, started on first use.
pub fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| rt().block_on(start()))
}

impl Live {
    /// `http://ADDR/api/v1{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.addr)
    }

    /// True when the server answers its health check within [`ANSWER_WITHIN`].
    pub async fn healthy(&self) -> bool {
        matches!(
            tokio::time::timeout(ANSWER_WITHIN, self.http.get(self.url("/health")).send()).await,
            Ok(Ok(r)) if r.status().is_success()
        )
    }
}

async fn start() -> Live {
    let dir = tempfile::tempdir().expect("a temp dir");
    let now = chrono::Utc::now().timestamp_millis();
    let store = SqliteStore::open(dir.path(), Arc::new(Quiet)).expect("the store opens");
    store
        .add_guide(
            NewGuide {
                phone: "+919800000002".into(),
                name: "Fuzz Guide".into(),
                rate_per_minute: 1,
                skills: vec!["vedic".into()],
                languages: vec!["en".into()],
                available: false,
            },
            now,
        )
        .await
        .expect("the guide is added");
    store
        .ensure_customer("+919800000001", "Fuzz Customer", now, 1_000_000)
        .await
        .expect("the customer is added");
    drop(store);

    let mut config = Config::new(dir.path()).dev(true);
    // Room to explore: limits that would stop the fuzzer long before it finds anything.
    config.max_bad_frames = u32::MAX / 2;
    config.message_burst = 1_000_000;
    config.messages_per_minute = 1_000_000;
    config.otp_per_hour = 1_000_000;
    config.otp_resend_after = Duration::ZERO;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address").to_string();
    tokio::spawn(async move {
        if let Err(e) = tara_server::launch(config, listener, std::future::pending()).await {
            panic!("the server stopped: {e:#}");
        }
    });
    let http = reqwest::Client::builder()
        .timeout(ANSWER_WITHIN)
        .build()
        .expect("a client");
    let mut live = Live {
        addr,
        customer: User {
            id: 0,
            token: String::new(),
        },
        guide: User {
            id: 0,
            token: String::new(),
        },
        consultation_id: String::new(),
        http,
        _dir: dir,
    };
    for _ in 0..500 {
        if live.healthy().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    live.customer = login(&live, "9800000001", "customer").await;
    live.guide = login(&live, "9800000002", "guide").await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/api/v1/realtime", live.addr),
    )
    .expect("a request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", live.guide.token)
            .parse()
            .expect("a header"),
    );
    let (socket, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("the guide connects");
    // A guide with no open connection is offline and cannot be requested: this one stays
    // connected for the whole run, its frames read and dropped so it is never a slow reader.
    tokio::spawn(async move {
        let mut socket = socket;
        while futures_util::StreamExt::next(&mut socket).await.is_some() {}
    });
    post(
        &live,
        "/guide/status",
        &live.guide,
        json!({"status": "online"}),
    )
    .await;
    let c = post(
        &live,
        "/consultation",
        &live.customer,
        json!({"guide_id": live.guide.id, "mode": "chat", "service_type": "consultation"}),
    )
    .await;
    let id = c["consultation_id"]
        .as_str()
        .expect("a consultation")
        .to_owned();
    post(
        &live,
        &format!("/consultation/{id}/accept"),
        &live.guide,
        json!({}),
    )
    .await;
    for who in [&live.customer, &live.guide] {
        post(
            &live,
            &format!("/consultation/{id}/join"),
            who,
            json!({"mode": "chat"}),
        )
        .await;
    }
    live.consultation_id = id;
    live
}

async fn login(live: &Live, phone: &str, user_type: &str) -> User {
    let gen: Value = live
        .http
        .post(live.url("/auth/otp/generate"))
        .json(&json!({"area_code": "+91", "phone_number": phone, "user_type": user_type, "purpose": "login"}))
        .send()
        .await
        .expect("generate")
        .json()
        .await
        .expect("json");
    let tokens: Value = live
        .http
        .post(live.url("/auth/otp/validate"))
        .json(&json!({
            "request_id": gen["request_id"], "otp_code": gen["dev_otp"], "user_type": user_type,
            "device_info": {"device_type": "fuzz", "platform": "linux"},
            "phone_number": phone, "area_code": "+91"
        }))
        .send()
        .await
        .expect("validate")
        .json()
        .await
        .expect("json");
    User {
        id: tokens["auth_user_id"].as_i64().expect("a user id"),
        token: tokens["access_token"].as_str().expect("a token").to_owned(),
    }
}

async fn post(live: &Live, path: &str, user: &User, body: Value) -> Value {
    let r = live
        .http
        .post(live.url(path))
        .bearer_auth(&user.token)
        .json(&body)
        .send()
        .await
        .expect("a request");
    let status = r.status();
    let body: Value = r.json().await.expect("json");
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// Splits fuzz input into pieces at each 0xFF byte (never inside UTF-8 text), at most `max`.
pub fn pieces(data: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == 0xFF).take(max)
}
