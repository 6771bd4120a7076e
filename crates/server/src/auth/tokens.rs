//! Access tokens (HS256 JWTs carrying sub, role, sid, iat, exp) and opaque refresh tokens.
//!
//! The signing key is 32 random bytes in the data dir, so tokens outlive a restart. Refresh
//! tokens are 32 random bytes; only their SHA-256 is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use tara_protocol::auth::UserType;
use tara_protocol::{SessionId, UserId};

type HmacSha256 = Hmac<Sha256>;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (JWT convention).
    pub sub: String,
    /// `customer` or `guide`.
    pub role: String,
    /// The device session.
    pub sid: String,
    /// Issued at, seconds.
    pub iat: i64,
    /// Expires at, seconds.
    pub exp: i64,
}

impl Claims {
    /// The user id.
    pub fn user_id(&self) -> Option<UserId> {
        self.sub.parse().ok().map(UserId)
    }

    /// The user type.
    pub fn user_type(&self) -> Option<UserType> {
        UserType::parse(&self.role)
    }

    /// The session.
    pub fn session_id(&self) -> SessionId {
        SessionId(self.sid.clone())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Well signed but past `exp`.
    Expired,
    /// Malformed, tampered or signed with another key.
    Invalid,
}

/// The server's secrets.
pub struct Keys {
    jwt: Vec<u8>,
    otp: Vec<u8>,
}

impl Keys {
    /// Reads the key file in `dir`, creating it (owner-only) on first start.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("signing.key");
        let secret = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= 32 => bytes,
            _ => {
                let mut bytes = vec![0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                write_private(&path, &bytes)?;
                bytes
            }
        };
        Ok(Self::from_secret(&secret))
    }

    /// Keys derived from one secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            jwt: derive(secret, b"tara access tokens"),
            otp: derive(secret, b"tara otp codes"),
        }
    }

    /// Signs claims into a compact JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = B64.encode(mac(&self.jwt, signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// Checks signature and expiry (`now` in seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let header = B64.decode(h).map_err(|_| TokenError::Invalid)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| TokenError::Invalid)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Invalid);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Invalid)?;
        let mut m =
            <HmacSha256 as Mac>::new_from_slice(&self.jwt).map_err(|_| TokenError::Invalid)?;
        m.update(h.as_bytes());
        m.update(b".");
        m.update(p.as_bytes());
        m.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
        let payload = B64.decode(p).map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
        if claims.user_id().is_none() || claims.user_type().is_none() {
            return Err(TokenError::Invalid);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The stored form of an OTP code: keyed by the server secret and the request.
    pub fn otp_hash(&self, request_id: &str, code: &str) -> Vec<u8> {
        mac(&self.otp, format!("{request_id}:{code}").as_bytes())
    }
}

fn derive(secret: &[u8], label: &[u8]) -> Vec<u8> {
    mac(secret, label)
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => Vec::new(),
    }
}

/// A fresh opaque refresh token.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// What is stored for a refresh token.
pub fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Compares secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "7".into(),
            role: "customer".into(),
            sid: "s".into(),
            iat: 100,
            exp,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let keys = Keys::from_secret(b"0123456789abcdef0123456789abcdef");
        let token = keys.sign(&claims(1000));
        assert_eq!(keys.verify(&token, 999), Ok(claims(1000)));
        assert_eq!(keys.verify(&token, 1000), Err(TokenError::Expired));
    }

    #[test]
    fn a_tampered_or_foreign_token_is_invalid() {
        let keys = Keys::from_secret(b"0123456789abcdef0123456789abcdef");
        let token = keys.sign(&claims(1000));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims(1000);
        forged.sub = "8".into();
        parts[1] = B64.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(keys.verify(&parts.join("."), 1), Err(TokenError::Invalid));
        let other = Keys::from_secret(b"another secret of thirty-two b..");
        assert_eq!(other.verify(&token, 1), Err(TokenError::Invalid));
        assert_eq!(keys.verify("not a token", 1), Err(TokenError::Invalid));
        let none_alg = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(keys.verify(&none_alg, 1), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_are_unique_and_stored_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(refresh_hash(&a), refresh_hash(&a));
        assert_ne!(refresh_hash(&a), a.as_bytes());
    }

    #[test]
    fn otp_hashes_depend_on_request_and_code() {
        let keys = Keys::from_secret(b"0123456789abcdef0123456789abcdef");
        assert_eq!(keys.otp_hash("r", "123456"), keys.otp_hash("r", "123456"));
        assert_ne!(keys.otp_hash("r", "123456"), keys.otp_hash("r", "123457"));
        assert_ne!(keys.otp_hash("r", "123456"), keys.otp_hash("q", "123456"));
    }

    #[test]
    fn the_key_file_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Keys::load_or_create(dir.path()).expect("create");
        let b = Keys::load_or_create(dir.path()).expect("load");
        let token = a.sign(&claims(1000));
        assert!(b.verify(&token, 1).is_ok());
    }
}
