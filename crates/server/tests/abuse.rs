//! Abuse limits against the real server on loopback: each test floods one thing, checks the
//! contract's error code, and checks that somebody else is still served.
//!
//! Every test client normally talks from 127.0.0.1; "somebody else" talks from 127.0.0.2 (the
//! whole of 127.0.0.0/8 is loopback on Linux), so per-address limits can be seen to be per
//! address. The harness lifts the per-address limits; the tests here set their own.

mod common;

use common::{TestServer, User, Ws, WAIT};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The second address tests talk from.
const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// An HTTP client talking from `ip`.
fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(40))
        .build()
        .expect("client")
}

async fn post_from(
    server: &TestServer,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn generate_from(
    server: &TestServer,
    client: &reqwest::Client,
    phone: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    post_from(
        server,
        client,
        "/auth/otp/generate",
        json!({"area_code": "+91", "phone_number": phone, "user_type": "customer", "purpose": "login"}),
    )
    .await
}

async fn validate_from(
    server: &TestServer,
    client: &reqwest::Client,
    request_id: &Value,
    code: &str,
    phone: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    post_from(
        server,
        client,
        "/auth/otp/validate",
        json!({
            "request_id": request_id, "otp_code": code, "user_type": "customer",
            "device_info": {"device_type": "test", "platform": "linux"},
            "phone_number": phone, "area_code": "+91"
        }),
    )
    .await
}

fn code_of(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// A code that is not `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().expect("six digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

// ---------------------------------------------------------------------------------------------
// OTP: SMS pumping, brute force, login floods.

#[tokio::test]
async fn one_address_asking_codes_for_many_phones_is_rate_limited_and_another_address_is_not() {
    let server = TestServer::start_with(|c| {
        c.otp_per_ip_burst = 5;
        c.otp_per_ip_per_hour = 30;
    })
    .await;
    let here = client_from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Five different phones from one address: each a first code for its phone.
    let mut first = None;
    for i in 0..5 {
        let phone = format!("90000000{i:02}");
        let (status, _, body) = generate_from(&server, &here, &phone).await;
        assert_eq!(status, 200, "code {i}: {body}");
        first.get_or_insert((phone, body));
    }
    // The sixth phone from the same address is refused, though the phone never had a code.
    let (status, headers, body) = generate_from(&server, &here, "9000000099").await;
    assert_eq!((status, code_of(&body)), (429, "RATE_LIMITED"), "{body}");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert_eq!(retry, 120, "30 an hour: the next code in 2 minutes");
    assert_eq!(body["error"]["details"]["retry_after"], 120);

    // Another address asks for that same phone and gets its code, and logs in with it.
    let there = client_from(OTHER_IP);
    let (status, _, gen) = generate_from(&server, &there, "9000000099").await;
    assert_eq!(status, 200, "{gen}");
    let code = gen["dev_otp"].as_str().expect("dev code");
    let (status, _, tokens) =
        validate_from(&server, &there, &gen["request_id"], code, "9000000099").await;
    assert_eq!(status, 200, "{tokens}");

    // A code already sent to the flooding address still logs in: only new codes are refused.
    let (phone, gen) = first.expect("a first code");
    let code = gen["dev_otp"].as_str().expect("dev code");
    let (status, _, tokens) = validate_from(&server, &here, &gen["request_id"], code, &phone).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn wrong_codes_burn_a_request_and_guessing_across_requests_is_rate_limited_per_address() {
    let server = TestServer::start_with(|c| {
        c.logins_per_ip_burst = 12;
        c.logins_per_ip_per_minute = 1;
        c.otp_per_ip_burst = 100;
    })
    .await;
    let here = client_from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Per request: the fifth wrong code burns it, and then even the right one is refused.
    let (_, _, gen) = generate_from(&server, &here, "9100000001").await;
    let code = gen["dev_otp"].as_str().expect("dev code").to_owned();
    let mut answers = Vec::new();
    for _ in 0..5 {
        let (status, _, body) = validate_from(
            &server,
            &here,
            &gen["request_id"],
            &wrong(&code),
            "9100000001",
        )
        .await;
        answers.push((status, code_of(&body).to_owned()));
    }
    let (status, _, body) =
        validate_from(&server, &here, &gen["request_id"], &code, "9100000001").await;
    answers.push((status, code_of(&body).to_owned()));
    let want: Vec<(u16, String)> = [
        (400, "OTP_INVALID"),
        (400, "OTP_INVALID"),
        (400, "OTP_INVALID"),
        (400, "OTP_INVALID"),
        (429, "OTP_ATTEMPTS_EXCEEDED"),
        (429, "OTP_ATTEMPTS_EXCEEDED"),
    ]
    .iter()
    .map(|(s, c)| (*s, c.to_string()))
    .collect();
    assert_eq!(answers, want);

    // Across requests (fresh codes for other phones), the address runs out of attempts: 6 used,
    // 6 more allowed, then RATE_LIMITED whatever the request.
    let mut codes = Vec::new();
    for i in 0..7 {
        let phone = format!("91000001{i:02}");
        let (status, _, gen) = generate_from(&server, &here, &phone).await;
        assert_eq!(status, 200, "{gen}");
        codes.push((phone, gen));
    }
    for (phone, gen) in &codes[..6] {
        let code = gen["dev_otp"].as_str().expect("dev code");
        let (status, _, body) =
            validate_from(&server, &here, &gen["request_id"], &wrong(code), phone).await;
        assert_eq!((status, code_of(&body)), (400, "OTP_INVALID"), "{body}");
    }
    let (phone, gen) = &codes[6];
    let right = gen["dev_otp"].as_str().expect("dev code");
    let (status, headers, body) =
        validate_from(&server, &here, &gen["request_id"], right, phone).await;
    assert_eq!((status, code_of(&body)), (429, "RATE_LIMITED"), "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    // Somebody at another address logs in as usual, with the code the flooder could not use.
    let there = client_from(OTHER_IP);
    let (status, _, tokens) =
        validate_from(&server, &there, &gen["request_id"], right, phone).await;
    assert_eq!(status, 200, "{tokens}");
}

// ---------------------------------------------------------------------------------------------
// Connection floods.

type WsError = tokio_tungstenite::tungstenite::Error;

/// A realtime connection from `ip`, `hello` read.
async fn ws_from(server: &TestServer, token: &str, ip: IpAddr) -> Result<Ws, WsError> {
    let mut req = server.ws_url().into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((ip, 0).into())?;
    let tcp = socket.connect(server.addr).await?;
    let (stream, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await?;
    let mut ws = Ws { stream, user_id: 0 };
    let hello = ws.next_of("hello").await;
    ws.user_id = hello["user_id"].as_i64().expect("hello names the user");
    Ok(ws)
}

/// Asserts a refused upgrade: 429 with the contract's `RATE_LIMITED` body.
fn refused_with_429(result: Result<Ws, WsError>) {
    match result {
        Err(WsError::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .expect("an error body");
            assert_eq!(
                (resp.status().as_u16(), code_of(&body)),
                (429, "RATE_LIMITED"),
                "{body}"
            );
            assert!(resp.headers().contains_key("retry-after"));
        }
        Err(e) => panic!("refused, but not with 429: {e}"),
        Ok(_) => panic!("a connection past the cap was let in"),
    }
}

/// Connects, retrying while the server has not yet noticed a closed connection of the same
/// user or address (its slot comes back when the server's side of the socket ends).
async fn connects_again(server: &TestServer, token: &str, ip: IpAddr) -> Ws {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match ws_from(server, token, ip).await {
            Ok(ws) => return ws,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the freed slot never came back: {e}"),
        }
    }
}

#[tokio::test]
async fn one_user_past_the_connection_cap_is_refused_with_429_and_others_still_connect() {
    let server = TestServer::start_with(|c| c.max_connections_per_user = 3).await;
    let a = server.customer("9200000001").await;
    let b = server.customer("9200000002").await;
    let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            ws_from(&server, &a.token, here)
                .await
                .expect("under the cap"),
        );
    }
    refused_with_429(ws_from(&server, &a.token, here).await);
    refused_with_429(ws_from(&server, &a.token, OTHER_IP).await);

    // The user's open connections still work, and another user connects as usual.
    for ws in &mut open {
        ws.send(json!({"type": "ping"})).await;
        ws.next_of("pong").await;
    }
    let mut other = ws_from(&server, &b.token, here).await.expect("b connects");
    other.send(json!({"type": "ping"})).await;
    other.next_of("pong").await;

    // Closing one gives its slot back.
    open.pop().expect("one").close().await;
    let _again = connects_again(&server, &a.token, here).await;
    refused_with_429(ws_from(&server, &a.token, here).await);
}

#[tokio::test]
async fn one_address_past_the_connection_cap_is_refused_with_429_and_other_addresses_connect() {
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 4).await;
    let users: Vec<User> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(server.customer(&format!("930000000{i}")).await);
        }
        v
    };
    let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut open = Vec::new();
    for u in [&users[0], &users[0], &users[1], &users[1]] {
        open.push(
            ws_from(&server, &u.token, here)
                .await
                .expect("under the cap"),
        );
    }
    // A third user from the same address is refused, though that user holds nothing.
    refused_with_429(ws_from(&server, &users[2].token, here).await);
    // From another address the same user, and one already connected, get in.
    let mut there = ws_from(&server, &users[2].token, OTHER_IP)
        .await
        .expect("another address");
    there.send(json!({"type": "ping"})).await;
    there.next_of("pong").await;
    let _also = ws_from(&server, &users[0].token, OTHER_IP)
        .await
        .expect("another address");
    // REST from the full address is not affected: the cap is on sockets.
    server
        .get("/auth/profile", Some(&users[2]))
        .await
        .ok::<Value>();

    open.remove(0).close().await;
    let _again = connects_again(&server, &users[2].token, here).await;
}

// ---------------------------------------------------------------------------------------------
// Deep JSON, typing storms.

/// A customer and an online guide in an in-progress consultation, both subscribed.
async fn chatting(server: &TestServer) -> (User, Ws, User, Ws, String) {
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut customer_ws = Ws::connect(server, &customer.token).await;
    let id = server.open_consultation(&customer, &guide).await;
    let (_, head) = customer_ws.subscribe(&id, 0).await;
    guide_ws.subscribe(&id, head).await;
    (customer, customer_ws, guide, guide_ws, id)
}

/// `[[[…]]]`, `depth` deep.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn json_nested_ten_thousand_deep_is_a_validation_failure_on_every_way_in() {
    // With a webhook secret, so a signed webhook body gets as far as being read.
    let server =
        TestServer::start_with(|c| c.payment_webhook_secret = Some("whsec_test".into())).await;
    let (customer, mut ws, _guide, mut guide_ws, id) = chatting(&server).await;
    let deep = nested(10_000);

    // Realtime: a whole frame that deep, and a send whose content is that deep.
    let send_deep = format!(
        r#"{{"type":"send","client_msg_id":"m-deep","consultation_id":"{id}","kind":"text","content":{deep}}}"#
    );
    for (what, text) in [("a frame", deep.clone()), ("a send's content", send_deep)] {
        ws.send_raw(text).await;
        let f = ws.next_of("error").await;
        assert_eq!(f["code"], "VALIDATION_FAILED", "{what}: {f}");
        ws.send(json!({"type": "ping"})).await;
        ws.next_of("pong").await;
    }

    // REST: typed bodies, optional bodies, and the webhook that reads any JSON.
    let reject = format!("/consultation/{id}/reject");
    for path in [
        "/auth/otp/generate",
        "/consultation",
        &reject,
        "/payments/webhook",
    ] {
        let r = server
            .http
            .post(server.url(path))
            .bearer_auth(&customer.token)
            .header("content-type", "application/json")
            .header(
                "x-tara-signature",
                tara_server::billing::payments::sign(b"whsec_test", deep.as_bytes()),
            )
            .body(deep.clone())
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, code_of(&body)),
            (400, "VALIDATION_FAILED"),
            "POST {path}: {body}"
        );
    }

    // Nothing broke: the chat goes on for both.
    let ack = ws.send_text(&id, &common::cmid(), "still here").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    guide_ws.next_of("message").await;
}

#[tokio::test]
async fn a_typing_storm_reaches_the_other_side_at_most_twice_a_second_and_chat_goes_on() {
    let server = TestServer::start().await;
    let (customer, mut ws, _guide, mut guide_ws, id) = chatting(&server).await;

    // 500 typing frames as fast as the socket takes them, then the end.
    let started = tokio::time::Instant::now();
    for _ in 0..500 {
        ws.send(json!({"type": "typing", "consultation_id": id, "is_typing": true}))
            .await;
    }
    ws.send(json!({"type": "typing", "consultation_id": id, "is_typing": false}))
        .await;
    // The storm is not a run of bad frames: the connection stays open and answers.
    ws.send(json!({"type": "ping"})).await;
    ws.next_of("pong").await;
    let mut seen = Vec::new();
    loop {
        let f = guide_ws.next_of("typing").await;
        assert_eq!(f["user_id"], customer.id);
        let on = f["is_typing"].as_bool().expect("is_typing");
        seen.push(on);
        if !on {
            break;
        }
    }
    let took = started.elapsed();
    // At most 2 a second while it lasted, plus the first and the trailing end.
    let bound = (took.as_secs_f64() * 2.0).ceil() as usize + 2;
    assert!(
        seen.len() <= bound,
        "{} typing frames fanned out for 501 in {took:?}",
        seen.len()
    );
    assert_eq!(seen.first(), Some(&true));

    // The guide's own sends are answered as usual after the storm.
    let ack = guide_ws
        .send_text(&id, &common::cmid(), "I see you typing")
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

// ---------------------------------------------------------------------------------------------
// Slowloris.

#[tokio::test]
async fn headers_trickled_in_lose_their_connection_and_others_are_served_meanwhile() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = tcp.into_split();
    // Whatever the server says before closing, then the close.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = rd.read_to_end(&mut got).await;
        got
    });
    wr.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: tara\r\n")
        .await
        .expect("request line");
    // One header line every 100 ms: 100 of them would take 10 s, ten times the timeout.
    let mut sent = 0;
    for i in 0..100 {
        if reader.is_finished()
            || wr
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
        {
            break;
        }
        sent += 1;
        if i == 3 {
            // Meanwhile somebody else is served as usual.
            let health: Value = server.get("/health", None).await.ok();
            assert_eq!(health["status"], "ok");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sent < 100,
        "the server kept a trickling connection open through {sent} header lines"
    );
    let said = tokio::time::timeout(WAIT, reader)
        .await
        .expect("the connection was closed")
        .expect("reader");
    let said = String::from_utf8_lossy(&said);
    assert!(
        said.is_empty() || said.starts_with("HTTP/1.1 408"),
        "a trickled request is not served: {said}"
    );
    // And a fresh, prompt request on a new connection is served.
    let health: Value = server.get("/health", None).await.ok();
    assert_eq!(health["status"], "ok");
}

// ---------------------------------------------------------------------------------------------
// A request storm against one guide.

async fn request(server: &TestServer, customer: &User, guide: &User) -> (u16, Value) {
    let r = server
        .post(
            "/consultation",
            Some(customer),
            json!({"guide_id": guide.id, "mode": "chat", "service_type": "consultation"}),
        )
        .await;
    (r.status, r.body)
}

#[tokio::test]
async fn a_request_storm_against_one_guide_queues_at_most_the_cap_and_other_guides_are_requested() {
    let server = TestServer::start_with(|c| c.max_pending_requests_per_guide = 3).await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let (other_guide, _other_ws) = server.online_guide("9000000002", "Ravi").await;
    let mut customers = Vec::new();
    for i in 0..10 {
        customers.push(server.customer(&format!("94000000{i:02}")).await);
    }
    // Ten customers at once: exactly three requests wait, the rest are told the guide is full.
    let answers =
        futures_util::future::join_all(customers.iter().map(|c| request(&server, c, &guide))).await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let full: Vec<&Value> = answers
        .iter()
        .filter(|(s, b)| *s == 409 && code_of(b) == "GUIDE_UNAVAILABLE")
        .map(|(_, b)| b)
        .collect();
    assert_eq!((created, full.len()), (3, 7), "{answers:?}");
    assert_eq!(full[0]["error"]["details"]["pending_requests"], 3);
    let listed: Value = server
        .get("/consultation/requests", Some(&guide))
        .await
        .ok();
    assert_eq!(listed["requests"].as_array().map(Vec::len), Some(3));

    // One customer cannot fill the queue alone: a second request is CONSULTATION_ACTIVE.
    let first = answers
        .iter()
        .position(|(s, _)| *s == 201)
        .expect("one made it");
    let (status, body) = request(&server, &customers[first], &other_guide).await;
    assert_eq!(
        (status, code_of(&body)),
        (409, "CONSULTATION_ACTIVE"),
        "{body}"
    );

    // A customer turned away requests another guide at once.
    let refused = answers
        .iter()
        .position(|(s, _)| *s == 409)
        .expect("one was refused");
    let (status, body) = request(&server, &customers[refused], &other_guide).await;
    assert_eq!(status, 201, "{body}");

    // Once the guide rejects one, a place is free again.
    let id = answers[first].1["consultation_id"].as_str().expect("id");
    server
        .post(
            &format!("/consultation/{id}/reject"),
            Some(&guide),
            json!({}),
        )
        .await
        .ok::<Value>();
    let later = answers
        .iter()
        .enumerate()
        .filter(|(i, (s, _))| *s == 409 && *i != refused)
        .map(|(i, _)| i)
        .next()
        .expect("another refused customer");
    let (status, body) = request(&server, &customers[later], &guide).await;
    assert_eq!(status, 201, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Uploads: 10 MiB in a loop, and a decompression bomb.

const MIB: usize = 1024 * 1024;

/// This process's resident memory in KiB (the in-process server's and the test's together).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature and IHDR claiming `w` x `h` (RGB, 8 bits); no pixel data follows.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&chunk);
    v.extend_from_slice(&crc32(&chunk).to_be_bytes());
    v
}

async fn upload(
    server: &TestServer,
    user: &User,
    id: &str,
    body: axum::body::Bytes,
) -> (u16, Value) {
    let r = server
        .http
        .post(server.url(&format!("/media?consultation_id={id}")))
        .bearer_auth(&user.token)
        .header("content-type", "image/png")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn uploads_over_10_mib_in_a_loop_are_refused_with_413_and_memory_stays_flat() {
    let server = TestServer::start().await;
    let (customer, _ws, guide, _guide_ws, id) = chatting(&server).await;
    let mut over = png_header(8, 8);
    over.resize(10 * MIB + 1, 0);
    let over = axum::body::Bytes::from(over);
    // Warm up allocator and connection pool first, then measure over many more.
    for _ in 0..3 {
        let (status, body) = upload(&server, &customer, &id, over.clone()).await;
        assert_eq!(
            (status, code_of(&body)),
            (413, "PAYLOAD_TOO_LARGE"),
            "{body}"
        );
    }
    let before = rss_kib();
    for i in 0..30 {
        let (status, body) = upload(&server, &customer, &id, over.clone()).await;
        assert_eq!(
            (status, code_of(&body)),
            (413, "PAYLOAD_TOO_LARGE"),
            "upload {i}: {body}"
        );
    }
    // Without a length the server reads up to the limit and then stops.
    for i in 0..10 {
        let answer = chunked_upload(&server, &customer, &id, 12).await;
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "chunked upload {i}: {answer}"
        );
        assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
    }
    let after = rss_kib();
    // 30 uploads of 10 MiB and 10 of 12 MiB were offered. What stays must be far less.
    let grown_mib = after.saturating_sub(before) / 1024;
    println!(
        "RSS before {before} KiB, after {after} KiB: +{grown_mib} MiB over 40 oversized uploads"
    );
    assert!(grown_mib < 40, "resident memory grew by {grown_mib} MiB");

    // The other party is not held up: a text goes through.
    let ack = send_from_new_socket(&server, &guide, &id).await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

/// A chunked upload (no length) of `mib` MiB over a raw connection; the server's answer.
async fn chunked_upload(server: &TestServer, user: &User, id: &str, mib: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/media?consultation_id={id} HTTP/1.1\r\nHost: tara\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        user.token
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    let mut first = png_header(8, 8);
    first.resize(MIB, 0);
    let rest = vec![0u8; MIB];
    for i in 0..mib {
        let body = if i == 0 { &first } else { &rest };
        let chunk = [format!("{:x}\r\n", body.len()).as_bytes(), body, b"\r\n"].concat();
        // The server may stop reading once it is past the limit.
        if tcp.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A text sent on a fresh socket of `user`; its answer.
async fn send_from_new_socket(server: &TestServer, user: &User, id: &str) -> Value {
    let mut ws = Ws::connect(server, &user.token).await;
    ws.subscribe(id, 0).await;
    ws.send_text(id, &common::cmid(), "after the uploads").await
}

#[tokio::test]
async fn a_tiny_png_claiming_100k_by_100k_is_refused_from_its_header_with_413() {
    let server = TestServer::start().await;
    let (customer, _ws, _guide, _guide_ws, id) = chatting(&server).await;
    let bomb = png_header(100_000, 100_000);
    assert!(bomb.len() < 64, "the bomb is {} bytes", bomb.len());
    let before = rss_kib();
    for _ in 0..20 {
        let (status, body) = upload(&server, &customer, &id, bomb.clone().into()).await;
        assert_eq!(
            (status, code_of(&body)),
            (413, "PAYLOAD_TOO_LARGE"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("100000x100000"),
            "the refusal names the claimed size: {body}"
        );
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    // Decoding 10 gigapixels would need 30 GB; nothing like that was touched.
    assert!(grown_mib < 16, "resident memory grew by {grown_mib} MiB");
    // The customer still chats.
    let ack = send_from_new_socket(&server, &customer, &id).await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test]
async fn rest_bodies_over_64_kib_are_refused_with_413() {
    let server = TestServer::start().await;
    let (customer, _ws, guide, _guide_ws, id) = chatting(&server).await;
    let big = "a".repeat(65 * 1024);
    // A typed body and an optional one.
    let r = server
        .patch(
            "/auth/profile",
            Some(&customer),
            json!({"display_name": big}),
        )
        .await;
    r.fails(413, "PAYLOAD_TOO_LARGE");
    let r = server
        .post(
            &format!("/consultation/{id}/join"),
            Some(&guide),
            json!({"mode": big}),
        )
        .await;
    r.fails(413, "PAYLOAD_TOO_LARGE");
    // Nothing changed, and small bodies still work.
    let me: Value = server.get("/auth/profile", Some(&customer)).await.ok();
    assert_ne!(me["display_name"].as_str().map(str::len), Some(big.len()));
    server
        .patch(
            "/auth/profile",
            Some(&customer),
            json!({"display_name": "Mira"}),
        )
        .await
        .ok::<Value>();
}
