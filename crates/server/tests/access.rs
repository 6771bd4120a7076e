//! Only the two participants may read or act on a consultation. Strangers (another customer, another
//! guide) are refused on every endpoint and frame, and nothing they try changes anything.
//! No token, no entry.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

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

async fn reply(r: reqwest::Response) -> Reply {
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

async fn upload(server: &TestServer, user: Option<&User>, consultation_id: &str) -> Reply {
    let mut req = server
        .http
        .post(server.url(&format!("/media?consultation_id={consultation_id}")))
        .header("content-type", "image/png")
        .body(png());
    if let Some(u) = user {
        req = req.bearer_auth(&u.token);
    }
    reply(req.send().await.expect("upload")).await
}

/// Every REST call a participant could make on a consultation, as `(what, reply)`.
async fn every_call(
    server: &TestServer,
    user: Option<&User>,
    id: &str,
    media_id: Option<&str>,
) -> Vec<(String, Reply)> {
    let c = format!("/consultation/{id}");
    let mut out = vec![
        ("get".to_owned(), server.get(&c, user).await),
        (
            "history".to_owned(),
            server.get(&format!("{c}/messages"), user).await,
        ),
        (
            "send".to_owned(),
            server
                .post(
                    &format!("{c}/messages"),
                    user,
                    json!({"client_msg_id": cmid(), "kind": "text", "content": "let me in"}),
                )
                .await,
        ),
        (
            "poll".to_owned(),
            server
                .get(&format!("{c}/messages/poll?after_seq=0&timeout=1"), user)
                .await,
        ),
        (
            "accept".to_owned(),
            server.post(&format!("{c}/accept"), user, json!({})).await,
        ),
        (
            "reject".to_owned(),
            server
                .post(&format!("{c}/reject"), user, json!({"reason": "mine now"}))
                .await,
        ),
        (
            "cancel".to_owned(),
            server.post(&format!("{c}/cancel"), user, json!({})).await,
        ),
        (
            "join".to_owned(),
            server
                .post(&format!("{c}/join"), user, json!({"mode": "chat"}))
                .await,
        ),
        (
            "complete".to_owned(),
            server
                .patch(&format!("{c}/complete"), user, json!({}))
                .await,
        ),
        (
            "feedback".to_owned(),
            server
                .post(&format!("{c}/feedback"), user, json!({"rating": 1}))
                .await,
        ),
        ("upload".to_owned(), upload(server, user, id).await),
    ];
    if let Some(m) = media_id {
        out.push((
            "download".to_owned(),
            server.get(&format!("/media/{m}"), user).await,
        ));
    }
    out
}

/// What a participant sees of a consultation: the record, the whole history, and the marks.
async fn snapshot(server: &TestServer, participant: &User, id: &str) -> (Value, Value) {
    let c: Value = server
        .get(&format!("/consultation/{id}"), Some(participant))
        .await
        .ok();
    let h: Value = server
        .get(
            &format!("/consultation/{id}/messages?limit=100"),
            Some(participant),
        )
        .await
        .ok();
    (c, h)
}

/// Three consultations in every state a stranger could meddle with, and two strangers.
struct World {
    server: TestServer,
    pending: (String, User),
    live: (String, User),
    done: (String, User),
    live_guide: User,
    media_id: String,
    strangers: Vec<User>,
    _sockets: Vec<Ws>,
}

async fn world() -> World {
    let server = TestServer::start().await;
    let (asha, asha_ws) = server.online_guide("9000000001", "Asha").await;
    let (ravi, ravi_ws) = server.online_guide("9000000002", "Ravi").await;
    let (other_guide, other_ws) = server.online_guide("9000000003", "Meera").await;
    let (x, y, z) = (
        server.customer("9876543201").await,
        server.customer("9876543202").await,
        server.customer("9876543203").await,
    );
    let stranger = server.customer("9876543209").await;

    // Completed (and not yet rated): Z with Ravi.
    let done = server.open_consultation(&z, &ravi).await;
    server.complete(&z, &done).await;
    // In progress with a message and an image: Y with Ravi.
    let live = server.open_consultation(&y, &ravi).await;
    server
        .post(
            &format!("/consultation/{live}/messages"),
            Some(&y),
            json!({"client_msg_id": cmid(), "kind": "text", "content": "private"}),
        )
        .await
        .created::<Value>();
    let media: Value = upload(&server, Some(&y), &live).await.created();
    // Requested: X asks Asha.
    let pending: Value = server
        .post(
            "/consultation",
            Some(&x),
            json!({"guide_id": asha.id, "mode": "chat"}),
        )
        .await
        .created();
    World {
        pending: (
            pending["consultation_id"].as_str().expect("id").to_owned(),
            x,
        ),
        live: (live, y),
        done: (done, z),
        live_guide: ravi,
        media_id: media["media_id"].as_str().expect("media_id").to_owned(),
        strangers: vec![stranger, other_guide],
        _sockets: vec![asha_ws, ravi_ws, other_ws],
        server,
    }
}

/// A consultation id that was never given out.
fn unknown_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[tokio::test]
async fn strangers_are_refused_on_every_rest_call_and_nothing_changes() {
    let w = world().await;
    let targets = [&w.pending, &w.live, &w.done];
    let mut before = Vec::new();
    for (id, owner) in targets {
        before.push(snapshot(&w.server, owner, id).await);
    }

    for stranger in &w.strangers {
        for (id, _) in targets {
            let media = (id == &w.live.0).then_some(w.media_id.as_str());
            for (what, r) in every_call(&w.server, Some(stranger), id, media).await {
                assert_eq!(
                    (r.status, r.body["error"]["code"].as_str()),
                    (403, Some("FORBIDDEN")),
                    "{what} by stranger {} on {id}: {}",
                    stranger.id,
                    r.body
                );
            }
        }
    }

    for ((id, owner), was) in targets.iter().zip(&before) {
        assert_eq!(
            &snapshot(&w.server, owner, id).await,
            was,
            "{id} is as it was"
        );
    }
    // Nor do the lists show strangers anything of theirs.
    let (stranger, other_guide) = (&w.strangers[0], &w.strangers[1]);
    let chats: Value = w.server.get("/consultations", Some(stranger)).await.ok();
    assert_eq!(chats["items"], json!([]));
    let chats: Value = w.server.get("/consultations", Some(other_guide)).await.ok();
    assert_eq!(chats["items"], json!([]));
    let requests: Value = w
        .server
        .get("/consultation/requests", Some(other_guide))
        .await
        .ok();
    assert_eq!(requests["requests"], json!([]));
    w.server
        .get("/consultation/customers/current", Some(stranger))
        .await
        .fails(404, "CONSULTATION_NOT_FOUND");
    w.server
        .get("/consultation/guides/current", Some(other_guide))
        .await
        .fails(404, "CONSULTATION_NOT_FOUND");
    // The request still waits for its guide, and the finished one can still be rated by its customer.
    let (done, z) = &w.done;
    w.server
        .post(
            &format!("/consultation/{done}/feedback"),
            Some(z),
            json!({"rating": 5}),
        )
        .await
        .created::<Value>();
    let (live, y) = &w.live;
    let joined: Value = w
        .server
        .post(&format!("/consultation/{live}/join"), Some(y), json!({}))
        .await
        .ok();
    for p in joined["participants"].as_array().expect("participants") {
        if p["user_id"] == w.live_guide.id {
            assert_eq!(p["unread_count"], 1, "the guide's unread is untouched");
        }
    }
}

#[tokio::test]
async fn a_consultation_that_does_not_exist_is_not_found_on_every_rest_call() {
    let w = world().await;
    let id = unknown_id();
    for user in w.strangers.iter().chain([&w.live.1, &w.live_guide]) {
        for (what, r) in every_call(&w.server, Some(user), &id, None).await {
            assert_eq!(
                (r.status, r.body["error"]["code"].as_str()),
                (404, Some("CONSULTATION_NOT_FOUND")),
                "{what} by {}: {}",
                user.id,
                r.body
            );
        }
    }
    w.server
        .get(&format!("/media/{}", unknown_id()), Some(&w.live.1))
        .await
        .fails(404, "NOT_FOUND");
}

#[tokio::test]
async fn strangers_get_error_frames_on_realtime_and_stay_connected() {
    let w = world().await;
    let targets = [&w.pending, &w.live, &w.done];
    let mut before = Vec::new();
    for (id, owner) in targets {
        before.push(snapshot(&w.server, owner, id).await);
    }
    let missing = unknown_id();
    let mut watchers = Vec::new();
    for stranger in &w.strangers {
        for (id, expected) in [
            (&w.pending.0, "FORBIDDEN"),
            (&w.live.0, "FORBIDDEN"),
            (&w.done.0, "FORBIDDEN"),
            (&missing, "CONSULTATION_NOT_FOUND"),
        ] {
            let mut ws = Ws::connect(&w.server, &stranger.token).await;
            let cm = cmid();
            let frames = [
                json!({"type": "subscribe", "consultation_id": id, "after_seq": 0}),
                json!({"type": "send", "client_msg_id": cm, "consultation_id": id, "kind": "text", "content": "hi"}),
                json!({"type": "typing", "consultation_id": id, "is_typing": true}),
                json!({"type": "delivered", "consultation_id": id, "up_to_seq": 100}),
                json!({"type": "read", "consultation_id": id, "up_to_seq": 100}),
            ];
            for frame in frames {
                ws.send(frame.clone()).await;
                let f = ws.next_within(WAIT).await.expect("an answer, not a close");
                assert_eq!(
                    (f["type"].as_str(), f["code"].as_str()),
                    (Some("error"), Some(expected)),
                    "{frame} by {}: {f}",
                    stranger.id
                );
                if frame["type"] == "send" {
                    assert_eq!(f["ref"], cm.as_str(), "the refused send is named");
                } else {
                    assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
                }
            }
            ws.send(json!({"type": "ping"})).await;
            assert_eq!(
                ws.next_within(WAIT).await.expect("still open")["type"],
                "pong"
            );
            watchers.push(ws);
        }
    }

    // Nothing leaks to the strangers' sockets when the participants carry on.
    let (live, y) = &w.live;
    let mut y_ws = Ws::connect(&w.server, &y.token).await;
    y_ws.subscribe(live, 0).await;
    y_ws.send(json!({"type": "typing", "consultation_id": live, "is_typing": true}))
        .await;
    let ack = y_ws.send_text(live, &cmid(), "still private").await;
    assert_eq!(ack["type"], "ack");
    for ws in &mut watchers {
        while let Some(f) = ws.next_within(Duration::from_millis(300)).await {
            assert!(
                !["message", "typing", "receipt", "consultation"]
                    .contains(&f["type"].as_str().unwrap_or_default()),
                "a stranger saw {f}"
            );
        }
    }

    for ((id, owner), was) in targets.iter().zip(&before) {
        let now = snapshot(&w.server, owner, id).await;
        if id == live {
            // Only the participant's own message since.
            assert_eq!(
                now.0["head_seq"].as_i64(),
                was.0["head_seq"].as_i64().map(|s| s + 1)
            );
            assert_eq!(now.0["status"], was.0["status"]);
        } else {
            assert_eq!(&now, was, "{id} is as it was");
        }
    }
    let joined: Value = w
        .server
        .post(&format!("/consultation/{live}/join"), Some(y), json!({}))
        .await
        .ok();
    for p in joined["participants"].as_array().expect("participants") {
        assert_eq!(
            (p["delivered_seq"].as_i64(), p["read_seq"].as_i64()),
            (Some(0), Some(0)),
            "nobody has sent a receipt but the strangers, and theirs moved nothing: {p}"
        );
    }
}

#[tokio::test]
async fn no_token_is_refused_with_401_everywhere() {
    let w = world().await;
    let (live, _) = &w.live;
    let mut calls = every_call(&w.server, None, live, Some(&w.media_id)).await;
    for (what, path) in [
        ("profile", "/auth/profile"),
        ("sessions", "/auth/sessions"),
        ("guides", "/guide/all"),
        ("guide profile", "/guide/profile"),
        ("requests", "/consultation/requests"),
        ("customer current", "/consultation/customers/current"),
        ("guide current", "/consultation/guides/current"),
        ("chat list", "/consultations"),
        ("customer profile", "/customers/1/profile"),
        ("customer profiles", "/customers/1/profiles"),
    ] {
        calls.push((what.to_owned(), w.server.get(path, None).await));
    }
    calls.push((
        "request".to_owned(),
        w.server
            .post("/consultation", None, json!({"guide_id": w.live_guide.id}))
            .await,
    ));
    calls.push((
        "status".to_owned(),
        w.server
            .post("/guide/status", None, json!({"status": "online"}))
            .await,
    ));
    for (what, r) in calls {
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (401, Some("AUTHENTICATION_FAILED")),
            "{what}: {}",
            r.body
        );
    }
    // A token that is not one the server signed is no better.
    let forged = User {
        id: w.live.1.id,
        token: "not.a.token".into(),
        refresh: String::new(),
        session_id: String::new(),
    };
    for (what, r) in every_call(&w.server, Some(&forged), live, Some(&w.media_id)).await {
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (401, Some("AUTHENTICATION_FAILED")),
            "{what} with a forged token: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn the_realtime_upgrade_without_a_valid_token_is_refused_with_401() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let server = TestServer::start().await;
    let refused = |e: WsError| match e {
        WsError::Http(res) => {
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
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    let expected = (401, Some("AUTHENTICATION_FAILED".to_owned()));
    let bare = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .map(|_| ())
        .expect_err("no token, no socket");
    assert_eq!(refused(bare), expected);
    let forged = Ws::try_connect(&server, "not.a.token")
        .await
        .map(|_| ())
        .expect_err("a forged token, no socket");
    assert_eq!(refused(forged), expected);
    let query =
        tokio_tungstenite::connect_async(format!("{}?access_token=garbage", server.ws_url()))
            .await
            .map(|_| ())
            .expect_err("a bad query token, no socket");
    assert_eq!(refused(query), expected);
}
