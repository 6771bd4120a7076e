//! `GET /guide/ratings` (an extension): a guide sees the ratings they received, newest first,
//! with their average and count, one page at a time; nobody else does.

mod common;

use common::*;
use serde_json::{json, Value};

/// A customer with this phone and display name.
async fn named_customer(server: &TestServer, phone: &str, name: &str) -> User {
    let customer = server.customer(phone).await;
    server
        .patch(
            "/auth/profile",
            Some(&customer),
            json!({"display_name": name}),
        )
        .await
        .ok::<Value>();
    customer
}

/// A consultation between them, completed by the guide and rated by the customer.
async fn completed_and_rated(
    server: &TestServer,
    customer: &User,
    guide: &User,
    rating: Value,
) -> String {
    let id = server.open_consultation(customer, guide).await;
    let done: Value = server
        .patch(
            &format!("/consultation/{id}/complete"),
            Some(guide),
            json!({}),
        )
        .await
        .ok();
    assert_eq!(done["status"], "completed");
    server
        .post(
            &format!("/consultation/{id}/feedback"),
            Some(customer),
            rating,
        )
        .await
        .created::<Value>();
    id
}

#[tokio::test]
async fn a_guide_pages_through_their_ratings_newest_first_and_a_customer_cannot() {
    let server = TestServer::start().await;
    let (guide, _guide_ws) = server.online_guide("9000000001", "Asha").await;
    let ravi = named_customer(&server, "9876543201", "Ravi").await;
    let meera = named_customer(&server, "9876543202", "Meera").await;

    let first = completed_and_rated(
        &server,
        &ravi,
        &guide,
        json!({"rating": 4, "feedback_text": "Helpful", "issues": ["late"]}),
    )
    .await;
    let second = completed_and_rated(
        &server,
        &meera,
        &guide,
        json!({"rating": 5, "feedback_text": "Clear answers", "issues": ["audio", "short"]}),
    )
    .await;

    let all: Value = server.get("/guide/ratings", Some(&guide)).await.ok();
    assert_eq!(all["rating_avg"].as_f64(), Some(4.5));
    assert_eq!(all["rating_count"].as_i64(), Some(2));
    assert!(
        all.get("next_cursor").is_none(),
        "one page holds both: {all}"
    );
    let ratings = all["ratings"].as_array().expect("ratings");
    assert_eq!(ratings.len(), 2, "{all}");
    let (newest, oldest) = (&ratings[0], &ratings[1]);
    assert_eq!(newest["consultation_id"], second.as_str());
    assert_eq!(newest["customer_name"], "Meera");
    assert_eq!(newest["rating"], 5);
    assert_eq!(newest["feedback_text"], "Clear answers");
    assert_eq!(newest["issues"], json!(["audio", "short"]));
    assert_eq!(oldest["consultation_id"], first.as_str());
    assert_eq!(oldest["customer_name"], "Ravi");
    assert_eq!(oldest["rating"], 4);
    assert_eq!(oldest["feedback_text"], "Helpful");
    assert_eq!(oldest["issues"], json!(["late"]));
    assert!(
        newest["submitted_at"].as_str() >= oldest["submitted_at"].as_str(),
        "newest first: {all}"
    );
    // The same numbers the guide list shows.
    let me: Value = server.get("/guide/profile", Some(&guide)).await.ok();
    assert_eq!(
        (me["rating_avg"].as_f64(), me["rating_count"].as_i64()),
        (Some(4.5), Some(2))
    );

    // A customer is refused, whatever the query.
    server
        .get("/guide/ratings", Some(&ravi))
        .await
        .fails(403, "FORBIDDEN");
    server
        .get("/guide/ratings?limit=1&cursor=x", Some(&meera))
        .await
        .fails(403, "FORBIDDEN");
    server
        .get("/guide/ratings", None)
        .await
        .fails(401, "AUTHENTICATION_FAILED");

    // One at a time.
    let page1: Value = server
        .get("/guide/ratings?limit=1", Some(&guide))
        .await
        .ok();
    assert_eq!(page1["ratings"].as_array().map(Vec::len), Some(1));
    assert_eq!(page1["ratings"][0]["consultation_id"], second.as_str());
    assert_eq!(
        (page1["rating_avg"].as_f64(), page1["rating_count"].as_i64()),
        (Some(4.5), Some(2)),
        "the totals cover every rating, not the page"
    );
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let page2: Value = server
        .get(
            &format!("/guide/ratings?limit=1&cursor={cursor}"),
            Some(&guide),
        )
        .await
        .ok();
    assert_eq!(page2["ratings"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["ratings"][0]["consultation_id"], first.as_str());
    assert!(page2.get("next_cursor").is_none(), "the last page: {page2}");

    // Cursors this server did not give out.
    for bad in ["!!!", "bm90LWEtY3Vyc29y", "YWJjOg", "MTIzOg"] {
        server
            .get(&format!("/guide/ratings?cursor={bad}"), Some(&guide))
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    server
        .get("/guide/ratings?limit=many", Some(&guide))
        .await
        .fails(400, "VALIDATION_FAILED");
}

#[tokio::test]
async fn a_guide_without_ratings_sees_none() {
    let server = TestServer::start().await;
    server.add_guide("+919000000002", "Dev").await;
    let guide = server.login("+91", "9000000002", "guide").await;
    let page: Value = server.get("/guide/ratings", Some(&guide)).await.ok();
    assert_eq!(
        page,
        json!({"rating_avg": 0.0, "rating_count": 0, "ratings": []})
    );
}
