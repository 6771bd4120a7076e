//! tara-cli as a script would use it: real processes against a real server on a loopback port.

#[path = "../../server/tests/common/mod.rs"]
mod server;

use serde_json::{json, Value};
use server::TestServer;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn cli(server: &str, profile: &Path, args: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_tara-cli"))
        .args(["--server", server, "--profile"])
        .arg(profile)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("tara-cli runs");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l}: {e}")))
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn ok(server: &str, profile: &Path, args: &[&str]) -> Vec<Value> {
    let (code, lines) = cli(server, profile, args);
    assert_eq!(code, 0, "tara-cli {args:?} failed: {lines:?}");
    lines
}

async fn run(server: String, profile: std::path::PathBuf, args: Vec<String>) -> (i32, Vec<Value>) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&server, &profile, &args)
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consultation_scripted_end_to_end_with_tara_cli() {
    let srv = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let url = format!("http://{}", srv.addr);
    let root = tempfile::tempdir().expect("tempdir");
    let (customer, guide) = (root.path().join("customer"), root.path().join("guide"));
    let guide_id = srv.add_guide("+919000000001", "Asha").await;

    let (u, g) = (url.clone(), guide.clone());
    let who = tokio::task::spawn_blocking(move || {
        ok(
            &u,
            &g,
            &[
                "login",
                "--phone",
                "+919000000001",
                "--as",
                "guide",
                "--dev-otp",
            ],
        )
    })
    .await
    .expect("join");
    assert_eq!(who[0]["signed_in"]["user_id"].as_i64(), Some(guide_id));
    let (u, c) = (url.clone(), customer.clone());
    tokio::task::spawn_blocking(move || {
        ok(
            &u,
            &c,
            &[
                "login",
                "--phone",
                "+919876543210",
                "--as",
                "customer",
                "--dev-otp",
            ],
        )
    })
    .await
    .expect("join");

    // The guide's tail holds the connection open: the guide stays online while it runs.
    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_tara-cli"))
        .args(["--server", &url, "--profile"])
        .arg(&guide)
        .arg("tail")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tail starts");
    let mut tail_out = tokio::io::BufReader::new(tail.stdout.take().expect("stdout"));
    next_event(&mut tail_out, |e| {
        e["type"] == "connection" && e["state"] == "online"
    })
    .await;
    run(
        url.clone(),
        guide.clone(),
        vec!["status".into(), "online".into()],
    )
    .await;

    let (_, online) = run(
        url.clone(),
        customer.clone(),
        vec!["guides".into(), "--online".into()],
    )
    .await;
    assert!(
        online.iter().any(|g| g["id"].as_i64() == Some(guide_id)),
        "{online:?}"
    );
    // Money first: an empty wallet cannot ask; a recharge (captured at once on a dev server) can.
    let (_, wallet) = run(url.clone(), customer.clone(), vec!["wallet".into()]).await;
    assert_eq!(wallet[0]["balance"], 0);
    let (code, poor) = run(
        url.clone(),
        customer.clone(),
        vec!["request".into(), guide_id.to_string()],
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(poor[0]["error"]["code"], "INSUFFICIENT_BALANCE");
    let (code, paid) = run(
        url.clone(),
        customer.clone(),
        vec![
            "recharge".into(),
            "500".into(),
            "--key".into(),
            "cli-1".into(),
        ],
    )
    .await;
    assert_eq!(
        (code, paid[0]["status"].as_str()),
        (0, Some("captured")),
        "{paid:?}"
    );
    assert_eq!(paid[0]["wallet"]["balance"], 500);
    let (code, req) = run(
        url.clone(),
        customer.clone(),
        vec!["request".into(), guide_id.to_string()],
    )
    .await;
    assert_eq!(code, 0, "{req:?}");
    let id = req[0]["consultation_id"].as_str().expect("id").to_owned();
    next_event(&mut tail_out, |e| {
        e["type"] == "consultation" && e["event"] == "requested"
    })
    .await;
    let (_, pending) = run(url.clone(), guide.clone(), vec!["requests".into()]).await;
    assert_eq!(pending[0]["consultation_id"], id.as_str());

    assert_eq!(
        run(
            url.clone(),
            guide.clone(),
            vec!["accept".into(), id.clone()]
        )
        .await
        .1[0]["status"],
        "accepted"
    );
    run(
        url.clone(),
        customer.clone(),
        vec!["join".into(), id.clone()],
    )
    .await;
    let (_, joined) = run(url.clone(), guide.clone(), vec!["join".into(), id.clone()]).await;
    assert_eq!(joined[0]["consultation"]["status"], "in_progress");

    let (code, sent) = run(
        url.clone(),
        customer.clone(),
        vec!["send".into(), id.clone(), "Namaste".into()],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(sent[0]["status"], "sent", "{sent:?}");
    let seen = next_event(&mut tail_out, |e| {
        e["type"] == "message_added" && e["message"]["content"] == "Namaste"
    })
    .await;
    assert_eq!(seen["message"]["seq"], sent[0]["message"]["seq"]);

    let (_, history) = run(
        url.clone(),
        guide.clone(),
        vec!["history".into(), id.clone()],
    )
    .await;
    assert!(history.iter().any(|m| m["content"] == "Namaste"));
    // At least a second has run, so a minute is charged.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, done) = run(
        url.clone(),
        customer.clone(),
        vec!["complete".into(), id.clone()],
    )
    .await;
    assert_eq!(done[0]["status"], "completed");
    assert_eq!(done[0]["amount_charged"], 20, "one minute at 20");
    let (_, wallet) = run(url.clone(), customer.clone(), vec!["wallet".into()]).await;
    assert_eq!(wallet[0]["balance"], 480);
    let (_, ledger) = run(
        url.clone(),
        customer.clone(),
        vec!["ledger".into(), "--limit".into(), "5".into()],
    )
    .await;
    let kinds: Vec<_> = ledger
        .iter()
        .map(|e| (e["kind"].clone(), e["amount"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (json!("charge"), json!(-20)),
            (json!("recharge"), json!(500))
        ]
    );
    let (_, earnings) = run(url.clone(), guide.clone(), vec!["earnings".into()]).await;
    assert_eq!(earnings[0]["total"], 14, "20 less the platform's 30%");
    assert_eq!(earnings[0]["items"][0]["consultation_id"], id.as_str());
    let seen = next_event(&mut tail_out, |e| e["type"] == "wallet").await;
    assert_eq!(seen["balance"], 14, "the guide's tail hears the earning");
    let (code, rated) = run(
        url.clone(),
        customer.clone(),
        vec!["rate".into(), id.clone(), "--stars".into(), "5".into()],
    )
    .await;
    assert_eq!((code, rated[0]["rating"].as_i64()), (0, Some(5)));

    // A send the server refuses for good exits non-zero and says why.
    let (code, refused) = run(
        url.clone(),
        customer.clone(),
        vec!["send".into(), id.clone(), "too late".into()],
    )
    .await;
    assert_eq!(code, 1, "{refused:?}");
    assert_eq!(refused[0]["status"], "failed");
    let _ = tail.kill().await;
}

async fn next_event<R: tokio::io::AsyncBufRead + Unpin>(
    out: &mut R,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    use tokio::io::AsyncBufReadExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout_at(deadline, out.read_line(&mut line)).await;
        match read {
            Ok(Ok(0)) => panic!("tail ended"),
            Ok(Ok(_)) => {
                let v: Value = serde_json::from_str(line.trim()).expect("tail prints JSON lines");
                if pred(&v) {
                    return v;
                }
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("the awaited event never came"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_the_server_is_down_waits_and_sync_delivers_it() {
    let mut srv = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let url = format!("http://{}", srv.addr);
    let root = tempfile::tempdir().expect("tempdir");
    let customer_dir = root.path().join("customer");
    let guide = srv.add_guide("+919000000002", "Meera").await;
    let (g, mut gws) = {
        let g = srv.login("+91", "9000000002", "guide").await;
        let ws = server::Ws::connect(&srv, &g.token).await;
        (g, ws)
    };
    srv.post(
        "/guide/status",
        Some(&g),
        serde_json::json!({"status": "online"}),
    )
    .await;
    run(
        url.clone(),
        customer_dir.clone(),
        [
            "login",
            "--phone",
            "+919812345678",
            "--as",
            "customer",
            "--dev-otp",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    run(
        url.clone(),
        customer_dir.clone(),
        vec!["recharge".into(), "200".into()],
    )
    .await;
    let (_, req) = run(
        url.clone(),
        customer_dir.clone(),
        vec!["request".into(), guide.to_string()],
    )
    .await;
    let id = req[0]["consultation_id"].as_str().expect("id").to_owned();
    srv.post(
        &format!("/consultation/{id}/accept"),
        Some(&g),
        serde_json::json!({}),
    )
    .await;
    gws.subscribe(&id, 0).await;

    let addr = srv.addr.to_string();
    let data = srv.stop().await.expect("data dir");
    let (code, queued) = run(
        url.clone(),
        customer_dir.clone(),
        vec![
            "send".into(),
            id.clone(),
            "are you there?".into(),
            "--wait".into(),
            "1".into(),
        ],
    )
    .await;
    assert_eq!(
        (code, queued[0]["status"].as_str()),
        (0, Some("queued")),
        "{queued:?}"
    );
    let (_, outbox) = run(url.clone(), customer_dir.clone(), vec!["outbox".into()]).await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["content"], "are you there?");
    let (code, still) = run(
        url.clone(),
        customer_dir.clone(),
        vec!["sync".into(), "--timeout".into(), "1".into()],
    )
    .await;
    assert_eq!(code, 3, "offline at the timeout: {still:?}");

    let srv =
        TestServer::start_at(data.path(), &addr, |c| c.otp_resend_after = Duration::ZERO).await;
    let mut gws = server::Ws::connect(&srv, &g.token).await;
    gws.subscribe(&id, 0).await;
    let (code, synced) = run(
        url.clone(),
        customer_dir.clone(),
        vec!["sync".into(), "--timeout".into(), "20".into()],
    )
    .await;
    assert_eq!(code, 0, "{synced:?}");
    assert_eq!(synced[0]["queued"], 0);
    let m = gws.next_of("message").await;
    assert_eq!(m["message"]["content"], "are you there?");
    let (_, outbox) = run(url, customer_dir, vec!["outbox".into()]).await;
    assert!(outbox.is_empty());
}

/// Found by the chaos run's setup: `tara-cli tail &` and `tara-cli status online` on one
/// profile, as the README's walkthrough has them, both refreshed with the stored token at once;
/// the server took the second use for a stolen token and revoked the session. Refreshes of one
/// profile now take turns under a file lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_on_one_profile_refreshing_at_once_stay_signed_in() {
    let srv = TestServer::start().await;
    let url = format!("http://{}", srv.addr);
    let root = tempfile::tempdir().expect("tempdir");
    let me = root.path().join("me");
    let args = [
        "login",
        "--phone",
        "+919876543210",
        "--as",
        "customer",
        "--dev-otp",
    ];
    run(url.clone(), me.clone(), args.map(String::from).to_vec()).await;
    // Every process starts with its access token in memory only: each must refresh.
    let all = (0..6).map(|_| run(url.clone(), me.clone(), vec!["whoami".into()]));
    for (code, lines) in futures_util::future::join_all(all).await {
        assert_eq!(code, 0, "whoami beside others: {lines:?}");
    }
    let (code, lines) = run(url, me, vec!["whoami".into()]).await;
    assert_eq!(code, 0, "the session lives on: {lines:?}");
}
