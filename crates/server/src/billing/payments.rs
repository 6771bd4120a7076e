//! How money comes in: a [`PaymentProvider`] behind `POST /api/v1/wallet/recharge`.
//!
//! - [`DevProvider`] (only with `--dev`): the payment is captured the moment it is asked for.
//! - [`WebhookProvider`]: the shape real gateways (Razorpay, Stripe, PayU) share. A recharge
//!   opens a payment and answers `created`; the customer pays at the gateway; the gateway then
//!   posts the outcome to `POST /api/v1/payments/webhook`, signed with
//!   `X-Tara-Signature: hex(HMAC-SHA256(secret, raw body))`. Only a correctly signed `captured`
//!   event credits the wallet, and only once per payment however often it is delivered.

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "x-tara-signature";

/// A source of payments.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Stored with each payment it opens.
    fn name(&self) -> &'static str;
    /// Whether a payment is captured (and the wallet credited) when it is opened.
    fn captures_at_once(&self) -> bool;
    /// Checks that a webhook delivery came from the gateway; `AUTHENTICATION_FAILED` if not.
    fn verify(&self, signature: Option<&str>, body: &[u8]) -> Result<()>;
}

/// Dev mode: every recharge is paid at once. No webhooks.
pub struct DevProvider;

impl PaymentProvider for DevProvider {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn captures_at_once(&self) -> bool {
        true
    }

    fn verify(&self, _signature: Option<&str>, _body: &[u8]) -> Result<()> {
        Err(Error::auth(
            "this server takes no payment webhooks (dev payments are captured at once)",
        ))
    }
}

/// A gateway that confirms payments by signed webhook.
pub struct WebhookProvider {
    secret: Vec<u8>,
}

impl WebhookProvider {
    /// A provider checking signatures with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl PaymentProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn captures_at_once(&self) -> bool {
        false
    }

    fn verify(&self, signature: Option<&str>, body: &[u8]) -> Result<()> {
        let given = signature
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::auth("the webhook is not signed (X-Tara-Signature)"))?;
        let given = decode_hex(given)
            .ok_or_else(|| Error::auth("X-Tara-Signature is not a hex HMAC-SHA256"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .map_err(|_| Error::internal("the webhook secret cannot key an HMAC"))?;
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&given)
            .map_err(|_| Error::auth("the webhook signature does not match"))
    }
}

/// `hex(HMAC-SHA256(secret, body))`, as a gateway signs (tests and tools sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tara_protocol::ErrorCode;

    #[test]
    fn a_signed_body_verifies_and_anything_else_is_refused() {
        let p = WebhookProvider::new("s3cret");
        let body = br#"{"event":"captured","payment_id":"p1","amount":100}"#;
        let sig = sign(b"s3cret", body);
        assert!(p.verify(Some(&sig), body).is_ok());
        assert!(
            p.verify(Some(&sig.to_uppercase()), body).is_ok(),
            "hex in either case"
        );
        let refused = |sig: Option<&str>, body: &[u8]| {
            p.verify(sig, body).expect_err("should be refused").code
        };
        assert_eq!(refused(None, body), ErrorCode::AuthenticationFailed);
        assert_eq!(refused(Some(""), body), ErrorCode::AuthenticationFailed);
        assert_eq!(refused(Some("zz"), body), ErrorCode::AuthenticationFailed);
        assert_eq!(refused(Some("ab"), body), ErrorCode::AuthenticationFailed);
        let other = br#"{"event":"captured","payment_id":"p1","amount":1000}"#;
        assert_eq!(refused(Some(&sig), other), ErrorCode::AuthenticationFailed);
        assert_eq!(
            refused(Some(&sign(b"wrong", body)), body),
            ErrorCode::AuthenticationFailed
        );
        assert_eq!(refused(Some("é"), body), ErrorCode::AuthenticationFailed);
    }

    #[test]
    fn the_dev_provider_takes_no_webhooks() {
        let sig = sign(b"", b"{}");
        assert!(DevProvider.verify(Some(&sig), b"{}").is_err());
        assert!(DevProvider.captures_at_once());
    }
}
