//! Money, against the real server: wallets, recharges (dev and webhook), the per-minute charge
//! at completion (once, whatever races), the balance timer that ends a chat when the money runs
//! out (across a restart too), guide earnings, and books that always balance.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tara_server::billing::payments::sign;
use tara_server::store::PLATFORM;

/// A server whose billed minute lasts a second, so balance timers run in seconds.
async fn fast_minutes() -> TestServer {
    TestServer::start_with(|c| c.billing_minute = Duration::from_secs(1)).await
}

async fn balance(server: &TestServer, user: &User) -> i64 {
    let w: Value = server.get("/wallet", Some(user)).await.ok();
    assert_eq!(w["currency"], "INR");
    w["balance"].as_i64().expect("balance")
}

async fn recharge(server: &TestServer, user: &User, amount: Value, key: &str) -> Reply {
    server
        .post(
            "/wallet/recharge",
            Some(user),
            json!({"amount": amount, "idempotency_key": key}),
        )
        .await
}

async fn ledger(server: &TestServer, user: &User) -> Vec<Value> {
    let page: Value = server
        .get("/wallet/ledger?limit=100", Some(user))
        .await
        .ok();
    page["items"].as_array().expect("items").clone()
}

async fn request(server: &TestServer, customer: &User, guide: &User) -> Reply {
    server
        .post(
            "/consultation",
            Some(customer),
            json!({"guide_id": guide.id, "mode": "chat", "service_type": "consultation"}),
        )
        .await
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .timestamp_millis()
}

/// A running chat whose customer paid in `amount` first, with both sides' sockets.
struct Chat {
    guide_ws: Ws,
    customer: User,
    customer_ws: Ws,
    id: String,
}

async fn paid_chat(server: &TestServer, amount: i64) -> Chat {
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.penniless_customer("9876543210").await;
    recharge(server, &customer, json!(amount), &cmid())
        .await
        .ok::<Value>();
    let customer_ws = Ws::connect(server, &customer.token).await;
    let id = server.open_consultation(&customer, &guide).await;
    Chat {
        guide_ws,
        customer,
        customer_ws,
        id,
    }
}

/// Every cached balance equals the sum of its ledger rows.
async fn books_balance(server: &TestServer) {
    let store = open_store(&server.data_dir).await;
    let wrong = store.ledger_audit().await.expect("audit");
    assert!(
        wrong.is_empty(),
        "wallets differ from their ledgers: {wrong:?}"
    );
}

async fn platform_ledger(server: &TestServer) -> Vec<tara_protocol::wallet::LedgerEntry> {
    let store = open_store(&server.data_dir).await;
    let rows = store.ledger(PLATFORM, None, 100).await.expect("ledger");
    rows.into_iter().map(|(_, e)| e).collect()
}

async fn history_texts(server: &TestServer, user: &User, id: &str) -> Vec<String> {
    let page: Value = server
        .get(
            &format!("/consultation/{id}/messages?limit=100"),
            Some(user),
        )
        .await
        .ok();
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_paid_consultation_charges_the_customer_once_and_pays_guide_and_platform() {
    let server = TestServer::start().await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await; // 20 a minute
    let customer = server.penniless_customer("9876543210").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    assert_eq!(balance(&server, &customer).await, 0);

    // Five minutes at 20 are needed to ask; nothing is held or charged yet.
    let refused = request(&server, &customer, &guide).await;
    refused.fails(402, "INSUFFICIENT_BALANCE");
    assert_eq!(
        refused.body["error"]["details"],
        json!({"balance": 0, "needed": 100})
    );
    let paid: Value = recharge(&server, &customer, json!(150), "first").await.ok();
    assert_eq!(paid["status"], "captured");
    assert_eq!(paid["wallet"], json!({"balance": 150, "currency": "INR"}));
    let frame = customer_ws.next_of("wallet").await;
    assert_eq!(
        (frame["balance"].as_i64(), frame["currency"].as_str()),
        (Some(150), Some("INR"))
    );

    let id = server.open_consultation(&customer, &guide).await;
    assert_eq!(
        balance(&server, &customer).await,
        150,
        "nothing held at request or start"
    );
    let started = customer_ws.next_event("started").await;
    let c = &started["consultation"];
    let ends = ms(&c["ends_at"]);
    assert_eq!(
        ends,
        ms(&c["started_at"]) + 7 * 60_000,
        "150 at 20 a minute: 7 minutes"
    );
    assert_eq!(ms(&started["ends_at"]), ends, "the frame says it too");
    let seen_by_guide = guide_ws.next_event("started").await;
    assert_eq!(seen_by_guide["consultation"]["ends_at"], c["ends_at"]);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let done = server.complete(&customer, &id).await;
    assert_eq!(done["status"], "completed");
    let seconds = done["duration_seconds"].as_i64().expect("duration");
    assert!((1..60).contains(&seconds), "{seconds} s");
    assert_eq!(done["amount_charged"], 20, "a started minute at 20");
    assert!(
        done.get("ends_at").is_none(),
        "a completed consultation has no end time to come"
    );
    assert_eq!(balance(&server, &customer).await, 130);
    assert_eq!(customer_ws.next_of("wallet").await["balance"], 130);
    assert_eq!(guide_ws.next_of("wallet").await["balance"], 14);

    // The customer's ledger: the charge above the recharge, each with the balance after it.
    let rows = ledger(&server, &customer).await;
    let kinds: Vec<(&str, i64, i64)> = rows
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default(),
                e["amount"].as_i64().unwrap_or_default(),
                e["balance_after"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(kinds, vec![("charge", -20, 130), ("recharge", 150, 150)]);
    assert_eq!(rows[0]["consultation_id"], id.as_str());
    assert_eq!(rows[1]["payment_id"], paid["payment_id"]);
    assert!(rows
        .iter()
        .all(|e| e["entry_id"].is_string() && e["created_at"].is_string()));
    // The guide earns the rate minus 30%; the platform keeps the rest.
    let earned = ledger(&server, &guide).await;
    assert_eq!(earned.len(), 1);
    assert_eq!(
        (earned[0]["kind"].as_str(), earned[0]["amount"].as_i64()),
        (Some("earning"), Some(14))
    );
    let platform = platform_ledger(&server).await;
    assert_eq!(platform.len(), 1);
    assert_eq!((platform[0].amount, platform[0].balance_after), (6, 6));
    assert_eq!(
        platform[0].consultation_id.as_ref().map(|c| c.0.as_str()),
        Some(id.as_str())
    );

    let earnings: Value = server.get("/guide/earnings", Some(&guide)).await.ok();
    assert_eq!(
        (earnings["total"].as_i64(), earnings["today"].as_i64()),
        (Some(14), Some(14))
    );
    assert_eq!(earnings["currency"], "INR");
    let item = &earnings["items"][0];
    assert_eq!(item["consultation_id"], id.as_str());
    assert_eq!(item["customer_name"], "Customer 3210");
    assert_eq!(item["duration_seconds"], seconds);
    assert_eq!(item["amount"], 14);
    server
        .get("/guide/earnings", Some(&customer))
        .await
        .fails(403, "FORBIDDEN");

    // History says what it cost; a second completion changes nothing.
    let texts = history_texts(&server, &customer, &id).await;
    assert!(
        texts
            .iter()
            .any(|t| t.contains("ended by the customer") && t.contains("1 minute, 20 INR charged")),
        "{texts:?}"
    );
    let again = server
        .patch(
            &format!("/consultation/{id}/complete"),
            Some(&guide),
            json!({}),
        )
        .await;
    again.fails(409, "INVALID_STATE");
    assert_eq!(balance(&server, &customer).await, 130);
    books_balance(&server).await;
}

#[tokio::test]
async fn the_server_ends_the_chat_when_the_balance_runs_out_after_warning_both_sides() {
    let server = fast_minutes().await;
    let Chat {
        mut guide_ws,
        customer,
        mut customer_ws,
        id,
        ..
    } = paid_chat(&server, 100).await;
    let c: Value = server
        .get(&format!("/consultation/{id}"), Some(&customer))
        .await
        .ok();
    let ends = ms(&c["ends_at"]);
    assert_eq!(
        ends,
        ms(&c["started_at"]) + 5_000,
        "five one-second minutes"
    );

    for ws in [&mut customer_ws, &mut guide_ws] {
        let soon = ws.next_event("ending_soon").await;
        assert_eq!(soon["consultation"]["consultation_id"], id.as_str());
        assert_eq!(ms(&soon["consultation"]["ends_at"]), ends);
    }
    for ws in [&mut customer_ws, &mut guide_ws] {
        let done = ws.next_event("completed").await;
        let c = &done["consultation"];
        assert_eq!(c["ended_by"], "system");
        assert_eq!(c["end_reason"], "balance_exhausted");
        assert_eq!(c["duration_seconds"], 5);
        assert_eq!(c["amount_charged"], 100);
        assert_eq!(
            ms(&c["ended_at"]),
            ends,
            "ended at ends_at, not when the timer woke"
        );
    }
    assert_eq!(balance(&server, &customer).await, 0);
    let texts = history_texts(&server, &customer, &id).await;
    assert!(
        texts.iter().any(|t| t.contains("balance ran out")),
        "{texts:?}"
    );
    // Sending now fails like any send after the end.
    let reply = customer_ws.send_text(&id, &cmid(), "are you there?").await;
    assert_eq!(reply["code"], "INVALID_STATE");
    books_balance(&server).await;
}

#[tokio::test]
async fn a_recharge_during_the_chat_moves_its_end_and_tells_both_sides() {
    let server = fast_minutes().await;
    let Chat {
        mut guide_ws,
        customer,
        mut customer_ws,
        id,
        ..
    } = paid_chat(&server, 100).await;
    let started = customer_ws.next_event("started").await;
    let start = ms(&started["consultation"]["started_at"]);
    assert_eq!(ms(&started["ends_at"]), start + 5_000);

    recharge(&server, &customer, json!(60), "k2")
        .await
        .ok::<Value>();
    for ws in [&mut customer_ws, &mut guide_ws] {
        let ext = ws.next_event("extended").await;
        assert_eq!(
            ms(&ext["consultation"]["ends_at"]),
            start + 8_000,
            "three more minutes"
        );
        assert_eq!(ms(&ext["ends_at"]), start + 8_000);
    }
    let done = customer_ws.next_event("completed").await;
    assert_eq!(done["consultation"]["consultation_id"], id.as_str());
    assert_eq!(
        done["consultation"]["duration_seconds"], 8,
        "not at the old end"
    );
    assert_eq!(done["consultation"]["amount_charged"], 160);
    assert_eq!(balance(&server, &customer).await, 0);
    books_balance(&server).await;
}

#[tokio::test]
async fn a_chat_whose_end_passed_while_the_server_was_down_is_ended_at_start_billed_to_the_end() {
    let mut server = fast_minutes().await;
    let dir = server.data_dir.clone();
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.penniless_customer("9876543210").await;
    recharge(&server, &customer, json!(120), "k")
        .await
        .ok::<Value>();
    let id = server.open_consultation(&customer, &guide).await;
    let c: Value = server
        .get(&format!("/consultation/{id}"), Some(&customer))
        .await
        .ok();
    let ends = ms(&c["ends_at"]);
    guide_ws.close().await;
    let tmp = server.stop().await;

    // Down for longer than the six minutes the balance bought.
    tokio::time::sleep(Duration::from_millis(6_000 + 2_500)).await;
    let server = TestServer::start_in(&dir, |c| c.billing_minute = Duration::from_secs(1)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let c = loop {
        let c: Value = server
            .get(&format!("/consultation/{id}"), Some(&customer))
            .await
            .ok();
        if c["status"] == "completed" || tokio::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(c["status"], "completed");
    assert_eq!(c["end_reason"], "balance_exhausted");
    assert_eq!(
        ms(&c["ended_at"]),
        ends,
        "capped at ends_at, not the restart"
    );
    assert_eq!(c["duration_seconds"], 6);
    assert_eq!(c["amount_charged"], 120);
    assert_eq!(balance(&server, &customer).await, 0);
    books_balance(&server).await;
    drop(tmp);
}

#[tokio::test]
async fn two_racing_completions_charge_once() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    for round in 0..5 {
        let id = server.open_consultation(&customer, &guide).await;
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let path = format!("/consultation/{id}/complete");
        let (a, b, c) = tokio::join!(
            server.patch(&path, Some(&customer), json!({})),
            server.patch(&path, Some(&guide), json!({})),
            server.post(&path, Some(&customer), json!({"reason": "again"})),
        );
        let oks = [&a, &b, &c].iter().filter(|r| r.status == 200).count();
        assert_eq!(oks, 1, "round {round}: exactly one completion wins");
        for r in [&a, &b, &c] {
            if r.status != 200 {
                r.fails(409, "INVALID_STATE");
            }
        }
        let charges = ledger(&server, &customer)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "charge" && e["consultation_id"] == id.as_str())
            .count();
        assert_eq!(charges, 1, "round {round}: one charge");
    }
    assert_eq!(balance(&server, &customer).await, START_BALANCE - 5 * 20);
    books_balance(&server).await;
}

#[tokio::test]
async fn a_completion_racing_the_balance_timer_charges_once() {
    let server = fast_minutes().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.penniless_customer("9876543210").await;
    recharge(&server, &customer, json!(100), "k")
        .await
        .ok::<Value>();
    let id = server.open_consultation(&customer, &guide).await;
    let c: Value = server
        .get(&format!("/consultation/{id}"), Some(&customer))
        .await
        .ok();
    let ends = ms(&c["ends_at"]);
    let wait = ends - chrono::Utc::now().timestamp_millis() - 30;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    // Both parties hammer "end" across the moment the timer fires.
    let path = format!("/consultation/{id}/complete");
    let mut wins = 0;
    for _ in 0..20 {
        let (a, b) = tokio::join!(
            server.patch(&path, Some(&customer), json!({})),
            server.patch(&path, Some(&guide), json!({})),
        );
        wins += [a.status, b.status].iter().filter(|s| **s == 200).count();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(wins <= 1, "at most one party's end went through ({wins})");
    let c: Value = server
        .get(&format!("/consultation/{id}"), Some(&customer))
        .await
        .ok();
    assert_eq!(c["status"], "completed");
    let charged = c["amount_charged"].as_i64().expect("charged");
    assert!(
        (80..=100).contains(&charged),
        "4 or 5 one-second minutes: {charged}"
    );
    let rows = ledger(&server, &customer).await;
    assert_eq!(rows.iter().filter(|e| e["kind"] == "charge").count(), 1);
    assert_eq!(balance(&server, &customer).await, 100 - charged);
    books_balance(&server).await;
}

#[tokio::test]
async fn recharges_refuse_bad_amounts_and_answer_a_replayed_key_with_the_first_answer() {
    let server = TestServer::start().await;
    let customer = server.penniless_customer("9876543210").await;
    for bad in [
        json!(0),
        json!(-5),
        json!(10.5),
        json!(1_000_001),
        json!("100"),
        json!(1e30),
        json!(null),
    ] {
        recharge(&server, &customer, bad.clone(), "k")
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    recharge(&server, &customer, json!(100), "")
        .await
        .fails(400, "VALIDATION_FAILED");
    assert_eq!(balance(&server, &customer).await, 0, "nothing moved");
    let first: Value = recharge(&server, &customer, json!(1_000_000), "big")
        .await
        .ok();
    let replay: Value = recharge(&server, &customer, json!(1_000_000), "big")
        .await
        .ok();
    assert_eq!(first, replay);
    assert_eq!(
        balance(&server, &customer).await,
        1_000_000,
        "credited once"
    );
    recharge(&server, &customer, json!(5), "big")
        .await
        .fails(400, "VALIDATION_FAILED");
    let (guide, _ws) = server.online_guide("9000000001", "Asha").await;
    recharge(&server, &guide, json!(100), "g")
        .await
        .fails(403, "FORBIDDEN");
    let anonymous = server
        .http
        .get(server.url("/wallet"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
    books_balance(&server).await;
}

#[tokio::test]
async fn a_server_without_a_payment_provider_refuses_recharges_clearly() {
    // Log in on a dev server, then run the same data dir outside dev mode with no gateway.
    let mut dev = TestServer::start().await;
    let dir = dev.data_dir.clone();
    let customer = dev.penniless_customer("9876543210").await;
    let tmp = dev.stop().await;
    let server = TestServer::start_in(&dir, |c| c.dev = false).await;
    recharge(&server, &customer, json!(100), "k")
        .await
        .fails(503, "PAYMENTS_UNAVAILABLE");
    assert_eq!(balance(&server, &customer).await, 0);
    drop(tmp);
}

fn webhook_server() -> impl FnOnce(&mut tara_server::Config) {
    |c| c.payment_webhook_secret = Some("whsec_test".into())
}

async fn deliver(server: &TestServer, body: &Value, signature: Option<String>) -> Reply {
    let raw = body.to_string();
    let mut req = server
        .http
        .post(server.url("/payments/webhook"))
        .header("content-type", "application/json")
        .body(raw.clone());
    if let Some(sig) = signature {
        req = req.header("X-Tara-Signature", sig);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers: Default::default(),
        body,
    }
}

fn signed(body: &Value) -> Option<String> {
    Some(sign(b"whsec_test", body.to_string().as_bytes()))
}

#[tokio::test]
async fn a_webhook_payment_is_credited_once_and_only_when_signed() {
    let server = TestServer::start_with(webhook_server()).await;
    let customer = server.penniless_customer("9876543210").await;
    let mut ws = Ws::connect(&server, &customer.token).await;
    let created: Value = recharge(&server, &customer, json!(300), "order-1")
        .await
        .ok();
    assert_eq!(created["status"], "created");
    assert!(created.get("wallet").is_none());
    let pid = created["payment_id"]
        .as_str()
        .expect("payment id")
        .to_owned();
    assert_eq!(balance(&server, &customer).await, 0, "not paid yet");

    let event = json!({"event": "captured", "payment_id": pid, "amount": 300});
    deliver(&server, &event, None)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    deliver(&server, &event, Some("00".repeat(32)))
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    let other_secret = Some(sign(b"not the secret", event.to_string().as_bytes()));
    deliver(&server, &event, other_secret)
        .await
        .fails(401, "AUTHENTICATION_FAILED");
    assert_eq!(
        balance(&server, &customer).await,
        0,
        "bad signatures change nothing"
    );

    let wrong_amount = json!({"event": "captured", "payment_id": pid, "amount": 3000});
    deliver(&server, &wrong_amount, signed(&wrong_amount))
        .await
        .fails(400, "VALIDATION_FAILED");
    let unknown = json!({"event": "captured", "payment_id": "nope", "amount": 300});
    deliver(&server, &unknown, signed(&unknown))
        .await
        .fails(400, "VALIDATION_FAILED");
    let garbage = json!({"hello": 1});
    deliver(&server, &garbage, signed(&garbage))
        .await
        .fails(400, "VALIDATION_FAILED");
    assert_eq!(balance(&server, &customer).await, 0);

    let first = deliver(&server, &event, signed(&event)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        (
            first.body["status"].as_str(),
            first.body["duplicate"].as_bool()
        ),
        (Some("captured"), Some(false))
    );
    assert_eq!(ws.next_of("wallet").await["balance"], 300);
    for _ in 0..3 {
        let again = deliver(&server, &event, signed(&event)).await;
        assert_eq!(
            (again.status, again.body["duplicate"].as_bool()),
            (200, Some(true))
        );
    }
    assert_eq!(balance(&server, &customer).await, 300, "credited once");
    // A gateway that wraps the payment, names no amount, and delivers again: still once.
    let third: Value = recharge(&server, &customer, json!(70), "order-3")
        .await
        .ok();
    let wrapped = json!({"type": "payment.captured", "data": {"payment_id": third["payment_id"]}});
    for _ in 0..2 {
        let r = deliver(&server, &wrapped, signed(&wrapped)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(balance(&server, &customer).await, 370);
    // A replayed recharge gives the first answer, not a second payment.
    let replay: Value = recharge(&server, &customer, json!(300), "order-1")
        .await
        .ok();
    assert_eq!(replay, created);
    // A failed payment credits nothing.
    let second: Value = recharge(&server, &customer, json!(50), "order-2")
        .await
        .ok();
    let failed =
        json!({"status": "payment.failed", "payment_id": second["payment_id"], "amount": 50});
    let r = deliver(&server, &failed, signed(&failed)).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("failed")));
    let late = json!({"event": "captured", "payment_id": second["payment_id"], "amount": 50});
    deliver(&server, &late, signed(&late)).await;
    assert_eq!(balance(&server, &customer).await, 370);
    let rows = ledger(&server, &customer).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[1]["kind"].as_str(), rows[1]["payment_id"].as_str()),
        (Some("recharge"), Some(pid.as_str()))
    );
    books_balance(&server).await;
}

#[tokio::test]
async fn the_ledger_pages_newest_first() {
    let server = TestServer::start().await;
    let customer = server.penniless_customer("9876543210").await;
    for i in 1..=7 {
        recharge(&server, &customer, json!(i), &format!("k{i}"))
            .await
            .ok::<Value>();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/wallet/ledger?limit=3&cursor={c}"),
            None => "/wallet/ledger?limit=3".to_owned(),
        };
        let page: Value = server.get(&path, Some(&customer)).await.ok();
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|e| e["amount"].as_i64().expect("amount")));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
    let all: Value = server.get("/wallet/ledger", Some(&customer)).await.ok();
    assert_eq!(all["balance"], 28);
    server
        .get("/wallet/ledger?cursor=not-ours", Some(&customer))
        .await
        .fails(400, "VALIDATION_FAILED");
    // Another customer sees none of it.
    let other = server.penniless_customer("9123456789").await;
    assert!(ledger(&server, &other).await.is_empty());
}

#[tokio::test]
async fn demo_customers_start_with_500() {
    let server = TestServer::start_with(|c| {
        c.demo = true;
        c.otp_resend_after = Duration::ZERO;
    })
    .await;
    let customer = server.login("+91", "9876543210", "customer").await;
    assert_eq!(balance(&server, &customer).await, 500);
    let rows = ledger(&server, &customer).await;
    assert_eq!(rows[0]["kind"], "adjustment");
    // Logging in again is not a new customer.
    let again = server.login("+91", "9876543210", "customer").await;
    assert_eq!(balance(&server, &again).await, 500);
    books_balance(&server).await;
}
