//! The two JWTs the push providers want: RS256 for Google's OAuth exchange (a service
//! account's RSA key) and ES256 for APNs (a P-256 .p8 key). Compact form, base64url, no padding.

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::Value;

/// `header.claims`, each base64url JSON.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// An RSA key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, as in service-account JSON) or PKCS#1.
pub fn rsa_key(pem: &str) -> anyhow::Result<rsa::pkcs1v15::SigningKey<sha2::Sha256>> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .context("the private key is not an RSA key in PEM")?;
    Ok(rsa::pkcs1v15::SigningKey::new(key))
}

/// A P-256 key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, as Apple's .p8 files are) or SEC1.
pub fn p256_key(pem: &str) -> anyhow::Result<p256::ecdsa::SigningKey> {
    use p256::pkcs8::DecodePrivateKey;
    let secret = p256::SecretKey::from_pkcs8_pem(pem)
        .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
        .context("the key is not a P-256 key in PEM (an APNs .p8 file)")?;
    Ok(p256::ecdsa::SigningKey::from(secret))
}

/// RS256: RSASSA-PKCS1-v1_5 with SHA-256.
pub fn rs256(
    key: &rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let input = signing_input(&header, claims);
    let sig = key.sign(input.as_bytes()).to_vec();
    format!("{input}.{}", B64.encode(sig))
}

/// ES256: ECDSA P-256 with SHA-256, the signature as r‖s (64 bytes), not DER.
pub fn es256(key: &p256::ecdsa::SigningKey, kid: &str, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer;
    let header = serde_json::json!({"alg": "ES256", "kid": kid});
    let input = signing_input(&header, claims);
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}
