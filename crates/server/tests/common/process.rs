//! The `tara-server` binary as an operator runs it: a real process on a temp data dir.
//! Included by the tests that run the binary (`#[path] mod process;`), beside `mod common;`.
#![allow(dead_code)]

use crate::common::WAIT;
use serde_json::{json, Value};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The binary, with no settings leaking in from the environment.
pub fn tara() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tara-server"));
    for var in [
        "TARA_BIND",
        "TARA_DATA_DIR",
        "TARA_DATABASE_URL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd.kill_on_drop(true);
    cmd
}

/// On PostgreSQL (`TARA_TEST_DATABASE=postgres`), a command on `--data-dir D` works on D's
/// database: the binary gets its URL in the environment, as an operator would set it.
fn on_database(cmd: &mut Command, args: &[&str]) {
    if !crate::common::pg::enabled() {
        return;
    }
    if let Some(i) = args.iter().position(|a| *a == "--data-dir") {
        if let Some(dir) = args.get(i + 1) {
            let url = crate::common::pg::url_for(std::path::Path::new(dir));
            cmd.env("TARA_DATABASE_URL", url);
        }
    }
}

pub async fn run(args: &[&str]) -> Output {
    let mut cmd = tara();
    on_database(&mut cmd, args);
    tokio::time::timeout(Duration::from_secs(30), cmd.args(args).output())
        .await
        .expect("the command finishes")
        .expect("the binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `tara-server` process.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub addr: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts the binary with `args` (and `env`), and waits for `listening on http://ADDR`.
    pub async fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = tara();
        on_database(&mut cmd, args);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                sink.lock().expect("stderr lines").push(line);
            }
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut out_lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out_lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "no listening line; stderr: {:?}",
                    stderr.lock().map(|l| l.join("\n"))
                )
            });
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("the first line says where it listens: {first:?}"))
            .trim()
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let server = Self {
            child,
            base: format!("http://{addr}/api/v1"),
            addr,
            stderr,
            http,
        };
        // It prints the line once it accepts connections: the first request must work.
        let health: Value = server.get("/health", None).await;
        assert_eq!(health["status"], "ok");
        server
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Value {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.expect("json")
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// OTP login over HTTP; returns the tokens and the code the server handed out.
    pub async fn login(&self, phone: &str, user_type: &str) -> (Value, String) {
        let gen = self
            .post(
                "/auth/otp/generate",
                json!({"area_code": "+91", "phone_number": phone, "user_type": user_type, "purpose": "login"}),
            )
            .await;
        let code = gen["dev_otp"].as_str().expect("dev_otp").to_owned();
        let tokens = self
            .post(
                "/auth/otp/validate",
                json!({
                    "request_id": gen["request_id"], "otp_code": code, "user_type": user_type,
                    "device_info": {"device_type": "cli-test", "platform": "linux"},
                    "phone_number": phone, "area_code": "+91"
                }),
            )
            .await;
        (tokens, code)
    }

    /// Waits for a stderr line that satisfies `f`.
    pub async fn stderr_line(&self, f: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .expect("stderr lines")
                .iter()
                .find(|l| f(l))
            {
                return l.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such line on stderr: {:?}",
                self.stderr.lock().map(|l| l.join("\n"))
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to end.
    pub async fn terminate(self) -> ExitStatus {
        self.signal("-TERM").await
    }

    /// Sends a signal (`-TERM`, `-INT`) and waits for the process to end.
    pub async fn signal(mut self, sig: &str) -> ExitStatus {
        let pid = self.child.id().expect("still running");
        let kill = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(kill.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .expect("wait")
    }
}
