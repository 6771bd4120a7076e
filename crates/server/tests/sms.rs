//! Login codes through an HTTP SMS gateway: a stand-in gateway in the test checks what the
//! server sends and fails on demand.

mod common;
#[allow(dead_code)]
mod stand_in;

use common::{Reply, TestServer};
use serde_json::{json, Value};
use stand_in::{Answer, Seen, StandIn};
use std::process::Stdio;
use std::time::Duration;
use tara_server::config::{SmsAuth, SmsGatewayConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const PHONE: &str = "9876543210";

/// A production server (no `--dev`) whose codes go to `gateway`, retrying quickly.
async fn server_with(gateway: &StandIn, tweak: impl FnOnce(&mut SmsGatewayConfig)) -> TestServer {
    let mut sms = SmsGatewayConfig::new(format!("{}/v1/sms", gateway.url), "gw-secret");
    sms.backoff = Duration::from_millis(20);
    sms.timeout = Duration::from_secs(5);
    tweak(&mut sms);
    TestServer::start_with(move |c| {
        c.dev = false;
        c.sms = Some(sms);
    })
    .await
}

async fn generate(server: &TestServer) -> Reply {
    server
        .post(
            "/auth/otp/generate",
            None,
            json!({"area_code": "+91", "phone_number": PHONE, "user_type": "customer", "purpose": "login"}),
        )
        .await
}

/// The six digits in a text.
fn code_in(text: &str) -> String {
    let digits: Vec<String> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 6)
        .map(str::to_owned)
        .collect();
    assert_eq!(digits.len(), 1, "one six-digit code in {text:?}");
    digits[0].clone()
}

#[tokio::test]
async fn a_login_code_goes_to_the_gateway_and_the_code_it_carries_logs_in() {
    let gateway = StandIn::start(|_| Answer::json(200, json!({"id": "m1"}))).await;
    let server = server_with(&gateway, |_| {}).await;

    let gen: Value = generate(&server).await.ok();
    assert!(gen.get("dev_otp").is_none(), "no code in the answer: {gen}");

    let sent = gateway.wait_for("/v1/sms", 1).await;
    let req = &sent[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("authorization"), Some("Bearer gw-secret"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    assert_eq!(body["to"], "+919876543210");
    let text = body["text"].as_str().expect("text");
    assert!(text.contains("Tara"), "{text}");
    let code = code_in(text);

    let tokens: Value = server
        .post(
            "/auth/otp/validate",
            None,
            json!({
                "request_id": gen["request_id"], "otp_code": code, "user_type": "customer",
                "device_info": {"device_type": "phone", "platform": "android"},
                "phone_number": PHONE, "area_code": "+91"
            }),
        )
        .await
        .ok();
    assert!(tokens["access_token"].is_string());
}

#[tokio::test]
async fn a_gateway_that_fails_twice_is_tried_a_third_time_with_the_same_message() {
    let gateway = StandIn::start(|_| Answer::status(200)).await;
    gateway.then("/v1/sms", Answer::status(500));
    gateway.then("/v1/sms", Answer::status(502));
    let server = server_with(&gateway, |g| g.retries = 2).await;

    generate(&server).await.ok::<Value>();
    let sent = gateway.seen_under("/v1/sms");
    assert_eq!(
        sent.len(),
        3,
        "two failures, then the one that went through"
    );
    assert!(sent.iter().all(|s| s.body == sent[0].body));
}

#[tokio::test]
async fn a_gateway_that_stays_down_answers_sms_unavailable_and_spends_none_of_the_quota() {
    let gateway = StandIn::start(|_| Answer::status(503)).await;
    let server = server_with(&gateway, |g| g.retries = 1).await;

    // More failures than the hourly five, one right after another.
    for attempt in 0..6 {
        let r = generate(&server).await;
        r.fails(503, "SMS_UNAVAILABLE");
        assert_eq!(
            gateway.seen_under("/v1/sms").len(),
            2 * (attempt + 1),
            "each call tried twice (one retry)"
        );
    }
    // The gateway recovers: the next code goes out at once, with no 30 s wait.
    gateway.then("/v1/sms", Answer::status(200));
    let gen: Value = generate(&server).await.ok();
    let delivered = gateway
        .seen_under("/v1/sms")
        .pop()
        .expect("the last request");
    let code = code_in(delivered.json()["text"].as_str().expect("text"));
    // A code that was delivered does count: another one now has to wait.
    generate(&server).await.fails(429, "RATE_LIMITED");
    // And the delivered code is the one that works.
    server
        .post(
            "/auth/otp/validate",
            None,
            json!({
                "request_id": gen["request_id"], "otp_code": code, "user_type": "customer",
                "device_info": {"device_type": "phone", "platform": "android"},
                "phone_number": PHONE, "area_code": "+91"
            }),
        )
        .await
        .ok::<Value>();
}

#[tokio::test]
async fn a_refusal_is_final_and_not_retried() {
    let gateway = StandIn::start(|_| Answer::json(401, json!({"error": "bad key"}))).await;
    let server = server_with(&gateway, |g| g.retries = 3).await;
    generate(&server).await.fails(503, "SMS_UNAVAILABLE");
    assert_eq!(gateway.seen_under("/v1/sms").len(), 1);
}

#[tokio::test]
async fn a_gateway_that_never_answers_times_out_into_sms_unavailable() {
    let gateway = StandIn::start(|_| Answer::status(200).after(Duration::from_secs(30))).await;
    let server = server_with(&gateway, |g| {
        g.timeout = Duration::from_millis(300);
        g.retries = 1;
    })
    .await;
    generate(&server).await.fails(503, "SMS_UNAVAILABLE");
    assert_eq!(
        gateway.seen_under("/v1/sms").len(),
        2,
        "tried, timed out, tried again"
    );
}

#[tokio::test]
async fn basic_auth_and_a_form_template_for_twilio_shaped_gateways() {
    let gateway = StandIn::start(|_| Answer::status(201)).await;
    let server = server_with(&gateway, |g| {
        g.auth = SmsAuth::Basic;
        g.token = tara_server::config::Secret::new("AC123:s3cret");
        g.content_type = "application/x-www-form-urlencoded".into();
        g.template = "To={phone}&From=%2B15005550006&Body={text}".into();
    })
    .await;
    generate(&server).await.ok::<Value>();
    let req = &gateway.wait_for("/v1/sms", 1).await[0];
    // base64("AC123:s3cret")
    assert_eq!(req.header("authorization"), Some("Basic QUMxMjM6czNjcmV0"));
    let form = req.text();
    assert!(
        form.starts_with("To=%2B919876543210&From=%2B15005550006&Body=Your+Tara+login+code+is+"),
        "{form}"
    );
}

#[tokio::test]
async fn the_token_can_go_in_a_header_of_its_own_with_the_phone_in_digits() {
    let gateway = StandIn::start(|_| Answer::status(200)).await;
    let server = server_with(&gateway, |g| {
        g.auth = SmsAuth::Header("authkey".into());
        g.template = r#"{"mobile":"{phone_digits}","otp":"{code}"}"#.into();
    })
    .await;
    generate(&server).await.ok::<Value>();
    let req: Seen = gateway.wait_for("/v1/sms", 1).await.remove(0);
    assert_eq!(req.header("authkey"), Some("gw-secret"));
    assert_eq!(req.header("authorization"), None);
    let body = req.json();
    assert_eq!(body["mobile"], "919876543210");
    assert_eq!(code_in(body["otp"].as_str().expect("otp")).len(), 6);
}

/// The binary with gateway flags, logging everything of its own at trace level: the codes it
/// sends (and the ones it fails to send) never show in its output.
#[tokio::test]
async fn the_binary_takes_gateway_flags_and_never_logs_a_code() {
    let gateway = StandIn::start(|_| Answer::status(200)).await;
    gateway.then("/v1/sms", Answer::status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tara-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
            "--sms-url",
            &format!("{}/v1/sms", gateway.url),
            "--sms-retries",
            "0",
            "--sms-template",
            r#"{"number":"{phone}","message":"{text}"}"#,
        ])
        .env("TARA_SMS_TOKEN", "from-env")
        .env("RUST_LOG", "tara_server=trace,info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = tokio::time::timeout(common::WAIT, stdout.next_line())
            .await
            .expect("the server says where it listens")
            .expect("stdout")
            .expect("a line");
        if let Some(url) = line.strip_prefix("listening on ") {
            break format!("{url}/api/v1");
        }
    };
    let http = reqwest::Client::new();
    let mut codes = Vec::new();
    for expect in [503, 200] {
        let r = http
            .post(format!("{base}/auth/otp/generate"))
            .json(&json!({"area_code": "+91", "phone_number": PHONE, "user_type": "customer"}))
            .send()
            .await
            .expect("generate");
        assert_eq!(r.status().as_u16(), expect);
        let sent = gateway.seen_under("/v1/sms").pop().expect("a request");
        assert_eq!(sent.header("authorization"), Some("Bearer from-env"));
        codes.push(code_in(sent.json()["message"].as_str().expect("message")));
    }
    child.start_kill().expect("stop");
    let _ = child.wait().await;
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .await
        .expect("read stderr");
    assert!(
        log.contains("SMS"),
        "the log does speak of the gateway: {log}"
    );
    for code in codes {
        assert!(
            !log.contains(&code),
            "code {code} leaked into the log:\n{log}"
        );
    }
    assert!(!log.contains("from-env"), "the token leaked into the log");
}
