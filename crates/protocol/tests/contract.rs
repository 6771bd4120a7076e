//! Every example of shared/API.md parses into the protocol types and serializes back to the same JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tara_protocol::auth::*;
use tara_protocol::consultations::*;
use tara_protocol::customers::*;
use tara_protocol::guides::*;
use tara_protocol::media::*;
use tara_protocol::messages::*;
use tara_protocol::realtime::*;
use tara_protocol::wallet::*;
use tara_protocol::*;

fn round_trip<T: Serialize + DeserializeOwned + std::fmt::Debug>(v: Value) -> T {
    let parsed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{v} does not parse as {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&parsed).expect("serializes");
    assert_eq!(back, v, "round trip changed the JSON");
    parsed
}

fn message_json(seq: i64) -> Value {
    json!({
        "message_id": "0193a5f0-0000-7000-8000-000000000001",
        "consultation_id": "0193a5f0-0000-7000-8000-00000000000c",
        "seq": seq,
        "client_msg_id": "5f0c6a4e-9a57-4b53-9d1a-3b0c4f2a9e11",
        "sender_id": 7,
        "sender_type": "customer",
        "kind": "image",
        "content": "my palm",
        "media": {"media_id": "0193a5f0-0000-7000-8000-0000000000aa", "url": "/api/v1/media/0193a5f0-0000-7000-8000-0000000000aa",
                  "width": 1200, "height": 900, "bytes": 183211, "content_type": "image/jpeg"},
        "sent_at": "2026-11-21T10:00:00.123Z",
        "is_deleted": false
    })
}

fn consultation_json() -> Value {
    json!({
        "consultation_id": "0193a5f0-0000-7000-8000-00000000000c",
        "pair_id": "7_3",
        "guide_id": 3,
        "customer_id": 7,
        "guide_name": "Asha",
        "customer_name": "Ravi",
        "mode": "chat",
        "status": "completed",
        "created_at": "2026-11-21T10:00:00.000Z",
        "accepted_at": "2026-11-21T10:00:05.000Z",
        "started_at": "2026-11-21T10:00:09.000Z",
        "ended_at": "2026-11-21T10:12:09.500Z",
        "ended_by": "customer",
        "end_reason": "thanks",
        "duration_seconds": 720,
        "rate_per_minute": 25,
        "intake": {"profile_id": 4, "customer_id": 7, "is_primary": true, "name": "Ravi", "date_of_birth": "1990-01-01",
                   "time_of_birth": "10:30:00", "birth_city": "Pune", "birth_country": "India",
                   "preferred_language": "hi", "zodiac_sign": "capricorn"},
        "head_seq": 42,
        "total_messages": 42,
        "last_message_at": "2026-11-21T10:12:09.500Z"
    })
}

#[test]
fn auth_bodies_match_the_contract() {
    round_trip::<OtpGenerateRequest>(
        json!({"area_code":"+91","phone_number":"9876543210","user_type":"customer","purpose":"login"}),
    );
    round_trip::<OtpGenerateResponse>(
        json!({"request_id":"r1","expires_in":300,"resend_after":30}),
    );
    let dev: OtpGenerateResponse = round_trip(
        json!({"request_id":"r1","expires_in":300,"resend_after":30,"dev_otp":"123456"}),
    );
    assert_eq!(dev.dev_otp.as_deref(), Some("123456"));
    round_trip::<OtpValidateRequest>(
        json!({"request_id":"r1","otp_code":"123456","user_type":"guide",
        "device_info":{"device_type":"desktop","platform":"linux","browser":"webkit"},"phone_number":"9876543210","area_code":"+91"}),
    );
    let tokens: AuthTokens = round_trip(
        json!({"access_token":"a.b.c","refresh_token":"opaque","expires_in":900,
        "auth_user_id":7,"user_type":"customer","user_roles":["customer"],"session_id":"s1"}),
    );
    assert_eq!(tokens.auth_user_id, UserId(7));
    round_trip::<RefreshRequest>(json!({"refresh_token":"opaque"}));
    round_trip::<Profile>(
        json!({"id":7,"user_type":"customer","display_name":"Ravi","phone":"+919876543210"}),
    );
    round_trip::<ProfilePatch>(json!({"display_name":"Ravi K"}));
    round_trip::<Vec<SessionInfo>>(
        json!([{"session_id":"s1","device_info":{"device_type":"cli","platform":"linux"},
        "created_at":"2026-11-21T10:00:00.123Z","last_used_at":"2026-11-21T10:05:00.000Z","current":true}]),
    );
    round_trip::<Health>(json!({"status":"ok","version":"0.1.0"}));
    round_trip::<Health>(
        json!({"status":"degraded","version":"0.1.0","node":"a:7700",
        "backends":[{"name":"store","kind":"sqlite","ok":false,"error":"disk I/O error"}]}),
    );
}

#[test]
fn guide_bodies_match_the_contract() {
    let list: GuideList = round_trip(
        json!({"guides":[{"id":3,"display_name":"Asha","skills":["vedic"],"languages":["hi","en"],
        "rate_per_minute":25,"rating_avg":4.5,"rating_count":2,"status":"busy","last_seen":"2026-11-21T10:00:00.123Z"}],
        "next_cursor":"abc"}),
    );
    assert_eq!(list.guides[0].status, PresenceStatus::Busy);
    round_trip::<GuideStatusRequest>(json!({"status":"online"}));
}

#[test]
fn guide_ratings_extension_round_trips() {
    let page: GuideRatings = round_trip(json!({"rating_avg":4.5,"rating_count":2,"ratings":[
        {"consultation_id":"0193a5f0-0000-7000-8000-00000000000d","customer_name":"Meera","rating":5,
         "feedback_text":"clear","issues":["late"],"submitted_at":"2026-11-22T09:00:00.000Z"},
        {"consultation_id":"0193a5f0-0000-7000-8000-00000000000c","customer_name":"Ravi","rating":4,
         "issues":[],"submitted_at":"2026-11-21T10:13:00.000Z"}],
        "next_cursor":"abc"}));
    assert_eq!(page.ratings[0].issues, ["late"]);
    assert_eq!(page.ratings[1].feedback_text, None);
    let last: GuideRatings = round_trip(json!({"rating_avg":0.0,"rating_count":0,"ratings":[]}));
    assert_eq!(last.next_cursor, None);
    let bare: GuideRating =
        serde_json::from_value(json!({"consultation_id":"c","customer_name":"R",
        "rating":3,"submitted_at":"2026-11-21T10:13:00.000Z"}))
        .expect("issues may be absent");
    assert!(bare.issues.is_empty());
}

#[test]
fn customer_profiles_match_the_contract() {
    round_trip::<CustomerProfileInput>(
        json!({"name":"Ravi","date_of_birth":"1990-01-01","time_of_birth":"10:30:00",
        "birth_city":"Pune","birth_country":"India","preferred_language":"hi","zodiac_sign":"capricorn","gender":"male"}),
    );
}

#[test]
fn consultation_bodies_match_the_contract() {
    let c: Consultation = round_trip(consultation_json());
    assert_eq!(c.status, ConsultationStatus::Completed);
    assert_eq!(c.ended_by, Some(EndedBy::Customer));
    assert_eq!(
        c.intake.as_ref().map(|i| i.details.birth_city.as_str()),
        Some("Pune")
    );
    assert!(
        !c.rated,
        "a consultation of the contract, which has no such field, is not rated"
    );
    let mut rated = consultation_json();
    rated["rated"] = json!(true);
    assert!(
        round_trip::<Consultation>(rated).rated,
        "the extension travels when true"
    );
    round_trip::<CreateConsultationRequest>(
        json!({"guide_id":3,"mode":"chat","service_type":"consultation","customer_profile_id":4}),
    );
    round_trip::<JoinResponse>(
        json!({"consultation": consultation_json(), "participants":[{"user_id":7,"user_type":"customer",
        "display_name":"Ravi","is_online":true,"is_typing":false,"last_seen":"2026-11-21T10:00:00.123Z","unread_count":0,
        "delivered_seq":42,"read_seq":40}]}),
    );
    round_trip::<FeedbackRequest>(json!({"rating":5,"feedback_text":"clear","issues":["late"]}));
    round_trip::<FeedbackResponse>(
        json!({"feedback_id":"f1","rating":5,"submitted_at":"2026-11-21T10:13:00.000Z"}),
    );
    round_trip::<ChatList>(json!({"items":[{"consultation": consultation_json(),
        "other_party":{"id":3,"display_name":"Asha","status":"online"},"last_message": message_json(42),"unread_count":2}],
        "next_cursor":"n"}));
}

#[test]
fn message_bodies_match_the_contract() {
    let m: Message = round_trip(message_json(5));
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.sent_at.millis() % 1000, 123, "milliseconds survive");
    round_trip::<SendMessageRequest>(json!({"client_msg_id":"c1","kind":"text","content":"hello"}));
    round_trip::<MessagePage>(
        json!({"messages":[message_json(1), message_json(2)],"has_more":true}),
    );
    round_trip::<MediaInfo>(
        json!({"media_id":"m","url":"/api/v1/media/m","width":1,"height":2,"bytes":3,"content_type":"image/png"}),
    );
    round_trip::<Wallet>(json!({"balance":500,"currency":"INR"}));
}

#[test]
fn client_frames_match_the_contract() {
    let frames = [
        json!({"type":"subscribe","consultation_id":"c","after_seq":3}),
        json!({"type":"unsubscribe","consultation_id":"c"}),
        json!({"type":"send","client_msg_id":"m1","consultation_id":"c","kind":"text","content":"hi"}),
        json!({"type":"send","client_msg_id":"m2","consultation_id":"c","kind":"image","content":"","media_id":"x"}),
        json!({"type":"typing","consultation_id":"c","is_typing":true}),
        json!({"type":"delivered","consultation_id":"c","up_to_seq":9}),
        json!({"type":"read","consultation_id":"c","up_to_seq":9}),
        json!({"type":"watch_guides"}),
        json!({"type":"auth","access_token":"t"}),
        json!({"type":"ping"}),
    ];
    for f in frames {
        round_trip::<ClientFrame>(f);
    }
}

#[test]
fn server_frames_match_the_contract() {
    let frames = [
        json!({"type":"hello","user_id":7,"server_time":"2026-11-21T10:00:00.123Z","heartbeat_interval_ms":20000}),
        json!({"type":"subscribed","consultation_id":"c","head_seq":12}),
        json!({"type":"ack","client_msg_id":"m1","consultation_id":"c","seq":4,"message_id":"id","sent_at":"2026-11-21T10:00:00.123Z"}),
        json!({"type":"message","message": message_json(4)}),
        json!({"type":"typing","consultation_id":"c","user_id":3,"is_typing":false}),
        json!({"type":"receipt","consultation_id":"c","user_id":3,"delivered_seq":4,"read_seq":2}),
        json!({"type":"presence","user_id":3,"status":"online","last_seen":"2026-11-21T10:00:00.123Z"}),
        json!({"type":"consultation","event":"accepted","consultation": consultation_json()}),
        json!({"type":"unread","consultation_id":"c","unread_count":2}),
        json!({"type":"error","code":"INVALID_STATE","message":"not now","ref":"m1"}),
        json!({"type":"error","code":"VALIDATION_FAILED","message":"bad frame"}),
        json!({"type":"pong"}),
    ];
    for f in frames {
        round_trip::<ServerFrame>(f);
    }
}

#[test]
fn unknown_frame_types_are_refused() {
    assert!(serde_json::from_value::<ClientFrame>(json!({"type":"launch_missiles"})).is_err());
    assert!(
        serde_json::from_value::<ClientFrame>(json!({"type":"send","consultation_id":"c"}))
            .is_err()
    );
}

#[test]
fn every_error_code_has_the_status_of_the_contract() {
    let expected = [
        ("VALIDATION_FAILED", 400),
        ("OTP_INVALID", 400),
        ("OTP_EXPIRED", 400),
        ("AUTHENTICATION_FAILED", 401),
        ("TOKEN_EXPIRED", 401),
        ("FORBIDDEN", 403),
        ("NOT_FOUND", 404),
        ("CONSULTATION_NOT_FOUND", 404),
        ("INVALID_STATE", 409),
        ("CONSULTATION_ACTIVE", 409),
        ("GUIDE_UNAVAILABLE", 409),
        ("ALREADY_RATED", 409),
        ("INSUFFICIENT_BALANCE", 402),
        ("PAYLOAD_TOO_LARGE", 413),
        ("UNSUPPORTED_MEDIA_TYPE", 415),
        ("RATE_LIMITED", 429),
        ("OTP_ATTEMPTS_EXCEEDED", 429),
        ("INTERNAL", 500),
        ("PAYMENTS_UNAVAILABLE", 503),
        ("SMS_UNAVAILABLE", 503),
    ];
    assert_eq!(expected.len(), ErrorCode::ALL.len());
    for (name, status) in expected {
        let code: ErrorCode = serde_json::from_value(json!(name)).expect(name);
        assert_eq!(code.http_status(), status, "{name}");
        assert_eq!(code.as_str(), name);
        round_trip::<ErrorBody>(
            json!({"error":{"code":name,"message":"m","details":{"retry_after":3}}}),
        );
    }
}

#[test]
fn pair_id_joins_customer_and_guide() {
    assert_eq!(tara_protocol::ids::pair_id(UserId(7), UserId(3)), "7_3");
}

#[test]
fn wallet_and_billing_bodies_round_trip() {
    round_trip::<Wallet>(json!({"balance": 500, "currency": "INR"}));
    let entry = json!({"entry_id": "0193a5f0-0000-7000-8000-0000000000e1", "kind": "charge", "amount": -60,
        "balance_after": 440, "consultation_id": "0193a5f0-0000-7000-8000-00000000000c",
        "created_at": "2026-11-21T10:12:09.500Z"});
    let parsed: LedgerEntry = round_trip(entry.clone());
    assert_eq!(parsed.kind, LedgerKind::Charge);
    round_trip::<LedgerPage>(
        json!({"items": [entry], "next_cursor": "Mg", "balance": 440, "currency": "INR"}),
    );
    for kind in [
        "recharge",
        "charge",
        "earning",
        "commission",
        "refund",
        "adjustment",
    ] {
        let k: LedgerKind = serde_json::from_value(json!(kind)).expect(kind);
        assert_eq!(k.as_str(), kind);
    }
    round_trip::<RechargeRequest>(json!({"amount": 500, "idempotency_key": "k1"}));
    round_trip::<RechargeResponse>(
        json!({"payment_id": "p1", "status": "captured", "amount": 500, "currency": "INR",
        "wallet": {"balance": 500, "currency": "INR"}}),
    );
    round_trip::<RechargeResponse>(
        json!({"payment_id": "p2", "status": "created", "amount": 50, "currency": "INR"}),
    );
    let hook: PaymentWebhook =
        serde_json::from_value(json!({"status": "captured", "payment_id": "p2", "amount": 50}))
            .expect("status alias");
    assert_eq!(hook.event, "captured");
    round_trip::<Earnings>(
        json!({"total": 140, "today": 42, "currency": "INR", "items": [
        {"consultation_id": "0193a5f0-0000-7000-8000-00000000000c", "customer_name": "Ravi",
         "duration_seconds": 181, "amount": 42, "created_at": "2026-11-21T10:12:09.500Z"}]}),
    );
    let mut c = consultation_json();
    c["amount_charged"] = json!(300);
    round_trip::<Consultation>(c.clone());
    c["status"] = json!("in_progress");
    c["ends_at"] = json!("2026-11-21T10:20:09.000Z");
    for event in ["started", "ending_soon", "extended"] {
        round_trip::<ServerFrame>(
            json!({"type": "consultation", "event": event, "consultation": c,
            "ends_at": "2026-11-21T10:20:09.000Z"}),
        );
    }
    round_trip::<ServerFrame>(json!({"type": "wallet", "balance": 440, "currency": "INR"}));
}

#[test]
fn push_token_bodies_name_the_platform_and_default_to_full_previews() {
    use tara_protocol::devices::{PushPlatform, PushTokenDelete, PushTokenRequest};
    let req: PushTokenRequest = serde_json::from_value(json!({"platform":"ios","token":"ab12"}))
        .expect("parses without private_previews");
    assert_eq!(
        (req.platform, req.private_previews),
        (PushPlatform::Ios, false)
    );
    round_trip::<PushTokenRequest>(
        json!({"platform":"android","token":"f00","private_previews":true}),
    );
    assert!(
        serde_json::from_value::<PushTokenRequest>(json!({"platform":"web","token":"x"})).is_err()
    );
    round_trip::<PushTokenDelete>(json!({}));
    round_trip::<PushTokenDelete>(json!({"token":"f00"}));
}
