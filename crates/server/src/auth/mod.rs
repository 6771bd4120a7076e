//! Authentication: OTP codes, signed access tokens, rotating refresh tokens, the request extractor.

pub mod extract;
pub mod otp;
pub mod sms;
pub mod sms_gateway;
pub mod tokens;

pub use extract::AuthUser;
