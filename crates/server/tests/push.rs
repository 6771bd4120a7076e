//! Pushes to phones: FCM HTTP v1 and APNs, each against a local stand-in that checks the
//! request the provider documents (JWTs verified with ring, a second implementation, against
//! the test's own keys), plus when a push goes out and what it may say.

mod common;
#[allow(dead_code)]
mod stand_in;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::{cmid, TestServer, User, Ws};
use serde_json::{json, Value};
use stand_in::{Answer, Seen, StandIn};
use std::sync::OnceLock;
use std::time::Duration;
use tara_server::config::{ApnsConfig, FcmConfig, Secret};

const PROJECT: &str = "tara-test";
const SEND: &str = "/v1/projects/tara-test/messages:send";
const ACCOUNT_EMAIL: &str = "pusher@tara-test.iam.gserviceaccount.com";
const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM456789";
const TOPIC: &str = "app.tara.consult";

/// One RSA key for every test of this binary (making one takes a while).
fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("an RSA key")
    })
}

fn p256_key() -> &'static p256::SecretKey {
    static KEY: OnceLock<p256::SecretKey> = OnceLock::new();
    KEY.get_or_init(|| p256::SecretKey::random(&mut rsa::rand_core::OsRng))
}

/// A stand-in for Google's token endpoint and FCM, answering both as documented.
async fn fcm_stand_in() -> StandIn {
    StandIn::start(|seen| {
        if seen.path == "/token" {
            Answer::json(
                200,
                json!({"access_token": "ya29.stand-in", "expires_in": 3599, "token_type": "Bearer"}),
            )
        } else {
            Answer::json(200, json!({"name": format!("projects/{PROJECT}/messages/1")}))
        }
    })
    .await
}

async fn apns_stand_in() -> StandIn {
    StandIn::start(|_| Answer::status(200)).await
}

fn fcm_config(stand_in: &StandIn) -> FcmConfig {
    use rsa::pkcs8::EncodePrivateKey;
    let pem = rsa_key()
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .expect("pem");
    let account = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "key-1",
        "private_key": pem.as_str(),
        "client_email": ACCOUNT_EMAIL,
        "token_uri": format!("{}/token", stand_in.url),
    });
    FcmConfig {
        service_account_json: Secret::new(account.to_string()),
        base_url: stand_in.url.clone(),
    }
}

fn apns_config(stand_in: &StandIn) -> ApnsConfig {
    use p256::pkcs8::EncodePrivateKey;
    let pem = p256_key()
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .expect("pem");
    ApnsConfig {
        key_pem: Secret::new(pem.as_str()),
        key_id: KEY_ID.into(),
        team_id: TEAM_ID.into(),
        topic: TOPIC.into(),
        base_url: stand_in.url.clone(),
    }
}

/// A JWT's header and claims, after checking its signature with `verify`.
fn open_jwt(jwt: &str, verify: impl Fn(&[u8], &[u8])) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWT: {jwt}");
    let decode = |p: &str| B64.decode(p).expect("base64url without padding");
    let signed = format!("{}.{}", parts[0], parts[1]);
    verify(signed.as_bytes(), &decode(parts[2]));
    let json = |p: &str| serde_json::from_slice::<Value>(&decode(p)).expect("JSON");
    (json(parts[0]), json(parts[1]))
}

fn verify_rs256(msg: &[u8], sig: &[u8]) {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let public = rsa_key().to_public_key().to_pkcs1_der().expect("der");
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public.as_bytes(),
    )
    .verify(msg, sig)
    .expect("the RS256 signature checks out with the service account's public key");
}

fn verify_es256(msg: &[u8], sig: &[u8]) {
    let point = p256_key().public_key().to_sec1_bytes();
    assert_eq!(sig.len(), 64, "ES256 signatures are r||s, not DER");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(msg, sig)
        .expect("the ES256 signature checks out with the .p8 key's public key");
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn register(server: &TestServer, user: &User, body: Value) {
    let r: Value = server
        .post("/devices/push-token", Some(user), body.clone())
        .await
        .ok();
    assert_eq!(r["token"], body["token"]);
}

/// A guide online on a socket, a customer on REST only (no connection), chatting.
async fn chat(server: &TestServer) -> (User, Ws, User, String) {
    let (guide, ws) = server.online_guide("0000000001", "Asha Iyer").await;
    let customer = server.customer("9876543210").await;
    let id = server.open_consultation(&customer, &guide).await;
    (guide, ws, customer, id)
}

#[tokio::test]
async fn a_message_to_an_android_phone_with_no_connection_goes_through_fcm_as_documented() {
    let fcm = fcm_stand_in().await;
    let config = fcm_config(&fcm);
    let server = TestServer::start_with(|c| c.push.fcm = Some(config)).await;
    let (_guide, mut gws, customer, id) = chat(&server).await;
    register(
        &server,
        &customer,
        json!({"platform": "android", "token": "fcm-device-1"}),
    )
    .await;

    let ack = gws.send_text(&id, &cmid(), "Your stars look bright").await;
    assert_eq!(ack["type"], "ack");
    let sends = fcm.wait_for(SEND, 1).await;

    // The OAuth exchange at the service account's token_uri.
    let token_calls = fcm.seen_under("/token");
    assert_eq!(token_calls.len(), 1);
    let t = &token_calls[0];
    assert_eq!(t.method, "POST");
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = t
        .text()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            (k.to_owned(), v.replace("%3A", ":"))
        })
        .collect();
    assert_eq!(
        form[0],
        (
            "grant_type".to_owned(),
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()
        )
    );
    assert_eq!(form[1].0, "assertion");
    let (header, claims) = open_jwt(&form[1].1, verify_rs256);
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"})
    );
    assert_eq!(claims["iss"], ACCOUNT_EMAIL);
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(claims["aud"], format!("{}/token", fcm.url));
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((iat - now()).abs() < 60);
    assert_eq!(claims["exp"].as_i64(), Some(iat + 3600));

    // The send itself.
    let send = &sends[0];
    assert_eq!(send.method, "POST");
    assert_eq!(send.header("authorization"), Some("Bearer ya29.stand-in"));
    let m = &send.json()["message"];
    assert_eq!(m["token"], "fcm-device-1");
    assert_eq!(
        m["notification"],
        json!({"title": "Asha Iyer", "body": "Your stars look bright"})
    );
    assert_eq!(m["data"], json!({"type": "message", "consultation_id": id}));
    assert_eq!(m["android"]["collapse_key"], id.as_str());
    assert_eq!(m["android"]["notification"]["tag"], id.as_str());
    assert_eq!(m["android"]["priority"], "HIGH");

    // The access token is kept until it expires: the next push exchanges nothing.
    gws.send_text(&id, &cmid(), "And the moon too").await;
    let sends = fcm.wait_for(SEND, 2).await;
    assert_eq!(
        sends[1].json()["message"]["notification"]["body"],
        "And the moon too"
    );
    assert_eq!(fcm.seen_under("/token").len(), 1);
}

#[tokio::test]
async fn an_expired_access_token_is_exchanged_again_and_the_push_retried() {
    let fcm = fcm_stand_in().await;
    fcm.then(
        SEND,
        Answer::json(401, json!({"error": {"status": "UNAUTHENTICATED"}})),
    );
    let config = fcm_config(&fcm);
    let server = TestServer::start_with(|c| c.push.fcm = Some(config)).await;
    let (_guide, mut gws, customer, id) = chat(&server).await;
    register(
        &server,
        &customer,
        json!({"platform": "android", "token": "t1"}),
    )
    .await;
    gws.send_text(&id, &cmid(), "hello").await;
    let sends = fcm.wait_for(SEND, 2).await;
    assert_eq!(sends[0].body, sends[1].body, "the same push, retried");
    assert_eq!(fcm.seen_under("/token").len(), 2);
}

#[tokio::test]
async fn a_message_to_an_iphone_goes_through_apns_over_http2_as_documented() {
    let apns = apns_stand_in().await;
    let config = apns_config(&apns);
    let server = TestServer::start_with(|c| c.push.apns = Some(config)).await;
    let (_guide, mut gws, customer, id) = chat(&server).await;
    let device = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    register(
        &server,
        &customer,
        json!({"platform": "ios", "token": device}),
    )
    .await;

    gws.send_text(&id, &cmid(), "Mercury is direct again").await;
    let seen = apns.wait_for("/3/device/", 1).await;
    let push = &seen[0];
    assert_eq!(push.version, axum::http::Version::HTTP_2);
    assert_eq!(push.method, "POST");
    assert_eq!(push.path, format!("/3/device/{device}"));
    assert_eq!(push.header("apns-topic"), Some(TOPIC));
    assert_eq!(push.header("apns-push-type"), Some("alert"));
    assert_eq!(push.header("apns-collapse-id"), Some(id.as_str()));
    assert_eq!(push.header("apns-priority"), Some("10"));
    let bearer = push
        .header("authorization")
        .and_then(|a| a.strip_prefix("bearer "))
        .expect("authorization: bearer JWT");
    let (header, claims) = open_jwt(bearer, verify_es256);
    assert_eq!(header, json!({"alg": "ES256", "kid": KEY_ID}));
    assert_eq!(claims["iss"], TEAM_ID);
    assert!((claims["iat"].as_i64().expect("iat") - now()).abs() < 60);
    let body = push.json();
    assert_eq!(
        body["aps"]["alert"],
        json!({"title": "Asha Iyer", "body": "Mercury is direct again"})
    );
    assert_eq!(body["aps"]["thread-id"], id.as_str());
    assert_eq!(
        (body["type"].as_str(), body["consultation_id"].as_str()),
        (Some("message"), Some(id.as_str()))
    );
}

#[tokio::test]
async fn private_previews_keep_the_text_and_the_names_off_the_lock_screen() {
    let (fcm, apns) = (fcm_stand_in().await, apns_stand_in().await);
    let (fc, ac) = (fcm_config(&fcm), apns_config(&apns));
    let server = TestServer::start_with(|c| {
        c.push.fcm = Some(fc);
        c.push.apns = Some(ac);
        c.otp_resend_after = Duration::ZERO;
    })
    .await;
    let (_guide, mut gws, customer, id) = chat(&server).await;
    register(
        &server,
        &customer,
        json!({"platform": "android", "token": "private-android", "private_previews": true}),
    )
    .await;
    // A second device of the same person, an iPhone, also private.
    let phone = server.customer("9876543210").await;
    register(
        &server,
        &phone,
        json!({"platform": "ios", "token": "beef01", "private_previews": true}),
    )
    .await;
    gws.send_text(&id, &cmid(), "About your secret engagement")
        .await;
    let android = fcm.wait_for(SEND, 1).await.remove(0);
    let iphone = apns.wait_for("/3/device/", 1).await.remove(0);
    for (who, raw) in [("fcm", android.text()), ("apns", iphone.text())] {
        assert!(!raw.contains("secret"), "{who} carried the text: {raw}");
        assert!(!raw.contains("Asha"), "{who} carried the name: {raw}");
    }
    assert_eq!(
        android.json()["message"]["notification"],
        json!({"title": "Tara", "body": "New message"})
    );
    assert_eq!(
        android.json()["message"]["data"]["consultation_id"],
        id.as_str()
    );
}

#[tokio::test]
async fn no_push_goes_to_someone_whose_app_is_connected() {
    let fcm = fcm_stand_in().await;
    let config = fcm_config(&fcm);
    let server = TestServer::start_with(|c| {
        c.push.fcm = Some(config);
        c.presence_grace = Duration::ZERO;
    })
    .await;
    let (_guide, mut gws, customer, id) = chat(&server).await;
    register(
        &server,
        &customer,
        json!({"platform": "android", "token": "t"}),
    )
    .await;
    let cws = Ws::connect(&server, &customer.token).await;
    gws.send_text(&id, &cmid(), "while you are here").await;
    cws.close().await;
    // The guide hears the customer go (no grace): from here on nothing of theirs is connected.
    loop {
        let f = gws.next_of("presence").await;
        if f["user_id"] == customer.id && f["status"] == "offline" {
            break;
        }
    }
    gws.send_text(&id, &cmid(), "after you left").await;
    let sends = fcm.wait_for(SEND, 1).await;
    // Had the first message been pushed, it would have gone out first.
    let bodies: Vec<Value> = fcm
        .settled(SEND, Duration::from_millis(200))
        .await
        .iter()
        .map(|s| s.json()["message"]["notification"]["body"].clone())
        .collect();
    assert_eq!(bodies, [json!("after you left")], "{sends:?}");
}

#[tokio::test]
async fn a_burst_of_messages_is_collapsed_into_the_first_and_the_latest() {
    let fcm = fcm_stand_in().await;
    // The first push takes a while, as a slow provider would.
    fcm.then(SEND, Answer::status(200).after(Duration::from_millis(1500)));
    let config = fcm_config(&fcm);
    let server = TestServer::start_with(|c| c.push.fcm = Some(config)).await;
    let (_guide, mut gws, customer, id) = chat(&server).await;
    register(
        &server,
        &customer,
        json!({"platform": "android", "token": "t"}),
    )
    .await;
    for n in 1..=5 {
        let ack = gws.send_text(&id, &cmid(), &format!("message {n}")).await;
        assert_eq!(
            ack["type"], "ack",
            "sends are not held up by the push: {ack}"
        );
    }
    let first = fcm.wait_for(SEND, 2).await;
    let sends = fcm.settled(SEND, Duration::from_millis(300)).await;
    let bodies: Vec<String> = sends
        .iter()
        .map(|s| {
            s.json()["message"]["notification"]["body"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(sends.len() < 5, "collapsed: {bodies:?}");
    assert_eq!(bodies.first().map(String::as_str), Some("message 1"));
    assert_eq!(
        bodies.last().map(String::as_str),
        Some("message 5"),
        "the latest always follows"
    );
    assert!(first
        .iter()
        .chain(&sends)
        .all(|s| s.json()["message"]["android"]["collapse_key"] == id.as_str()));
}

#[tokio::test]
async fn a_provider_that_hangs_never_holds_up_a_message() {
    let fcm = StandIn::start(|seen: &Seen| {
        if seen.path == "/token" {
            Answer::json(200, json!({"access_token": "a", "expires_in": 3600}))
        } else {
            Answer::status(200).after(Duration::from_secs(60))
        }
    })
    .await;
    let config = fcm_config(&fcm);
    let server = TestServer::start_with(|c| {
        c.push.fcm = Some(config);
        c.push.concurrency = 1;
        c.push.queue = 2;
        c.message_burst = 100;
    })
    .await;
    let (_guide, mut gws, customer, id) = chat(&server).await;
    register(
        &server,
        &customer,
        json!({"platform": "android", "token": "t"}),
    )
    .await;
    for n in 0..30 {
        // Each must be acked within the harness's wait, far less than the provider's minute.
        let ack = gws.send_text(&id, &cmid(), &format!("m{n}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // A REST send too, from the other side (the guide is connected: no push for them).
    let r = server
        .post(
            &format!("/consultation/{id}/messages"),
            Some(&customer),
            json!({"client_msg_id": cmid(), "kind": "text", "content": "still here"}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{r:?}");
    fcm.wait_for(SEND, 1).await;
}

#[tokio::test]
async fn a_request_wakes_a_guide_whose_phone_sleeps_and_a_dead_token_makes_them_unreachable() {
    let fcm = fcm_stand_in().await;
    let config = fcm_config(&fcm);
    let server = TestServer::start_with(|c| c.push.fcm = Some(config)).await;
    server.add_guide("+910000000002", "Meera Rao").await;
    // The guide signs in on a phone, sets themselves online, registers a token, and the
    // phone goes to sleep: no realtime connection at all.
    let guide = server.login("+91", "0000000002", "guide").await;
    server
        .post("/guide/status", Some(&guide), json!({"status": "online"}))
        .await
        .ok::<Value>();
    let customer = server.customer("9876500000").await;
    let ask = || async {
        server
            .post(
                "/consultation",
                Some(&customer),
                json!({"guide_id": guide.id, "mode": "chat", "service_type": "consultation"}),
            )
            .await
    };
    ask().await.fails(409, "GUIDE_UNAVAILABLE");
    register(
        &server,
        &guide,
        json!({"platform": "android", "token": "guide-phone"}),
    )
    .await;

    let c: Value = ask().await.created();
    let id = c["consultation_id"].as_str().expect("id");
    let push = fcm.wait_for(SEND, 1).await.remove(0).json();
    let m = &push["message"];
    assert_eq!(m["token"], "guide-phone");
    assert_eq!(m["data"], json!({"type": "request", "consultation_id": id}));
    assert_eq!(m["notification"]["title"], "New consultation request");
    assert!(m["notification"]["body"]
        .as_str()
        .is_some_and(|b| b.contains("Customer 0000")));
    assert_eq!(
        m["android"]["ttl"], "120s",
        "worth nothing once the request times out"
    );

    // The phone was wiped: FCM says the token is gone, and the guide is offline again.
    fcm.then(
        SEND,
        Answer::json(404, json!({"error": {"status": "NOT_FOUND", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
    );
    server
        .post(
            &format!("/consultation/{id}/cancel"),
            Some(&customer),
            json!({}),
        )
        .await
        .ok::<Value>();
    ask().await.created::<Value>();
    fcm.wait_for(SEND, 2).await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let list: Value = server.get("/guide/all", Some(&customer)).await.ok();
        let me = &list["guides"].as_array().expect("guides")[0];
        if me["status"] == "offline" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still listed {me}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delete_forgets_the_sessions_token_or_a_named_one() {
    let fcm = fcm_stand_in().await;
    let config = fcm_config(&fcm);
    let server = TestServer::start_with(|c| {
        c.push.fcm = Some(config);
        c.otp_resend_after = Duration::ZERO;
    })
    .await;
    server.add_guide("+910000000002", "Meera Rao").await;
    let guide = server.login("+91", "0000000002", "guide").await;
    server
        .post("/guide/status", Some(&guide), json!({"status": "online"}))
        .await
        .ok::<Value>();
    let status = || async {
        let g: Value = server.get("/guide/profile", Some(&guide)).await.ok();
        g["status"].as_str().unwrap_or_default().to_owned()
    };
    register(
        &server,
        &guide,
        json!({"platform": "android", "token": "one"}),
    )
    .await;
    assert_eq!(status().await, "online");
    // No body: the calling session's token.
    let r = server.delete("/devices/push-token", Some(&guide)).await;
    assert_eq!(r.status, 204);
    assert_eq!(status().await, "offline");
    // Deleting again is no error.
    assert_eq!(
        server
            .delete("/devices/push-token", Some(&guide))
            .await
            .status,
        204
    );

    // A token named in the body, registered from another session of the same guide.
    let phone = server.login("+91", "0000000002", "guide").await;
    register(&server, &phone, json!({"platform": "ios", "token": "two"})).await;
    assert_eq!(status().await, "online");
    let r = server
        .http
        .delete(server.url("/devices/push-token"))
        .bearer_auth(&guide.token)
        .json(&json!({"token": "two"}))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(status().await, "offline");
}

#[tokio::test]
async fn bad_push_tokens_are_refused_and_need_a_sign_in() {
    let server = TestServer::start().await;
    let customer = server.customer("9876543210").await;
    server
        .post(
            "/devices/push-token",
            None,
            json!({"platform": "android", "token": "t"}),
        )
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    for body in [
        json!({"platform": "web", "token": "t"}),
        json!({"platform": "android", "token": ""}),
        json!({"platform": "android", "token": "has space"}),
        json!({"platform": "ios"}),
        json!({"platform": "ios", "token": "x".repeat(5000)}),
    ] {
        server
            .post("/devices/push-token", Some(&customer), body.clone())
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    // With no provider configured the token is still kept, for when one is.
    register(
        &server,
        &customer,
        json!({"platform": "ios", "token": "abc"}),
    )
    .await;
}
