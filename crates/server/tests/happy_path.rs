//! A whole consultation, from OTP to rating, as a customer on two devices and a guide on one.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_consultation_goes_from_otp_to_rating_across_three_connections() {
    // Two devices of one phone log in back to back; the resend wait is for people, not this test.
    let server = TestServer::start_with(|c| c.otp_resend_after = std::time::Duration::ZERO).await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let mut phone = Ws::connect(&server, &customer.token).await;
    let customer_laptop = server.login("+91", "9876543210", "customer").await;
    assert_eq!(
        customer_laptop.id, customer.id,
        "the same phone is the same customer"
    );
    let mut laptop = Ws::connect(&server, &customer_laptop.token).await;

    // The customer finds the guide online.
    let list: Value = server
        .get("/guide/all?online=true", Some(&customer))
        .await
        .ok();
    let found = list["guides"]
        .as_array()
        .expect("guides")
        .iter()
        .find(|g| g["id"] == guide.id)
        .cloned();
    assert_eq!(
        found.expect("the online guide is listed")["status"],
        "online"
    );

    // Request: the guide hears of it.
    let c = server.request_consultation(&customer, &guide).await;
    let id = c["consultation_id"].as_str().expect("id").to_owned();
    assert_eq!(c["status"], "requested");
    assert_eq!(c["pair_id"], format!("{}_{}", customer.id, guide.id));
    let requested = guide_ws.next_of("consultation").await;
    assert_eq!(
        (
            requested["event"].as_str(),
            requested["consultation"]["consultation_id"].as_str()
        ),
        (Some("requested"), Some(id.as_str()))
    );
    let pending: Value = server
        .get("/consultation/requests", Some(&guide))
        .await
        .ok();
    assert_eq!(pending["requests"][0]["consultation_id"], id.as_str());

    // Accept: both customer devices hear of it; the guide is busy now.
    let accepted: Value = server
        .post(
            &format!("/consultation/{id}/accept"),
            Some(&guide),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(accepted["status"], "accepted");
    for ws in [&mut phone, &mut laptop] {
        loop {
            let f = ws.next_of("consultation").await;
            if f["event"] == "accepted" {
                break;
            }
        }
    }
    let busy: Value = server.get("/guide/all", Some(&customer)).await.ok();
    let g = busy["guides"]
        .as_array()
        .expect("guides")
        .iter()
        .find(|g| g["id"] == guide.id)
        .cloned()
        .expect("listed");
    assert_eq!(g["status"], "busy");

    // Join: the second join starts it.
    let first: Value = server
        .post(
            &format!("/consultation/{id}/join"),
            Some(&customer),
            json!({"mode": "chat"}),
        )
        .await
        .ok();
    assert_eq!(first["consultation"]["status"], "accepted");
    let second: Value = server
        .post(
            &format!("/consultation/{id}/join"),
            Some(&guide),
            json!({"mode": "chat"}),
        )
        .await
        .ok();
    assert_eq!(second["consultation"]["status"], "in_progress");
    assert!(second["consultation"]["started_at"].is_string());
    assert_eq!(second["participants"].as_array().map(Vec::len), Some(2));

    // Everyone subscribes; history already tells the story in system messages.
    let (history, head) = phone.subscribe(&id, 0).await;
    assert!(
        history.iter().all(|m| m["kind"] == "system"),
        "only system lines so far"
    );
    assert!(head >= 2, "accepted and started were recorded");
    laptop.subscribe(&id, head).await;
    guide_ws.subscribe(&id, head).await;

    // The customer writes from the phone: the guide and the laptop get it; the phone gets an ack.
    let ack = phone
        .send_text(&id, "m-1", "Namaste, will I find a new job?")
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["seq"].as_i64(), Some(head + 1));
    for ws in [&mut guide_ws, &mut laptop] {
        let m = ws.next_of("message").await;
        assert_eq!(m["message"]["content"], "Namaste, will I find a new job?");
        assert_eq!(m["message"]["sender_type"], "customer");
        assert_eq!(m["message"]["seq"].as_i64(), Some(head + 1));
    }

    // The guide replies; it reaches both customer devices.
    let reply = guide_ws.send_text(&id, "g-1", "Yes, after March.").await;
    assert_eq!(reply["seq"].as_i64(), Some(head + 2));
    for ws in [&mut phone, &mut laptop] {
        let m = ws.next_of("message").await;
        assert_eq!(
            (
                m["message"]["content"].as_str(),
                m["message"]["sender_id"].as_i64()
            ),
            (Some("Yes, after March."), Some(guide.id))
        );
    }

    // Read receipts: the customer reads; the guide sees it.
    phone
        .send(json!({"type": "read", "consultation_id": id, "up_to_seq": head + 2}))
        .await;
    let receipt = guide_ws.next_of("receipt").await;
    assert_eq!(
        (receipt["user_id"].as_i64(), receipt["read_seq"].as_i64()),
        (Some(customer.id), Some(head + 2))
    );

    // The customer ends it; both learn; duration is set.
    let done: Value = server
        .patch(
            &format!("/consultation/{id}/complete"),
            Some(&customer),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(
        (done["status"].as_str(), done["ended_by"].as_str()),
        (Some("completed"), Some("customer"))
    );
    assert!(done["duration_seconds"].is_i64());
    // The system line is committed (and fanned out) before the state change is announced.
    let last = guide_ws.next_of("message").await;
    assert_eq!(
        last["message"]["kind"], "system",
        "the end is written in the history"
    );
    let ended = guide_ws.next_of("consultation").await;
    assert_eq!(ended["event"], "completed");

    // The customer rates it once.
    let rated: Value = server
        .post(
            &format!("/consultation/{id}/feedback"),
            Some(&customer),
            json!({"rating": 5, "feedback_text": "Clear and kind", "issues": []}),
        )
        .await
        .created();
    assert_eq!(rated["rating"], 5);
    server
        .post(
            &format!("/consultation/{id}/feedback"),
            Some(&customer),
            json!({"rating": 4}),
        )
        .await
        .fails(409, "ALREADY_RATED");
    let after: Value = server.get("/guide/all", Some(&customer)).await.ok();
    let g = after["guides"]
        .as_array()
        .expect("guides")
        .iter()
        .find(|g| g["id"] == guide.id)
        .cloned()
        .expect("listed");
    assert_eq!(
        (
            g["rating_avg"].as_f64(),
            g["rating_count"].as_i64(),
            g["status"].as_str()
        ),
        (Some(5.0), Some(1), Some("online"))
    );

    // The chat list shows it with its last message.
    let chats: Value = server.get("/consultations", Some(&customer)).await.ok();
    assert_eq!(
        chats["items"][0]["consultation"]["consultation_id"],
        id.as_str()
    );
    assert_eq!(
        chats["items"][0]["other_party"]["id"].as_i64(),
        Some(guide.id)
    );
    assert_eq!(chats["items"][0]["last_message"]["kind"], "system");
}
