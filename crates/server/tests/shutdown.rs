//! Graceful shutdown: what was acknowledged is kept, sockets are told the server is going away,
//! and work in flight gets its answer.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn roomy(c: &mut tara_server::Config) {
    c.message_burst = 100_000;
    c.messages_per_minute = 1_000_000;
}

/// What a sender was told: client_msg_id → (seq, message_id).
type Acks = HashMap<String, (i64, String)>;

/// Pipelines `n` sends on `ws`, then reads acks until the server closes the socket.
fn ws_sender(
    mut ws: Ws,
    cid: String,
    who: &'static str,
    n: usize,
    acked: Arc<AtomicUsize>,
) -> JoinHandle<(Acks, Closed)> {
    tokio::spawn(async move {
        for i in 0..n {
            ws.send(json!({
                "type": "send", "client_msg_id": format!("{who}-{i}"), "consultation_id": cid,
                "kind": "text", "content": format!("{who} says {i}")
            }))
            .await;
        }
        let mut acks = Acks::new();
        let closed = loop {
            let frame = match tokio::time::timeout(WAIT, ws.stream.next()).await {
                Err(_) => panic!("the {who} socket was neither answered nor closed"),
                Ok(None) | Ok(Some(Err(_))) => break Closed::NoFrame,
                Ok(Some(Ok(WsMessage::Close(f)))) => {
                    break f.map_or(Closed::NoFrame, |f| Closed::Code(u16::from(f.code)))
                }
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    serde_json::from_str::<Value>(t.as_str()).expect("json")
                }
                Ok(Some(Ok(_))) => continue,
            };
            match frame["type"].as_str() {
                Some("ack") => {
                    let cmid = frame["client_msg_id"].as_str().expect("cmid").to_owned();
                    let seq = frame["seq"].as_i64().expect("seq");
                    let mid = frame["message_id"].as_str().expect("message_id").to_owned();
                    assert!(acks.insert(cmid, (seq, mid)).is_none(), "one ack per send");
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                Some("error") => panic!("a send was refused: {frame}"),
                _ => {}
            }
        };
        (acks, closed)
    })
}

/// Sends over HTTP one at a time until the server is gone; 201 is the acknowledgement.
fn http_sender(
    server: &TestServer,
    user: &User,
    cid: &str,
    acked: Arc<AtomicUsize>,
) -> JoinHandle<Acks> {
    let http = server.http.clone();
    let url = server.url(&format!("/consultation/{cid}/messages"));
    let token = user.token.clone();
    tokio::spawn(async move {
        let mut acks = Acks::new();
        for i in 0..1000 {
            let cmid = format!("http-{i}");
            let res = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"client_msg_id": cmid, "kind": "text", "content": format!("over http {i}")}))
                .send()
                .await;
            let Ok(res) = res else { break };
            let status = res.status().as_u16();
            let Ok(body) = res.json::<Value>().await else {
                break;
            };
            assert_eq!(status, 201, "{body}");
            acks.insert(
                cmid,
                (
                    body["seq"].as_i64().expect("seq"),
                    body["message_id"].as_str().expect("id").to_owned(),
                ),
            );
            acked.fetch_add(1, Ordering::SeqCst);
        }
        acks
    })
}

/// The whole history, paged from the start.
async fn full_history(server: &TestServer, user: &User, cid: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = server
            .get(
                &format!("/consultation/{cid}/messages?after_seq={after}&limit=100"),
                Some(user),
            )
            .await
            .ok();
        let msgs = page["messages"].as_array().expect("messages").clone();
        if let Some(last) = msgs.last() {
            after = last["seq"].as_i64().expect("seq");
        }
        all.extend(msgs);
        if page["has_more"] != true {
            return all;
        }
    }
}

#[tokio::test]
async fn every_message_acknowledged_before_a_shutdown_is_there_after_the_restart() {
    let mut server = TestServer::start_with(roomy).await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let customer_ws = Ws::connect(&server, &customer.token).await;
    let cid = server.open_consultation(&customer, &guide).await;

    // Both parties write at once, and a third stream comes over HTTP; the server stops midway.
    let acked = Arc::new(AtomicUsize::new(0));
    let c = ws_sender(customer_ws, cid.clone(), "customer", 100, acked.clone());
    let g = ws_sender(guide_ws, cid.clone(), "guide", 100, acked.clone());
    let h = http_sender(&server, &customer, &cid, acked.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    while acked.load(Ordering::SeqCst) < 60 {
        assert!(tokio::time::Instant::now() < deadline, "sends are acked");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let dir = server.data_dir.clone();
    let _keep = server.stop().await;
    let (c, g, h) = tokio::join!(c, g, h);
    let ((c, c_closed), (g, g_closed)) = (c.expect("customer"), g.expect("guide"));
    assert_eq!(
        (c_closed, g_closed),
        (Closed::Code(1001), Closed::Code(1001))
    );
    let h = h.expect("http");
    let acks: Acks = c.into_iter().chain(g).chain(h).collect();
    assert!(acks.len() >= 60);

    let server = TestServer::start_in(&dir, roomy).await;
    let history = full_history(&server, &customer, &cid).await;
    let seqs: Vec<i64> = history
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    let expected: Vec<i64> = (1..=history.len() as i64).collect();
    assert_eq!(seqs, expected, "seqs run from 1 without gaps");
    let mut seen = HashMap::new();
    for m in &history {
        if m["kind"] == "system" {
            continue;
        }
        let cmid = m["client_msg_id"].as_str().expect("cmid").to_owned();
        let (seq, mid) = acks
            .get(&cmid)
            .unwrap_or_else(|| panic!("{cmid} was stored but never acknowledged"));
        assert_eq!(
            (m["seq"].as_i64(), m["message_id"].as_str()),
            (Some(*seq), Some(mid.as_str())),
            "{cmid} is stored as acknowledged"
        );
        assert!(seen.insert(cmid.clone(), ()).is_none(), "{cmid} twice");
    }
    let missing: Vec<&String> = acks.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    // The consultation carries on where it stopped.
    let c: Value = server
        .get(&format!("/consultation/{cid}"), Some(&customer))
        .await
        .ok();
    assert_eq!(c["head_seq"].as_i64(), Some(history.len() as i64));
    let mut ws = Ws::connect(&server, &customer.token).await;
    let ack = ws.send_text(&cid, &cmid(), "still here?").await;
    assert_eq!(ack["seq"].as_i64(), Some(history.len() as i64 + 1));
}

#[tokio::test]
async fn messages_acknowledged_before_a_quiet_shutdown_are_all_kept() {
    let mut server = TestServer::start_with(roomy).await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let customer_ws = Ws::connect(&server, &customer.token).await;
    let cid = server.open_consultation(&customer, &guide).await;

    // Every send is acked first; only then does the server stop.
    let acked = Arc::new(AtomicUsize::new(0));
    let c = ws_sender(customer_ws, cid.clone(), "customer", 100, acked.clone());
    let g = ws_sender(guide_ws, cid.clone(), "guide", 100, acked.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    while acked.load(Ordering::SeqCst) < 200 {
        assert!(tokio::time::Instant::now() < deadline, "all 200 are acked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = server.data_dir.clone();
    let _keep = server.stop().await;
    let (c, g) = tokio::join!(c, g);
    let acks: Acks = c
        .expect("customer")
        .0
        .into_iter()
        .chain(g.expect("guide").0)
        .collect();
    assert_eq!(acks.len(), 200);
    let mut by_seq: Vec<i64> = acks.values().map(|(s, _)| *s).collect();
    by_seq.sort_unstable();
    by_seq.dedup();
    assert_eq!(by_seq.len(), 200, "every ack its own seq");

    let server = TestServer::start_in(&dir, roomy).await;
    let history = full_history(&server, &guide, &cid).await;
    let users: Vec<&Value> = history.iter().filter(|m| m["kind"] != "system").collect();
    assert_eq!(users.len(), 200);
    let seqs: Vec<i64> = history
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=history.len() as i64).collect::<Vec<_>>());
    for m in users {
        let cmid = m["client_msg_id"].as_str().expect("cmid");
        assert_eq!(acks.get(cmid).map(|(s, _)| *s), m["seq"].as_i64(), "{cmid}");
    }
}

#[tokio::test]
async fn open_sockets_are_told_the_server_is_going_away() {
    let mut server = TestServer::start().await;
    let (_guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut phone = Ws::connect(&server, &customer.token).await;
    let (_, a, b) = tokio::join!(server.stop(), phone.closed(), guide_ws.closed());
    assert_eq!((a, b), (Closed::Code(1001), Closed::Code(1001)));
    assert!(
        Ws::try_connect(&server, &customer.token).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn a_long_poll_in_flight_gets_an_answer_when_the_server_stops() {
    let mut server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let cid = server.open_consultation(&customer, &guide).await;
    let head: Value = server
        .get(&format!("/consultation/{cid}"), Some(&customer))
        .await
        .ok();
    let head = head["head_seq"].as_i64().expect("head_seq");
    let poll = server
        .http
        .get(server.url(&format!(
            "/consultation/{cid}/messages/poll?after_seq={head}&timeout=30"
        )))
        .bearer_auth(&customer.token)
        .send();
    let poll = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(WAIT, server.stop())
        .await
        .expect("shutdown does not wait out the poll");
    let res = poll.await.expect("task").expect("the poll is answered");
    assert_eq!(res.status().as_u16(), 200);
    let page: Value = res.json().await.expect("json");
    assert_eq!(page["messages"], json!([]));
}
