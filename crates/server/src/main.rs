//! The `tara-server` command line: `serve`, `guide add`, `wallet credit|show|audit`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tara_server::config::{ApnsConfig, FcmConfig, PushConfig, Secret, SmsAuth, SmsGatewayConfig};
use tara_server::store::{
    postgres::PostgresStore, sqlite::SqliteStore, CommitListener, Committed, Credit, NewGuide,
    Store, Tariff,
};
use tara_server::Config;

/// Tara's backend: auth, guides, consultations, messages, media and realtime in one binary.
#[derive(Parser)]
#[command(name = "tara-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Manage guides.
    #[command(subcommand)]
    Guide(GuideCommand),
    /// Look at and credit wallets (works while the server runs).
    #[command(subcommand)]
    Wallet(WalletCommand),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700", env = "TARA_BIND")]
    bind: String,
    /// Where the database, signing key and media live.
    #[arg(long, default_value = "tara-data", env = "TARA_DATA_DIR")]
    data_dir: PathBuf,
    /// Dev mode: OTP codes in responses and on stderr.
    #[arg(long)]
    dev: bool,
    /// Add demo guides that are always online.
    #[arg(long)]
    demo: bool,
    /// This server's name in logs, /metrics, the realtime hello and /api/v1/health
    /// (default: host name and port).
    #[arg(long, env = "TARA_NODE_ID")]
    node_id: Option<String>,
    /// Store in PostgreSQL (postgres://user:password@host:port/database) instead of SQLite
    /// in --data-dir; the signing key and media stay in --data-dir.
    #[arg(long, env = "TARA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Carry realtime frames between the nodes of a cluster through this Redis
    /// (redis://host:port); every node of one cluster names the same Redis and database.
    #[arg(long, env = "TARA_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Currency of wallets (ISO 4217).
    #[arg(long, default_value = "INR", env = "TARA_CURRENCY")]
    currency: String,
    /// The platform's share of every charge, in percent.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=100))]
    commission_percent: u32,
    /// Take recharges through a payment gateway that confirms them by webhook, signed with
    /// this secret (HMAC-SHA256 in X-Tara-Signature). Without it, only --dev takes recharges
    /// (captured at once).
    #[arg(long, env = "TARA_PAYMENT_WEBHOOK_SECRET", hide_env_values = true)]
    payment_webhook_secret: Option<String>,
    /// For tests of the balance timer across restarts: a billed minute of this many ms.
    #[arg(long, hide = true, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    billing_minute_ms: u64,
    /// A running consultation where nobody sends, reads or types for this many minutes is
    /// warned, and ended two minutes later (charged up to its last activity).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1440))]
    idle_minutes: u64,
    /// Lift the per-IP limits (login codes, logins, realtime connections). Behind a reverse
    /// proxy every request comes from the proxy's address, so those limits would be global.
    #[arg(long)]
    no_per_ip_limits: bool,
    #[command(flatten)]
    sms: SmsArgs,
    #[command(flatten)]
    push: PushArgs,
}

/// Login codes by an HTTP SMS gateway.
#[derive(Args, Clone)]
#[command(next_help_heading = "SMS gateway")]
struct SmsArgs {
    /// Where to POST each login code. Without it, --dev prints codes and production sends none.
    #[arg(long, env = "TARA_SMS_URL")]
    sms_url: Option<String>,
    /// The gateway's credential (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "TARA_SMS_TOKEN", hide_env_values = true)]
    sms_token: Option<String>,
    /// `bearer` (Authorization: Bearer TOKEN), `basic` (TOKEN is user:password), or
    /// `header:NAME` (the token as header NAME, e.g. header:authkey).
    #[arg(long, default_value = "bearer", env = "TARA_SMS_AUTH")]
    sms_auth: String,
    /// The body, with {phone} (+919876543210), {phone_digits} (919876543210), {text} and
    /// {code} filled in and escaped for --sms-content-type.
    #[arg(long, default_value = tara_server::config::DEFAULT_SMS_TEMPLATE, env = "TARA_SMS_TEMPLATE")]
    sms_template: String,
    /// The body's content type, e.g. application/x-www-form-urlencoded for Twilio.
    #[arg(
        long,
        default_value = "application/json",
        env = "TARA_SMS_CONTENT_TYPE"
    )]
    sms_content_type: String,
    /// Seconds one attempt may take.
    #[arg(long, default_value_t = 10)]
    sms_timeout: u64,
    /// Further attempts after a 5xx, a 429 or no answer (waiting 0.5 s, 1 s, 2 s, …).
    #[arg(long, default_value_t = 2)]
    sms_retries: u32,
}

/// Pushes to phones: FCM for Android, APNs for iOS.
#[derive(Args, Clone)]
#[command(next_help_heading = "Push")]
struct PushArgs {
    /// The FCM service-account JSON file (from the Firebase console); enables Android pushes.
    #[arg(long, env = "TARA_FCM_SERVICE_ACCOUNT")]
    fcm_service_account: Option<PathBuf>,
    /// FCM's base URL.
    #[arg(long, default_value = tara_server::config::FCM_BASE_URL, env = "TARA_FCM_URL")]
    fcm_url: String,
    /// The APNs signing key (.p8); enables iOS pushes with --apns-key-id, --apns-team-id and
    /// --apns-topic.
    #[arg(long, env = "TARA_APNS_KEY")]
    apns_key: Option<PathBuf>,
    /// The .p8 key's id.
    #[arg(long, env = "TARA_APNS_KEY_ID")]
    apns_key_id: Option<String>,
    /// The Apple developer team id.
    #[arg(long, env = "TARA_APNS_TEAM_ID")]
    apns_team_id: Option<String>,
    /// The iOS app's bundle id (sent as apns-topic).
    #[arg(long, env = "TARA_APNS_TOPIC")]
    apns_topic: Option<String>,
    /// APNs' base URL (https://api.sandbox.push.apple.com for development builds).
    #[arg(long, default_value = tara_server::config::APNS_BASE_URL, env = "TARA_APNS_URL")]
    apns_url: String,
}

impl SmsArgs {
    fn config(&self) -> anyhow::Result<Option<SmsGatewayConfig>> {
        let Some(url) = &self.sms_url else {
            if self.sms_token.is_some() {
                anyhow::bail!("--sms-token needs --sms-url");
            }
            return Ok(None);
        };
        let token = self.sms_token.clone().unwrap_or_default();
        let auth = match self.sms_auth.as_str() {
            "bearer" => SmsAuth::Bearer,
            "basic" => SmsAuth::Basic,
            other => match other.strip_prefix("header:") {
                Some(name) if !name.is_empty() => SmsAuth::Header(name.to_owned()),
                _ => anyhow::bail!("--sms-auth must be bearer, basic or header:NAME"),
            },
        };
        if token.is_empty() {
            anyhow::bail!("--sms-url needs --sms-token (or TARA_SMS_TOKEN)");
        }
        let mut gateway = SmsGatewayConfig::new(url, token);
        gateway.auth = auth;
        gateway.template = self.sms_template.clone();
        gateway.content_type = self.sms_content_type.clone();
        gateway.timeout = Duration::from_secs(self.sms_timeout.max(1));
        gateway.retries = self.sms_retries;
        Ok(Some(gateway))
    }
}

impl PushArgs {
    fn config(&self) -> anyhow::Result<PushConfig> {
        let mut push = PushConfig::default();
        if let Some(path) = &self.fcm_service_account {
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --fcm-service-account {}", path.display()))?;
            push.fcm = Some(FcmConfig {
                service_account_json: Secret::new(json),
                base_url: self.fcm_url.clone(),
            });
        }
        if let Some(path) = &self.apns_key {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --apns-key {}", path.display()))?;
            let need = |v: &Option<String>, flag: &str| {
                v.clone()
                    .filter(|s| !s.trim().is_empty())
                    .with_context(|| format!("--apns-key needs {flag}"))
            };
            push.apns = Some(ApnsConfig {
                key_pem: Secret::new(pem),
                key_id: need(&self.apns_key_id, "--apns-key-id")?,
                team_id: need(&self.apns_team_id, "--apns-team-id")?,
                topic: need(&self.apns_topic, "--apns-topic")?,
                base_url: self.apns_url.clone(),
            });
        }
        Ok(push)
    }
}

#[derive(Subcommand)]
enum GuideCommand {
    /// Add a guide who can then log in with this phone.
    Add(GuideAdd),
}

#[derive(Args)]
struct GuideAdd {
    #[command(flatten)]
    db: Database,
    /// Full phone number with country code, e.g. +919876543210.
    #[arg(long)]
    phone: String,
    /// Display name.
    #[arg(long)]
    name: String,
    /// Price per minute.
    #[arg(long)]
    rate: i64,
    /// Comma-separated skills.
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
    /// Comma-separated languages.
    #[arg(long, value_delimiter = ',')]
    languages: Vec<String>,
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Add money to a user's wallet (an adjustment in the ledger); their devices see it.
    Credit(WalletCredit),
    /// A user's balance.
    Show(WalletShow),
    /// Checks that every cached balance is the sum of its ledger rows; exits 1 if not.
    Audit(WalletStore),
}

/// Which database a command works on.
#[derive(Args)]
struct Database {
    /// Where the database lives (SQLite).
    #[arg(long, default_value = "tara-data", env = "TARA_DATA_DIR")]
    data_dir: PathBuf,
    /// The PostgreSQL the servers store in, instead of SQLite in --data-dir.
    #[arg(long, env = "TARA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl Database {
    /// Opens the store these flags name.
    async fn open(&self, tariff: Tariff) -> anyhow::Result<Arc<dyn Store>> {
        Ok(
            match self
                .database_url
                .as_deref()
                .filter(|u| !u.trim().is_empty())
            {
                // The URL is not echoed: it may hold a password.
                Some(url) => Arc::new(
                    PostgresStore::open(url, Arc::new(NoListener))
                        .await
                        .map_err(|e| anyhow::anyhow!("--database-url: cannot open the store: {e}"))?
                        .with_tariff(tariff),
                ),
                None => Arc::new(
                    SqliteStore::open(&self.data_dir, Arc::new(NoListener))?.with_tariff(tariff),
                ),
            },
        )
    }
}

#[derive(Args)]
struct WalletStore {
    #[command(flatten)]
    db: Database,
    /// Currency of a wallet opened by this command.
    #[arg(long, default_value = "INR", env = "TARA_CURRENCY")]
    currency: String,
}

#[derive(Args)]
struct WalletCredit {
    #[command(flatten)]
    store: WalletStore,
    /// The user's id.
    #[arg(long)]
    user: i64,
    /// How much to add, in whole units.
    #[arg(long)]
    amount: i64,
    /// Why, kept in the ledger.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Args)]
struct WalletShow {
    #[command(flatten)]
    store: WalletStore,
    /// The user's id.
    #[arg(long)]
    user: i64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tara-server: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tara_server=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .event_format(NodeFormat::default())
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Some(Command::Guide(GuideCommand::Add(args))) => runtime.block_on(add_guide(args)),
        Some(Command::Wallet(cmd)) => runtime.block_on(wallet(cmd)),
        Some(Command::Serve(args)) => runtime.block_on(serve(*args)),
        None => runtime.block_on(serve(cli.serve)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::new(args.data_dir).dev(args.dev).demo(args.demo);
    config.database_url = args.database_url.filter(|u| !u.trim().is_empty());
    config.redis_url = args.redis_url.filter(|u| !u.trim().is_empty());
    config.sms = args.sms.config()?;
    config.push = args.push.config()?;
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let port = listener.local_addr().ok().map(|a| a.port());
    let node = args
        .node_id
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| tara_server::config::default_node_id(port));
    if node.len() > 128 || node.chars().any(|c| c.is_control()) {
        anyhow::bail!("--node-id must be at most 128 characters with no control characters");
    }
    let _ = NODE.set(node.clone());
    config.node_id = node;
    let currency = args.currency.trim().to_ascii_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        anyhow::bail!("--currency must be a three-letter ISO 4217 code, like INR");
    }
    config.currency = currency;
    config.commission_percent = args.commission_percent;
    config.billing_minute = Duration::from_millis(args.billing_minute_ms);
    config.idle_after = Duration::from_secs(args.idle_minutes * 60);
    if args.no_per_ip_limits {
        config.otp_per_ip_burst = u32::MAX / 2;
        config.otp_per_ip_per_hour = u32::MAX / 2;
        config.logins_per_ip_burst = u32::MAX / 2;
        config.logins_per_ip_per_minute = u32::MAX / 2;
        config.max_connections_per_ip = usize::MAX / 2;
    }
    config.payment_webhook_secret = args.payment_webhook_secret.filter(|s| !s.trim().is_empty());
    tara_server::launch(config, listener, shutdown_signal()).await
}

/// This node's name, set once the listener is bound; every log line after that carries it.
static NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The usual log line with `node=…` in front, so the logs of several nodes can be merged.
#[derive(Default)]
struct NodeFormat(tracing_subscriber::fmt::format::Format);

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for NodeFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if let Some(node) = NODE.get() {
            write!(writer, "node={node} ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

struct NoListener;

impl CommitListener for NoListener {
    fn committed(&self, _batch: &[Committed]) {}
}

async fn add_guide(args: GuideAdd) -> anyhow::Result<()> {
    let phone = args.phone.trim().to_owned();
    let digits = phone
        .strip_prefix('+')
        .context("--phone must start with + and the country code")?;
    if digits.len() < 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
        anyhow::bail!("--phone must be + and digits, like +919876543210");
    }
    if args.name.trim().is_empty() {
        anyhow::bail!("--name must not be empty");
    }
    if args.rate < 0 {
        anyhow::bail!("--rate must not be negative");
    }
    let store = args.db.open(Tariff::default()).await?;
    let clean = |v: Vec<String>| {
        v.into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let guide = NewGuide {
        phone,
        name: args.name.trim().to_owned(),
        rate_per_minute: args.rate,
        skills: clean(args.skills),
        languages: clean(args.languages),
        available: false,
    };
    let id = store
        .add_guide(guide, chrono::Utc::now().timestamp_millis())
        .await?;
    println!("{}", serde_json::json!({ "guide_id": id.0 }));
    Ok(())
}

async fn open_wallets(args: &WalletStore) -> anyhow::Result<Arc<dyn Store>> {
    let currency = args.currency.trim().to_ascii_uppercase();
    args.db
        .open(Tariff {
            currency,
            ..Tariff::default()
        })
        .await
}

async fn wallet(cmd: WalletCommand) -> anyhow::Result<()> {
    match cmd {
        WalletCommand::Credit(args) => {
            if !(1..=1_000_000_000).contains(&args.amount) {
                anyhow::bail!("--amount must be a whole number from 1 to 1000000000");
            }
            let store = open_wallets(&args.store).await?;
            let w = store
                .credit(Credit {
                    user_id: tara_protocol::UserId(args.user),
                    amount: args.amount,
                    note: args
                        .note
                        .map(|n| n.trim().to_owned())
                        .filter(|n| !n.is_empty()),
                    now_ms: chrono::Utc::now().timestamp_millis(),
                })
                .await?;
            print_wallet(&w);
        }
        WalletCommand::Show(args) => {
            let store = open_wallets(&args.store).await?;
            let id = tara_protocol::UserId(args.user);
            if store.user(id).await?.is_none() {
                anyhow::bail!("no user {id}");
            }
            print_wallet(&store.wallet(id).await?);
        }
        WalletCommand::Audit(args) => {
            let store = open_wallets(&args).await?;
            let wrong = store.ledger_audit().await?;
            for (user, cached, sum) in &wrong {
                println!(
                    "{}",
                    serde_json::json!({ "user_id": user.0, "balance": cached, "ledger_sum": sum })
                );
            }
            if !wrong.is_empty() {
                anyhow::bail!("{} wallets do not match their ledger", wrong.len());
            }
            println!("{}", serde_json::json!({ "ok": true }));
        }
    }
    Ok(())
}

fn print_wallet(w: &tara_server::store::WalletRow) {
    println!(
        "{}",
        serde_json::json!({ "user_id": w.user_id.0, "balance": w.balance, "currency": w.currency })
    );
}
