//! Messages: idempotent sends over any transport, one gapless order, text and rate rules,
//! history pages, long poll, receipts and unread counts.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Sends a text over REST.
async fn post_text(server: &TestServer, user: &User, id: &str, cmid: &str, text: &str) -> Reply {
    server
        .post(
            &format!("/consultation/{id}/messages"),
            Some(user),
            json!({"client_msg_id": cmid, "kind": "text", "content": text}),
        )
        .await
}

/// A history page: (seqs, messages, has_more).
async fn history(
    server: &TestServer,
    user: &User,
    id: &str,
    query: &str,
) -> (Vec<i64>, Vec<Value>, bool) {
    let page: Value = server
        .get(&format!("/consultation/{id}/messages?{query}"), Some(user))
        .await
        .ok();
    let messages = page["messages"].as_array().expect("messages").clone();
    let seqs = messages
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    (
        seqs,
        messages,
        page["has_more"].as_bool().expect("has_more"),
    )
}

/// The messages people wrote (not the system lines), oldest first.
async fn user_messages(server: &TestServer, user: &User, id: &str) -> Vec<Value> {
    let (_, messages, more) = history(server, user, id, "after_seq=0&limit=100").await;
    assert!(!more, "these tests keep a consultation under 100 messages");
    messages
        .into_iter()
        .filter(|m| m["kind"] != "system")
        .collect()
}

/// The chat list entry for a consultation.
async fn chat_entry(server: &TestServer, user: &User, id: &str) -> Value {
    let list: Value = server.get("/consultations", Some(user)).await.ok();
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["consultation"]["consultation_id"] == id)
        .cloned()
        .expect("the consultation is in the chat list")
}

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
    c.message_burst = 10_000;
    c.messages_per_minute = 1_000_000;
}

#[tokio::test]
async fn a_message_is_stored_once_whatever_transport_or_retry_carries_it() {
    let server = TestServer::start().await;
    let (customer, mut customer_ws, _guide, mut guide_ws, id, head) = chatting(&server).await;

    // First over the WebSocket.
    let x = cmid();
    let ack = customer_ws
        .send_text(&id, &x, "Is Saturn kind to me?")
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let (seq, message_id) = (ack["seq"].as_i64(), ack["message_id"].clone());
    assert_eq!(seq, Some(head + 1));

    // The app lost the ack and retries over REST: the same message, 200 not 201.
    let again: Value = post_text(&server, &customer, &id, &x, "Is Saturn kind to me?")
        .await
        .ok();
    assert_eq!(
        (again["seq"].as_i64(), &again["message_id"]),
        (seq, &message_id)
    );

    // REST first: 201, then 200 with the same message.
    let y = cmid();
    let first: Value = post_text(&server, &customer, &id, &y, "And Jupiter?")
        .await
        .created();
    let second: Value = post_text(&server, &customer, &id, &y, "And Jupiter?")
        .await
        .ok();
    assert_eq!(
        first, second,
        "a retry gets the very message stored the first time"
    );
    assert_eq!(first["seq"].as_i64(), Some(head + 2));

    // After a reconnect the outbox sends both again over the new socket.
    customer_ws.close().await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    let ack = customer_ws
        .send_text(&id, &x, "Is Saturn kind to me?")
        .await;
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["seq"].as_i64(),
            &ack["message_id"]
        ),
        (Some("ack"), seq, &message_id)
    );
    let ack = customer_ws.send_text(&id, &y, "And Jupiter?").await;
    assert_eq!(
        (ack["seq"].as_i64(), &ack["message_id"]),
        (first["seq"].as_i64(), &first["message_id"])
    );

    // A WebSocket send and a REST send of one id racing each other still make one message.
    let z = cmid();
    let (ws_answer, rest_answer) = tokio::join!(
        customer_ws.send_text(&id, &z, "Racing"),
        post_text(&server, &customer, &id, &z, "Racing")
    );
    assert_eq!(ws_answer["type"], "ack", "{ws_answer}");
    assert!([200, 201].contains(&rest_answer.status), "{rest_answer:?}");
    assert_eq!(
        (ws_answer["seq"].as_i64(), &ws_answer["message_id"]),
        (
            rest_answer.body["seq"].as_i64(),
            &rest_answer.body["message_id"]
        )
    );
    assert_eq!(ws_answer["seq"].as_i64(), Some(head + 3));

    // History and the guide's screen hold each message once.
    let stored = user_messages(&server, &customer, &id).await;
    let ids: Vec<&str> = stored
        .iter()
        .filter_map(|m| m["client_msg_id"].as_str())
        .collect();
    assert_eq!(ids, [x.as_str(), y.as_str(), z.as_str()]);
    let seen = guide_ws
        .collect_of("message", Duration::from_millis(500))
        .await;
    let seen: Vec<&str> = seen
        .iter()
        .filter_map(|f| f["message"]["client_msg_id"].as_str())
        .collect();
    assert_eq!(
        seen,
        [x.as_str(), y.as_str(), z.as_str()],
        "the guide sees each message once"
    );
}

/// Sends `n` texts back to back without waiting for acks; returns their client_msg_ids in send order.
async fn send_burst(ws: &mut Ws, id: &str, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|_| cmid()).collect();
    for (i, c) in ids.iter().enumerate() {
        ws.send(json!({"type": "send", "client_msg_id": c, "consultation_id": id, "kind": "text", "content": format!("{prefix}-{i}")}))
            .await;
    }
    ids
}

/// Reads frames until `n` messages arrived; returns them and the acks seen on the way.
async fn read_messages(ws: &mut Ws, n: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut messages, mut acks) = (Vec::new(), Vec::new());
    while messages.len() < n {
        let f = ws
            .next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {n} messages arrived", messages.len()));
        match f["type"].as_str() {
            Some("message") => messages.push(f["message"].clone()),
            Some("ack") => acks.push(f),
            Some("error") => panic!("a send was refused: {f}"),
            _ => {}
        }
    }
    (messages, acks)
}

#[tokio::test]
async fn both_parties_sending_at_once_see_one_gapless_order() {
    let server = TestServer::start_with(|c| {
        fast_senders(c);
        c.otp_resend_after = Duration::ZERO;
    })
    .await;
    let (customer, mut customer_ws, guide, mut guide_ws, id, head) = chatting(&server).await;
    // The customer's second device only watches.
    let laptop = server.customer("9876543210").await;
    let mut laptop_ws = Ws::connect(&server, &laptop.token).await;
    laptop_ws.subscribe(&id, head).await;

    let (customer_ids, guide_ids) = tokio::join!(
        send_burst(&mut customer_ws, &id, "c", 50),
        send_burst(&mut guide_ws, &id, "g", 50)
    );
    let ((c_msgs, mut c_acks), (g_msgs, mut g_acks), (l_msgs, _)) = tokio::join!(
        read_messages(&mut customer_ws, 100),
        read_messages(&mut guide_ws, 100),
        read_messages(&mut laptop_ws, 100)
    );
    // Acks may trail the last message frame.
    while c_acks.len() < 50 {
        c_acks.push(customer_ws.next_of("ack").await);
    }
    while g_acks.len() < 50 {
        g_acks.push(guide_ws.next_of("ack").await);
    }

    let expected: Vec<i64> = (head + 1..=head + 100).collect();
    for (who, msgs) in [
        ("customer", &c_msgs),
        ("guide", &g_msgs),
        ("laptop", &l_msgs),
    ] {
        let seqs: Vec<i64> = msgs
            .iter()
            .map(|m| m["seq"].as_i64().expect("seq"))
            .collect();
        assert_eq!(
            seqs, expected,
            "{who} sees every message once, in one gapless order"
        );
    }
    assert_eq!(c_msgs, g_msgs, "both sides see the same conversation");
    assert_eq!(c_msgs, l_msgs);
    // Nothing more trickles in afterwards.
    assert!(laptop_ws
        .collect_of("message", Duration::from_millis(300))
        .await
        .is_empty());

    // History is that same order.
    let (seqs, stored, more) = history(
        &server,
        &customer,
        &id,
        &format!("after_seq={head}&limit=100"),
    )
    .await;
    assert_eq!((seqs, more), (expected.clone(), false));
    assert_eq!(stored, c_msgs);

    // Each sender's messages keep the order they were sent in, and each ack names its message.
    for (prefix, sender, ids, acks) in [
        ("c", &customer, &customer_ids, &c_acks),
        ("g", &guide, &guide_ids, &g_acks),
    ] {
        let mine: Vec<&Value> = stored
            .iter()
            .filter(|m| m["sender_id"] == sender.id)
            .collect();
        let texts: Vec<&str> = mine.iter().filter_map(|m| m["content"].as_str()).collect();
        let sent: Vec<String> = (0..50).map(|i| format!("{prefix}-{i}")).collect();
        assert_eq!(
            texts, sent,
            "{prefix}'s messages are in the order they were sent"
        );
        let cmids: Vec<&str> = mine
            .iter()
            .filter_map(|m| m["client_msg_id"].as_str())
            .collect();
        assert_eq!(cmids, ids.iter().map(String::as_str).collect::<Vec<_>>());
        for ack in acks.iter() {
            let m = mine
                .iter()
                .find(|m| m["client_msg_id"] == ack["client_msg_id"])
                .expect("every ack names a stored message");
            assert_eq!(
                (&ack["seq"], &ack["message_id"]),
                (&m["seq"], &m["message_id"])
            );
        }
    }
}

#[tokio::test]
async fn text_must_be_between_1_and_4000_characters() {
    let server = TestServer::start().await;
    let (customer, mut customer_ws, _guide, mut guide_ws, id, _head) = chatting(&server).await;

    let refused = [
        ("empty", String::new()),
        ("whitespace", "  \n\t ".to_owned()),
        ("4001 characters", "🙏".repeat(4001)),
    ];
    let mut refused_ids = Vec::new();
    for (what, text) in &refused {
        let c = cmid();
        let answer = customer_ws.send_text(&id, &c, text).await;
        assert_eq!(
            (
                answer["type"].as_str(),
                answer["code"].as_str(),
                answer["ref"].as_str()
            ),
            (Some("error"), Some("VALIDATION_FAILED"), Some(c.as_str())),
            "{what}: {answer}"
        );
        post_text(&server, &customer, &id, &cmid(), text)
            .await
            .fails(400, "VALIDATION_FAILED");
        refused_ids.push(c);
    }

    // 4000 scalar values is the most, even when each takes four bytes (and two UTF-16 units).
    let longest = "🙏".repeat(4000);
    let ack = customer_ws.send_text(&id, &cmid(), &longest).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let rest: Value = post_text(&server, &customer, &id, &cmid(), &format!("  {longest}\n"))
        .await
        .created();
    assert_eq!(
        rest["content"].as_str(),
        Some(longest.as_str()),
        "stored trimmed"
    );

    // Only the accepted two were stored or shown; a refused id is still free to use.
    let stored = user_messages(&server, &customer, &id).await;
    assert_eq!(stored.len(), 2);
    assert!(stored
        .iter()
        .all(|m| m["content"].as_str() == Some(longest.as_str())));
    let shown = guide_ws
        .collect_of("message", Duration::from_millis(300))
        .await;
    assert_eq!(shown.len(), 2, "the guide sees only what was stored");
    let reuse = customer_ws
        .send_text(&id, &refused_ids[0], "Now with words")
        .await;
    assert_eq!(
        reuse["type"], "ack",
        "nothing was kept of the refused send: {reuse}"
    );
}

#[tokio::test]
async fn the_eleventh_quick_send_is_rate_limited() {
    let server = TestServer::start().await;
    let (customer, mut customer_ws, guide, mut guide_ws, id, _head) = chatting(&server).await;

    let mut acks = Vec::new();
    for i in 0..10 {
        let c = cmid();
        let ack = customer_ws.send_text(&id, &c, &format!("quick {i}")).await;
        assert_eq!(ack["type"], "ack", "send {i} of the burst: {ack}");
        acks.push((c, ack));
    }
    let eleventh = cmid();
    let answer = customer_ws.send_text(&id, &eleventh, "one too many").await;
    assert_eq!(
        (
            answer["type"].as_str(),
            answer["code"].as_str(),
            answer["ref"].as_str()
        ),
        (Some("error"), Some("RATE_LIMITED"), Some(eleventh.as_str())),
        "{answer}"
    );
    // The bucket is the sender's, whatever the transport.
    let rest = post_text(&server, &customer, &id, &cmid(), "over REST").await;
    rest.fails(429, "RATE_LIMITED");
    let wait: u64 = rest
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");

    // Retries of what was already stored are answered from storage, not refused.
    let (c, first) = &acks[9];
    let retry = customer_ws.send_text(&id, c, "quick 9").await;
    assert_eq!(
        (retry["type"].as_str(), &retry["seq"], &retry["message_id"]),
        (Some("ack"), &first["seq"], &first["message_id"]),
        "{retry}"
    );
    let retry: Value = post_text(&server, &customer, &id, c, "quick 9").await.ok();
    assert_eq!(retry["seq"], first["seq"]);

    // The other party has a bucket of its own.
    let ack = guide_ws.send_text(&id, &cmid(), "I can still answer").await;
    assert_eq!(ack["type"], "ack", "{ack}");

    let stored = user_messages(&server, &customer, &id).await;
    let from_customer = stored
        .iter()
        .filter(|m| m["sender_id"] == customer.id)
        .count();
    let from_guide = stored.iter().filter(|m| m["sender_id"] == guide.id).count();
    assert_eq!(
        (from_customer, from_guide),
        (10, 1),
        "refused sends are not stored"
    );
}

/// Reads frames until every one of `ids` is answered (`ack`, or `error` with its `ref`);
/// the answers in the order they came.
async fn answers(ws: &mut Ws, ids: &[String]) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let f = ws
            .next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {} sends answered", got.len(), ids.len()));
        let of = match f["type"].as_str() {
            Some("ack") => f["client_msg_id"].as_str(),
            Some("error") => f["ref"].as_str(),
            _ => None,
        };
        if of.is_some_and(|c| ids.iter().any(|i| i == c)) {
            got.push(f);
        }
    }
    got
}

#[tokio::test]
async fn a_refused_pipelined_send_holds_back_every_later_one_until_it_is_sent_again() {
    // Three at once, then one a second.
    let server = TestServer::start_with(|c| {
        c.message_burst = 3;
        c.messages_per_minute = 60;
    })
    .await;
    let (customer, mut customer_ws, _guide, mut guide_ws, id, head) = chatting(&server).await;

    // Six sends written at once, none waiting for an answer: the first three are stored, the
    // fourth meets the rate limit, and the two after it are refused with it.
    let ids = send_burst(&mut customer_ws, &id, "piped", 6).await;
    let first = answers(&mut customer_ws, &ids).await;
    let order: Vec<&str> = first
        .iter()
        .map(|f| {
            f["client_msg_id"]
                .as_str()
                .or(f["ref"].as_str())
                .unwrap_or_default()
        })
        .collect();
    let expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(order, expected, "answered in the order sent");
    let kinds: Vec<(&str, &str)> = first
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap_or_default(),
                f["code"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ack", ""),
            ("ack", ""),
            ("ack", ""),
            ("error", "RATE_LIMITED"),
            ("error", "RATE_LIMITED"),
            ("error", "RATE_LIMITED"),
        ],
        "{first:?}"
    );
    assert!(
        first[5]["message"]
            .as_str()
            .is_some_and(|m| m.contains("earlier message")),
        "a send held back says why: {}",
        first[5]
    );

    // Once the bucket has refilled, the sixth alone is still refused: the fourth comes first.
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    let early = customer_ws.send_text(&id, &ids[5], "piped-5").await;
    assert_eq!(
        (early["type"].as_str(), early["code"].as_str()),
        (Some("error"), Some("RATE_LIMITED")),
        "the sixth may not overtake the fourth: {early}"
    );
    // The fourth sent again opens the way; the fifth and sixth follow it.
    let again = send_burst_of(&mut customer_ws, &id, &ids[3..], 3).await;
    let retried = answers(&mut customer_ws, &again).await;
    assert!(
        retried.iter().all(|f| f["type"] == "ack"),
        "all three stored now: {retried:?}"
    );

    // The other party saw the six once each, in the order they were written, without a gap.
    let (got, _) = read_messages(&mut guide_ws, 6).await;
    let texts: Vec<&str> = got.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(
        texts,
        ["piped-0", "piped-1", "piped-2", "piped-3", "piped-4", "piped-5"]
    );
    let seqs: Vec<i64> = got.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, (head + 1..=head + 6).collect::<Vec<_>>());
    let stored = user_messages(&server, &customer, &id).await;
    assert_eq!(
        stored
            .iter()
            .filter(|m| m["sender_id"] == customer.id)
            .count(),
        6,
        "each stored once"
    );
}

/// Sends `ids` (texts numbered from `from`) without waiting for answers.
async fn send_burst_of(ws: &mut Ws, id: &str, ids: &[String], from: usize) -> Vec<String> {
    for (i, c) in ids.iter().enumerate() {
        ws.send(json!({"type": "send", "client_msg_id": c, "consultation_id": id, "kind": "text", "content": format!("piped-{}", from + i)}))
            .await;
    }
    ids.to_vec()
}

#[tokio::test]
async fn sending_before_accept_or_after_complete_fails_with_invalid_state() {
    let server = TestServer::start().await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;

    let c = server.request_consultation(&customer, &guide).await;
    let id = c["consultation_id"].as_str().expect("id").to_owned();

    let early = cmid();
    let answer = customer_ws.send_text(&id, &early, "Hello?").await;
    assert_eq!(
        (
            answer["type"].as_str(),
            answer["code"].as_str(),
            answer["ref"].as_str()
        ),
        (Some("error"), Some("INVALID_STATE"), Some(early.as_str())),
        "{answer}"
    );
    post_text(&server, &customer, &id, &cmid(), "Hello?")
        .await
        .fails(409, "INVALID_STATE");

    // Accepted: now it goes through, even before both have joined.
    server
        .post(
            &format!("/consultation/{id}/accept"),
            Some(&guide),
            json!({}),
        )
        .await
        .ok::<Value>();
    let ack = customer_ws.send_text(&id, &early, "Hello?").await;
    assert_eq!(
        ack["type"], "ack",
        "a send refused for its state may be retried later: {ack}"
    );
    let accepted_ack = ack;

    server.complete(&customer, &id).await;
    let late = cmid();
    let answer = guide_ws.send_text(&id, &late, "One more thing").await;
    assert_eq!(
        (
            answer["type"].as_str(),
            answer["code"].as_str(),
            answer["ref"].as_str()
        ),
        (Some("error"), Some("INVALID_STATE"), Some(late.as_str())),
        "{answer}"
    );
    post_text(&server, &guide, &id, &late, "One more thing")
        .await
        .fails(409, "INVALID_STATE");
    // A late retry of a message stored while it was open still gets its ack, not a failure.
    let retry = customer_ws.send_text(&id, &early, "Hello?").await;
    assert_eq!(
        (retry["type"].as_str(), &retry["seq"], &retry["message_id"]),
        (
            Some("ack"),
            &accepted_ack["seq"],
            &accepted_ack["message_id"]
        ),
        "{retry}"
    );

    let stored = user_messages(&server, &customer, &id).await;
    let texts: Vec<&str> = stored
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["Hello?"],
        "only the send made while accepted is stored"
    );
}

#[tokio::test]
async fn history_pages_in_both_directions_and_caps_the_page_at_100() {
    let server = TestServer::start_with(fast_senders).await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let id = server.open_consultation(&customer, &guide).await;
    for batch in 0..11 {
        let sends = (0..10).map(|i| {
            let (server, customer, id) = (&server, &customer, &id);
            async move {
                post_text(server, customer, id, &cmid(), &format!("line {batch}-{i}"))
                    .await
                    .created::<Value>()
            }
        });
        futures_util::future::join_all(sends).await;
    }
    let (latest, _, _) = history(&server, &customer, &id, "limit=1").await;
    let head = latest[0];
    assert!(head >= 112, "110 lines after the system ones, head {head}");
    let range = |lo: i64, hi: i64| (lo..=hi).collect::<Vec<i64>>();

    // No bounds: the latest page, 50 by default.
    let (seqs, _, more) = history(&server, &customer, &id, "").await;
    assert_eq!((seqs, more), (range(head - 49, head), true));
    let (seqs, _, more) = history(&server, &customer, &id, "limit=10").await;
    assert_eq!((seqs, more), (range(head - 9, head), true));

    // Scrolling up.
    let (seqs, _, more) = history(
        &server,
        &customer,
        &id,
        &format!("before_seq={}&limit=10", head - 9),
    )
    .await;
    assert_eq!((seqs, more), (range(head - 19, head - 10), true));
    let (seqs, _, more) = history(&server, &customer, &id, "before_seq=11&limit=10").await;
    assert_eq!((seqs, more), (range(1, 10), false), "nothing below seq 1");
    let (seqs, _, more) = history(&server, &customer, &id, "before_seq=5&limit=10").await;
    assert_eq!((seqs, more), (range(1, 4), false));

    // Catching up.
    let (seqs, _, more) = history(&server, &customer, &id, "after_seq=0&limit=10").await;
    assert_eq!((seqs, more), (range(1, 10), true));
    let (seqs, _, more) = history(
        &server,
        &customer,
        &id,
        &format!("after_seq={}&limit=10", head - 10),
    )
    .await;
    assert_eq!(
        (seqs, more),
        (range(head - 9, head), false),
        "the page ends at the head"
    );
    let (seqs, _, more) = history(
        &server,
        &customer,
        &id,
        &format!("after_seq={}&limit=10", head - 4),
    )
    .await;
    assert_eq!((seqs, more), (range(head - 3, head), false));
    let (seqs, _, more) = history(&server, &customer, &id, &format!("after_seq={head}")).await;
    assert_eq!((seqs, more), (vec![], false));

    // A page never holds more than 100.
    let (seqs, _, more) = history(&server, &customer, &id, "limit=1000").await;
    assert_eq!((seqs, more), (range(head - 99, head), true));
    let (seqs, _, more) = history(&server, &customer, &id, "after_seq=0&limit=1000").await;
    assert_eq!((seqs, more), (range(1, 100), true));

    // The guide reads the same history; nobody else does.
    let (seqs, _, _) = history(&server, &guide, &id, "limit=10").await;
    assert_eq!(seqs, range(head - 9, head));
    let stranger = server.customer("9111111111").await;
    let r = server
        .get(&format!("/consultation/{id}/messages"), Some(&stranger))
        .await;
    assert!(
        [403, 404].contains(&r.status),
        "a stranger reads nothing: {r:?}"
    );
}

#[tokio::test]
async fn a_long_poll_returns_the_next_message_as_soon_as_it_is_sent() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let id = server.open_consultation(&customer, &guide).await;
    let (seqs, _, _) = history(&server, &customer, &id, "limit=1").await;
    let head = seqs[0];

    // Nothing new: an empty page after the timeout.
    let empty: Value = server
        .get(
            &format!("/consultation/{id}/messages/poll?after_seq={head}&timeout=1"),
            Some(&customer),
        )
        .await
        .ok();
    assert_eq!(empty, json!({"messages": [], "has_more": false}));

    // Something already there: it comes back at once.
    let old: Value = server
        .get(
            &format!(
                "/consultation/{id}/messages/poll?after_seq={}&timeout=25",
                head - 1
            ),
            Some(&customer),
        )
        .await
        .ok();
    assert_eq!(old["messages"][0]["seq"].as_i64(), Some(head));

    // Waiting: the guide's message ends the poll.
    let path = format!("/consultation/{id}/messages/poll?after_seq={head}&timeout=25");
    let poll = server.get(&path, Some(&customer));
    let send = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        post_text(&server, &guide, &id, &cmid(), "Your chart is ready")
            .await
            .created::<Value>()
    };
    let (polled, sent) = tokio::join!(poll, send);
    let polled: Value = polled.ok();
    let messages = polled["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{polled}");
    assert_eq!(
        messages[0], sent,
        "the poll returns the message the guide sent"
    );
    assert_eq!(messages[0]["seq"].as_i64(), Some(head + 1));
}

/// The next `unread` frame for this consultation.
async fn next_unread(ws: &mut Ws, id: &str) -> i64 {
    loop {
        let f = ws.next_of("unread").await;
        if f["consultation_id"] == id {
            return f["unread_count"].as_i64().expect("unread_count");
        }
    }
}

#[tokio::test]
async fn reading_moves_receipts_forward_and_clears_unread() {
    let server = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let (customer, mut customer_ws, guide, mut guide_ws, id, head) = chatting(&server).await;
    // A second customer device that has not opened the chat still hears unread counts.
    let tablet = server.customer("9876543210").await;
    let mut tablet_ws = Ws::connect(&server, &tablet.token).await;

    for i in 1..=3 {
        let ack = guide_ws
            .send_text(&id, &cmid(), &format!("insight {i}"))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    for ws in [&mut customer_ws, &mut tablet_ws] {
        let mut counts = Vec::new();
        while counts.last() != Some(&3) {
            counts.push(next_unread(ws, &id).await);
        }
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "unread counts only rise: {counts:?}"
        );
    }
    assert_eq!(chat_entry(&server, &customer, &id).await["unread_count"], 3);
    assert_eq!(chat_entry(&server, &guide, &id).await["unread_count"], 0);

    // Delivered: the guide sees the double tick, nothing is read yet.
    customer_ws
        .send(json!({"type": "delivered", "consultation_id": id, "up_to_seq": head + 3}))
        .await;
    let r = guide_ws.next_of("receipt").await;
    assert_eq!(
        (
            r["user_id"].as_i64(),
            r["delivered_seq"].as_i64(),
            r["read_seq"].as_i64()
        ),
        (Some(customer.id), Some(head + 3), Some(0))
    );
    assert_eq!(
        chat_entry(&server, &customer, &id).await["unread_count"],
        3,
        "delivered is not read"
    );

    // Read: the guide sees it, the customer's devices drop the badge.
    customer_ws
        .send(json!({"type": "read", "consultation_id": id, "up_to_seq": head + 3}))
        .await;
    let r = guide_ws.next_of("receipt").await;
    assert_eq!(
        (
            r["user_id"].as_i64(),
            r["delivered_seq"].as_i64(),
            r["read_seq"].as_i64()
        ),
        (Some(customer.id), Some(head + 3), Some(head + 3))
    );
    assert_eq!(next_unread(&mut customer_ws, &id).await, 0);
    assert_eq!(next_unread(&mut tablet_ws, &id).await, 0);
    assert_eq!(chat_entry(&server, &customer, &id).await["unread_count"], 0);

    // Marks never go back: older receipts change nothing and tell nobody.
    customer_ws
        .send(json!({"type": "read", "consultation_id": id, "up_to_seq": head + 1}))
        .await;
    customer_ws
        .send(json!({"type": "delivered", "consultation_id": id, "up_to_seq": 1}))
        .await;
    let ack = guide_ws.send_text(&id, &cmid(), "insight 4").await;
    customer_ws
        .send(json!({"type": "delivered", "consultation_id": id, "up_to_seq": ack["seq"]}))
        .await;
    let r = guide_ws.next_of("receipt").await;
    assert_eq!(
        (r["delivered_seq"].as_i64(), r["read_seq"].as_i64()),
        (Some(head + 4), Some(head + 3)),
        "the next receipt the guide sees moves delivered on and keeps read where it was"
    );
    let joined: Value = server
        .post(
            &format!("/consultation/{id}/join"),
            Some(&customer),
            json!({"mode": "chat"}),
        )
        .await
        .ok();
    let me = joined["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["user_id"] == customer.id)
        .cloned()
        .expect("the customer takes part");
    assert_eq!(
        (
            me["delivered_seq"].as_i64(),
            me["read_seq"].as_i64(),
            me["unread_count"].as_i64()
        ),
        (Some(head + 4), Some(head + 3), Some(1))
    );
    assert_eq!(chat_entry(&server, &customer, &id).await["unread_count"], 1);

    // The customer's own messages never count as unread for the customer.
    customer_ws.send_text(&id, &cmid(), "Thank you").await;
    assert_eq!(next_unread(&mut guide_ws, &id).await, 1);
    assert_eq!(chat_entry(&server, &customer, &id).await["unread_count"], 1);
}
