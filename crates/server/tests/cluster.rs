//! Two nodes of one cluster in this process: one PostgreSQL database, one Redis (each the
//! test's own, on free loopback ports), one data dir for the signing key and media, and two
//! tara-servers on two ports. A guide on one node and a customer on the other chat as if they
//! were on one; when Redis goes away and comes back, nobody is left with a gap.

mod common;
#[path = "common/process.rs"]
mod process;

use common::redis::Redis;
use common::{add_guide_in, cmid, pg, TestServer, Ws, WAIT};
use process::Server;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

async fn node(dir: &Path, redis: &Redis, name: &str) -> TestServer {
    let url = redis.url();
    let name = name.to_owned();
    TestServer::start_in(dir, move |c| {
        c.redis_url = Some(url);
        c.node_id = name;
    })
    .await
}

/// The next `message` frame of this consultation.
async fn next_message(ws: &mut Ws, id: &str) -> Value {
    loop {
        let f = ws.next_of("message").await;
        if f["message"]["consultation_id"] == id {
            return f["message"].clone();
        }
    }
}

/// Waits until a node's health says its Redis link is as `ok` says.
async fn fanout_ok(server: &TestServer, ok: bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = server
            .http
            .get(server.url("/health"))
            .send()
            .await
            .expect("health");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("health JSON");
        let fanout = body["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["name"] == "fanout"))
            .cloned()
            .unwrap_or(Value::Null);
        if fanout["ok"] == ok {
            assert_eq!(fanout["kind"], "redis", "{body}");
            assert_eq!(status, if ok { 200 } else { 503 }, "{body}");
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "fanout never became ok={ok}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guide_and_a_customer_on_two_nodes_chat_and_a_redis_restart_leaves_no_gap() {
    let mut redis = Redis::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    // One database for both nodes; the dir holds its name, the signing key and media.
    pg::url_for(tmp.path());
    let a = node(tmp.path(), &redis, "node-a").await;
    let b = node(tmp.path(), &redis, "node-b").await;
    assert_eq!(fanout_ok(&a, true).await["node"], "node-a");
    assert_eq!(fanout_ok(&b, true).await["node"], "node-b");

    // The guide is on node A, the customer on node B; the consultation flows through both.
    let (guide, mut guide_ws) = a.online_guide("9000000001", "Asha").await;
    let customer = b.customer("9876543210").await;
    let mut customer_ws = Ws::connect(&b, &customer.token).await;
    // The customer asks on node B; the guide accepts on both nodes at once: exactly one wins.
    let c = b.request_consultation(&customer, &guide).await;
    let id = c["consultation_id"].as_str().expect("id").to_owned();
    let accept = format!("/consultation/{id}/accept");
    let (on_a, on_b) = tokio::join!(
        a.post(&accept, Some(&guide), json!({})),
        b.post(&accept, Some(&guide), json!({}))
    );
    let mut statuses = [on_a.status, on_b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 409],
        "one accept wins, the other is told it lost"
    );
    for (server, who) in [(&b, &customer), (&a, &guide)] {
        let joined: Value = server
            .post(
                &format!("/consultation/{id}/join"),
                Some(who),
                json!({"mode": "chat"}),
            )
            .await
            .ok();
        let _ = joined;
    }
    let (_, head) = customer_ws.subscribe(&id, 0).await;
    guide_ws.subscribe(&id, 0).await;

    // Each way across the nodes, with typing and the unread count.
    let ack = guide_ws
        .send_text(&id, &cmid(), "Namaste from node A")
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let m = next_message(&mut customer_ws, &id).await;
    assert_eq!(m["content"], "Namaste from node A");
    assert_eq!(m["seq"], head + 1);
    // The customer has one unread message, counted on node A's write, told on node B.
    let unread = customer_ws.next_of("unread").await;
    assert_eq!(unread["consultation_id"], id.as_str());
    assert_eq!(unread["unread_count"], 1);
    guide_ws
        .send(json!({"type": "typing", "consultation_id": id, "is_typing": true}))
        .await;
    let typing = customer_ws.next_of("typing").await;
    assert_eq!(typing["user_id"], guide.id);
    assert_eq!(typing["is_typing"], true);
    // The customer reads it on node B; the guide on node A sees the receipt.
    customer_ws
        .send(json!({"type": "read", "consultation_id": id, "up_to_seq": head + 1}))
        .await;
    let receipt = loop {
        let r = guide_ws.next_of("receipt").await;
        if r["user_id"] == customer.id && r["read_seq"] == head + 1 {
            break r;
        }
    };
    assert_eq!(receipt["consultation_id"], id.as_str());
    customer_ws
        .send_text(&id, &cmid(), "Hello from node B")
        .await;
    let back = next_message(&mut guide_ws, &id).await;
    assert_eq!(back["content"], "Hello from node B");
    assert_eq!(back["seq"], head + 2);

    // Redis dies. The store is the truth: sends are still acked, and each node says its link
    // is down.
    redis.kill();
    fanout_ok(&a, false).await;
    let mut written = Vec::new();
    for i in 0..3 {
        let text = format!("written while Redis was down {i}");
        let ack = guide_ws.send_text(&id, &cmid(), &text).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        written.push(text);
    }

    // Redis comes back: node B brings the customer up to the store's head, in order, once.
    redis.restart();
    fanout_ok(&b, true).await;
    fanout_ok(&a, true).await;
    for (i, text) in written.iter().enumerate() {
        let m = next_message(&mut customer_ws, &id).await;
        assert_eq!(m["content"], text.as_str());
        assert_eq!(m["seq"], head + 3 + i as i64, "in order, with no gap");
    }
    // And live delivery goes on from there, with nothing repeated.
    guide_ws.send_text(&id, &cmid(), "and after").await;
    let m = next_message(&mut customer_ws, &id).await;
    assert_eq!(m["content"], "and after");
    assert_eq!(m["seq"], head + 6);
}

/// A realtime connection to a node that is its own process.
async fn ws_at(server: &Server, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/api/v1/realtime", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (stream, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects");
    let mut ws = Ws { stream, user_id: 0 };
    let hello = ws.next_of("hello").await;
    assert_eq!(hello["node"], "node-a");
    ws
}

/// Waits up to `within` for a presence frame saying `user` is `status`.
async fn presence(ws: &mut Ws, user: i64, status: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match ws.next_within(left).await {
            Some(f) if f["type"] == "presence" && f["user_id"] == user && f["status"] == status => {
                return true
            }
            Some(_) => {}
            None => return false,
        }
    }
    false
}

/// Whether the guide is online as the customer's app sees it on joining (`is_online`), asked
/// through `server` until it is `online` or `within` has passed.
async fn guide_seen_online(
    server: &TestServer,
    customer: &common::User,
    id: &str,
    guide: i64,
    online: bool,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let joined: Value = server
            .post(
                &format!("/consultation/{id}/join"),
                Some(customer),
                json!({"mode": "chat"}),
            )
            .await
            .ok();
        let seen = joined["participants"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["user_id"] == guide))
            .map(|p| p["is_online"] == true);
        if seen == Some(online) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_chat_loses_nothing_and_its_guide_goes_offline_then_online_again() {
    let redis = Redis::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = pg::url_for(tmp.path());
    let dir = tmp.path().to_str().expect("utf-8 dir");
    let b = node(tmp.path(), &redis, "node-b").await;
    // Node A is a process of its own, so it can be killed the way a machine dies.
    let mut a = Server::spawn(
        &["--data-dir", dir, "--dev"],
        &[
            ("TARA_BIND", "127.0.0.1:0"),
            ("TARA_DATABASE_URL", &url),
            ("TARA_REDIS_URL", &redis.url()),
            ("TARA_NODE_ID", "node-a"),
        ],
    )
    .await;
    let guide_id = add_guide_in(tmp.path(), "+919000000001", "Asha", 20).await;
    // The guide signs in through node B (any node will do) and connects to node A.
    let guide = b.login("+91", "9000000001", "guide").await;
    assert_eq!(guide.id, guide_id);
    let mut guide_ws = ws_at(&a, &guide.token).await;
    b.post("/guide/status", Some(&guide), json!({"status": "online"}))
        .await
        .ok::<Value>();

    // A customer on node B sees the guide on node A online in the list, live and by REST.
    let customer = b.customer("9876543210").await;
    let mut watcher = Ws::connect(&b, &customer.token).await;
    watcher.send(json!({"type": "watch_guides"})).await;
    assert!(
        presence(&mut watcher, guide_id, "online", WAIT).await,
        "node B never saw the guide on node A online"
    );
    let guides: Value = b.get("/guide/all", Some(&customer)).await.ok();
    let listed = guides["guides"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["id"] == guide_id))
        .cloned()
        .expect("the guide is listed");
    assert_eq!(listed["status"], "online", "{listed}");

    // They chat across the nodes.
    let id = b.open_consultation(&customer, &guide).await;
    let mut customer_ws = Ws::connect(&b, &customer.token).await;
    let (_, head) = customer_ws.subscribe(&id, 0).await;
    guide_ws.subscribe(&id, 0).await;
    for i in 0..3 {
        let text = format!("from the guide {i}");
        guide_ws.send_text(&id, &cmid(), &text).await;
        assert_eq!(
            next_message(&mut customer_ws, &id).await["content"],
            text.as_str()
        );
    }
    customer_ws.send_text(&id, &cmid(), "a question").await;
    let seen = next_message(&mut guide_ws, &id).await;
    assert_eq!(seen["content"], "a question");
    let guide_has = seen["seq"].as_i64().expect("seq");
    assert_eq!(guide_has, head + 4);

    // Node A dies without a word, mid-conversation. The customer keeps writing on node B;
    // node B shows the guide offline within the 30 s.
    a.child.kill().await.expect("SIGKILL node A");
    let mut written = Vec::new();
    for i in 0..2 {
        let text = format!("while the guide's node was down {i}");
        let ack = customer_ws.send_text(&id, &cmid(), &text).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        written.push(text);
    }
    assert!(
        guide_seen_online(&b, &customer, &id, guide_id, false, Duration::from_secs(30)).await,
        "node B still shows the guide of a dead node connected after 30 s"
    );

    // The guide's app reconnects, to node B now, and resumes from what it has: exactly what
    // it missed, in order, once each; and it is online again.
    let mut again = Ws::connect(&b, &guide.token).await;
    let (missed, head_now) = again.subscribe(&id, guide_has).await;
    let texts: Vec<&str> = missed
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        texts,
        written.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let seqs: Vec<i64> = missed.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(
        seqs,
        vec![guide_has + 1, guide_has + 2],
        "gapless, nothing twice"
    );
    assert_eq!(head_now, guide_has + 2);
    assert!(
        guide_seen_online(&b, &customer, &id, guide_id, true, WAIT).await,
        "the guide is not online again after reconnecting"
    );
    // And they go on talking.
    again.send_text(&id, &cmid(), "back").await;
    let m = next_message(&mut customer_ws, &id).await;
    assert_eq!(m["content"], "back");
    assert_eq!(m["seq"], guide_has + 3);
}
