//! The access matrix: every REST route and every realtime client frame, tried by each of seven
//! actors, with the answer each must get. A cell that answers otherwise fails the test, and the
//! failure names the route (or frame) and the actor. A route the server serves without a row
//! here fails the test too: the rows are checked against `tara_server::ROUTES`, the table the
//! router itself is built from.
//!
//! The actors, for a row about a consultation (or something inside one):
//! - owner: the consultation's customer;
//! - other party: its guide;
//! - stranger customer, stranger guide: signed in, with no part in it;
//! - anonymous: no token at all;
//! - revoked: the owner, with the token of a session that has logged out;
//! - expired: the owner, with a token of a live session signed by the server's own key but past
//!   its `exp`.
//!
//! For a row about the caller's own account (`/wallet`, `/auth/profile`, …) the owner is the
//! customer and the other party the guide of one consultation, and the strangers act on their
//! own accounts: the row then pins who may call it at all (a customer asking for guide
//! earnings is refused), and that no dead or missing token gets in.
//!
//! Refusals change nothing, so refused cells share one world; a cell expected to succeed on a
//! row whose success changes state (accept, logout, …) gets a world of its own.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tara_protocol::ClientFrame;
use tara_server::auth::tokens::{Claims, Keys};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Owner,
    OtherParty,
    StrangerCustomer,
    StrangerGuide,
    Anonymous,
    Revoked,
    Expired,
}

const ACTORS: [Actor; 7] = [
    Actor::Owner,
    Actor::OtherParty,
    Actor::StrangerCustomer,
    Actor::StrangerGuide,
    Actor::Anonymous,
    Actor::Revoked,
    Actor::Expired,
];

/// What one cell must answer: a status, and for a refusal the contract's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want(u16, Option<&'static str>);

const OK: Want = Want(200, None);
const CREATED: Want = Want(201, None);
const NO_CONTENT: Want = Want(204, None);
const SWITCHED: Want = Want(101, None);
const FORBIDDEN: Want = Want(403, Some("FORBIDDEN"));
const NOT_FOUND: Want = Want(404, Some("NOT_FOUND"));
const NO_CONSULTATION: Want = Want(404, Some("CONSULTATION_NOT_FOUND"));
const UNAUTHENTICATED: Want = Want(401, Some("AUTHENTICATION_FAILED"));
const TOKEN_EXPIRED: Want = Want(401, Some("TOKEN_EXPIRED"));

/// A signed-in row: the four signed-in actors as given; no token, a revoked session and an
/// expired token are refused.
const fn signed_in(owner: Want, other: Want, s_customer: Want, s_guide: Want) -> [Want; 7] {
    [
        owner,
        other,
        s_customer,
        s_guide,
        UNAUTHENTICATED,
        UNAUTHENTICATED,
        TOKEN_EXPIRED,
    ]
}

/// Participants only: both parties get `ok`, strangers are refused.
const fn participants(ok: Want) -> [Want; 7] {
    signed_in(ok, ok, FORBIDDEN, FORBIDDEN)
}

/// The caller's own account: every signed-in actor gets `ok`.
const fn own(ok: Want) -> [Want; 7] {
    signed_in(ok, ok, ok, ok)
}

/// Guides only.
const GUIDES: [Want; 7] = signed_in(FORBIDDEN, OK, FORBIDDEN, OK);

/// The same answer for everyone, whatever token they carry.
const fn public(w: Want) -> [Want; 7] {
    [w; 7]
}

/// Which consultation (and so which owner and other party) a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// A customer and an online guide, with nothing between them yet.
    Idle,
    Requested,
    Accepted,
    /// With a text, an image and the customer's birth details.
    InProgress,
    Completed,
}

const STAGES: [Stage; 5] = [
    Stage::Idle,
    Stage::Requested,
    Stage::Accepted,
    Stage::InProgress,
    Stage::Completed,
];

/// What a cell sends.
enum Body {
    None,
    Json(Value),
    Png,
}

/// One REST row.
struct Row {
    method: &'static str,
    /// The route as the router spells it (`{id}` and all).
    route: &'static str,
    stage: Stage,
    /// Success changes state: each succeeding cell gets a world of its own.
    fresh: bool,
    want: [Want; 7],
    /// The concrete path and body for an actor in a scene.
    call: fn(&Cell) -> (String, Body),
}

/// Everything a row's `call` may name.
struct Cell<'a> {
    scene: &'a Scene,
    who: Option<&'a User>,
    /// A fresh phone and, for `otp/validate`, a code the server sent it.
    phone: String,
    otp_request: Option<Value>,
}

fn c(cell: &Cell, rest: &str) -> String {
    format!("/consultation/{}{rest}", cell.scene.consultation)
}

fn profile_input() -> Value {
    json!({
        "name": "Asha", "date_of_birth": "1990-01-01", "time_of_birth": "10:30:00",
        "birth_city": "Pune", "birth_country": "India", "preferred_language": "en"
    })
}

fn none(path: &str) -> (String, Body) {
    (path.to_owned(), Body::None)
}

fn with(path: impl Into<String>, body: Value) -> (String, Body) {
    (path.into(), Body::Json(body))
}

fn rows() -> Vec<Row> {
    use Stage::*;
    let row = |method, route, stage, want, call| Row {
        method,
        route,
        stage,
        fresh: false,
        want,
        call,
    };
    let fresh = |method, route, stage, want, call| Row {
        method,
        route,
        stage,
        fresh: true,
        want,
        call,
    };
    vec![
        row("GET", "/health", Idle, public(OK), |_| none("/health")),
        row("GET", "/auth/health", Idle, public(OK), |_| {
            none("/auth/health")
        }),
        row("POST", "/auth/otp/generate", Idle, public(OK), |c| {
            with(
                "/auth/otp/generate",
                json!({"area_code": "+91", "phone_number": c.phone, "user_type": "customer", "purpose": "login"}),
            )
        }),
        row("POST", "/auth/otp/validate", Idle, public(OK), |c| {
            let r = c.otp_request.as_ref().expect("a code was sent");
            with(
                "/auth/otp/validate",
                json!({
                    "request_id": r["request_id"], "otp_code": r["dev_otp"], "user_type": "customer",
                    "device_info": {"device_type": "test", "platform": "linux"},
                    "phone_number": c.phone, "area_code": "+91"
                }),
            )
        }),
        // The credential here is the refresh token in the body; an expired access token is
        // exactly when a client refreshes, so its session's refresh token works.
        fresh(
            "POST",
            "/auth/refresh",
            Idle,
            [OK, OK, OK, OK, UNAUTHENTICATED, UNAUTHENTICATED, OK],
            |c| {
                let token = c.who.map_or("never-issued", |u| u.refresh.as_str());
                with("/auth/refresh", json!({"refresh_token": token}))
            },
        ),
        row("GET", "/auth/profile", Idle, own(OK), |_| {
            none("/auth/profile")
        }),
        row("PATCH", "/auth/profile", Idle, own(OK), |_| {
            with("/auth/profile", json!({"display_name": "Renamed"}))
        }),
        row("GET", "/auth/sessions", Idle, own(OK), |_| {
            none("/auth/sessions")
        }),
        // The owner's spare session: only the owner may end it.
        fresh(
            "DELETE",
            "/auth/sessions/{session_id}",
            Idle,
            signed_in(NO_CONTENT, NOT_FOUND, NOT_FOUND, NOT_FOUND),
            |c| none(&format!("/auth/sessions/{}", c.scene.spare.session_id)),
        ),
        fresh("POST", "/auth/logout", Idle, own(NO_CONTENT), |_| {
            with("/auth/logout", json!({}))
        }),
        row("POST", "/devices/push-token", Idle, own(OK), |_| {
            with(
                "/devices/push-token",
                json!({"platform": "android", "token": "matrix-token"}),
            )
        }),
        row(
            "DELETE",
            "/devices/push-token",
            Idle,
            own(NO_CONTENT),
            |_| none("/devices/push-token"),
        ),
        row("GET", "/guide/all", Idle, own(OK), |_| none("/guide/all")),
        row("GET", "/guide/profile", Idle, GUIDES, |_| {
            none("/guide/profile")
        }),
        row("POST", "/guide/status", Idle, GUIDES, |_| {
            with("/guide/status", json!({"status": "online"}))
        }),
        row("GET", "/guide/ratings", Idle, GUIDES, |_| {
            none("/guide/ratings")
        }),
        row("GET", "/guide/earnings", Idle, GUIDES, |_| {
            none("/guide/earnings")
        }),
        row("GET", "/wallet", Idle, own(OK), |_| none("/wallet")),
        row("GET", "/wallet/ledger", Idle, own(OK), |_| {
            none("/wallet/ledger")
        }),
        row(
            "POST",
            "/wallet/recharge",
            Idle,
            signed_in(OK, FORBIDDEN, OK, FORBIDDEN),
            |_| {
                with(
                    "/wallet/recharge",
                    json!({"amount": 100, "idempotency_key": cmid()}),
                )
            },
        ),
        // Signed by the payment gateway, never by a user's token; this server takes none.
        row(
            "POST",
            "/payments/webhook",
            Idle,
            public(UNAUTHENTICATED),
            |_| {
                with(
                    "/payments/webhook",
                    json!({"event": "captured", "payment_id": "p-1", "amount": 1000}),
                )
            },
        ),
        row(
            "GET",
            "/customers/{customer_id}/profile",
            InProgress,
            signed_in(OK, FORBIDDEN, FORBIDDEN, FORBIDDEN),
            |c| none(&format!("/customers/{}/profile", c.scene.owner.id)),
        ),
        row(
            "POST",
            "/customers/{customer_id}/profile",
            InProgress,
            signed_in(OK, FORBIDDEN, FORBIDDEN, FORBIDDEN),
            |c| {
                with(
                    format!("/customers/{}/profile", c.scene.owner.id),
                    profile_input(),
                )
            },
        ),
        row(
            "GET",
            "/customers/{customer_id}/profiles",
            InProgress,
            signed_in(OK, FORBIDDEN, FORBIDDEN, FORBIDDEN),
            |c| none(&format!("/customers/{}/profiles", c.scene.owner.id)),
        ),
        row(
            "POST",
            "/customers/{customer_id}/profiles",
            InProgress,
            signed_in(CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN),
            |c| {
                with(
                    format!("/customers/{}/profiles", c.scene.owner.id),
                    profile_input(),
                )
            },
        ),
        // Requesting the idle scene's guide: any customer may, no guide can.
        fresh(
            "POST",
            "/consultation",
            Idle,
            signed_in(CREATED, FORBIDDEN, CREATED, FORBIDDEN),
            |c| {
                with(
                    "/consultation",
                    json!({"guide_id": c.scene.other.id, "mode": "chat", "service_type": "consultation"}),
                )
            },
        ),
        row("GET", "/consultation/requests", Requested, GUIDES, |_| {
            none("/consultation/requests")
        }),
        row(
            "GET",
            "/consultation/customers/current",
            InProgress,
            signed_in(OK, FORBIDDEN, NO_CONSULTATION, FORBIDDEN),
            |_| none("/consultation/customers/current"),
        ),
        row(
            "GET",
            "/consultation/guides/current",
            InProgress,
            signed_in(FORBIDDEN, OK, FORBIDDEN, NO_CONSULTATION),
            |_| none("/consultation/guides/current"),
        ),
        row(
            "GET",
            "/consultation/{id}",
            InProgress,
            participants(OK),
            |cell| none(&c(cell, "")),
        ),
        fresh(
            "POST",
            "/consultation/{id}/accept",
            Requested,
            signed_in(FORBIDDEN, OK, FORBIDDEN, FORBIDDEN),
            |cell| with(c(cell, "/accept"), json!({})),
        ),
        fresh(
            "POST",
            "/consultation/{id}/reject",
            Requested,
            signed_in(FORBIDDEN, OK, FORBIDDEN, FORBIDDEN),
            |cell| with(c(cell, "/reject"), json!({"reason": "not now"})),
        ),
        fresh(
            "POST",
            "/consultation/{id}/cancel",
            Requested,
            signed_in(OK, FORBIDDEN, FORBIDDEN, FORBIDDEN),
            |cell| with(c(cell, "/cancel"), json!({})),
        ),
        fresh(
            "POST",
            "/consultation/{id}/join",
            Accepted,
            participants(OK),
            |cell| with(c(cell, "/join"), json!({"mode": "chat"})),
        ),
        fresh(
            "PATCH",
            "/consultation/{id}/complete",
            InProgress,
            participants(OK),
            |cell| with(c(cell, "/complete"), json!({})),
        ),
        fresh(
            "POST",
            "/consultation/{id}/complete",
            InProgress,
            participants(OK),
            |cell| with(c(cell, "/complete"), json!({})),
        ),
        fresh(
            "POST",
            "/consultation/{id}/feedback",
            Completed,
            signed_in(CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN),
            |cell| with(c(cell, "/feedback"), json!({"rating": 4})),
        ),
        row(
            "GET",
            "/consultation/{id}/messages",
            InProgress,
            participants(OK),
            |cell| none(&c(cell, "/messages")),
        ),
        row(
            "POST",
            "/consultation/{id}/messages",
            InProgress,
            participants(CREATED),
            |cell| {
                with(
                    c(cell, "/messages"),
                    json!({"client_msg_id": cmid(), "kind": "text", "content": "matrix"}),
                )
            },
        ),
        // Messages exist above 0, so the poll answers at once.
        row(
            "GET",
            "/consultation/{id}/messages/poll",
            InProgress,
            participants(OK),
            |cell| none(&c(cell, "/messages/poll?after_seq=0&timeout=1")),
        ),
        row("GET", "/consultations", InProgress, own(OK), |_| {
            none("/consultations")
        }),
        row(
            "POST",
            "/media",
            InProgress,
            participants(CREATED),
            |cell| {
                (
                    format!("/media?consultation_id={}", cell.scene.consultation),
                    Body::Png,
                )
            },
        ),
        row(
            "GET",
            "/media/{media_id}",
            InProgress,
            participants(OK),
            |cell| none(&format!("/media/{}", cell.scene.media)),
        ),
        // The upgrade itself (the frames have their own matrix below).
        row("GET", "/realtime", Idle, own(SWITCHED), |_| {
            none("/realtime")
        }),
    ]
}

/// Rows for the routes outside `/api/v1`: everyone gets the Prometheus text (counters only,
/// nothing about any user).
const ROOT_ROWS: &[(&str, &str, [Want; 7])] = &[("GET", "/metrics", public(OK))];

/// What the owner wrote in the consultation; nobody else may ever see it.
const SECRET_TEXT: &str = "between the two of us: born under Scorpio";

/// A consultation at one stage, its two parties, and the owner's other sessions.
struct Scene {
    owner: User,
    owner_phone: String,
    other: User,
    /// Empty for the idle scene.
    consultation: String,
    /// An image in the consultation (the in-progress scene only).
    media: String,
    /// A second live session of the owner.
    spare: User,
    /// A session of the owner that has logged out.
    revoked: User,
    /// The owner's first session, with a token past its expiry.
    expired: User,
    _sockets: Vec<Ws>,
}

/// Scenes by stage, and two strangers.
struct World {
    scenes: Vec<(Stage, Scene)>,
    stranger_customer: User,
    stranger_guide: User,
    _sockets: Vec<Ws>,
}

impl World {
    fn scene(&self, stage: Stage) -> &Scene {
        &self
            .scenes
            .iter()
            .find(|(s, _)| *s == stage)
            .expect("the world has this stage")
            .1
    }

    fn who<'a>(&'a self, scene: &'a Scene, actor: Actor) -> Option<&'a User> {
        match actor {
            Actor::Owner => Some(&scene.owner),
            Actor::OtherParty => Some(&scene.other),
            Actor::StrangerCustomer => Some(&self.stranger_customer),
            Actor::StrangerGuide => Some(&self.stranger_guide),
            Actor::Anonymous => None,
            Actor::Revoked => Some(&scene.revoked),
            Actor::Expired => Some(&scene.expired),
        }
    }
}

/// A fresh phone number for every login of the whole test.
fn phone() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("7{:09}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Codes may be asked for as often as the matrix logs in; the message bucket holds all it sends.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.otp_resend_after = Duration::ZERO;
        c.otp_per_hour = 100_000;
        c.message_burst = 1000;
    })
    .await
}

/// The token a session would carry an hour after it was issued: well signed, but expired.
fn expired_token(server: &TestServer, user: &User) -> String {
    let keys = Keys::load_or_create(&server.data_dir).expect("the server's signing key");
    let now = chrono::Utc::now().timestamp();
    keys.sign(&Claims {
        sub: user.id.to_string(),
        role: "customer".into(),
        sid: user.session_id.clone(),
        iat: now - 3600,
        exp: now - 2700,
    })
}

async fn build_scene(server: &TestServer, stage: Stage) -> Scene {
    let owner_phone = phone();
    let owner = server.customer(&owner_phone).await;
    let (other, guide_ws) = server.online_guide(&phone(), "Matrix Guide").await;
    let spare = server.login("+91", &owner_phone, "customer").await;
    let revoked = server.login("+91", &owner_phone, "customer").await;
    assert_status(
        server.post("/auth/logout", Some(&revoked), json!({})).await,
        204,
    );
    let expired = User {
        token: expired_token(server, &owner),
        ..owner.clone()
    };
    let mut consultation = String::new();
    let mut media = String::new();
    match stage {
        Stage::Idle => {}
        Stage::Requested | Stage::Accepted => {
            let c: Value = server
                .post(
                    "/consultation",
                    Some(&owner),
                    json!({"guide_id": other.id, "mode": "chat"}),
                )
                .await
                .created();
            consultation = c["consultation_id"].as_str().expect("id").to_owned();
            if stage == Stage::Accepted {
                server
                    .post(
                        &format!("/consultation/{consultation}/accept"),
                        Some(&other),
                        json!({}),
                    )
                    .await
                    .ok::<Value>();
            }
        }
        Stage::InProgress | Stage::Completed => {
            consultation = server.open_consultation(&owner, &other).await;
            server
                .post(
                    &format!("/consultation/{consultation}/messages"),
                    Some(&owner),
                    json!({"client_msg_id": cmid(), "kind": "text", "content": SECRET_TEXT}),
                )
                .await
                .created::<Value>();
            if stage == Stage::InProgress {
                let m: Value = send(
                    server,
                    "POST",
                    &format!("/media?consultation_id={consultation}"),
                    Some(&owner),
                    Body::Png,
                )
                .await
                .created();
                media = m["media_id"].as_str().expect("media_id").to_owned();
                server
                    .post(
                        &format!("/customers/{}/profile", owner.id),
                        Some(&owner),
                        profile_input(),
                    )
                    .await
                    .ok::<Value>();
            } else {
                server.complete(&owner, &consultation).await;
            }
        }
    }
    Scene {
        owner,
        owner_phone,
        other,
        consultation,
        media,
        spare,
        revoked,
        expired,
        _sockets: vec![guide_ws],
    }
}

async fn build_world(server: &TestServer, stages: &[Stage]) -> World {
    let mut scenes = Vec::new();
    for &stage in stages {
        scenes.push((stage, build_scene(server, stage).await));
    }
    let stranger_customer = server.customer(&phone()).await;
    let (stranger_guide, ws) = server.online_guide(&phone(), "Stranger Guide").await;
    World {
        scenes,
        stranger_customer,
        stranger_guide,
        _sockets: vec![ws],
    }
}

fn assert_status(r: Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.body);
}

/// A minimal valid PNG header (the server reads only headers).
fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(b"IHDR");
    v.extend_from_slice(&4u32.to_be_bytes());
    v.extend_from_slice(&4u32.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&[0x7b, 0x48, 0x4f, 0x2e]); // CRC, unchecked
    v.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    v
}

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    who: Option<&User>,
    body: Body,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let url = if path == "/metrics" {
        format!("http://{}{path}", server.addr)
    } else {
        server.url(path)
    };
    let mut req = server.http.request(method, url);
    if let Some(u) = who {
        req = req.bearer_auth(&u.token);
    }
    req = match body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Png => req.header("content-type", "image/png").body(png()),
    };
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

/// The status (and error code) of a realtime upgrade with this caller's token.
async fn upgrade(server: &TestServer, who: Option<&User>) -> (u16, Option<String>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut req = server.ws_url().into_client_request().expect("request");
    if let Some(u) = who {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", u.token).parse().expect("header"),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, res)) => (res.status().as_u16(), None),
        Err(WsError::Http(res)) => {
            let body: Value = res
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (
                res.status().as_u16(),
                body["error"]["code"].as_str().map(str::to_owned),
            )
        }
        Err(other) => panic!("the upgrade neither worked nor was refused over HTTP: {other}"),
    }
}

/// What a cell got, in the shape of [`Want`].
async fn run_cell(
    server: &TestServer,
    world: &World,
    row: &Row,
    actor: Actor,
) -> (u16, Option<String>) {
    let scene = world.scene(row.stage);
    let who = world.who(scene, actor);
    if row.route == "/realtime" {
        return upgrade(server, who).await;
    }
    let phone = phone();
    let otp_request = if row.route == "/auth/otp/validate" {
        Some(
            server
                .post(
                    "/auth/otp/generate",
                    None,
                    json!({"area_code": "+91", "phone_number": phone, "user_type": "customer", "purpose": "login"}),
                )
                .await
                .ok::<Value>(),
        )
    } else {
        None
    };
    let cell = Cell {
        scene,
        who,
        phone,
        otp_request,
    };
    let (path, body) = (row.call)(&cell);
    let r = send(server, row.method, &path, who, body).await;
    let code = r.body["error"]["code"].as_str().map(str::to_owned);
    if code.is_some() {
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{} {path}: errors say something for a person: {}",
            row.method,
            r.body
        );
    }
    if !matches!(actor, Actor::Owner | Actor::OtherParty) {
        // Whatever they got, nobody else sees the owner's consultation, image, phone or words.
        let text = r.body.to_string();
        for secret in [
            scene.consultation.as_str(),
            scene.media.as_str(),
            scene.owner_phone.as_str(),
            SECRET_TEXT,
        ] {
            assert!(
                secret.is_empty() || !text.contains(secret),
                "{} /api/v1{} by {actor:?} shows {secret:?}: {text}",
                row.method,
                row.route
            );
        }
    }
    (r.status, code)
}

fn matches(want: Want, got: &(u16, Option<String>)) -> bool {
    want.0 == got.0 && (want.1.is_none() || want.1 == got.1.as_deref())
}

fn describe(want: Want) -> String {
    match want.1 {
        Some(code) => format!("{} {code}", want.0),
        None => want.0.to_string(),
    }
}

#[tokio::test]
async fn every_route_has_a_row_and_no_row_names_a_route_that_is_gone() {
    let served: BTreeSet<(&str, &str)> = tara_server::ROUTES.iter().copied().collect();
    let rows = rows();
    let covered: BTreeSet<(&str, &str)> = rows.iter().map(|r| (r.method, r.route)).collect();
    let missing: Vec<_> = served.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes with no row in the access matrix: {missing:?}; add one to rows()"
    );
    assert!(
        stale.is_empty(),
        "rows for routes the server does not serve: {stale:?}"
    );
    assert_eq!(rows.len(), covered.len(), "one row per route");
    let root: BTreeSet<_> = tara_server::ROOT_ROUTES.iter().copied().collect();
    let root_rows: BTreeSet<_> = ROOT_ROWS.iter().map(|(m, p, _)| (*m, *p)).collect();
    assert_eq!(root, root_rows, "every route outside /api/v1 has a row");
}

#[tokio::test]
async fn every_rest_route_answers_each_actor_as_the_matrix_says() {
    let server = server().await;
    let world = build_world(&server, &STAGES).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    let mut fresh_worlds = 0;
    for row in rows() {
        for (actor, want) in ACTORS.iter().zip(row.want) {
            let own_world;
            let w = if row.fresh && want.0 < 300 {
                fresh_worlds += 1;
                own_world = build_world(&server, &[row.stage]).await;
                &own_world
            } else {
                &world
            };
            let got = run_cell(&server, w, &row, *actor).await;
            cells += 1;
            if !matches(want, &got) {
                failures.push(format!(
                    "{} /api/v1{} by {actor:?}: wanted {}, got {} {}",
                    row.method,
                    row.route,
                    describe(want),
                    got.0,
                    got.1.unwrap_or_default()
                ));
            }
        }
    }
    for (method, path, want) in ROOT_ROWS {
        for (actor, want) in ACTORS.iter().zip(want) {
            let scene = world.scene(Stage::Idle);
            let r = send(&server, method, path, world.who(scene, *actor), Body::None).await;
            cells += 1;
            let got = (
                r.status,
                r.body["error"]["code"].as_str().map(str::to_owned),
            );
            if !matches(*want, &got) {
                failures.push(format!(
                    "{method} {path} by {actor:?}: wanted {}, got {}",
                    describe(*want),
                    got.0
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells answered otherwise:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let routes = tara_server::ROUTES.len() + tara_server::ROOT_ROUTES.len();
    assert_eq!(cells, routes * ACTORS.len(), "every route by every actor");
    eprintln!(
        "access matrix: {routes} routes x {} actors = {cells} cells, {fresh_worlds} in worlds of their own",
        ACTORS.len()
    );
}

// ---- Realtime frames ----

/// What a frame must get on a signed-in actor's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Nothing but what it asked for (or nothing at all); no error before the next pong.
    Taken(Option<&'static str>),
    /// An error frame with this code; the socket stays open.
    Refused(&'static str),
}

const TAKEN: Answer = Answer::Taken(None);
const FRAME_FORBIDDEN: Answer = Answer::Refused("FORBIDDEN");

/// One frame row: its `type`, a sample for an actor, and what the four signed-in actors get.
/// No token, a revoked session and an expired token never get a socket to send it on.
struct FrameRow {
    kind: &'static str,
    sample: fn(&Scene) -> Value,
    want: [Answer; 4],
}

fn frame_rows() -> Vec<FrameRow> {
    let participants = |ok| [ok, ok, FRAME_FORBIDDEN, FRAME_FORBIDDEN];
    vec![
        FrameRow {
            kind: "subscribe",
            sample: |s| json!({"type": "subscribe", "consultation_id": s.consultation, "after_seq": 0}),
            want: participants(Answer::Taken(Some("subscribed"))),
        },
        // Leaving what one never joined leaks nothing and changes nothing.
        FrameRow {
            kind: "unsubscribe",
            sample: |s| json!({"type": "unsubscribe", "consultation_id": s.consultation}),
            want: [TAKEN; 4],
        },
        FrameRow {
            kind: "send",
            sample: |s| json!({"type": "send", "client_msg_id": cmid(), "consultation_id": s.consultation, "kind": "text", "content": "matrix"}),
            want: participants(Answer::Taken(Some("ack"))),
        },
        FrameRow {
            kind: "typing",
            sample: |s| json!({"type": "typing", "consultation_id": s.consultation, "is_typing": true}),
            want: participants(TAKEN),
        },
        FrameRow {
            kind: "delivered",
            sample: |s| json!({"type": "delivered", "consultation_id": s.consultation, "up_to_seq": 1}),
            want: participants(TAKEN),
        },
        FrameRow {
            kind: "read",
            sample: |s| json!({"type": "read", "consultation_id": s.consultation, "up_to_seq": 1}),
            want: participants(TAKEN),
        },
        // Guides' presence is as public as the guide list.
        FrameRow {
            kind: "watch_guides",
            sample: |_| json!({"type": "watch_guides"}),
            want: [TAKEN; 4],
        },
        // A connection may swap in a token of its own session only: here, the owner's.
        FrameRow {
            kind: "auth",
            sample: |s| json!({"type": "auth", "access_token": s.owner.token}),
            want: [
                TAKEN,
                Answer::Refused("AUTHENTICATION_FAILED"),
                Answer::Refused("AUTHENTICATION_FAILED"),
                Answer::Refused("AUTHENTICATION_FAILED"),
            ],
        },
        FrameRow {
            kind: "ping",
            sample: |_| json!({"type": "ping"}),
            want: [Answer::Taken(Some("pong")); 4],
        },
    ]
}

/// The `type` of every client frame the protocol has. The match has no catch-all: a new frame
/// type does not compile here until it is named, and the test below then wants a row for it.
fn frame_kind(f: &ClientFrame) -> &'static str {
    match f {
        ClientFrame::Subscribe { .. } => "subscribe",
        ClientFrame::Unsubscribe { .. } => "unsubscribe",
        ClientFrame::Send { .. } => "send",
        ClientFrame::Typing { .. } => "typing",
        ClientFrame::Delivered { .. } => "delivered",
        ClientFrame::Read { .. } => "read",
        ClientFrame::WatchGuides => "watch_guides",
        ClientFrame::Auth { .. } => "auth",
        ClientFrame::Ping => "ping",
    }
}

/// As many as `frame_kind` has arms.
const CLIENT_FRAME_TYPES: usize = 9;

/// Sends `frame`, then a ping, and reads up to the pong: what the frame got (the types of the
/// frames before the pong), or the first error frame.
async fn try_frame(ws: &mut Ws, frame: &Value) -> Result<Vec<String>, (String, Value)> {
    ws.send(frame.clone()).await;
    ws.send(json!({"type": "ping"})).await;
    let mut seen = Vec::new();
    let mut error = None;
    let mut pongs = 0;
    let wanted_pongs = if frame["type"] == "ping" { 2 } else { 1 };
    loop {
        let f = ws
            .next_within(WAIT)
            .await
            .expect("the socket stays open and answers the ping");
        let ty = f["type"].as_str().unwrap_or_default().to_owned();
        if ty == "pong" {
            pongs += 1;
            if pongs < wanted_pongs {
                seen.push(ty);
                continue;
            }
            // Read up to our own pong either way, so the next try starts clean.
            return match error {
                Some(e) => Err(e),
                None => Ok(seen),
            };
        }
        if ty == "error" && error.is_none() {
            error = Some((f["code"].as_str().unwrap_or_default().to_owned(), f));
            continue;
        }
        seen.push(ty);
    }
}

#[tokio::test]
async fn every_realtime_frame_answers_each_actor_as_the_matrix_says() {
    let server = server().await;
    let world = build_world(&server, &[Stage::InProgress]).await;
    let scene = world.scene(Stage::InProgress);
    let rows = frame_rows();

    // Every frame type has exactly one row.
    let kinds: BTreeSet<&str> = rows
        .iter()
        .map(|r| {
            let f: ClientFrame = serde_json::from_value((r.sample)(scene))
                .unwrap_or_else(|e| panic!("the {} sample is a client frame: {e}", r.kind));
            assert_eq!(frame_kind(&f), r.kind, "the row's sample is of its kind");
            r.kind
        })
        .collect();
    assert_eq!(
        (kinds.len(), rows.len()),
        (CLIENT_FRAME_TYPES, CLIENT_FRAME_TYPES),
        "one row per client frame type: {kinds:?}"
    );

    let mut failures = Vec::new();
    let mut cells = 0;
    for row in &rows {
        for (actor, want) in ACTORS[..4].iter().zip(row.want) {
            let who = world.who(scene, *actor).expect("signed in");
            let mut ws = Ws::connect(&server, &who.token).await;
            let frame = (row.sample)(scene);
            let got = try_frame(&mut ws, &frame).await;
            cells += 1;
            let fine = match (want, &got) {
                (Answer::Taken(None), Ok(_)) => true,
                (Answer::Taken(Some(ty)), Ok(seen)) => seen.iter().any(|s| s == ty),
                (Answer::Refused(code), Err((got, f))) => {
                    let named = frame["type"] != "send" || f["ref"] == frame["client_msg_id"];
                    code == got && named
                }
                _ => false,
            };
            if !fine {
                failures.push(format!(
                    "frame {} by {actor:?}: wanted {want:?}, got {got:?}",
                    row.kind
                ));
            }
        }
        // No token, a revoked session, an expired token: no socket to send the frame on.
        for (actor, want) in
            ACTORS[4..]
                .iter()
                .zip([UNAUTHENTICATED, UNAUTHENTICATED, TOKEN_EXPIRED])
        {
            let got = upgrade(&server, world.who(scene, *actor)).await;
            cells += 1;
            if !matches(want, &got) {
                failures.push(format!(
                    "frame {} by {actor:?}: the upgrade wanted {}, got {got:?}",
                    row.kind,
                    describe(want)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} frame cells answered otherwise:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, CLIENT_FRAME_TYPES * ACTORS.len());
    eprintln!(
        "realtime matrix: {CLIENT_FRAME_TYPES} frame types x {} actors = {cells} cells",
        ACTORS.len()
    );
}

#[tokio::test]
async fn a_socket_of_a_session_that_logs_out_is_closed_and_cannot_come_back() {
    let server = server().await;
    let world = build_world(&server, &[Stage::InProgress]).await;
    let scene = world.scene(Stage::InProgress);
    // Another session of the owner, live and subscribed; then it logs out.
    let session = server.login("+91", &scene.owner_phone, "customer").await;
    let mut ws = Ws::connect(&server, &session.token).await;
    ws.subscribe(&scene.consultation, 0).await;
    assert_status(
        server.post("/auth/logout", Some(&session), json!({})).await,
        204,
    );
    assert_eq!(ws.closed().await, Closed::Code(4001));
    assert_eq!(
        upgrade(&server, Some(&session)).await,
        (401, Some("AUTHENTICATION_FAILED".to_owned()))
    );
    // And a live socket cannot take on a dead session's token.
    let mut live = Ws::connect(&server, &scene.owner.token).await;
    let got = try_frame(
        &mut live,
        &json!({"type": "auth", "access_token": session.token}),
    )
    .await;
    assert!(
        matches!(&got, Err((code, _)) if code == "AUTHENTICATION_FAILED"),
        "{got:?}"
    );
    let got = try_frame(
        &mut live,
        &json!({"type": "auth", "access_token": scene.expired.token}),
    )
    .await;
    assert!(
        matches!(&got, Err((code, _)) if code == "TOKEN_EXPIRED"),
        "{got:?}"
    );
}
