//! PostgreSQL stopped for five seconds under a chat. A test binary of its own: it stops the
//! PostgreSQL that every test of its process shares.
//!
//! The customer's side behaves as the app's outbox does: messages in order, each sent until it
//! is acked, the same `client_msg_id` every time. While the database is gone a send may be
//! refused or may wait; it is never acked without being stored. Once the database is back the
//! rest go out, and the history holds every message once, in the order written.
//!
//! The test's PostgreSQL runs with `synchronous_commit = off` (as every test cluster here does,
//! for speed), and is stopped with `-m immediate`: the first run of this test found acked
//! messages gone after the restart, their seqs given again to later ones. The store now asks
//! for `synchronous_commit = on` on each of its connections, whatever the server's default.

mod common;

use common::{cmid, pg, TestServer, Ws};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The outage.
const OUTAGE: Duration = Duration::from_secs(5);

/// Sends one text and waits for its answer, however long the server takes (it may wait for
/// the database rather than refuse).
async fn send_until_answered(ws: &mut Ws, id: &str, cmid: &str, text: &str) -> Value {
    ws.send(json!({"type": "send", "client_msg_id": cmid, "consultation_id": id, "kind": "text", "content": text}))
        .await;
    loop {
        let f = ws
            .next_within(Duration::from_secs(60))
            .await
            .expect("the server answers a send within a minute, outage or not");
        if (f["type"] == "ack" && f["client_msg_id"] == cmid)
            || (f["type"] == "error" && f["ref"] == cmid)
        {
            return f;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_five_seconds_acks_nothing_unstored_even_with_synchronous_commit_off_and_the_outbox_drains_after(
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    pg::url_for(tmp.path());
    let server = TestServer::start_in(tmp.path(), |c| {
        c.message_burst = 100_000;
        c.messages_per_minute = 10_000_000;
    })
    .await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let id = server.open_consultation(&customer, &guide).await;
    let mut ws = Ws::connect(&server, &customer.token).await;
    let (_, head) = ws.subscribe(&id, 0).await;
    guide_ws.subscribe(&id, 0).await;

    let outbox: Vec<(String, String)> = (0..60)
        .map(|i| (cmid(), format!("written through the outage {i}")))
        .collect();
    let mut acked: Vec<i64> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    let mut stopped_at: Option<Instant> = None;
    let mut back = false;
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut i = 0;
    while i < outbox.len() {
        assert!(Instant::now() < give_up, "the outbox never drained");
        if i == 20 && stopped_at.is_none() {
            pg::stop_server();
            stopped_at = Some(Instant::now());
        }
        if let Some(at) = stopped_at {
            if !back && at.elapsed() >= OUTAGE {
                pg::start_server();
                back = true;
            }
        }
        let (c, text) = &outbox[i];
        let answer = send_until_answered(&mut ws, &id, c, text).await;
        if answer["type"] == "ack" {
            acked.push(answer["seq"].as_i64().expect("an ack carries its seq"));
            i += 1;
        } else {
            refusals.push(answer["code"].as_str().unwrap_or("").to_owned());
            // As the app does: wait a little, then the same message again.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(back, "the database was never stopped and started again");
    eprintln!(
        "{} refusals during the outage: {:?}",
        refusals.len(),
        refusals.iter().collect::<std::collections::BTreeSet<_>>()
    );
    for code in &refusals {
        assert_eq!(
            code, "INTERNAL",
            "a send during the outage is refused as a server failure, to be sent again"
        );
    }

    // Every ack on its own seq, in the order written, one after another.
    let expected: Vec<i64> = (head + 1..=head + outbox.len() as i64).collect();
    assert_eq!(acked, expected, "acked once each, in order, gapless");

    // The store holds each once, in that order: what was acked was stored.
    let page: Value = server
        .get(
            &format!("/consultation/{id}/messages?after_seq={head}&limit=100"),
            Some(&customer),
        )
        .await
        .ok();
    let stored: Vec<(i64, String)> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().expect("seq"),
                m["content"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let written: Vec<(i64, String)> = expected
        .iter()
        .copied()
        .zip(outbox.iter().map(|(_, t)| t.clone()))
        .collect();
    assert_eq!(stored, written);

    // The guide, who stayed connected, got them all live, in order, none twice.
    let mut seen = Vec::new();
    while seen.len() < outbox.len() {
        let f = guide_ws
            .next_within(Duration::from_secs(30))
            .await
            .expect("the guide's messages keep coming");
        if f["type"] == "message" && f["message"]["seq"].as_i64() > Some(head) {
            seen.push(f["message"]["seq"].as_i64().expect("seq"));
        }
    }
    assert_eq!(seen, expected);
}
