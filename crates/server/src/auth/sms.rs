//! Delivering codes. The console sender prints them; a gateway implements the same trait.

use async_trait::async_trait;

/// Something that can deliver a login code to a phone.
#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Sends `code` to `phone` (full, with country code).
    async fn send_code(&self, phone: &str, code: &str) -> anyhow::Result<()>;
}

/// Prints `dev otp for +919876543210: 123456` on stderr (dev mode only).
pub struct ConsoleSms;

#[async_trait]
impl SmsSender for ConsoleSms {
    async fn send_code(&self, phone: &str, code: &str) -> anyhow::Result<()> {
        eprintln!("dev otp for {phone}: {code}");
        tracing::info!(%phone, "dev otp issued");
        Ok(())
    }
}

/// Outside dev mode with no gateway configured: codes go nowhere, and the log says so.
pub struct NoSms;

#[async_trait]
impl SmsSender for NoSms {
    async fn send_code(&self, phone: &str, _code: &str) -> anyhow::Result<()> {
        tracing::warn!(%phone, "no SMS gateway is configured; run with --dev to print codes");
        Ok(())
    }
}
