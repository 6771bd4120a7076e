//! Server settings. Defaults are the contract's numbers; tests shorten timers through them.

use std::path::PathBuf;
use std::time::Duration;

/// Everything `launch` needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite file, the signing key and media live.
    pub data_dir: PathBuf,
    /// PostgreSQL to store in instead of SQLite in `data_dir` (`postgres://…`); the signing
    /// key and media stay in `data_dir`.
    pub database_url: Option<String>,
    /// Redis that carries realtime frames between the nodes of a cluster (`redis://…`);
    /// without it, frames reach this node's connections only.
    pub redis_url: Option<String>,
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
    /// Code requests from one IP address, whatever the phones, at once (SMS pumping) ...
    pub otp_per_ip_burst: u32,
    /// ... and then this many an hour.
    pub otp_per_ip_per_hour: u32,
    /// Login attempts (`otp/validate`) from one IP address at once ...
    pub logins_per_ip_burst: u32,
    /// ... and then this many a minute.
    pub logins_per_ip_per_minute: u32,
    /// Realtime connections one user holds at once, over all their devices.
    pub max_connections_per_user: usize,
    /// Realtime connections from one IP address at once.
    pub max_connections_per_ip: usize,
    /// Device sessions per user.
    pub max_sessions: usize,
    /// A request nobody answers is cancelled after this.
    pub request_timeout: Duration,
    /// Requests waiting for one guide at once; past it new ones get `GUIDE_UNAVAILABLE`.
    pub max_pending_requests_per_guide: usize,
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
    /// A request's headers must all arrive within this, or the connection is closed
    /// (slowloris). An idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
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
    /// A running consultation where nobody sends, reads or types this long is warned
    /// (`--idle-minutes`) ...
    pub idle_after: Duration,
    /// ... and ended this much later, charged up to its last activity.
    pub idle_grace: Duration,
    /// The customer is told once the guide's connections have all been gone this long.
    pub guide_away_after: Duration,
    /// The HTTP gateway login codes go through; without it, `--dev` prints them and
    /// production sends nothing.
    pub sms: Option<SmsGatewayConfig>,
    /// Push providers; with none configured, no push is sent.
    pub push: PushConfig,
    /// This server's name in logs, `/metrics`, `hello` and health (`--node-id`).
    pub node_id: String,
}

/// A secret setting (a token, a private key): its `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What `Debug` prints instead.
    pub const REDACTED: &'static str = "<redacted>";

    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

/// How the SMS gateway is told who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsAuth {
    /// `Authorization: Bearer TOKEN`.
    Bearer,
    /// `Authorization: Basic base64(TOKEN)`, with TOKEN as `user:password`.
    Basic,
    /// The token as the value of this header (MSG91's `authkey`).
    Header(String),
}

/// An HTTP SMS gateway: one POST per code.
#[derive(Debug, Clone)]
pub struct SmsGatewayConfig {
    /// Where to POST.
    pub url: String,
    /// The credential.
    pub token: Secret,
    /// How the credential is sent.
    pub auth: SmsAuth,
    /// The body, with `{phone}` (+919876543210), `{phone_digits}` (919876543210), `{text}`
    /// and `{code}` filled in, each escaped for the content type.
    pub template: String,
    /// The body's content type (JSON and form bodies get their values escaped).
    pub content_type: String,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Further attempts after a 5xx, a 429 or no answer.
    pub retries: u32,
    /// The wait before the first retry; doubled for each next one.
    pub backoff: Duration,
}

impl SmsGatewayConfig {
    /// A gateway at `url` with `token` as a bearer token and a JSON body
    /// `{"to": PHONE, "text": TEXT}`: 10 s per attempt, 2 retries from 500 ms.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: Secret::new(token),
            auth: SmsAuth::Bearer,
            template: DEFAULT_SMS_TEMPLATE.into(),
            content_type: "application/json".into(),
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(500),
        }
    }
}

/// The body sent to an SMS gateway unless `--sms-template` says otherwise.
pub const DEFAULT_SMS_TEMPLATE: &str = r#"{"to":"{phone}","text":"{text}"}"#;

/// Where pushes go. Each provider is optional; a device of a platform with no provider gets none.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Firebase Cloud Messaging (Android).
    pub fcm: Option<FcmConfig>,
    /// Apple Push Notification service (iOS).
    pub apns: Option<ApnsConfig>,
    /// Pushes waiting to go out at most; past it new ones are dropped (and counted), never
    /// waited for.
    pub queue: usize,
    /// Pushes in flight at once.
    pub concurrency: usize,
    /// How long one provider request may take.
    pub timeout: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            fcm: None,
            apns: None,
            queue: 1024,
            concurrency: 8,
            timeout: Duration::from_secs(10),
        }
    }
}

/// FCM HTTP v1 with a service account.
#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// The service-account JSON as Google hands it out (`project_id`, `client_email`,
    /// `private_key`, `token_uri`).
    pub service_account_json: Secret,
    /// Where `v1/projects/ID/messages:send` lives (`https://fcm.googleapis.com`).
    pub base_url: String,
}

/// APNs with a token-signing key (.p8).
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// The .p8 key, PEM (PKCS#8, P-256).
    pub key_pem: Secret,
    /// The key's id (10 characters, from the developer account).
    pub key_id: String,
    /// The team id.
    pub team_id: String,
    /// The app's bundle id, sent as `apns-topic`.
    pub topic: String,
    /// `https://api.push.apple.com`, or the sandbox, or a local stand-in in tests.
    pub base_url: String,
}

/// The host name, and the port when given: what a node is called without `--node-id`.
pub fn default_node_id(port: Option<u16>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// FCM's endpoint.
pub const FCM_BASE_URL: &str = "https://fcm.googleapis.com";
/// APNs' production endpoint (`https://api.sandbox.push.apple.com` for development builds).
pub const APNS_BASE_URL: &str = "https://api.push.apple.com";

impl Config {
    /// The contract's defaults, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            redis_url: None,
            dev: false,
            demo: false,
            access_ttl: Duration::from_secs(900),
            otp_ttl: Duration::from_secs(300),
            otp_resend_after: Duration::from_secs(30),
            otp_per_hour: 5,
            otp_max_attempts: 5,
            otp_per_ip_burst: 20,
            otp_per_ip_per_hour: 30,
            logins_per_ip_burst: 30,
            logins_per_ip_per_minute: 10,
            max_connections_per_user: 32,
            max_connections_per_ip: 256,
            max_sessions: 20,
            request_timeout: Duration::from_secs(120),
            max_pending_requests_per_guide: 20,
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
            header_read_timeout: Duration::from_secs(10),
            currency: "INR".into(),
            commission_percent: 30,
            payment_webhook_secret: None,
            demo_credit: 500,
            wallet_poll: Duration::from_millis(250),
            billing_minute: Duration::from_secs(60),
            idle_after: Duration::from_secs(10 * 60),
            idle_grace: Duration::from_secs(2 * 60),
            guide_away_after: Duration::from_secs(2 * 60),
            sms: None,
            push: PushConfig::default(),
            node_id: default_node_id(None),
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
