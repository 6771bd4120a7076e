//! `tara-server wallet …` as an operator runs it against a data dir, while the server runs, and a
//! server killed with SIGKILL across a consultation's end time.

mod common;
#[path = "common/process.rs"]
mod process;

use common::WAIT;
use futures_util::StreamExt;
use process::{run, text, Server};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server, token: &str) -> Socket {
    let mut req = format!("ws://{}/api/v1/realtime", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket")
        .0
}

/// The next frame of this type.
async fn next_of(ws: &mut Socket, ty: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {ty} frame arrived"))
            .expect("open")
            .expect("a frame");
        if let WsMessage::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] == ty {
                return v;
            }
        }
    }
}

async fn wallet(args: &[&str]) -> std::process::Output {
    run(&[&["wallet"], args].concat()).await
}

async fn call(server: &Server, method: reqwest::Method, path: &str, token: &str) -> Value {
    let res = server
        .http
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

#[tokio::test]
async fn wallet_credit_reaches_the_owners_devices_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let server = Server::spawn(
        &["serve", "--bind", "127.0.0.1:0", "--data-dir", d, "--dev"],
        &[],
    )
    .await;
    let (tokens, _) = server.login("9876543210", "customer").await;
    let token = tokens["access_token"].as_str().expect("token");
    let id = tokens["auth_user_id"].as_i64().expect("id").to_string();
    let mut phone = connect(&server, token).await;
    let mut laptop = connect(&server, token).await;
    next_of(&mut phone, "hello").await;
    next_of(&mut laptop, "hello").await;

    let out = wallet(&[
        "credit",
        "--data-dir",
        d,
        "--user",
        &id,
        "--amount",
        "250",
        "--note",
        "goodwill",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON line");
    assert_eq!(
        printed["user_id"].as_i64().map(|i| i.to_string()),
        Some(id.clone())
    );
    assert_eq!(printed["balance"], 250);
    for ws in [&mut phone, &mut laptop] {
        let f = next_of(ws, "wallet").await;
        assert_eq!(
            (f["balance"].as_i64(), f["currency"].as_str()),
            (Some(250), Some("INR"))
        );
    }
    let w = server.get("/wallet", Some(token)).await;
    assert_eq!(w["balance"], 250);
    let ledger = server.get("/wallet/ledger", Some(token)).await;
    assert_eq!(ledger["items"][0]["kind"], "adjustment");
    assert_eq!(ledger["items"][0]["note"], "goodwill");

    let shown = wallet(&["show", "--data-dir", d, "--user", &id]).await;
    assert!(shown.status.success());
    let shown: Value = serde_json::from_str(text(&shown.stdout).trim()).expect("json");
    assert_eq!(shown["balance"], 250);
    let audit = wallet(&["audit", "--data-dir", d]).await;
    assert!(audit.status.success(), "{}", text(&audit.stdout));

    for bad in ["0", "-5", "12.5", "lots", "2000000000"] {
        let out = wallet(&["credit", "--data-dir", d, "--user", &id, "--amount", bad]).await;
        assert!(!out.status.success(), "--amount {bad} is refused");
        assert!(!text(&out.stderr).is_empty(), "and says why");
    }
    let nobody = wallet(&["credit", "--data-dir", d, "--user", "999", "--amount", "5"]).await;
    assert!(!nobody.status.success());
    assert!(
        text(&nobody.stderr).contains("999"),
        "{}",
        text(&nobody.stderr)
    );
    let nobody = wallet(&["show", "--data-dir", d, "--user", "999"]).await;
    assert!(!nobody.status.success());
    assert_eq!(
        server.get("/wallet", Some(token)).await["balance"],
        250,
        "nothing else moved"
    );
}

#[tokio::test]
async fn a_server_killed_across_a_chats_end_ends_it_at_restart_billed_to_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let serve = [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        d,
        "--dev",
        "--billing-minute-ms",
        "1000",
    ];
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
        "25",
    ])
    .await;
    assert!(added.status.success(), "{}", text(&added.stderr));
    let server = Server::spawn(&serve, &[]).await;
    let (guide, _) = server.login("9000000001", "guide").await;
    let guide = guide["access_token"].as_str().expect("token").to_owned();
    let mut guide_ws = connect(&server, &guide).await;
    next_of(&mut guide_ws, "hello").await;
    let res = server
        .http
        .post(format!("{}/guide/status", server.base))
        .bearer_auth(&guide)
        .json(&json!({"status": "online"}))
        .send()
        .await
        .expect("status");
    assert!(res.status().is_success());
    let (customer, _) = server.login("9876543210", "customer").await;
    let id = customer["auth_user_id"].as_i64().expect("id").to_string();
    let customer = customer["access_token"].as_str().expect("token").to_owned();
    let credit = wallet(&["credit", "--data-dir", d, "--user", &id, "--amount", "125"]).await;
    assert!(credit.status.success(), "{}", text(&credit.stderr));

    let res = server
        .http
        .post(format!("{}/consultation", server.base))
        .bearer_auth(&customer)
        .json(&json!({"guide_id": 1, "mode": "chat", "service_type": "consultation"}))
        .send()
        .await
        .expect("request");
    let c: Value = res.json().await.expect("json");
    let cid = c["consultation_id"]
        .as_str()
        .expect("a consultation")
        .to_owned();
    call(
        &server,
        reqwest::Method::POST,
        &format!("/consultation/{cid}/accept"),
        &guide,
    )
    .await;
    call(
        &server,
        reqwest::Method::POST,
        &format!("/consultation/{cid}/join"),
        &customer,
    )
    .await;
    let joined = call(
        &server,
        reqwest::Method::POST,
        &format!("/consultation/{cid}/join"),
        &guide,
    )
    .await;
    let ends = joined["consultation"]["ends_at"]
        .as_str()
        .expect("ends_at")
        .to_owned();
    drop(guide_ws);

    // SIGKILL: no shutdown, no flush; the next start must find the chat and its end time.
    let killed = server.signal("-KILL").await;
    assert!(!killed.success());
    tokio::time::sleep(Duration::from_millis(5_000 + 2_000)).await;
    let server = Server::spawn(&serve, &[]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let c = loop {
        let c = server
            .get(&format!("/consultation/{cid}"), Some(&customer))
            .await;
        if c["status"] == "completed" || tokio::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(c["status"], "completed");
    assert_eq!(c["end_reason"], "balance_exhausted");
    assert_eq!(
        c["ended_at"],
        ends.as_str(),
        "billed to the end, not to the restart"
    );
    assert_eq!(c["duration_seconds"], 5);
    assert_eq!(c["amount_charged"], 125);
    assert_eq!(server.get("/wallet", Some(&customer)).await["balance"], 0);
    let audit = wallet(&["audit", "--data-dir", d]).await;
    assert!(audit.status.success(), "{}", text(&audit.stdout));
}
