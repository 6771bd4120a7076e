//! Server settings. Defaults are the contract's numbers; tests shorten timers through them.

use std::path::PathBuf;
use std::time::Duration;

/// Everything `launch` needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite file, the signing key and media live.
    pub data_dir: PathBuf,
    /// Dev mode: `dev_otp` in responses, codes printed on stderr.
    pub dev: bool,
    /// Seed demo guides that are always online.
    pub demo: bool,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of an OTP code.
    pub otp_ttl: Duration,
    /// Minimum gap between two codes for one phone.
    pub otp_resend_after: Duration,
    /// Codes per phone per hour.
    pub otp_per_hour: u32,
    /// Wrong codes before a request is burned.
    pub otp_max_attempts: u32,
    /// Device sessions per user.
    pub max_sessions: usize,
    /// A request nobody answers is cancelled after this.
    pub request_timeout: Duration,
    /// A user stays online this long after the last connection closes.
    pub presence_grace: Duration,
    /// Server pings this often.
    pub heartbeat_interval: Duration,
    /// A peer silent this long is dropped.
    pub idle_timeout: Duration,
    /// Message bucket per sender per consultation: burst size.
    pub message_burst: u32,
    /// Message bucket refill per minute.
    pub messages_per_minute: u32,
    /// Frames queued for one connection before it is dropped as too slow.
    pub outgoing_queue: usize,
    /// Typing fan-out per sender: at most one per this interval.
    pub typing_interval: Duration,
    /// A typing state ends this long after the last `true`.
    pub typing_expiry: Duration,
    /// Bad frames per minute before a connection is closed with 4008.
    pub max_bad_frames: u32,
    /// How long shutdown waits for in-flight work.
    pub shutdown_grace: Duration,
    /// ISO 4217 code of wallets (`--currency`).
    pub currency: String,
    /// The platform's share of each charge, in percent (`--commission-percent`).
    pub commission_percent: u32,
    /// With it, recharges go through the webhook provider and its webhooks are checked with
    /// this secret (`--payment-webhook-secret`); without it, dev mode captures at once.
    pub payment_webhook_secret: Option<String>,
    /// What each new customer starts with in demo mode.
    pub demo_credit: i64,
    /// How often the server looks for wallet changes made by operator commands.
    pub wallet_poll: Duration,
    /// How long a billed minute is (a minute; tests shorten it).
    pub billing_minute: Duration,
}

impl Config {
    /// The contract's defaults, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            dev: false,
            demo: false,
            access_ttl: Duration::from_secs(900),
            otp_ttl: Duration::from_secs(300),
            otp_resend_after: Duration::from_secs(30),
            otp_per_hour: 5,
            otp_max_attempts: 5,
            max_sessions: 20,
            request_timeout: Duration::from_secs(120),
            presence_grace: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            message_burst: 10,
            messages_per_minute: 30,
            outgoing_queue: 1024,
            typing_interval: Duration::from_millis(500),
            typing_expiry: Duration::from_secs(6),
            max_bad_frames: 20,
            shutdown_grace: Duration::from_secs(10),
            currency: "INR".into(),
            commission_percent: 30,
            payment_webhook_secret: None,
            demo_credit: 500,
            wallet_poll: Duration::from_millis(250),
            billing_minute: Duration::from_secs(60),
        }
    }

    /// A new customer's starting balance: the demo credit in demo mode, else nothing.
    pub fn welcome_credit(&self) -> i64 {
        if self.demo {
            self.demo_credit
        } else {
            0
        }
    }

    /// Dev mode on.
    pub fn dev(mut self, on: bool) -> Self {
        self.dev = on;
        self
    }

    /// Demo guides on.
    pub fn demo(mut self, on: bool) -> Self {
        self.demo = on;
        self
    }
}
