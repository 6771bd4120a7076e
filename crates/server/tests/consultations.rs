//! Consultations from request to rating: the one-active rules, races, timeouts, who may do what,
//! the story history tells, customer profiles as intake, and the guide list.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// A customer asks a guide for a chat.
async fn request(server: &TestServer, customer: &User, guide_id: i64) -> Reply {
    server
        .post(
            "/consultation",
            Some(customer),
            json!({"guide_id": guide_id, "mode": "chat", "service_type": "consultation"}),
        )
        .await
}

/// A request that must succeed: its id.
async fn requested(server: &TestServer, customer: &User, guide: &User) -> String {
    let c: Value = request(server, customer, guide.id).await.created();
    assert_eq!(c["status"], "requested");
    c["consultation_id"].as_str().expect("id").to_owned()
}

async fn act(server: &TestServer, user: &User, id: &str, action: &str) -> Reply {
    server
        .post(
            &format!("/consultation/{id}/{action}"),
            Some(user),
            json!({}),
        )
        .await
}

async fn complete(server: &TestServer, user: &User, id: &str) -> Reply {
    server
        .patch(
            &format!("/consultation/{id}/complete"),
            Some(user),
            json!({}),
        )
        .await
}

async fn consultation(server: &TestServer, user: &User, id: &str) -> Value {
    server
        .get(&format!("/consultation/{id}"), Some(user))
        .await
        .ok()
}

/// The whole history of a consultation, ascending.
async fn history(server: &TestServer, user: &User, id: &str) -> Vec<Value> {
    let page: Value = server
        .get(
            &format!("/consultation/{id}/messages?limit=100"),
            Some(user),
        )
        .await
        .ok();
    page["messages"].as_array().expect("messages").clone()
}

fn birth(name: &str) -> Value {
    json!({
        "name": name, "date_of_birth": "1990-01-01", "time_of_birth": "10:30:00",
        "birth_city": "Pune", "birth_country": "India", "preferred_language": "hi",
        "zodiac_sign": "Capricorn", "gender": "female"
    })
}

/// Every item of a paged list at `path?query`, following `next_cursor` from page to page:
/// (the items under `key`, in order, and how many pages it took).
async fn follow_pages(
    server: &TestServer,
    user: &User,
    path: &str,
    query: &str,
    key: &str,
) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?{query}&cursor={c}"),
            None => format!("{path}?{query}"),
        };
        let page: Value = server.get(&url, Some(user)).await.ok();
        pages += 1;
        items.extend(page[key].as_array().expect(key).iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, pages),
        }
        assert!(pages < 20, "the cursor keeps going");
    }
}

/// Every guide in the list.
async fn all_pages(server: &TestServer, user: &User, query: &str) -> (Vec<Value>, usize) {
    follow_pages(server, user, "/guide/all", query, "guides").await
}

fn status_of(guides: &[Value], id: i64) -> String {
    guides
        .iter()
        .find(|g| g["id"] == id)
        .unwrap_or_else(|| panic!("guide {id} is listed"))["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

/// Waits until the guide list shows this guide with `status`; panics if it never does.
async fn wait_for_status(server: &TestServer, user: &User, guide_id: i64, status: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (all, _) = all_pages(server, user, "limit=100").await;
        if status_of(&all, guide_id) == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "guide {guide_id} never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_racing_accepts_from_the_guides_two_devices_let_exactly_one_win() {
    let server = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let guide_tablet = server.login("+91", "9000000001", "guide").await;
    let customer = server.customer("9876543201").await;
    let id = requested(&server, &customer, &guide).await;

    let (a, b) = tokio::join!(
        act(&server, &guide, &id, "accept"),
        act(&server, &guide_tablet, &id, "accept")
    );
    let (winner, loser) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(winner.status, 200, "one accept wins: {}", winner.body);
    assert_eq!(winner.body["status"], "accepted");
    loser.fails(409, "INVALID_STATE");

    let story = history(&server, &customer, &id).await;
    assert_eq!(
        story.iter().filter(|m| m["kind"] == "system").count(),
        1,
        "the acceptance is recorded once: {story:?}"
    );
    assert_eq!(
        consultation(&server, &customer, &id).await["status"],
        "accepted"
    );
}

#[tokio::test]
async fn a_guide_accepting_two_requests_at_once_gets_only_one() {
    let server = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let guide_tablet = server.login("+91", "9000000001", "guide").await;
    let first_customer = server.customer("9876543201").await;
    let second_customer = server.customer("9876543202").await;
    let first = requested(&server, &first_customer, &guide).await;
    let second = requested(&server, &second_customer, &guide).await;

    let (a, b) = tokio::join!(
        act(&server, &guide, &first, "accept"),
        act(&server, &guide_tablet, &second, "accept")
    );
    let (winner, loser, lost) = if a.status == 200 {
        (a, b, &second)
    } else {
        (b, a, &first)
    };
    assert_eq!(winner.status, 200, "one accept wins: {}", winner.body);
    loser.fails(409, "CONSULTATION_ACTIVE");
    let current: Value = server
        .get("/consultation/guides/current", Some(&guide))
        .await
        .ok();
    assert_eq!(current["consultation_id"], winner.body["consultation_id"]);
    assert_eq!(
        consultation(&server, &guide, lost).await["status"],
        "requested"
    );
}

#[tokio::test]
async fn two_requests_at_once_from_one_customer_open_one_consultation() {
    let server = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let (asha, _asha_ws) = server.online_guide("9000000001", "Asha").await;
    let (ravi, _ravi_ws) = server.online_guide("9000000002", "Ravi").await;
    let phone = server.customer("9876543201").await;
    let laptop = server.login("+91", "9876543201", "customer").await;

    let (a, b) = tokio::join!(
        request(&server, &phone, asha.id),
        request(&server, &laptop, ravi.id)
    );
    let (winner, loser) = if a.status == 201 { (a, b) } else { (b, a) };
    assert_eq!(
        winner.status, 201,
        "one request goes through: {}",
        winner.body
    );
    loser.fails(409, "CONSULTATION_ACTIVE");
    let current: Value = server
        .get("/consultation/customers/current", Some(&phone))
        .await
        .ok();
    assert_eq!(current["consultation_id"], winner.body["consultation_id"]);
    let chats: Value = server.get("/consultations", Some(&laptop)).await.ok();
    assert_eq!(chats["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_guide_in_a_consultation_cannot_accept_another_request_until_it_ends() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let first_customer = server.customer("9876543201").await;
    let second_customer = server.customer("9876543202").await;
    let first = requested(&server, &first_customer, &guide).await;
    let second = requested(&server, &second_customer, &guide).await;

    act(&server, &guide, &first, "accept").await.ok::<Value>();
    act(&server, &guide, &second, "accept")
        .await
        .fails(409, "CONSULTATION_ACTIVE");

    for who in [&first_customer, &guide] {
        act(&server, who, &first, "join").await.ok::<Value>();
    }
    assert_eq!(
        consultation(&server, &guide, &first).await["status"],
        "in_progress"
    );
    act(&server, &guide, &second, "accept")
        .await
        .fails(409, "CONSULTATION_ACTIVE");
    assert_eq!(
        consultation(&server, &second_customer, &second).await["status"],
        "requested",
        "the refused accept left the request waiting"
    );

    complete(&server, &first_customer, &first)
        .await
        .ok::<Value>();
    let accepted: Value = act(&server, &guide, &second, "accept").await.ok();
    assert_eq!(accepted["status"], "accepted");
}

#[tokio::test]
async fn a_customer_holds_one_active_consultation_at_a_time() {
    let server = TestServer::start().await;
    let (asha, _asha_ws) = server.online_guide("9000000001", "Asha").await;
    let (ravi, _ravi_ws) = server.online_guide("9000000002", "Ravi").await;
    let customer = server.customer("9876543201").await;

    let first = requested(&server, &customer, &asha).await;
    let again = request(&server, &customer, ravi.id).await;
    again.fails(409, "CONSULTATION_ACTIVE");
    assert_eq!(
        again.body["error"]["details"]["consultation_id"],
        first.as_str()
    );

    // Still refused once accepted and in progress.
    server
        .post(
            &format!("/consultation/{first}/accept"),
            Some(&asha),
            json!({}),
        )
        .await
        .ok::<Value>();
    request(&server, &customer, ravi.id)
        .await
        .fails(409, "CONSULTATION_ACTIVE");

    // Once it is over, the customer may ask someone else.
    complete(&server, &customer, &first).await.ok::<Value>();
    requested(&server, &customer, &ravi).await;
}

#[tokio::test]
async fn a_guide_who_is_offline_busy_or_unknown_cannot_be_requested() {
    let server = TestServer::start().await;
    let customer = server.customer("9876543201").await;

    // Set online but never connected.
    server.add_guide("+919000000001", "Asha").await;
    let unconnected = server.login("+91", "9000000001", "guide").await;
    server
        .post(
            "/guide/status",
            Some(&unconnected),
            json!({"status": "online"}),
        )
        .await
        .ok::<Value>();
    request(&server, &customer, unconnected.id)
        .await
        .fails(409, "GUIDE_UNAVAILABLE");

    // Connected but never set online.
    server.add_guide("+919000000002", "Ravi").await;
    let away = server.login("+91", "9000000002", "guide").await;
    let _away_ws = Ws::connect(&server, &away.token).await;
    request(&server, &customer, away.id)
        .await
        .fails(409, "GUIDE_UNAVAILABLE");

    // Connected, online, then set offline.
    let (leaving, _leaving_ws) = server.online_guide("9000000003", "Meera").await;
    server
        .post(
            "/guide/status",
            Some(&leaving),
            json!({"status": "offline"}),
        )
        .await
        .ok::<Value>();
    request(&server, &customer, leaving.id)
        .await
        .fails(409, "GUIDE_UNAVAILABLE");

    // Busy with someone else.
    let (busy, _busy_ws) = server.online_guide("9000000004", "Kiran").await;
    let other = server.customer("9876543202").await;
    server.open_consultation(&other, &busy).await;
    request(&server, &customer, busy.id)
        .await
        .fails(409, "GUIDE_UNAVAILABLE");

    // Nobody, or a customer's id.
    request(&server, &customer, 987_654)
        .await
        .fails(404, "NOT_FOUND");
    request(&server, &customer, other.id)
        .await
        .fails(404, "NOT_FOUND");

    // None of the refusals left a consultation behind.
    server
        .get("/consultation/customers/current", Some(&customer))
        .await
        .fails(404, "CONSULTATION_NOT_FOUND");
}

#[tokio::test]
async fn a_guide_whose_last_connection_closed_is_unavailable_after_the_presence_grace() {
    let server = TestServer::start_with(|c| c.presence_grace = Duration::from_millis(300)).await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    guide_ws.close().await;
    wait_for_status(&server, &customer, guide.id, "offline").await;
    request(&server, &customer, guide.id)
        .await
        .fails(409, "GUIDE_UNAVAILABLE");

    // Reconnecting brings the guide back, still set online.
    let _back = Ws::connect(&server, &guide.token).await;
    requested(&server, &customer, &guide).await;
}

#[tokio::test]
async fn an_unanswered_request_is_cancelled_by_the_system_and_both_parties_hear_it() {
    let server = TestServer::start_with(|c| c.request_timeout = Duration::from_millis(500)).await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    let id = requested(&server, &customer, &guide).await;

    for ws in [&mut customer_ws, &mut guide_ws] {
        let f = ws.next_event("cancelled").await;
        let c = &f["consultation"];
        assert_eq!(c["consultation_id"], id.as_str());
        assert_eq!(
            (
                c["status"].as_str(),
                c["ended_by"].as_str(),
                c["end_reason"].as_str()
            ),
            (Some("cancelled"), Some("system"), Some("timeout"))
        );
    }
    let c = consultation(&server, &customer, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["ended_by"].as_str()),
        (Some("cancelled"), Some("system"))
    );
    act(&server, &guide, &id, "accept")
        .await
        .fails(409, "INVALID_STATE");
    let pending: Value = server
        .get("/consultation/requests", Some(&guide))
        .await
        .ok();
    assert_eq!(pending["requests"], json!([]));
    // The customer is free to ask again.
    requested(&server, &customer, &guide).await;
}

#[tokio::test]
async fn a_guide_who_just_lost_their_connection_is_still_available_within_the_grace() {
    // The default grace (10 s) is far longer than this test needs.
    let server = TestServer::start().await;
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    guide_ws.close().await;
    let id = requested(&server, &customer, &guide).await;
    let list: Value = server.get("/guide/all", Some(&customer)).await.ok();
    assert_eq!(
        status_of(list["guides"].as_array().expect("guides"), guide.id),
        "online"
    );
    // Back on a new connection, the guide finds the request waiting.
    let _back = Ws::connect(&server, &guide.token).await;
    let pending: Value = server
        .get("/consultation/requests", Some(&guide))
        .await
        .ok();
    assert_eq!(pending["requests"][0]["consultation_id"], id.as_str());
}

#[tokio::test]
async fn an_accepted_request_is_not_cancelled_when_the_request_timeout_passes() {
    let server = TestServer::start_with(|c| c.request_timeout = Duration::from_millis(300)).await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let id = requested(&server, &customer, &guide).await;
    act(&server, &guide, &id, "accept").await.ok::<Value>();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        consultation(&server, &customer, &id).await["status"],
        "accepted"
    );
    let late = guide_ws
        .collect_of("consultation", Duration::from_millis(200))
        .await;
    assert!(
        late.iter().all(|f| f["event"] != "cancelled"),
        "nobody was told it was cancelled: {late:?}"
    );
}

#[tokio::test]
async fn a_request_pending_across_a_restart_still_times_out() {
    let mut first = TestServer::start_with(|c| c.request_timeout = Duration::from_secs(600)).await;
    let (guide, guide_ws) = first.online_guide("9000000001", "Asha").await;
    let customer = first.customer("9876543201").await;
    let id = requested(&first, &customer, &guide).await;
    drop(guide_ws);
    let dir = first.data_dir.clone();
    let _keep = first.stop().await;

    let server =
        TestServer::start_in(&dir, |c| c.request_timeout = Duration::from_millis(300)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let c = loop {
        let c = consultation(&server, &customer, &id).await;
        if c["status"] != "requested" || tokio::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (
            c["status"].as_str(),
            c["ended_by"].as_str(),
            c["end_reason"].as_str()
        ),
        (Some("cancelled"), Some("system"), Some("timeout"))
    );
}

#[tokio::test]
async fn a_rejected_request_is_cancelled_and_both_parties_hear_rejected() {
    let server = TestServer::start().await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    let id = requested(&server, &customer, &guide).await;

    let rejected: Value = server
        .post(
            &format!("/consultation/{id}/reject"),
            Some(&guide),
            json!({"reason": "On a break"}),
        )
        .await
        .ok();
    assert_eq!(
        (
            rejected["status"].as_str(),
            rejected["ended_by"].as_str(),
            rejected["end_reason"].as_str()
        ),
        (Some("cancelled"), Some("guide"), Some("On a break"))
    );
    for ws in [&mut customer_ws, &mut guide_ws] {
        let f = ws.next_event("rejected").await;
        assert_eq!(f["consultation"]["status"], "cancelled");
        assert_eq!(f["consultation"]["consultation_id"], id.as_str());
    }
    act(&server, &guide, &id, "accept")
        .await
        .fails(409, "INVALID_STATE");
    requested(&server, &customer, &guide).await;
}

#[tokio::test]
async fn a_customer_cancels_a_request_but_not_an_accepted_consultation() {
    let server = TestServer::start().await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;

    let id = requested(&server, &customer, &guide).await;
    let cancelled: Value = act(&server, &customer, &id, "cancel").await.ok();
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["ended_by"].as_str()),
        (Some("cancelled"), Some("customer"))
    );
    let f = guide_ws.next_event("cancelled").await;
    assert_eq!(f["consultation"]["consultation_id"], id.as_str());

    let id = requested(&server, &customer, &guide).await;
    act(&server, &guide, &id, "accept").await.ok::<Value>();
    act(&server, &customer, &id, "cancel")
        .await
        .fails(409, "INVALID_STATE");
    assert_eq!(
        consultation(&server, &customer, &id).await["status"],
        "accepted"
    );
}

#[tokio::test]
async fn only_the_guide_accepts_or_rejects_and_only_the_customer_cancels() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let id = requested(&server, &customer, &guide).await;

    act(&server, &customer, &id, "accept")
        .await
        .fails(403, "FORBIDDEN");
    act(&server, &customer, &id, "reject")
        .await
        .fails(403, "FORBIDDEN");
    act(&server, &guide, &id, "cancel")
        .await
        .fails(403, "FORBIDDEN");
    assert_eq!(
        consultation(&server, &customer, &id).await["status"],
        "requested"
    );
}

#[tokio::test]
async fn joining_waits_for_acceptance_and_joining_again_returns_the_same_shape() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let id = requested(&server, &customer, &guide).await;

    act(&server, &customer, &id, "join")
        .await
        .fails(409, "INVALID_STATE");
    act(&server, &guide, &id, "accept").await.ok::<Value>();
    let first: Value = act(&server, &customer, &id, "join").await.ok();
    assert_eq!(first["consultation"]["status"], "accepted");
    assert!(first["consultation"].get("started_at").is_none());
    let started: Value = act(&server, &guide, &id, "join").await.ok();
    assert_eq!(started["consultation"]["status"], "in_progress");
    let started_at = started["consultation"]["started_at"].clone();
    assert!(started_at.is_string());

    let again: Value = act(&server, &customer, &id, "join").await.ok();
    assert_eq!(again["consultation"]["status"], "in_progress");
    assert_eq!(
        again["consultation"]["started_at"], started_at,
        "joining again does not restart it"
    );
    let participants = again["participants"].as_array().expect("participants");
    let ids: BTreeSet<i64> = participants
        .iter()
        .map(|p| p["user_id"].as_i64().expect("user_id"))
        .collect();
    assert_eq!(ids, BTreeSet::from([customer.id, guide.id]));
    for p in participants {
        for field in [
            "user_type",
            "display_name",
            "is_online",
            "is_typing",
            "unread_count",
            "delivered_seq",
            "read_seq",
        ] {
            assert!(!p[field].is_null(), "participant has {field}: {p}");
        }
    }
    let story = history(&server, &customer, &id).await;
    assert_eq!(
        story.len(),
        2,
        "accepted and started, once each, however often people join: {story:?}"
    );
}

#[tokio::test]
async fn the_guide_completes_and_only_the_customer_rates_once_with_a_valid_rating() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let id = server.open_consultation(&customer, &guide).await;
    let feedback = |user: &User, body: Value| {
        let path = format!("/consultation/{id}/feedback");
        let server = &server;
        let user = user.clone();
        async move { server.post(&path, Some(&user), body).await }
    };

    feedback(&customer, json!({"rating": 5}))
        .await
        .fails(409, "INVALID_STATE");

    let done: Value = complete(&server, &guide, &id).await.ok();
    assert_eq!(
        (done["status"].as_str(), done["ended_by"].as_str()),
        (Some("completed"), Some("guide"))
    );
    assert!(done["duration_seconds"].as_i64().is_some_and(|d| d >= 0));
    assert!(done["ended_at"].is_string());
    assert_eq!(done.get("rated"), None, "not rated yet");
    complete(&server, &customer, &id)
        .await
        .fails(409, "INVALID_STATE");

    feedback(&guide, json!({"rating": 5}))
        .await
        .fails(403, "FORBIDDEN");
    for rating in [0, 6, -1] {
        feedback(&customer, json!({"rating": rating}))
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    // Two taps on two devices: one rating counts.
    let (a, b) = tokio::join!(
        feedback(
            &customer,
            json!({"rating": 4, "feedback_text": "Helpful", "issues": ["late"]}),
        ),
        feedback(&customer, json!({"rating": 4}))
    );
    let (rated, again) = if a.status == 201 { (a, b) } else { (b, a) };
    let rated: Value = rated.created();
    again.fails(409, "ALREADY_RATED");
    assert_eq!(rated["rating"], 4);
    assert!(rated["feedback_id"].is_string() && rated["submitted_at"].is_string());
    feedback(&customer, json!({"rating": 5}))
        .await
        .fails(409, "ALREADY_RATED");
    // Every device of the customer can tell it was rated, without trying again.
    let seen = consultation(&server, &customer, &id).await;
    assert_eq!(seen["rated"], true);
    let chats: Value = server.get("/consultations", Some(&customer)).await.ok();
    assert_eq!(chats["items"][0]["consultation"]["rated"], true);

    let me: Value = server.get("/guide/profile", Some(&guide)).await.ok();
    assert_eq!(
        (me["rating_avg"].as_f64(), me["rating_count"].as_i64()),
        (Some(4.0), Some(1)),
        "only the accepted rating counts"
    );
}

#[tokio::test]
async fn history_tells_the_story_in_system_messages_between_the_chat() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let id = server.open_consultation(&customer, &guide).await;
    server
        .post(
            &format!("/consultation/{id}/messages"),
            Some(&customer),
            json!({"client_msg_id": cmid(), "kind": "text", "content": "Hello"}),
        )
        .await
        .created::<Value>();
    complete(&server, &guide, &id).await.ok::<Value>();

    let story = history(&server, &customer, &id).await;
    let seqs: Vec<i64> = story
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3, 4],
        "system lines take seqs like any message"
    );
    let kinds: Vec<(&str, &str)> = story
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().expect("kind"),
                m["sender_type"].as_str().expect("sender_type"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("system", "system"),
            ("system", "system"),
            ("text", "customer"),
            ("system", "system")
        ]
    );
    let text = |i: usize| {
        story[i]["content"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
    };
    assert!(text(0).contains("accepted"), "{}", text(0));
    assert!(text(1).contains("started"), "{}", text(1));
    assert!(
        text(3).contains("ended") && text(3).contains("guide"),
        "the end names who ended it: {}",
        text(3)
    );
    let c = consultation(&server, &customer, &id).await;
    assert_eq!(
        (c["head_seq"].as_i64(), c["total_messages"].as_i64()),
        (Some(4), Some(4))
    );
    // The guide reads the same story.
    assert_eq!(history(&server, &guide, &id).await, story);
}

#[tokio::test]
async fn the_current_consultation_is_the_active_one_or_404() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let customer_current = || server.get("/consultation/customers/current", Some(&customer));
    let guide_current = || server.get("/consultation/guides/current", Some(&guide));

    customer_current()
        .await
        .fails(404, "CONSULTATION_NOT_FOUND");
    guide_current().await.fails(404, "CONSULTATION_NOT_FOUND");

    let id = requested(&server, &customer, &guide).await;
    let mine: Value = customer_current().await.ok();
    assert_eq!(
        (mine["consultation_id"].as_str(), mine["status"].as_str()),
        (Some(id.as_str()), Some("requested"))
    );
    // A pending request is not yet the guide's current consultation; it is in /consultation/requests.
    guide_current().await.fails(404, "CONSULTATION_NOT_FOUND");

    act(&server, &guide, &id, "accept").await.ok::<Value>();
    for reply in [customer_current().await, guide_current().await] {
        let c: Value = reply.ok();
        assert_eq!(
            (c["consultation_id"].as_str(), c["status"].as_str()),
            (Some(id.as_str()), Some("accepted"))
        );
    }

    complete(&server, &customer, &id).await.ok::<Value>();
    customer_current()
        .await
        .fails(404, "CONSULTATION_NOT_FOUND");
    guide_current().await.fails(404, "CONSULTATION_NOT_FOUND");
}

#[tokio::test]
async fn a_customer_keeps_birth_profiles_that_only_they_can_read_or_write() {
    let server = TestServer::start().await;
    let customer = server.customer("9876543201").await;
    let other = server.customer("9876543202").await;
    let primary = format!("/customers/{}/profile", customer.id);
    let profiles = format!("/customers/{}/profiles", customer.id);

    server
        .get(&primary, Some(&customer))
        .await
        .fails(404, "NOT_FOUND");
    let saved: Value = server
        .post(&primary, Some(&customer), birth("Priya"))
        .await
        .ok();
    assert_eq!(
        (
            saved["name"].as_str(),
            saved["date_of_birth"].as_str(),
            saved["is_primary"].as_bool(),
            saved["customer_id"].as_i64()
        ),
        (
            Some("Priya"),
            Some("1990-01-01"),
            Some(true),
            Some(customer.id)
        )
    );
    let updated: Value = server
        .post(&primary, Some(&customer), birth("Priya Sharma"))
        .await
        .ok();
    assert_eq!(
        updated["profile_id"], saved["profile_id"],
        "the primary profile is edited in place"
    );
    let read: Value = server.get(&primary, Some(&customer)).await.ok();
    assert_eq!(read, updated);

    let mother: Value = server
        .post(&profiles, Some(&customer), birth("Mother"))
        .await
        .created();
    assert_eq!(mother["is_primary"], false);
    assert_ne!(mother["profile_id"], saved["profile_id"]);
    let list: Value = server.get(&profiles, Some(&customer)).await.ok();
    let names: Vec<&str> = list["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["Priya Sharma", "Mother"]);

    // Someone else can neither read nor write them.
    server
        .get(&primary, Some(&other))
        .await
        .fails(403, "FORBIDDEN");
    server
        .get(&profiles, Some(&other))
        .await
        .fails(403, "FORBIDDEN");
    server
        .post(&primary, Some(&other), birth("Intruder"))
        .await
        .fails(403, "FORBIDDEN");
    server
        .post(&profiles, Some(&other), birth("Intruder"))
        .await
        .fails(403, "FORBIDDEN");

    // Dates that are not dates.
    for bad in ["1990-13-45", "01/01/1990", "", "2999-01-01"] {
        let mut body = birth("Priya");
        body["date_of_birth"] = json!(bad);
        server
            .post(&primary, Some(&customer), body.clone())
            .await
            .fails(400, "VALIDATION_FAILED");
        server
            .post(&profiles, Some(&customer), body)
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    let mut body = birth("Priya");
    body["time_of_birth"] = json!("25:61");
    server
        .post(&primary, Some(&customer), body)
        .await
        .fails(400, "VALIDATION_FAILED");

    // Nothing of that reached the stored profiles.
    let after: Value = server.get(&profiles, Some(&customer)).await.ok();
    assert_eq!(after, list);
}

#[tokio::test]
async fn a_request_carries_a_snapshot_of_the_chosen_profile_for_the_guide() {
    let server = TestServer::start().await;
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let primary = format!("/customers/{}/profile", customer.id);
    let profile: Value = server
        .post(&primary, Some(&customer), birth("Priya"))
        .await
        .ok();

    let c: Value = server
        .post(
            "/consultation",
            Some(&customer),
            json!({"guide_id": guide.id, "mode": "chat", "service_type": "consultation",
                   "customer_profile_id": profile["profile_id"]}),
        )
        .await
        .created();
    let id = c["consultation_id"].as_str().expect("id").to_owned();
    assert_eq!(c["intake"]["name"], "Priya");
    assert_eq!(c["intake"]["birth_city"], "Pune");

    let f = guide_ws.next_event("requested").await;
    assert_eq!(
        (
            f["consultation"]["intake"]["name"].as_str(),
            f["consultation"]["intake"]["date_of_birth"].as_str(),
            f["consultation"]["intake"]["time_of_birth"].as_str()
        ),
        (Some("Priya"), Some("1990-01-01"), Some("10:30:00")),
        "the guide sees the birth details with the request"
    );

    // Editing the profile later does not rewrite what the guide was given.
    let mut edited = birth("Priya Sharma");
    edited["birth_city"] = json!("Mumbai");
    server
        .post(&primary, Some(&customer), edited)
        .await
        .ok::<Value>();
    let pending: Value = server
        .get("/consultation/requests", Some(&guide))
        .await
        .ok();
    assert_eq!(pending["requests"][0]["consultation_id"], id.as_str());
    assert_eq!(
        (
            pending["requests"][0]["intake"]["name"].as_str(),
            pending["requests"][0]["intake"]["birth_city"].as_str()
        ),
        (Some("Priya"), Some("Pune"))
    );
    let later = consultation(&server, &guide, &id).await;
    assert_eq!(later["intake"]["name"], "Priya");

    // A relative's profile works the same way.
    act(&server, &customer, &id, "cancel").await.ok::<Value>();
    let mother: Value = server
        .post(
            &format!("/customers/{}/profiles", customer.id),
            Some(&customer),
            birth("Mother"),
        )
        .await
        .created();
    let for_mother: Value = server
        .post(
            "/consultation",
            Some(&customer),
            json!({"guide_id": guide.id, "customer_profile_id": mother["profile_id"]}),
        )
        .await
        .created();
    assert_eq!(for_mother["intake"]["name"], "Mother");
    let f = guide_ws.next_event("requested").await;
    assert_eq!(f["consultation"]["intake"]["name"], "Mother");
    let mother_id = for_mother["consultation_id"].as_str().expect("id");

    // A request without a profile carries no intake.
    act(&server, &customer, mother_id, "cancel")
        .await
        .ok::<Value>();
    let plain: Value = request(&server, &customer, guide.id).await.created();
    assert!(plain.get("intake").is_none() || plain["intake"].is_null());
}

#[tokio::test]
async fn a_request_with_someone_elses_or_an_unknown_profile_is_refused() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let other = server.customer("9876543202").await;
    let theirs: Value = server
        .post(
            &format!("/customers/{}/profile", other.id),
            Some(&other),
            birth("Not yours"),
        )
        .await
        .ok();
    let with_profile = |pid: Value| {
        server.post(
            "/consultation",
            Some(&customer),
            json!({"guide_id": guide.id, "mode": "chat", "customer_profile_id": pid}),
        )
    };
    with_profile(theirs["profile_id"].clone())
        .await
        .fails(403, "FORBIDDEN");
    with_profile(json!(987_654)).await.fails(404, "NOT_FOUND");
    server
        .get("/consultation/customers/current", Some(&customer))
        .await
        .fails(404, "CONSULTATION_NOT_FOUND");
    let pending: Value = server
        .get("/consultation/requests", Some(&guide))
        .await
        .ok();
    assert_eq!(pending["requests"], json!([]), "nothing reached the guide");
}

#[tokio::test]
async fn following_next_cursor_visits_every_guide_once() {
    let server = TestServer::start().await;
    let mut added = BTreeSet::new();
    for i in 1..=5 {
        added.insert(
            server
                .add_guide(&format!("+91900000000{i}"), &format!("Guide {i}"))
                .await,
        );
    }
    let customer = server.customer("9876543201").await;
    let (guides, pages) = all_pages(&server, &customer, "limit=2").await;
    let ids: Vec<i64> = guides
        .iter()
        .map(|g| g["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 5, "each guide once: {ids:?}");
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), added);
    assert_eq!(pages, 3, "pages of 2, 2 and 1");
    for (limit, expected) in [(1, 5), (5, 1), (50, 1)] {
        let (same, pages) = all_pages(&server, &customer, &format!("limit={limit}")).await;
        assert_eq!((same.len(), pages), (5, expected), "limit={limit}");
    }
    for g in &guides {
        for field in [
            "display_name",
            "skills",
            "languages",
            "rate_per_minute",
            "rating_avg",
            "rating_count",
            "status",
        ] {
            assert!(!g[field].is_null(), "guide has {field}: {g}");
        }
    }
    // A cursor that the server never gave out is refused, not misread.
    server
        .get("/guide/all?cursor=!!!", Some(&customer))
        .await
        .fails(400, "VALIDATION_FAILED");
}

#[tokio::test]
async fn the_guide_list_shows_who_is_online_busy_or_offline() {
    let server = TestServer::start_with(|c| c.presence_grace = Duration::from_millis(300)).await;
    let customer = server.customer("9876543201").await;
    let (online, online_ws) = server.online_guide("9000000001", "Online").await;
    let (busy, _busy_ws) = server.online_guide("9000000002", "Busy").await;
    let (second_online, _second_ws) = server.online_guide("9000000003", "Also online").await;
    server.add_guide("+919000000004", "Unconnected").await;
    let unconnected = server.login("+91", "9000000004", "guide").await;
    server
        .post(
            "/guide/status",
            Some(&unconnected),
            json!({"status": "online"}),
        )
        .await
        .ok::<Value>();
    server.add_guide("+919000000005", "Away").await;
    let away = server.login("+91", "9000000005", "guide").await;
    let _away_ws = Ws::connect(&server, &away.token).await;
    let never = server.add_guide("+919000000006", "Never").await;
    let other = server.customer("9876543202").await;
    server.open_consultation(&other, &busy).await;

    let (all, _) = all_pages(&server, &customer, "limit=50").await;
    assert_eq!(status_of(&all, online.id), "online");
    assert_eq!(status_of(&all, second_online.id), "online");
    assert_eq!(status_of(&all, busy.id), "busy");
    assert_eq!(
        status_of(&all, unconnected.id),
        "offline",
        "set online is not enough"
    );
    assert_eq!(
        status_of(&all, away.id),
        "offline",
        "connected is not enough"
    );
    assert_eq!(status_of(&all, never), "offline");

    for limit in [50, 1] {
        let (only, pages) =
            all_pages(&server, &customer, &format!("online=true&limit={limit}")).await;
        assert_eq!(
            pages,
            2usize.div_ceil(limit),
            "no empty last page (limit={limit})"
        );
        let ids: BTreeSet<i64> = only.iter().map(|g| g["id"].as_i64().expect("id")).collect();
        assert_eq!(
            ids,
            BTreeSet::from([online.id, second_online.id]),
            "limit={limit}"
        );
        assert_eq!(ids.len(), only.len(), "each online guide once");
        assert!(only.iter().all(|g| g["status"] == "online"));
    }

    // A guide whose connection closed drops out of the online list after the grace.
    online_ws.close().await;
    wait_for_status(&server, &customer, online.id, "offline").await;
    let (only, _) = all_pages(&server, &customer, "online=true").await;
    let ids: Vec<i64> = only.iter().map(|g| g["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, vec![second_online.id]);
    let (all, _) = all_pages(&server, &customer, "").await;
    assert_eq!(status_of(&all, online.id), "offline");
}

/// Every chat of `user`, `limit` to a page.
async fn all_chats(server: &TestServer, user: &User, limit: usize) -> (Vec<Value>, usize) {
    follow_pages(
        server,
        user,
        "/consultations",
        &format!("limit={limit}"),
        "items",
    )
    .await
}

#[tokio::test]
async fn the_chat_list_pages_newest_first_and_shows_only_ones_own_chats() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let stranger = server.customer("9876543299").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let customer = server.customer(&format!("98765432{n:02}")).await;
        let id = requested(&server, &customer, &guide).await;
        act(&server, &guide, &id, "accept").await.ok::<Value>();
        server
            .post(
                &format!("/consultation/{id}/messages"),
                Some(&customer),
                json!({"client_msg_id": format!("c-{n}"), "kind": "text", "content": format!("question {n}")}),
            )
            .await
            .created::<Value>();
        // Keep every move at least a millisecond apart, so the order is not a tie.
        tokio::time::sleep(Duration::from_millis(5)).await;
        if n < 2 {
            complete(&server, &guide, &id).await.ok::<Value>();
        }
        ids.push(id);
    }
    // The first two ended in turn; the third's latest move is its message.
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    for limit in [100, 2, 1] {
        let (items, pages) = all_chats(&server, &guide, limit).await;
        let got: Vec<&str> = items
            .iter()
            .map(|i| i["consultation"]["consultation_id"].as_str().expect("id"))
            .collect();
        assert_eq!(got, newest_first, "limit={limit}");
        assert_eq!(
            pages,
            3usize.div_ceil(limit),
            "no empty last page (limit={limit})"
        );
    }
    let (items, _) = all_chats(&server, &guide, 100).await;
    assert_eq!(items[0]["last_message"]["content"], "question 2");
    for (item, n) in items.iter().zip([2, 1, 0]) {
        if n < 2 {
            assert_eq!(
                item["last_message"]["sender_type"], "system",
                "the end, in chat {n}"
            );
        }
        assert_eq!(
            item["unread_count"], 1,
            "the guide has not read question {n}"
        );
    }
    let (theirs, _) = all_chats(&server, &stranger, 10).await;
    assert!(theirs.is_empty(), "a stranger sees none of it: {theirs:?}");
}
