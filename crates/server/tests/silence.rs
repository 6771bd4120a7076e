//! Silent consultations against the real server, on shortened clocks: a chat nobody is active in
//! is warned, then ended and charged up to its last activity; activity keeps it open; a guide
//! whose connections are all gone is reported to the customer, who pays nothing after that.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// One-second billed minutes; two seconds of silence warn, one more ends.
fn quick(c: &mut tara_server::Config) {
    c.billing_minute = Duration::from_secs(1);
    c.idle_after = Duration::from_secs(2);
    c.idle_grace = Duration::from_secs(1);
    c.presence_grace = Duration::from_millis(300);
    c.guide_away_after = Duration::from_secs(1);
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .timestamp_millis()
}

async fn consultation(server: &TestServer, user: &User, id: &str) -> Value {
    server
        .get(&format!("/consultation/{id}"), Some(user))
        .await
        .ok()
}

#[tokio::test]
async fn a_silent_chat_is_warned_then_ended_and_charged_up_to_its_last_message() {
    let server = TestServer::start_with(quick).await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    let id = server.open_consultation(&customer, &guide).await;
    customer_ws.subscribe(&id, 0).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ack = customer_ws.send_text(&id, &cmid(), "Are you there?").await;
    assert_eq!(ack["type"], "ack");
    let last = ms(&ack["sent_at"]);

    for ws in [&mut customer_ws, &mut guide_ws] {
        let warned = ws.next_event("idle_warning").await;
        assert_eq!(warned["consultation"]["consultation_id"], id.as_str());
    }
    for ws in [&mut customer_ws, &mut guide_ws] {
        let done = ws.next_event("completed").await;
        let c = &done["consultation"];
        assert_eq!(
            (c["ended_by"].as_str(), c["end_reason"].as_str()),
            (Some("system"), Some("inactive"))
        );
        assert_eq!(
            ms(&c["ended_at"]),
            last,
            "charged up to the last message, not the silence"
        );
        let seconds = c["duration_seconds"].as_i64().expect("duration");
        assert!(seconds >= 1);
        assert_eq!(
            c["amount_charged"].as_i64(),
            Some(seconds * 20),
            "one-second minutes at 20"
        );
    }
    let page: Value = server
        .get(&format!("/consultation/{id}/messages"), Some(&customer))
        .await
        .ok();
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("nobody wrote")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn typing_after_the_warning_keeps_the_chat_open() {
    let server = TestServer::start_with(quick).await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let id = server.open_consultation(&customer, &guide).await;
    let warned = guide_ws.next_event("idle_warning").await;
    let started = ms(&warned["consultation"]["started_at"]);
    // The guide starts typing an answer: the chat is not ended at the first deadline ...
    guide_ws
        .send(json!({"type": "typing", "consultation_id": id, "is_typing": true}))
        .await;
    let typed = chrono::Utc::now().timestamp_millis();
    let deadline = started + 3_000;
    let wait = deadline - chrono::Utc::now().timestamp_millis() + 500;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    assert_eq!(
        consultation(&server, &customer, &id).await["status"],
        "in_progress"
    );
    // ... but, quiet again, it is warned and ended from the typing on.
    guide_ws.next_event("idle_warning").await;
    let done = guide_ws.next_event("completed").await;
    let ended = ms(&done["consultation"]["ended_at"]);
    assert!(
        ended >= typed - 50 && ended <= typed + 1_000,
        "ended at the typing: {ended} vs {typed}"
    );
}

#[tokio::test]
async fn the_customer_is_told_the_guide_is_gone_and_pays_nothing_after() {
    let server = TestServer::start_with(|c| {
        quick(c);
        c.idle_after = Duration::from_secs(600);
    })
    .await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    let id = server.open_consultation(&customer, &guide).await;
    let started = ms(&customer_ws.next_event("started").await["consultation"]["started_at"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gone = chrono::Utc::now().timestamp_millis();
    guide_ws.close().await;

    let away = customer_ws.next_event("guide_away").await;
    let at = ms(&away["consultation"]["guide_away_at"]);
    assert!(
        (gone - 100..=gone + 500).contains(&at),
        "away since the guide left: {at} vs {gone}"
    );
    assert_eq!(
        consultation(&server, &customer, &id).await["guide_away_at"],
        away["consultation"]["guide_away_at"]
    );
    // The customer waits a while, then ends it: nothing after the guide left is charged.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let done = server.complete(&customer, &id).await;
    let billed = (at - started) / 1000;
    assert_eq!(done["duration_seconds"].as_i64(), Some(billed));
    assert_eq!(done["amount_charged"].as_i64(), Some(billed * 20));
}

#[tokio::test]
async fn a_guide_who_comes_back_is_announced_and_billing_runs_on() {
    let server = TestServer::start_with(|c| {
        quick(c);
        c.idle_after = Duration::from_secs(600);
    })
    .await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    let id = server.open_consultation(&customer, &guide).await;
    guide_ws.close().await;
    customer_ws.next_event("guide_away").await;
    let _back_ws = Ws::connect(&server, &guide.token).await;
    let back = customer_ws.next_event("guide_back").await;
    assert!(back["consultation"].get("guide_away_at").is_none());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let done = server.complete(&customer, &id).await;
    let seconds = done["duration_seconds"].as_i64().expect("duration");
    assert!(
        seconds >= 2,
        "the whole chat is billed once the guide is back: {seconds}"
    );
    assert_eq!(done["amount_charged"].as_i64(), Some(seconds * 20));
}
