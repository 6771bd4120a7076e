//! An ack means committed: the `tara-server` binary is killed with SIGKILL right after an ack,
//! again and again, and every message it ever acked is in the history after the restart, with
//! the seq and id the ack gave, in a gapless sequence.
//!
//! Each life of the server: one party (customer or guide, at random) connects, first sends again
//! what the last life left unacked (same `client_msg_id`), then pipelines 1 to 5 new sends, and
//! the server is SIGKILLed right after the k-th ack of this life arrives (k at random; at once,
//! or after up to 2 ms, at random), with the other sends still in flight. Sends that were in
//! flight may or may not have been stored; the ones acked must have been. The run is fixed by
//! its seed.
//!
//! `TARA_DURABILITY_KILLS` (default 200) sets how many times the server is killed,
//! `TARA_DURABILITY_SEED` (default 12) the seed.
//!
//! What makes it true on SQLite (crates/server/src/store/sqlite): `journal_mode = WAL` with
//! `synchronous = FULL` (each commit fsyncs the log before `COMMIT` returns), and the writer
//! thread answers a job only after its group's `COMMIT` has returned.

mod common;
#[path = "common/process.rs"]
mod process;

use common::WAIT;
use futures_util::{SinkExt, StreamExt};
use process::{run, text, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A small, seedable PRNG (xorshift64*): the run is the same for the same seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % (hi - lo + 1)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn connect(server: &Server, token: &str) -> Socket {
    let mut req = format!("ws://{}/api/v1/realtime", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let mut ws = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket")
        .0;
    assert_eq!(next_frame(&mut ws).await["type"], "hello");
    ws
}

async fn next_frame(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a frame");
        if let WsMessage::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

async fn post(server: &Server, path: &str, token: &str, body: Value) -> Value {
    let res = server
        .http
        .post(format!("{}{path}", server.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Every message of the consultation, ascending.
async fn history(server: &Server, token: &str, cid: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out.last().map_or(0, |m| m["seq"].as_i64().expect("seq"));
        let page = server
            .get(
                &format!("/consultation/{cid}/messages?after_seq={after}&limit=100"),
                Some(token),
            )
            .await;
        let messages = page["messages"].as_array().expect("messages").clone();
        let more = page["has_more"].as_bool().expect("has_more");
        out.extend(messages);
        if !more {
            return out;
        }
    }
}

/// What an ack promised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acked {
    seq: i64,
    message_id: String,
    content: String,
}

/// Checks the whole history against every ack so far; returns the history's length.
fn check(history: &[Value], acked: &BTreeMap<String, Acked>, after_kills: usize) -> usize {
    for (i, m) in history.iter().enumerate() {
        assert_eq!(
            m["seq"].as_i64(),
            Some(i as i64 + 1),
            "seqs are gapless after {after_kills} kills"
        );
    }
    let by_cmid: BTreeMap<&str, &Value> = history
        .iter()
        .filter(|m| m["kind"] == "text")
        .map(|m| (m["client_msg_id"].as_str().expect("client_msg_id"), m))
        .collect();
    let texts = history.iter().filter(|m| m["kind"] == "text").count();
    assert_eq!(by_cmid.len(), texts, "no message is stored twice");
    for (cmid, a) in acked {
        let m = by_cmid.get(cmid.as_str()).unwrap_or_else(|| {
            panic!(
                "acked message {cmid} (seq {}) is lost after {after_kills} kills",
                a.seq
            )
        });
        assert_eq!(
            (
                m["seq"].as_i64(),
                m["message_id"].as_str(),
                m["content"].as_str()
            ),
            (
                Some(a.seq),
                Some(a.message_id.as_str()),
                Some(a.content.as_str())
            ),
            "acked message {cmid} is as its ack said"
        );
    }
    history.len()
}

#[tokio::test]
async fn every_acked_message_survives_a_sigkill_right_after_its_ack() {
    let target = env_number("TARA_DURABILITY_KILLS", 200) as usize;
    let seed = env_number("TARA_DURABILITY_SEED", 12);
    let mut rng = Rng::new(seed);

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let serve = ["serve", "--bind", "127.0.0.1:0", "--data-dir", d, "--dev"];
    let added = run(&[
        "guide",
        "add",
        "--data-dir",
        d,
        "--phone",
        "+919000000001",
        "--name",
        "Asha",
        "--rate",
        "1",
    ])
    .await;
    assert!(added.status.success(), "{}", text(&added.stderr));

    let mut server = Server::spawn(&serve, &[]).await;
    let (guide, _) = server.login("9000000001", "guide").await;
    let guide = guide["access_token"].as_str().expect("token").to_owned();
    let guide_ws = connect(&server, &guide).await;
    post(
        &server,
        "/guide/status",
        &guide,
        json!({"status": "online"}),
    )
    .await;
    let (customer, _) = server.login("9876543210", "customer").await;
    let id = customer["auth_user_id"].as_i64().expect("id").to_string();
    let customer = customer["access_token"].as_str().expect("token").to_owned();
    let credit = run(&[
        "wallet",
        "credit",
        "--data-dir",
        d,
        "--user",
        &id,
        "--amount",
        "100000",
    ])
    .await;
    assert!(credit.status.success(), "{}", text(&credit.stderr));
    let c = post(
        &server,
        "/consultation",
        &customer,
        json!({"guide_id": 1, "mode": "chat", "service_type": "consultation"}),
    )
    .await;
    let cid = c["consultation_id"].as_str().expect("id").to_owned();
    post(
        &server,
        &format!("/consultation/{cid}/accept"),
        &guide,
        json!({}),
    )
    .await;
    post(
        &server,
        &format!("/consultation/{cid}/join"),
        &customer,
        json!({}),
    )
    .await;
    post(
        &server,
        &format!("/consultation/{cid}/join"),
        &guide,
        json!({}),
    )
    .await;
    drop(guide_ws);

    let mut acked: BTreeMap<String, Acked> = BTreeMap::new();
    // Sent but not acked when the server died: (sender, client_msg_id, content).
    let mut in_flight: Vec<(usize, String, String)> = Vec::new();
    let tokens = [customer.clone(), guide.clone()];
    let mut kills = 0usize;
    let mut stored_unacked = 0usize;
    let started = std::time::Instant::now();
    while kills < target {
        let sender = rng.between(0, 1) as usize;
        let mut ws = connect(&server, &tokens[sender]).await;
        // What the last life left unacked goes again, first, from its own sender.
        let mut this_life: Vec<(String, String)> = Vec::new();
        for (s, cmid, content) in std::mem::take(&mut in_flight) {
            if s == sender {
                this_life.push((cmid, content));
            } else {
                in_flight.push((s, cmid, content));
            }
        }
        // At most 9 sends a life, under the sender's burst of 10 (the bucket is the server's
        // memory, so it is full again after each restart).
        let resent = this_life.len();
        let new = rng.between(1, 9usize.saturating_sub(resent).clamp(1, 5) as u64) as usize;
        for _ in 0..new {
            let n = acked.len() + this_life.len() + in_flight.len();
            this_life.push((common::cmid(), format!("message {n} from {sender}")));
        }
        let kill_after = rng.between(1, this_life.len() as u64) as usize;
        for (cmid, content) in &this_life {
            let frame = json!({"type": "send", "client_msg_id": cmid, "consultation_id": cid, "kind": "text", "content": content});
            ws.send(WsMessage::Text(frame.to_string().into()))
                .await
                .expect("send");
        }
        let mut got = 0;
        while got < kill_after {
            let f = next_frame(&mut ws).await;
            match f["type"].as_str() {
                Some("ack") => {
                    let cmid = f["client_msg_id"].as_str().expect("cmid").to_owned();
                    let pos = this_life
                        .iter()
                        .position(|(c, _)| *c == cmid)
                        .expect("an ack of this life's send");
                    let (_, content) = this_life.remove(pos);
                    let a = Acked {
                        seq: f["seq"].as_i64().expect("seq"),
                        message_id: f["message_id"].as_str().expect("id").to_owned(),
                        content,
                    };
                    if let Some(before) = acked.insert(cmid.clone(), a.clone()) {
                        panic!("{cmid} acked twice: {before:?} then {a:?}");
                    }
                    got += 1;
                }
                Some("error") => panic!("a send was refused: {f}"),
                _ => {}
            }
        }
        // SIGKILL right after the ack; the rest of this life's sends are in flight.
        let pause = rng.between(0, 4000).saturating_sub(2000);
        if pause > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        }
        server.child.start_kill().expect("SIGKILL");
        let status = server.child.wait().await.expect("wait");
        assert!(!status.success(), "killed, not exited");
        kills += 1;
        drop(ws);

        server = Server::spawn(&serve, &[]).await;
        let h = history(&server, &customer, &cid).await;
        check(&h, &acked, kills);
        // Sends in flight at the kill may have been stored; sent again next life, they must be
        // answered with what was stored, not stored twice (the next check sees to that).
        stored_unacked += this_life
            .iter()
            .filter(|(c, _)| h.iter().any(|m| m["client_msg_id"] == c.as_str()))
            .count();
        in_flight.extend(this_life.into_iter().map(|(c, t)| (sender, c, t)));
    }

    let h = history(&server, &customer, &cid).await;
    let len = check(&h, &acked, kills);
    let status = server.terminate().await;
    assert!(status.success(), "a clean stop at the end");
    eprintln!(
        "durability: seed {seed}: {} acks, {kills} SIGKILLs, history of {len}, \
         {stored_unacked} sends in flight at a kill found stored; {:.1} s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
}
