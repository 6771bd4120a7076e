//! Auth as a client sees it: OTP login and its limits, rotating refresh tokens with reuse
//! detection, access-token expiry over HTTP and WebSocket, device sessions and the profile.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Helpers: the raw OTP calls, so each test can look at every answer.

async fn generate(server: &TestServer, phone: &str, user_type: &str) -> Reply {
    server
        .post(
            "/auth/otp/generate",
            None,
            json!({"area_code": "+91", "phone_number": phone, "user_type": user_type, "purpose": "login"}),
        )
        .await
}

async fn validate(
    server: &TestServer,
    request_id: &Value,
    code: &str,
    phone: &str,
    user_type: &str,
) -> Reply {
    validate_from(server, request_id, code, phone, user_type, "phone").await
}

async fn validate_from(
    server: &TestServer,
    request_id: &Value,
    code: &str,
    phone: &str,
    user_type: &str,
    device: &str,
) -> Reply {
    server
        .post(
            "/auth/otp/validate",
            None,
            json!({
                "request_id": request_id, "otp_code": code, "user_type": user_type,
                "device_info": {"device_type": device, "platform": "linux"},
                "phone_number": phone, "area_code": "+91"
            }),
        )
        .await
}

/// A code that is not `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().expect("six digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

fn user_of(tokens: &Value) -> User {
    User {
        id: tokens["auth_user_id"].as_i64().expect("auth_user_id"),
        token: tokens["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: tokens["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
        session_id: tokens["session_id"]
            .as_str()
            .expect("session_id")
            .to_owned(),
    }
}

/// Logs a customer in from a named device (the server must allow back-to-back codes).
async fn login_from(server: &TestServer, phone: &str, device: &str) -> User {
    let gen: Value = generate(server, phone, "customer").await.ok();
    let code = gen["dev_otp"].as_str().expect("dev_otp");
    let tokens: Value = validate_from(server, &gen["request_id"], code, phone, "customer", device)
        .await
        .ok();
    user_of(&tokens)
}

async fn refresh(server: &TestServer, refresh_token: &str) -> Reply {
    server
        .post(
            "/auth/refresh",
            None,
            json!({ "refresh_token": refresh_token }),
        )
        .await
}

/// A refresh as tara-core sends it: with the key it keeps until the answer comes.
async fn refresh_keyed(server: &TestServer, refresh_token: &str, key: &str) -> Reply {
    server
        .post(
            "/auth/refresh",
            None,
            json!({ "refresh_token": refresh_token, "idempotency_key": key }),
        )
        .await
}

async fn profile(server: &TestServer, user: &User) -> Reply {
    server.get("/auth/profile", Some(user)).await
}

fn with_token(user: &User, token: &str) -> User {
    User {
        token: token.to_owned(),
        ..user.clone()
    }
}

fn quick_codes(c: &mut tara_server::Config) {
    c.otp_resend_after = Duration::ZERO;
}

// ---------------------------------------------------------------------------------------------
// OTP

#[tokio::test]
async fn a_dev_server_returns_the_code_and_a_production_server_does_not() {
    let dev = TestServer::start().await;
    let gen: Value = generate(&dev, "9876543210", "customer").await.ok();
    let code = gen["dev_otp"]
        .as_str()
        .expect("dev mode hands out the code");
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        (gen["expires_in"].as_u64(), gen["resend_after"].as_u64()),
        (Some(300), Some(30))
    );

    let prod = TestServer::start_with(|c| c.dev = false).await;
    let gen: Value = generate(&prod, "9876543210", "customer").await.ok();
    assert!(gen["request_id"].is_string());
    assert!(
        gen.get("dev_otp").is_none(),
        "outside dev mode the code only goes by SMS: {gen}"
    );
}

#[tokio::test]
async fn the_right_code_logs_in_with_a_full_set_of_tokens() {
    let server = TestServer::start().await;
    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    let tokens: Value = validate(
        &server,
        &gen["request_id"],
        gen["dev_otp"].as_str().expect("code"),
        "9876543210",
        "customer",
    )
    .await
    .ok();
    for field in ["access_token", "refresh_token", "session_id"] {
        assert!(
            tokens[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} is set: {tokens}"
        );
    }
    assert_eq!(tokens["expires_in"], 900);
    assert!(tokens["auth_user_id"].as_i64().is_some_and(|id| id > 0));
    assert_eq!(tokens["user_type"], "customer");
    assert_eq!(tokens["user_roles"], json!(["customer"]));
    assert_eq!(
        tokens["access_token"]
            .as_str()
            .map(|t| t.split('.').count()),
        Some(3),
        "the access token is a JWT"
    );

    let me: Value = profile(&server, &user_of(&tokens)).await.ok();
    assert_eq!(me["id"], tokens["auth_user_id"]);
    assert_eq!(me["phone"], "+919876543210");
}

#[tokio::test]
async fn a_code_logs_in_only_once() {
    let server = TestServer::start().await;
    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    let code = gen["dev_otp"].as_str().expect("code");
    validate(&server, &gen["request_id"], code, "9876543210", "customer")
        .await
        .ok::<Value>();
    validate(&server, &gen["request_id"], code, "9876543210", "customer")
        .await
        .fails(400, "OTP_EXPIRED");
}

#[tokio::test]
async fn one_code_sent_twice_at_once_logs_in_once() {
    let server = TestServer::start().await;
    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    let code = gen["dev_otp"].as_str().expect("code");
    let (a, b) = tokio::join!(
        validate(&server, &gen["request_id"], code, "9876543210", "customer"),
        validate(&server, &gen["request_id"], code, "9876543210", "customer")
    );
    assert_eq!(
        [a.status, b.status].iter().filter(|s| **s == 200).count(),
        1,
        "{a:?} / {b:?}"
    );
}

#[tokio::test]
async fn a_wrong_code_is_refused_and_the_right_one_still_works() {
    let server = TestServer::start().await;
    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    let code = gen["dev_otp"].as_str().expect("code");
    validate(
        &server,
        &gen["request_id"],
        &wrong(code),
        "9876543210",
        "customer",
    )
    .await
    .fails(400, "OTP_INVALID");
    validate(&server, &gen["request_id"], code, "9876543210", "customer")
        .await
        .ok::<Value>();
}

#[tokio::test]
async fn five_wrong_codes_burn_the_request_even_for_the_right_code() {
    let server = TestServer::start().await;
    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    let code = gen["dev_otp"].as_str().expect("code");
    let bad = wrong(code);
    for _ in 0..4 {
        validate(&server, &gen["request_id"], &bad, "9876543210", "customer")
            .await
            .fails(400, "OTP_INVALID");
    }
    validate(&server, &gen["request_id"], &bad, "9876543210", "customer")
        .await
        .fails(429, "OTP_ATTEMPTS_EXCEEDED");
    validate(&server, &gen["request_id"], code, "9876543210", "customer")
        .await
        .fails(429, "OTP_ATTEMPTS_EXCEEDED");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let server = TestServer::start_with(|c| c.otp_ttl = Duration::from_millis(300)).await;
    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    tokio::time::sleep(Duration::from_millis(600)).await;
    validate(
        &server,
        &gen["request_id"],
        gen["dev_otp"].as_str().expect("code"),
        "9876543210",
        "customer",
    )
    .await
    .fails(400, "OTP_EXPIRED");
}

#[tokio::test]
async fn a_code_for_another_phone_does_not_log_in() {
    let server = TestServer::start().await;
    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    let code = gen["dev_otp"].as_str().expect("code");
    validate(&server, &gen["request_id"], code, "9123456789", "customer")
        .await
        .fails(400, "OTP_INVALID");
}

#[tokio::test]
async fn a_second_code_within_30_seconds_is_rate_limited_with_retry_after() {
    let server = TestServer::start().await;
    generate(&server, "9876543210", "customer")
        .await
        .ok::<Value>();
    let again = generate(&server, "9876543210", "customer").await;
    again.fails(429, "RATE_LIMITED");
    let wait: u64 = again
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    // Another phone is not held up.
    generate(&server, "9123456789", "customer")
        .await
        .ok::<Value>();
}

#[tokio::test]
async fn the_sixth_code_in_an_hour_is_rate_limited() {
    let server = TestServer::start_with(quick_codes).await;
    for _ in 0..5 {
        generate(&server, "9876543210", "customer")
            .await
            .ok::<Value>();
    }
    let sixth = generate(&server, "9876543210", "customer").await;
    sixth.fails(429, "RATE_LIMITED");
    assert!(
        sixth.headers.get("retry-after").is_some(),
        "the client learns when to try again"
    );
    generate(&server, "9123456789", "customer")
        .await
        .ok::<Value>();
}

#[tokio::test]
async fn codes_asked_for_all_at_once_still_respect_the_limits() {
    // One burst of requests, as a script pumping SMS would send: one code, not ten.
    let server = TestServer::start().await;
    let burst = (0..10).map(|_| generate(&server, "9876543210", "customer"));
    let answers = futures_util::future::join_all(burst).await;
    let sent = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(sent, 1, "one code per 30 s, however fast they ask");
    for r in answers.iter().filter(|r| r.status != 200) {
        r.fails(429, "RATE_LIMITED");
    }

    // Without the resend wait, the hourly cap holds under a burst too.
    let server = TestServer::start_with(quick_codes).await;
    let burst = (0..12).map(|_| generate(&server, "9876543210", "customer"));
    let answers = futures_util::future::join_all(burst).await;
    let sent = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(sent, 5, "five codes an hour, however fast they ask");
}

#[tokio::test]
async fn a_guide_login_for_a_phone_that_is_no_guide_is_forbidden() {
    let server = TestServer::start_with(quick_codes).await;
    // A customer of that phone exists; it is still no guide.
    server.customer("9876543210").await;
    let gen: Value = generate(&server, "9876543210", "guide").await.ok();
    validate(
        &server,
        &gen["request_id"],
        gen["dev_otp"].as_str().expect("code"),
        "9876543210",
        "guide",
    )
    .await
    .fails(403, "FORBIDDEN");

    // A registered guide gets in as a guide.
    let id = server.add_guide("+919000000001", "Asha").await;
    let guide = server.login("+91", "9000000001", "guide").await;
    assert_eq!(
        guide.id, id,
        "the guide logs into the account that was added"
    );
    let me: Value = profile(&server, &guide).await.ok();
    assert_eq!(
        (me["user_type"].as_str(), me["display_name"].as_str()),
        (Some("guide"), Some("Asha"))
    );
}

#[tokio::test]
async fn a_customer_account_is_made_on_first_login_and_reused_after() {
    let server = TestServer::start_with(quick_codes).await;
    let first = server.customer("9876543210").await;
    let second = server.customer("9876543210").await;
    assert_eq!(first.id, second.id, "one phone, one customer");
    assert_ne!(first.session_id, second.session_id, "one session per login");
    let other = server.customer("9123456789").await;
    assert_ne!(other.id, first.id);
    let me: Value = profile(&server, &second).await.ok();
    assert_eq!(
        (me["user_type"].as_str(), me["phone"].as_str()),
        (Some("customer"), Some("+919876543210"))
    );
}

#[tokio::test]
async fn malformed_login_requests_are_validation_failures() {
    let server = TestServer::start().await;
    let bad_bodies = [
        json!({"area_code": "+91", "phone_number": "98x", "user_type": "customer", "purpose": "login"}),
        json!({"area_code": "", "phone_number": "9876543210", "user_type": "customer", "purpose": "login"}),
        json!({"area_code": "+91", "user_type": "customer", "purpose": "login"}),
        json!({"area_code": "+91", "phone_number": "9876543210", "user_type": "admin", "purpose": "login"}),
        json!({"area_code": "+91", "phone_number": "9876543210", "user_type": "customer", "purpose": "signup"}),
    ];
    for body in bad_bodies {
        server
            .post("/auth/otp/generate", None, body)
            .await
            .fails(400, "VALIDATION_FAILED");
    }

    let gen: Value = generate(&server, "9876543210", "customer").await.ok();
    server
        .post(
            "/auth/otp/validate",
            None,
            json!({"request_id": gen["request_id"], "user_type": "customer", "phone_number": "9876543210", "area_code": "+91"}),
        )
        .await
        .fails(400, "VALIDATION_FAILED");
    validate(
        &server,
        &gen["request_id"],
        gen["dev_otp"].as_str().expect("code"),
        "98-76x",
        "customer",
    )
    .await
    .fails(400, "VALIDATION_FAILED");
    server
        .post("/auth/refresh", None, json!({}))
        .await
        .fails(400, "VALIDATION_FAILED");

    for path in ["/auth/otp/generate", "/auth/otp/validate", "/auth/refresh"] {
        let res = server
            .http
            .post(server.url(path))
            .header("content-type", "application/json")
            .body("{\"area_code\": \"+91\",")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 400, "{path}");
        let body: Value = res.json().await.expect("an error body");
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{path}");
    }

    // The malformed attempts cost the phone nothing: the code still works.
    validate(
        &server,
        &gen["request_id"],
        gen["dev_otp"].as_str().expect("code"),
        "9876543210",
        "customer",
    )
    .await
    .ok::<Value>();
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn refresh_gives_new_working_tokens_for_the_same_session() {
    let server = TestServer::start().await;
    let user = server.customer("9876543210").await;
    let tokens: Value = refresh(&server, &user.refresh).await.ok();
    let renewed = user_of(&tokens);
    assert_eq!(
        (renewed.id, &renewed.session_id),
        (user.id, &user.session_id)
    );
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["user_type"], "customer");
    assert_ne!(renewed.refresh, user.refresh, "the refresh token rotates");
    profile(&server, &renewed).await.ok::<Value>();
    // And the new refresh token rotates in turn.
    let again: Value = refresh(&server, &renewed.refresh).await.ok();
    profile(&server, &user_of(&again)).await.ok::<Value>();
}

#[tokio::test]
async fn a_refresh_token_used_twice_signs_that_device_out() {
    let server = TestServer::start_with(quick_codes).await;
    let phone = login_from(&server, "9876543210", "phone").await;
    let laptop = login_from(&server, "9876543210", "laptop").await;
    let mut laptop_ws = Ws::connect(&server, &laptop.token).await;

    let rotated = user_of(&refresh(&server, &phone.refresh).await.ok::<Value>());
    let mut phone_ws = Ws::connect(&server, &rotated.token).await;

    // Someone replays the dead token: refused, and the whole device session ends.
    refresh(&server, &phone.refresh)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    assert_eq!(phone_ws.closed().await, Closed::Code(4001));
    refresh(&server, &rotated.refresh)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    profile(&server, &rotated)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    assert!(
        Ws::try_connect(&server, &rotated.token).await.is_err(),
        "a revoked session cannot open a socket"
    );

    // The same person's other device is not touched.
    profile(&server, &laptop).await.ok::<Value>();
    laptop_ws.send(json!({"type": "ping"})).await;
    laptop_ws.next_of("pong").await;
    refresh(&server, &laptop.refresh).await.ok::<Value>();
}

/// Found by the chaos run (`tara-chaos`): a refresh's answer lost on a cut link, or the client
/// killed before it stored the new token, left the device with a token the server had spent;
/// its next refresh looked like a stolen token and signed the person out. The client now sends
/// the refresh again with the key it made for it, and the server takes that as a retry.
#[tokio::test]
async fn a_refresh_whose_answer_was_lost_sent_again_with_its_key_keeps_the_session() {
    let server = TestServer::start_with(quick_codes).await;
    let user = login_from(&server, "9876543210", "phone").await;
    let mut ws = Ws::connect(&server, &user.token).await;
    // The first answer never arrives; the second is the one the device keeps.
    let lost = user_of(
        &refresh_keyed(&server, &user.refresh, "k1")
            .await
            .ok::<Value>(),
    );
    let kept = user_of(
        &refresh_keyed(&server, &user.refresh, "k1")
            .await
            .ok::<Value>(),
    );
    assert_eq!(kept.session_id, user.session_id, "the same device session");
    assert_ne!(kept.refresh, lost.refresh, "a new successor");
    profile(&server, &kept).await.ok::<Value>();
    ws.send(json!({"type": "ping"})).await;
    ws.next_of("pong").await;
    // A lost answer may be lost again: the same retry still works, and rotation goes on.
    let kept = user_of(
        &refresh_keyed(&server, &user.refresh, "k1")
            .await
            .ok::<Value>(),
    );
    let next = user_of(
        &refresh_keyed(&server, &kept.refresh, "k2")
            .await
            .ok::<Value>(),
    );
    profile(&server, &next).await.ok::<Value>();
    // Once a successor has been used, the old token with its key is a replay like any other.
    refresh_keyed(&server, &user.refresh, "k1")
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    assert_eq!(ws.closed().await, Closed::Code(4001));
    profile(&server, &next)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
}

#[tokio::test]
async fn a_spent_refresh_token_with_another_key_or_none_still_signs_the_device_out() {
    let server = TestServer::start_with(quick_codes).await;
    for second in [Some("other"), None] {
        let user = login_from(&server, "9876543210", "phone").await;
        let rotated = user_of(
            &refresh_keyed(&server, &user.refresh, "first")
                .await
                .ok::<Value>(),
        );
        let replay = match second {
            Some(k) => refresh_keyed(&server, &user.refresh, k).await,
            None => refresh(&server, &user.refresh).await,
        };
        replay.fails(401, "AUTHENTICATION_FAILED");
        profile(&server, &rotated)
            .await
            .fails(401, "AUTHENTICATION_FAILED");
    }
    // A key is 1 to 128 characters.
    let user = login_from(&server, "9876543210", "phone").await;
    for bad in [String::new(), "k".repeat(129)] {
        refresh_keyed(&server, &user.refresh, &bad)
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    refresh_keyed(&server, &user.refresh, &"k".repeat(128))
        .await
        .ok::<Value>();
}

#[tokio::test]
async fn two_refreshes_racing_with_one_token_give_tokens_once() {
    let server = TestServer::start_with(quick_codes).await;
    for _ in 0..5 {
        let user = server.customer("9876543210").await;
        let (a, b) = tokio::join!(
            refresh(&server, &user.refresh),
            refresh(&server, &user.refresh)
        );
        let winners = [&a, &b].iter().filter(|r| r.status == 200).count();
        assert_eq!(winners, 1, "exactly one refresh wins: {a:?} / {b:?}");
        let loser = if a.status == 200 { &b } else { &a };
        loser.fails(401, "AUTHENTICATION_FAILED");
    }
}

#[tokio::test]
async fn a_tampered_access_token_is_refused() {
    let server = TestServer::start_with(quick_codes).await;
    let me = server.customer("9876543210").await;
    let victim = server.customer("9123456789").await;

    // Claim to be someone else, keeping the signature.
    let parts: Vec<&str> = me.token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&B64.decode(parts[1]).expect("base64 claims")).expect("claims");
    claims["sub"] = json!(victim.id.to_string());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    profile(&server, &with_token(&me, &forged))
        .await
        .fails(401, "AUTHENTICATION_FAILED");

    // Live longer than it should.
    let mut claims: Value =
        serde_json::from_slice(&B64.decode(parts[1]).expect("base64 claims")).expect("claims");
    claims["exp"] = json!(claims["exp"].as_i64().expect("exp") + 86_400);
    let stretched = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    profile(&server, &with_token(&me, &stretched))
        .await
        .fails(401, "AUTHENTICATION_FAILED");

    for junk in ["", "not-a-token", "a.b.c"] {
        profile(&server, &with_token(&me, junk))
            .await
            .fails(401, "AUTHENTICATION_FAILED");
    }
    assert!(Ws::try_connect(&server, &forged).await.is_err());
    profile(&server, &me).await.ok::<Value>();
}

#[tokio::test]
async fn an_expired_access_token_says_token_expired_and_refresh_recovers() {
    let server = TestServer::start_with(|c| c.access_ttl = Duration::from_secs(1)).await;
    let user = server.customer("9876543210").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    profile(&server, &user).await.fails(401, "TOKEN_EXPIRED");
    let upgrade = server
        .http
        .get(server.url("/realtime"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("request");
    assert_eq!(upgrade.status().as_u16(), 401);
    let fresh = user_of(&refresh(&server, &user.refresh).await.ok::<Value>());
    profile(&server, &fresh).await.ok::<Value>();
}

#[tokio::test]
async fn the_socket_closes_with_4001_when_its_access_token_expires() {
    let server = TestServer::start_with(|c| c.access_ttl = Duration::from_secs(2)).await;
    let user = server.customer("9876543210").await;
    let mut ws = Ws::connect(&server, &user.token).await;
    assert_eq!(ws.closed().await, Closed::Code(4001));
}

#[tokio::test]
async fn a_fresh_token_sent_over_the_socket_keeps_it_open_past_the_old_expiry() {
    let server = TestServer::start_with(|c| c.access_ttl = Duration::from_secs(2)).await;
    let mut user = server.customer("9876543210").await;
    let mut ws = Ws::connect(&server, &user.token).await;
    // Keep swapping in fresh tokens, as an app does before expiry, for well past the first one.
    let until = tokio::time::Instant::now() + Duration::from_millis(4500);
    while tokio::time::Instant::now() < until {
        user = user_of(&refresh(&server, &user.refresh).await.ok::<Value>());
        ws.send(json!({"type": "auth", "access_token": user.token}))
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    ws.send(json!({"type": "ping"})).await;
    let pong = ws
        .next_within(Duration::from_secs(1))
        .await
        .expect("the socket is still open");
    assert_eq!(pong["type"], "pong", "no error either: {pong}");
    // Once the client stops renewing, the last token runs out and the socket ends.
    assert_eq!(ws.closed().await, Closed::Code(4001));
}

#[tokio::test]
async fn a_token_of_another_user_is_refused_over_the_socket() {
    let server = TestServer::start_with(quick_codes).await;
    let me = server.customer("9876543210").await;
    let other = server.customer("9123456789").await;
    let mut ws = Ws::connect(&server, &me.token).await;
    ws.send(json!({"type": "auth", "access_token": other.token}))
        .await;
    let err = ws.next_of("error").await;
    assert_eq!(err["code"], "AUTHENTICATION_FAILED");
    ws.send(json!({"type": "ping"})).await;
    ws.next_of("pong").await;
}

#[tokio::test]
async fn a_socket_can_carry_its_token_in_the_query_string() {
    // Browsers cannot set headers on a WebSocket.
    let server = TestServer::start().await;
    let user = server.customer("9876543210").await;
    let url = format!("{}?access_token={}", server.ws_url(), user.token);
    let (stream, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    let mut ws = Ws { stream, user_id: 0 };
    let hello = ws.next_of("hello").await;
    assert_eq!(hello["user_id"].as_i64(), Some(user.id));
    let bad = format!("{}?access_token=nope", server.ws_url());
    assert!(
        tokio_tungstenite::connect_async(bad).await.is_err(),
        "a bad query token is refused"
    );
}

#[tokio::test]
async fn tokens_outlive_a_server_restart() {
    let mut server = TestServer::start().await;
    let user = server.customer("9876543210").await;
    let dir = server.data_dir.clone();
    let _keep = server.stop().await;
    let server = TestServer::start_in(&dir, |_| {}).await;
    let me: Value = profile(&server, &user).await.ok();
    assert_eq!(me["id"].as_i64(), Some(user.id));
    let fresh = user_of(&refresh(&server, &user.refresh).await.ok::<Value>());
    Ws::connect(&server, &fresh.token).await;
}

// ---------------------------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn the_session_list_shows_every_device_and_marks_the_callers() {
    let server = TestServer::start_with(quick_codes).await;
    let phone = login_from(&server, "9876543210", "phone").await;
    let laptop = login_from(&server, "9876543210", "laptop").await;
    let list: Vec<Value> = server.get("/auth/sessions", Some(&laptop)).await.ok();
    assert_eq!(list.len(), 2, "{list:?}");
    let find = |sid: &str| {
        list.iter()
            .find(|s| s["session_id"] == sid)
            .cloned()
            .expect("listed")
    };
    let (p, l) = (find(&phone.session_id), find(&laptop.session_id));
    assert_eq!(
        (p["current"].as_bool(), l["current"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(p["device_info"]["device_type"], "phone");
    assert_eq!(l["device_info"]["device_type"], "laptop");
    for s in [&p, &l] {
        assert!(s["created_at"].is_string() && s["last_used_at"].is_string());
    }
    // Someone else's sessions are not in my list.
    let other = server.customer("9123456789").await;
    let theirs: Vec<Value> = server.get("/auth/sessions", Some(&other)).await.ok();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["session_id"], other.session_id.as_str());
}

#[tokio::test]
async fn signing_out_another_device_closes_its_socket_and_kills_its_tokens() {
    let server = TestServer::start_with(quick_codes).await;
    let phone = login_from(&server, "9876543210", "phone").await;
    let laptop = login_from(&server, "9876543210", "laptop").await;
    let mut laptop_ws = Ws::connect(&server, &laptop.token).await;
    let mut phone_ws = Ws::connect(&server, &phone.token).await;

    let res = server
        .delete(
            &format!("/auth/sessions/{}", laptop.session_id),
            Some(&phone),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.body);
    assert_eq!(laptop_ws.closed().await, Closed::Code(4001));
    profile(&server, &laptop)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    refresh(&server, &laptop.refresh)
        .await
        .fails(401, "AUTHENTICATION_FAILED");

    // The phone carries on.
    phone_ws.send(json!({"type": "ping"})).await;
    phone_ws.next_of("pong").await;
    let list: Vec<Value> = server.get("/auth/sessions", Some(&phone)).await.ok();
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn nobody_can_sign_out_someone_elses_session() {
    let server = TestServer::start_with(quick_codes).await;
    let me = server.customer("9876543210").await;
    let other = server.customer("9123456789").await;
    server
        .delete(&format!("/auth/sessions/{}", other.session_id), Some(&me))
        .await
        .fails(404, "NOT_FOUND");
    profile(&server, &other).await.ok::<Value>();
    server
        .delete(&format!("/auth/sessions/{}", other.session_id), None)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
}

#[tokio::test]
async fn logout_ends_the_current_session_only() {
    let server = TestServer::start_with(quick_codes).await;
    let phone = login_from(&server, "9876543210", "phone").await;
    let laptop = login_from(&server, "9876543210", "laptop").await;
    let mut ws = Ws::connect(&server, &phone.token).await;
    let res = server.post("/auth/logout", Some(&phone), json!({})).await;
    assert_eq!(res.status, 204, "{}", res.body);
    assert_eq!(ws.closed().await, Closed::Code(4001));
    profile(&server, &phone)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    refresh(&server, &phone.refresh)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    profile(&server, &laptop).await.ok::<Value>();
}

#[tokio::test]
async fn a_login_past_the_session_limit_signs_out_the_least_recently_used_device() {
    let server = TestServer::start_with(|c| {
        c.otp_resend_after = Duration::ZERO;
        c.max_sessions = 3;
    })
    .await;
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    let first = login_from(&server, "9876543210", "first").await;
    pause().await;
    let second = login_from(&server, "9876543210", "second").await;
    pause().await;
    let third = login_from(&server, "9876543210", "third").await;
    pause().await;
    // The oldest device is back in use; the second one is now the least recently used.
    let first = user_of(&refresh(&server, &first.refresh).await.ok::<Value>());
    let mut second_ws = Ws::connect(&server, &second.token).await;
    pause().await;

    let fourth = login_from(&server, "9876543210", "fourth").await;
    assert_eq!(second_ws.closed().await, Closed::Code(4001));
    profile(&server, &second)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    for still in [&first, &third, &fourth] {
        profile(&server, still).await.ok::<Value>();
    }
    let list: Vec<Value> = server.get("/auth/sessions", Some(&fourth)).await.ok();
    let mut devices: Vec<&str> = list
        .iter()
        .map(|s| s["device_info"]["device_type"].as_str().expect("device"))
        .collect();
    devices.sort_unstable();
    assert_eq!(devices, ["first", "fourth", "third"]);
}

// ---------------------------------------------------------------------------------------------
// Profile

#[tokio::test]
async fn a_user_renames_themself_and_nobody_else() {
    let server = TestServer::start_with(quick_codes).await;
    let me = server.customer("9876543210").await;
    let other = server.customer("9123456789").await;
    let before: Value = profile(&server, &other).await.ok();

    let mine: Value = profile(&server, &me).await.ok();
    assert_eq!(
        (
            mine["id"].as_i64(),
            mine["user_type"].as_str(),
            mine["phone"].as_str()
        ),
        (Some(me.id), Some("customer"), Some("+919876543210"))
    );
    assert!(mine["display_name"].as_str().is_some_and(|n| !n.is_empty()));

    let renamed: Value = server
        .patch(
            "/auth/profile",
            Some(&me),
            json!({"display_name": "  Ravi Kumar  "}),
        )
        .await
        .ok();
    assert_eq!(renamed["display_name"], "Ravi Kumar");
    let again: Value = profile(&server, &me).await.ok();
    assert_eq!(again["display_name"], "Ravi Kumar");
    assert_eq!(profile(&server, &other).await.ok::<Value>(), before);

    let avatar: Value = server
        .patch(
            "/auth/profile",
            Some(&me),
            json!({"avatar_url": "https://example.com/ravi.png"}),
        )
        .await
        .ok();
    assert_eq!(
        (
            avatar["display_name"].as_str(),
            avatar["avatar_url"].as_str()
        ),
        (Some("Ravi Kumar"), Some("https://example.com/ravi.png"))
    );
}

#[tokio::test]
async fn a_bad_display_name_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let me = server.customer("9876543210").await;
    let before: Value = profile(&server, &me).await.ok();
    for bad in [
        json!({"display_name": ""}),
        json!({"display_name": "   "}),
        json!({"display_name": "x".repeat(81)}),
        json!({"display_name": 5}),
        json!({"avatar_url": "javascript:alert(1)"}),
    ] {
        server
            .patch("/auth/profile", Some(&me), bad)
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    assert_eq!(profile(&server, &me).await.ok::<Value>(), before);
    server
        .get("/auth/profile", None)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
}
