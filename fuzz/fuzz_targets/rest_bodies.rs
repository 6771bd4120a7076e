//! Any body to every REST endpoint that takes one, on the real server: never a 500, never a
//! hang, and every refusal is the contract's error body.
//! The first byte picks the endpoint; the rest is the body, sent as JSON. In the body, `$C`
//! stands for the running consultation's id and `$G` for the guide's user id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reqwest::Method;
use tara_fuzz::{live, rt};

/// Who calls.
#[derive(Clone, Copy)]
enum As {
    Nobody,
    Customer,
    Guide,
}

/// Every endpoint with a body, except those that end the fuzzing session's own sign-in.
const ENDPOINTS: &[(&str, &str, As)] = &[
    ("POST", "/auth/otp/generate", As::Nobody),
    ("POST", "/auth/otp/validate", As::Nobody),
    ("POST", "/auth/refresh", As::Nobody),
    ("PATCH", "/auth/profile", As::Customer),
    ("POST", "/devices/push-token", As::Customer),
    ("DELETE", "/devices/push-token", As::Guide),
    ("POST", "/guide/status", As::Guide),
    ("POST", "/wallet/recharge", As::Customer),
    ("POST", "/payments/webhook", As::Nobody),
    ("POST", "/customers/$U/profile", As::Customer),
    ("POST", "/customers/$U/profiles", As::Customer),
    ("POST", "/consultation", As::Customer),
    ("POST", "/consultation/$C/accept", As::Guide),
    ("POST", "/consultation/$C/reject", As::Guide),
    ("POST", "/consultation/$C/cancel", As::Customer),
    ("POST", "/consultation/$C/join", As::Customer),
    ("PATCH", "/consultation/$C/complete", As::Guide),
    ("POST", "/consultation/$C/feedback", As::Customer),
    ("POST", "/consultation/$C/messages", As::Customer),
    ("POST", "/consultation/$C/messages", As::Guide),
    ("POST", "/media", As::Customer),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let live = live();
    let (method, path, who) = ENDPOINTS[pick as usize % ENDPOINTS.len()];
    let fill = |s: &str| {
        s.replace("$C", &live.consultation_id)
            .replace("$G", &live.guide.id.to_string())
            .replace("$U", &live.customer.id.to_string())
    };
    let body = match std::str::from_utf8(body) {
        Ok(t) => fill(t).into_bytes(),
        Err(_) => body.to_vec(),
    };
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let content_type = if path == "/media" {
        "image/jpeg"
    } else {
        "application/json"
    };
    let mut req = live
        .http
        .request(method, live.url(&fill(path)))
        .header("content-type", content_type)
        .body(body);
    match who {
        As::Nobody => {}
        As::Customer => req = req.bearer_auth(&live.customer.token),
        As::Guide => req = req.bearer_auth(&live.guide.token),
    }
    rt().block_on(async {
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        let status = res.status();
        let text = res
            .text()
            .await
            .unwrap_or_else(|e| panic!("{path}: the body did not arrive: {e}"));
        assert!(
            status.as_u16() != 500,
            "{path} answered 500 to bad input: {text}"
        );
        if status.is_client_error() || status.is_server_error() {
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{path} {status}: not a JSON error: {text}"));
            assert!(
                v["error"]["code"].is_string(),
                "{path} {status}: no error code: {text}"
            );
        }
    });
});
