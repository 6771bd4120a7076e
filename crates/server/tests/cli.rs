//! The `tara-server` binary as an operator runs it: real processes on temp data dirs.

mod common;
#[path = "common/process.rs"]
mod process;

use common::{Closed, WAIT};
use futures_util::StreamExt;
use process::{run, text, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn add_guide(dir: &Path, phone: &str) -> Output {
    run(&[
        "guide",
        "add",
        "--data-dir",
        dir.to_str().expect("utf-8 path"),
        "--phone",
        phone,
        "--name",
        "Asha",
        "--rate",
        "25",
        "--skills",
        "vedic,tarot",
        "--languages",
        "hi,en",
    ])
    .await
}

#[tokio::test]
async fn guide_add_prints_the_new_guide_id_as_one_json_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = add_guide(dir.path(), "+919812345678").await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stdout:?}");
    let v: Value = serde_json::from_str(lines[0]).expect("the line is JSON");
    let id = v["guide_id"].as_i64().expect("guide_id is a number");
    assert!(id > 0);
    assert_eq!(v, json!({ "guide_id": id }), "nothing else in it");

    let other = add_guide(dir.path(), "+919812345679").await;
    let v: Value = serde_json::from_str(text(&other.stdout).trim()).expect("json");
    assert_ne!(v["guide_id"].as_i64(), Some(id), "each guide its own id");
}

#[tokio::test]
async fn adding_the_same_guide_phone_twice_fails_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(add_guide(dir.path(), "+919812345678")
        .await
        .status
        .success());
    let again = add_guide(dir.path(), "+919812345678").await;
    assert!(!again.status.success(), "a duplicate is an error");
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains("+919812345678") && stderr.contains("already exists"),
        "stderr names the phone and the problem: {stderr:?}"
    );
    assert!(
        text(&again.stdout).trim().is_empty(),
        "no guide_id for a guide that was not added"
    );
}

#[tokio::test]
async fn guide_add_refuses_a_phone_without_country_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = add_guide(dir.path(), "9812345678").await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--phone"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_served_data_dir_lets_the_added_guide_log_in_and_shows_demo_guides_online() {
    let dir = tempfile::tempdir().expect("tempdir");
    let added = add_guide(dir.path(), "+919812345678").await;
    let guide_id = serde_json::from_str::<Value>(text(&added.stdout).trim()).expect("json")
        ["guide_id"]
        .as_i64()
        .expect("guide_id");
    let d = dir.path().to_str().expect("utf-8 path");
    let server = Server::spawn(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            d,
            "--dev",
            "--demo",
        ],
        &[],
    )
    .await;

    let (tokens, code) = server.login("9812345678", "guide").await;
    assert_eq!(tokens["auth_user_id"].as_i64(), Some(guide_id));
    assert_eq!(tokens["user_type"], "guide");
    let line = server
        .stderr_line(|l| l.starts_with("dev otp for +919812345678: "))
        .await;
    assert_eq!(
        line,
        format!("dev otp for +919812345678: {code}"),
        "the console SMS line carries the code"
    );

    let token = tokens["access_token"].as_str().expect("token");
    let list = server.get("/guide/all?limit=50", Some(token)).await;
    let guides = list["guides"].as_array().expect("guides");
    let me = guides
        .iter()
        .find(|g| g["id"] == guide_id)
        .expect("the added guide is listed");
    assert_eq!(me["display_name"], "Asha");
    assert_eq!(me["skills"], json!(["vedic", "tarot"]));
    assert_eq!(me["languages"], json!(["hi", "en"]));
    assert_eq!(me["rate_per_minute"], 25);
    assert_eq!(
        me["status"], "offline",
        "a new guide is not online until it says so"
    );
    let demo: Vec<&Value> = guides.iter().filter(|g| g["id"] != guide_id).collect();
    assert!(!demo.is_empty(), "--demo adds guides: {list}");
    assert!(
        demo.iter().all(|g| g["status"] == "online"),
        "the demo guides are online: {list}"
    );
    let online = demo;
    let only_online = server.get("/guide/all?online=true", Some(token)).await;
    assert_eq!(
        only_online["guides"].as_array().map(Vec::len),
        Some(online.len())
    );

    assert_eq!(server.terminate().await.code(), Some(0));
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A realtime connection with the access token of a login's `tokens`.
async fn realtime(server: &Server, tokens: &Value) -> Socket {
    let mut req = format!("ws://{}/api/v1/realtime", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", tokens["access_token"].as_str().expect("token"))
            .parse()
            .expect("header"),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    ws
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let server = Server::spawn(
        &["serve", "--bind", "127.0.0.1:0", "--data-dir", d, "--dev"],
        &[],
    )
    .await;
    let (tokens, _) = server.login("9876543210", "customer").await;
    let mut ws = realtime(&server, &tokens).await;
    let hello = ws.next().await.expect("a frame").expect("ok");
    assert!(hello.to_text().expect("text").contains("\"hello\""));

    let status = server.terminate().await;
    let closed = loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => panic!("the socket was not closed"),
            Ok(Some(Ok(WsMessage::Close(f)))) => {
                break f.map_or(Closed::NoFrame, |f| Closed::Code(u16::from(f.code)))
            }
            Ok(None) | Ok(Some(Err(_))) => break Closed::NoFrame,
            Ok(Some(Ok(_))) => continue,
        }
    };
    assert_eq!(closed, Closed::Code(1001));
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn without_a_subcommand_it_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    // The default port may be taken on a shared machine; the environment picks a free one.
    let server = Server::spawn(&["--data-dir", d, "--dev"], &[("TARA_BIND", "127.0.0.1:0")]).await;
    let (tokens, code) = server.login("9876543210", "customer").await;
    assert_eq!(tokens["user_type"], "customer");
    server
        .stderr_line(|l| l == format!("dev otp for +919876543210: {code}"))
        .await;
    if !common::pg::enabled() {
        assert!(
            dir.path().join("tara.db").exists(),
            "the data lives in --data-dir"
        );
    }
    assert_eq!(server.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn without_dev_mode_no_code_is_printed_or_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let server = Server::spawn(&["serve", "--bind", "127.0.0.1:0", "--data-dir", d], &[]).await;
    let gen = server
        .post(
            "/auth/otp/generate",
            json!({"area_code": "+91", "phone_number": "9876543210", "user_type": "customer", "purpose": "login"}),
        )
        .await;
    assert!(gen.get("dev_otp").is_none(), "{gen}");
    // A request after the generate one is answered, so its logging is done.
    server.get("/health", None).await;
    let stderr = server.stderr.lock().expect("lines").join("\n");
    assert!(!stderr.contains("dev otp for"), "{stderr}");
    assert_eq!(server.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_an_error_that_keeps_the_password_to_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    // Nothing listens on port 1: the server cannot open its store, says so, and never listens.
    let out = run(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        d,
        "--database-url",
        "postgres://tara:s3cret-pw@127.0.0.1:1/tara",
    ])
    .await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("PostgreSQL"),
        "stderr says the PostgreSQL store could not be opened: {stderr:?}"
    );
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    assert!(
        !text(&out.stdout).contains("listening on"),
        "it never listened"
    );
    // The operator commands say the same.
    let out = run(&[
        "wallet",
        "show",
        "--user",
        "1",
        "--database-url",
        "postgres://tara:s3cret-pw@127.0.0.1:1/tara",
    ])
    .await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--database-url"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}

#[tokio::test]
async fn ctrl_c_stops_it_cleanly_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let server = Server::spawn(&["serve", "--bind", "127.0.0.1:0", "--data-dir", d], &[]).await;
    assert_eq!(server.signal("-INT").await.code(), Some(0));
}

#[tokio::test]
async fn a_taken_port_is_an_error_that_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let out = run(&["serve", "--bind", &addr, "--data-dir", d]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&addr), "{}", text(&out.stderr));
}

#[tokio::test]
async fn the_node_id_names_the_server_in_health_metrics_hello_and_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let args = [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        d,
        "--dev",
        "--node-id",
        "node-a",
    ];
    let server = Server::spawn(&args, &[]).await;
    let health = server.get("/health", None).await;
    assert_eq!(health["node"], "node-a", "{health}");
    let store = if common::pg::enabled() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(
        health["backends"],
        json!([{"name": "store", "kind": store, "ok": true},
               {"name": "fanout", "kind": "local", "ok": true}]),
        "{health}"
    );
    let metrics = server
        .http
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("tara_node_info{node=\"node-a\","),
        "{metrics}"
    );

    let (tokens, _) = server.login("9876543210", "customer").await;
    let mut ws = realtime(&server, &tokens).await;
    let hello: Value = serde_json::from_str(
        ws.next()
            .await
            .expect("a frame")
            .expect("ok")
            .to_text()
            .expect("text"),
    )
    .expect("json");
    assert_eq!(
        (hello["type"].as_str(), hello["node"].as_str()),
        (Some("hello"), Some("node-a"))
    );
    // Log lines carry the node, so the logs of several nodes can be merged.
    server
        .stderr_line(|l| l.starts_with("node=node-a ") && l.contains("dev otp issued"))
        .await;
    server
        .stderr_line(|l| l.starts_with("node=node-a ") && l.contains("listening"))
        .await;
    assert_eq!(server.terminate().await.code(), Some(0));
}

#[tokio::test]
async fn without_a_node_id_a_node_is_named_by_its_host_and_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path");
    let server = Server::spawn(&["serve", "--bind", "127.0.0.1:0", "--data-dir", d], &[]).await;
    let health = server.get("/health", None).await;
    let port = server.addr.rsplit(':').next().expect("a port");
    let node = health["node"].as_str().expect("a node");
    assert!(
        node.ends_with(&format!(":{port}")),
        "{node} names port {port}"
    );
    assert!(node.len() > port.len() + 1, "{node} names the host too");
    assert_eq!(server.terminate().await.code(), Some(0));
}
