//! The realtime hub: resume after a disconnect, typing, presence, bad input, the greeting,
//! and what happens to a connection that stops reading.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A customer and an online guide in an in-progress consultation, both subscribed.
async fn chatting(server: &TestServer) -> (User, Ws, User, Ws, String, i64) {
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(server, &customer.token).await;
    let id = server.open_consultation(&customer, &guide).await;
    let (_, head) = customer_ws.subscribe(&id, 0).await;
    guide_ws.subscribe(&id, head).await;
    (customer, customer_ws, guide, guide_ws, id, head)
}

fn fast_senders(c: &mut tara_server::Config) {
    c.message_burst = 100_000;
    c.messages_per_minute = 10_000_000;
}

/// Typing frames from `user` arriving within `within`, as their `is_typing` values.
async fn typing_from(ws: &mut Ws, user: i64, within: Duration) -> Vec<bool> {
    ws.collect_of("typing", within)
        .await
        .iter()
        .filter(|f| f["user_id"] == user)
        .map(|f| f["is_typing"].as_bool().expect("is_typing"))
        .collect()
}

/// `ping` answered by `pong`, skipping whatever else is queued: the connection still works.
async fn still_open(ws: &mut Ws) {
    ws.send(json!({"type": "ping"})).await;
    ws.next_of("pong").await;
}

/// The next frame, which must be an error with this code.
async fn error_code(ws: &mut Ws) -> String {
    let f = ws.next_of("error").await;
    assert!(
        f["message"].as_str().is_some_and(|m| !m.is_empty()),
        "errors say something: {f}"
    );
    f["code"].as_str().expect("code").to_owned()
}

#[tokio::test]
async fn a_reconnecting_guide_gets_exactly_the_messages_it_missed() {
    let server = TestServer::start_with(fast_senders).await;
    let (_customer, mut customer_ws, guide, mut guide_ws, id, head) = chatting(&server).await;

    customer_ws
        .send_text(&id, &cmid(), "Before the tunnel")
        .await;
    let seen = guide_ws.next_of("message").await;
    let last = seen["message"]["seq"].as_i64().expect("seq");
    assert_eq!(last, head + 1);

    // The guide's train enters a tunnel; the customer keeps writing.
    guide_ws.close().await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let text = format!("while you were away {i}");
        let ack = customer_ws.send_text(&id, &cmid(), &text).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        sent.push((ack["seq"].as_i64().expect("seq"), text));
    }

    let mut guide_ws = Ws::connect(&server, &guide.token).await;
    let (missed, head_seq) = guide_ws.subscribe(&id, last).await;
    let missed: Vec<(i64, String)> = missed
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().expect("seq"),
                m["content"].as_str().expect("content").to_owned(),
            )
        })
        .collect();
    assert_eq!(missed, sent, "exactly the missed messages, in order");
    assert_eq!(head_seq, last + 20);

    // Live messages follow the replay without a gap or a repeat.
    let ack = customer_ws.send_text(&id, &cmid(), "Welcome back").await;
    let next = guide_ws.next_of("message").await;
    assert_eq!(next["message"]["seq"], ack["seq"]);
    assert_eq!(next["message"]["seq"].as_i64(), Some(head_seq + 1));
    assert!(guide_ws
        .collect_of("message", Duration::from_millis(300))
        .await
        .is_empty());
}

#[tokio::test]
async fn typing_reaches_the_other_side_and_ends_by_itself() {
    let server = TestServer::start_with(|c| {
        c.typing_expiry = Duration::from_millis(400);
        c.otp_resend_after = Duration::ZERO;
    })
    .await;
    let (customer, mut customer_ws, guide, mut guide_ws, id, _head) = chatting(&server).await;
    // The guide's second device has not opened this chat.
    let other_device = server.login("+91", "9000000001", "guide").await;
    let mut elsewhere = Ws::connect(&server, &other_device.token).await;

    customer_ws
        .send(json!({"type": "typing", "consultation_id": id, "is_typing": true}))
        .await;
    let f = guide_ws.next_of("typing").await;
    assert_eq!(
        (
            f["consultation_id"].as_str(),
            f["user_id"].as_i64(),
            f["is_typing"].as_bool()
        ),
        (Some(id.as_str()), Some(customer.id), Some(true))
    );
    // Nothing more is sent: the server ends it.
    let f = guide_ws.next_of("typing").await;
    assert_eq!(
        (f["user_id"].as_i64(), f["is_typing"].as_bool()),
        (Some(customer.id), Some(false)),
        "typing ends by itself"
    );

    // Only the other party's subscribed connections hear it.
    assert!(
        typing_from(&mut elsewhere, customer.id, Duration::from_millis(200))
            .await
            .is_empty()
    );
    assert!(
        typing_from(&mut customer_ws, customer.id, Duration::from_millis(200))
            .await
            .is_empty(),
        "nobody is told of their own typing"
    );

    // The guide types back and stops explicitly.
    guide_ws
        .send(json!({"type": "typing", "consultation_id": id, "is_typing": true}))
        .await;
    let f = customer_ws.next_of("typing").await;
    assert_eq!(
        (f["user_id"].as_i64(), f["is_typing"].as_bool()),
        (Some(guide.id), Some(true))
    );
    guide_ws
        .send(json!({"type": "typing", "consultation_id": id, "is_typing": false}))
        .await;
    let f = customer_ws.next_of("typing").await;
    assert_eq!(
        (f["user_id"].as_i64(), f["is_typing"].as_bool()),
        (Some(guide.id), Some(false))
    );
    assert!(
        typing_from(&mut customer_ws, guide.id, Duration::from_millis(700))
            .await
            .is_empty(),
        "a typing state already ended is not ended again"
    );
}

#[tokio::test]
async fn a_burst_of_typing_is_thinned_and_ends_in_the_latest_state() {
    let server = TestServer::start().await;
    let (customer, mut customer_ws, _guide, mut guide_ws, id, _head) = chatting(&server).await;

    // 20 keystrokes over about a second, then the customer stops.
    let started = tokio::time::Instant::now();
    let typing = async {
        for _ in 0..20 {
            customer_ws
                .send(json!({"type": "typing", "consultation_id": id, "is_typing": true}))
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        customer_ws
            .send(json!({"type": "typing", "consultation_id": id, "is_typing": false}))
            .await;
        started.elapsed()
    };
    let (took, seen) = tokio::join!(
        typing,
        typing_from(&mut guide_ws, customer.id, Duration::from_millis(2500))
    );
    assert!(seen.len() >= 2, "typing and its end both arrive: {seen:?}");
    // At most 2 a second while it lasted, and the trailing end; generous for a loaded machine.
    let bound = (took.as_secs_f64() * 2.0).ceil() as usize + 2;
    assert!(
        seen.len() <= bound,
        "{} frames for 21 in {took:?}: {seen:?}",
        seen.len()
    );
    assert_eq!(seen.first(), Some(&true));
    assert_eq!(seen.last(), Some(&false), "the final state is delivered");
}

/// The presence frames for `user` arriving within `within`, as statuses.
async fn presence_of(ws: &mut Ws, user: i64, within: Duration) -> Vec<String> {
    ws.collect_of("presence", within)
        .await
        .iter()
        .filter(|f| f["user_id"] == user)
        .map(|f| f["status"].as_str().expect("status").to_owned())
        .collect()
}

async fn listed_status(server: &TestServer, viewer: &User, guide: i64) -> String {
    let list: Value = server.get("/guide/all", Some(viewer)).await.ok();
    list["guides"]
        .as_array()
        .expect("guides")
        .iter()
        .find(|g| g["id"] == guide)
        .and_then(|g| g["status"].as_str())
        .expect("the guide is listed")
        .to_owned()
}

const GRACE: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn a_guide_stays_online_through_the_grace_then_goes_offline() {
    let server = TestServer::start_with(|c| c.presence_grace = GRACE).await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let (other, _other_ws) = server.online_guide("9000000002", "Bela").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;

    customer_ws.send(json!({"type": "watch_guides"})).await;
    let mut statuses = std::collections::HashMap::new();
    while statuses.len() < 2 {
        let f = customer_ws.next_of("presence").await;
        statuses.insert(f["user_id"].as_i64().expect("user_id"), f["status"].clone());
        assert!(f["last_seen"].is_string(), "{f}");
    }
    assert_eq!(statuses[&guide.id], "online");
    assert_eq!(statuses[&other.id], "online");

    guide_ws.close().await;
    // Within the grace the guide still shows online.
    assert!(presence_of(&mut customer_ws, guide.id, GRACE / 3)
        .await
        .is_empty());
    assert_eq!(listed_status(&server, &customer, guide.id).await, "online");

    let f = customer_ws.next_of("presence").await;
    assert_eq!(
        (f["user_id"].as_i64(), f["status"].as_str()),
        (Some(guide.id), Some("offline"))
    );
    assert!(f["last_seen"].is_string(), "{f}");
    assert_eq!(listed_status(&server, &customer, guide.id).await, "offline");
    assert_eq!(
        listed_status(&server, &customer, other.id).await,
        "online",
        "only the guide who left goes offline"
    );

    // Coming back is shown as it happens.
    let _back = Ws::connect(&server, &guide.token).await;
    let f = customer_ws.next_of("presence").await;
    assert_eq!(
        (f["user_id"].as_i64(), f["status"].as_str()),
        (Some(guide.id), Some("online"))
    );
}

#[tokio::test]
async fn a_guide_reconnecting_within_the_grace_never_shows_offline() {
    let server = TestServer::start_with(|c| c.presence_grace = GRACE).await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    customer_ws.send(json!({"type": "watch_guides"})).await;
    let f = customer_ws.next_of("presence").await;
    assert_eq!(
        (f["user_id"].as_i64(), f["status"].as_str()),
        (Some(guide.id), Some("online"))
    );

    guide_ws.close().await;
    tokio::time::sleep(GRACE / 3).await;
    let _back = Ws::connect(&server, &guide.token).await;
    let seen = presence_of(&mut customer_ws, guide.id, GRACE * 2).await;
    assert!(
        !seen.iter().any(|s| s == "offline"),
        "a blip shorter than the grace is not shown: {seen:?}"
    );
    assert_eq!(listed_status(&server, &customer, guide.id).await, "online");
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let (_customer, mut ws, _guide, _guide_ws, id, _head) = chatting(&server).await;

    let bad = [
        ("malformed JSON", "{\"type\": \"send\", ".to_owned()),
        ("not an object", "[1, 2, 3]".to_owned()),
        ("unknown type", json!({"type": "dance"}).to_string()),
        ("no type", json!({"consultation_id": id}).to_string()),
        (
            "send without content kind",
            json!({"type": "send", "consultation_id": id, "client_msg_id": cmid()}).to_string(),
        ),
        (
            "subscribe without consultation",
            json!({"type": "subscribe"}).to_string(),
        ),
        (
            "typing without is_typing",
            json!({"type": "typing", "consultation_id": id}).to_string(),
        ),
        (
            "read with a word for a seq",
            json!({"type": "read", "consultation_id": id, "up_to_seq": "all"}).to_string(),
        ),
    ];
    for (what, text) in bad {
        ws.send_raw(text).await;
        assert_eq!(error_code(&mut ws).await, "VALIDATION_FAILED", "{what}");
        still_open(&mut ws).await;
    }

    // A send the server cannot read still names the message it refuses, so the app can mark it failed.
    for (what, frame) in [
        (
            "an unknown kind",
            json!({"type": "send", "client_msg_id": "m-video", "consultation_id": id, "kind": "video", "content": "hi"}),
        ),
        (
            "no kind",
            json!({"type": "send", "client_msg_id": "m-nokind", "consultation_id": id, "content": "hi"}),
        ),
    ] {
        ws.send(frame.clone()).await;
        let f = ws.next_of("error").await;
        assert_eq!(
            (f["code"].as_str(), f["ref"].as_str()),
            (Some("VALIDATION_FAILED"), frame["client_msg_id"].as_str()),
            "{what}: {f}"
        );
        still_open(&mut ws).await;
    }

    // 70 KiB of text is over the 64 KiB frame limit.
    let huge = json!({"type": "send", "consultation_id": id, "client_msg_id": cmid(), "kind": "text", "content": "a".repeat(70 * 1024)});
    ws.send_raw(huge.to_string()).await;
    assert_eq!(error_code(&mut ws).await, "PAYLOAD_TOO_LARGE");
    still_open(&mut ws).await;

    // Frames are text.
    ws.stream
        .send(WsMessage::Binary(b"{\"type\":\"ping\"}".to_vec().into()))
        .await
        .expect("send binary");
    error_code(&mut ws).await;
    still_open(&mut ws).await;

    // A consultation that is not the caller's.
    ws.send(json!({"type": "subscribe", "consultation_id": "not-a-consultation", "after_seq": 0}))
        .await;
    let code = error_code(&mut ws).await;
    assert!(
        ["FORBIDDEN", "CONSULTATION_NOT_FOUND"].contains(&code.as_str()),
        "{code}"
    );
    still_open(&mut ws).await;

    // And it still chats.
    let ack = ws.send_text(&id, &cmid(), "Still here").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test]
async fn more_than_twenty_bad_frames_in_a_minute_close_the_connection_with_4008() {
    let server = TestServer::start().await;
    let customer = server.customer("9876543210").await;
    let mut ws = Ws::connect(&server, &customer.token).await;

    for i in 0..20 {
        ws.send_raw(format!("garbage {i}")).await;
        assert_eq!(error_code(&mut ws).await, "VALIDATION_FAILED");
    }
    still_open(&mut ws).await;
    ws.send_raw("one too many".to_owned()).await;
    assert_eq!(ws.closed().await, Closed::Code(4008));
}

#[tokio::test]
async fn hello_comes_first_and_a_query_token_works_in_place_of_the_header() {
    let server = TestServer::start_with(|c| c.heartbeat_interval = Duration::from_secs(7)).await;
    let customer = server.customer("9876543210").await;

    let url = format!("{}?access_token={}", server.ws_url(), customer.token);
    let (mut stream, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a query token is accepted");
    let first = loop {
        match tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a first frame")
            .expect("open")
            .expect("frame")
        {
            WsMessage::Text(t) => break serde_json::from_str::<Value>(t.as_str()).expect("JSON"),
            _ => continue,
        }
    };
    assert_eq!(first["type"], "hello", "{first}");
    assert_eq!(first["user_id"].as_i64(), Some(customer.id));
    assert_eq!(first["heartbeat_interval_ms"].as_u64(), Some(7000));
    let server_time = first["server_time"].as_str().expect("server_time");
    let t = chrono::DateTime::parse_from_rfc3339(server_time).expect("RFC 3339");
    let skew = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .abs();
    assert!(
        skew < 60,
        "server_time is the server's clock: {server_time}"
    );

    // The header works too (Ws::connect reads hello itself).
    let ws = Ws::connect(&server, &customer.token).await;
    assert_eq!(ws.user_id, customer.id);

    // A bad token is refused before the upgrade.
    let bad = format!("{}?access_token=not-a-token", server.ws_url());
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 401)
        }
        other => panic!("a bad token connected: {:?}", other.map(|_| ())),
    }
    let none = tokio_tungstenite::connect_async(server.ws_url()).await;
    assert!(none.is_err(), "no token, no connection");
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_dropped_while_the_sender_keeps_getting_acks() {
    let server = TestServer::start_with(|c| {
        fast_senders(c);
        c.outgoing_queue = 16;
    })
    .await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let id = server.open_consultation(&customer, &guide).await;
    let mut slow = tight_connection(&server, &customer.token).await;
    let (_, head) = slow.subscribe(&id, 0).await;
    let dropped_before = metric(&server, "tara_slow_consumers_total").await;

    // The guide writes long answers, 20 at a time, reading every ack; the customer reads nothing.
    let long = "ॐ".repeat(4000);
    let mut sent = 0;
    let mut windows_after_drop = None;
    for _window in 0..100 {
        let ids: Vec<String> = (0..20).map(|_| cmid()).collect();
        for c in &ids {
            guide_ws
                .send(json!({"type": "send", "client_msg_id": c, "consultation_id": id, "kind": "text", "content": long}))
                .await;
        }
        for c in &ids {
            let ack = guide_ws.next_of("ack").await;
            assert_eq!(
                ack["client_msg_id"],
                c.as_str(),
                "acks keep coming, in order"
            );
        }
        sent += ids.len();
        if windows_after_drop.is_none()
            && metric(&server, "tara_slow_consumers_total").await > dropped_before
        {
            windows_after_drop = Some(0);
        }
        if let Some(w) = windows_after_drop.as_mut() {
            *w += 1;
            if *w > 2 {
                break;
            }
        }
    }
    assert!(
        windows_after_drop.is_some(),
        "the slow reader was never dropped after {sent} messages"
    );

    // The slow client finally reads: what was already on the wire, then the end.
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, slow.stream.next()).await {
            Err(_) => panic!("the slow connection was left open"),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => break,
            Ok(Some(Ok(WsMessage::Text(t)))) => {
                let f: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if f["type"] == "message" {
                    received.push(f["message"]["seq"].as_i64().expect("seq"));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    assert!(
        received.len() < sent,
        "the server did not buffer everything for it: {} of {sent}",
        received.len()
    );
    let expected: Vec<i64> = (head + 1..=head + received.len() as i64).collect();
    assert_eq!(
        received, expected,
        "what it got before the drop is in order"
    );
    assert_eq!(
        metric(&server, "tara_slow_consumers_total").await,
        dropped_before + 1,
        "one connection was dropped, and counted once"
    );

    // Reconnecting, it resumes from what it has and misses nothing.
    let last = received.last().copied().unwrap_or(head);
    let mut again = Ws::connect(&server, &customer.token).await;
    let (rest, head_seq) = again.subscribe(&id, last).await;
    assert_eq!(head_seq, head + sent as i64);
    let seqs: Vec<i64> = rest
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (last + 1..=head_seq).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_frame_too_big_to_read_is_named_before_the_connection_closes_and_nothing_else_suffers() {
    let server = TestServer::start().await;
    let (customer, mut customer_ws, _guide, mut guide_ws, id, _) = chatting(&server).await;
    // A little over the 1 MiB the server will read: it cannot skip the rest, so it closes.
    let huge = json!({"type": "send", "consultation_id": id, "client_msg_id": cmid(), "kind": "text", "content": "a".repeat(1024 * 1024 + 1)});
    let _ = customer_ws
        .stream
        .send(WsMessage::Text(huge.to_string().into()))
        .await;
    assert_eq!(error_code(&mut customer_ws).await, "PAYLOAD_TOO_LARGE");
    assert_eq!(customer_ws.closed().await, Closed::Code(1009));
    // Nothing was stored, the other side is still connected, and the customer can come back.
    still_open(&mut guide_ws).await;
    let mut again = Ws::connect(&server, &customer.token).await;
    let (_, head) = again.subscribe(&id, 0).await;
    let page: Value = server
        .get(
            &format!("/consultation/{id}/messages?limit=100"),
            Some(&customer),
        )
        .await
        .ok();
    let contents: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(contents.iter().all(|c| c.len() < 1024), "{contents:?}");
    let last = page["messages"].as_array().and_then(|m| m.last());
    assert_eq!(Some(head), last.and_then(|m| m["seq"].as_i64()));
}

#[tokio::test]
async fn a_watchers_first_picture_never_lands_after_a_newer_change() {
    // A customer starts watching while a guide switches online. Whatever the interleaving, the
    // last word the customer gets about the guide must be "online": a snapshot read before the
    // switch must not arrive after the switch's own announcement.
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    for round in 0..25 {
        server
            .post("/guide/status", Some(&guide), json!({"status": "offline"}))
            .await
            .ok::<Value>();
        let mut ws = Ws::connect(&server, &customer.token).await;
        let online = server.post("/guide/status", Some(&guide), json!({"status": "online"}));
        let watch = ws.send(json!({"type": "watch_guides"}));
        let (reply, ()) = tokio::join!(online, watch);
        reply.ok::<Value>();
        let seen = presence_of(&mut ws, guide.id, Duration::from_millis(300)).await;
        assert_eq!(
            seen.last().map(String::as_str),
            Some("online"),
            "round {round}: the customer last heard {seen:?}"
        );
        ws.close().await;
    }
}

/// Found by the chaos run on two nodes: a `receipt` fanned out while the sender's connection
/// was away (a cut link, a node that missed the Redis publication) was never sent again, so
/// that person's ticks stayed at "sent" for good. Subscribing, the resume after a reconnect,
/// now ends with each participant's stored progress.
#[tokio::test]
async fn a_receipt_given_while_the_sender_was_away_arrives_when_it_subscribes_again() {
    let server = TestServer::start_with(fast_senders).await;
    let (customer, mut customer_ws, guide, mut guide_ws, id, _) = chatting(&server).await;
    let ack = customer_ws.send_text(&id, &cmid(), "Are you there?").await;
    let seq = ack["seq"].as_i64().expect("seq");
    guide_ws.next_of("message").await;
    customer_ws.close().await;
    // Read while the customer's app was offline.
    guide_ws
        .send(json!({"type": "read", "consultation_id": id, "up_to_seq": seq}))
        .await;
    still_open(&mut guide_ws).await;

    let mut back = Ws::connect(&server, &customer.token).await;
    let (_, head) = back.subscribe(&id, seq).await;
    assert_eq!(head, seq);
    let receipt = loop {
        let r = back.next_of("receipt").await;
        if r["user_id"] == guide.id {
            break r;
        }
    };
    assert_eq!(receipt["consultation_id"], id.as_str());
    assert_eq!(receipt["read_seq"], seq, "{receipt}");
    assert!(receipt["delivered_seq"].as_i64() >= Some(seq), "{receipt}");
}
