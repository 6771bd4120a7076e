//! The `tara-server` command line: `serve`, `guide add`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tara_server::store::{sqlite::SqliteStore, CommitListener, Committed, NewGuide, Store};
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
    Serve(ServeArgs),
    /// Manage guides.
    #[command(subcommand)]
    Guide(GuideCommand),
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
    /// PostgreSQL URL (not built yet; SQLite in --data-dir is used without it).
    #[arg(long, env = "TARA_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum GuideCommand {
    /// Add a guide who can then log in with this phone.
    Add(GuideAdd),
}

#[derive(Args)]
struct GuideAdd {
    /// Where the database lives.
    #[arg(long, default_value = "tara-data", env = "TARA_DATA_DIR")]
    data_dir: PathBuf,
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
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Some(Command::Guide(GuideCommand::Add(args))) => runtime.block_on(add_guide(args)),
        Some(Command::Serve(args)) => runtime.block_on(serve(args)),
        None => runtime.block_on(serve(cli.serve)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The URL is not echoed: it may hold a password.
    if args.database_url.is_some() {
        anyhow::bail!(
            "--database-url: the PostgreSQL backend is not built yet; leave it out to use SQLite in --data-dir"
        );
    }
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let config = Config::new(args.data_dir).dev(args.dev).demo(args.demo);
    tara_server::launch(config, listener, shutdown_signal()).await
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
    let store = SqliteStore::open(&args.data_dir, std::sync::Arc::new(NoListener))?;
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
