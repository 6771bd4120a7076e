//! `tara-cli`: the engine on the command line, for scripts, tests and benchmarks. Every command
//! prints JSON lines on stdout; errors print `{"error":{"code","message"}}` and exit non-zero.

mod chat;
mod phone;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;
use tara_core::{Client, ClientConfig, Event, MessageStatus};
use tara_protocol::auth::UserType;
use tara_protocol::{ConsultationId, UserId};

/// Tara on the command line.
#[derive(Parser)]
#[command(name = "tara-cli", version)]
struct Cli {
    /// The server.
    #[arg(
        long,
        global = true,
        env = "TARA_SERVER",
        default_value = "http://127.0.0.1:7700"
    )]
    server: String,
    /// Where this identity's store and token file live.
    #[arg(long, global = true, env = "TARA_PROFILE")]
    profile: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in with a code sent by SMS.
    Login {
        /// Phone with country code, e.g. +919876543210.
        #[arg(long)]
        phone: String,
        /// customer or guide.
        #[arg(long = "as", value_parser = ["customer", "guide"])]
        as_: String,
        /// The code; `-` reads it from stdin.
        #[arg(long, conflicts_with = "dev_otp")]
        otp: Option<String>,
        /// Use the code a dev-mode server returns.
        #[arg(long)]
        dev_otp: bool,
    },
    /// Who is signed in.
    Whoami,
    /// Sign out on this profile.
    Logout,
    /// The guides.
    Guides {
        /// Only those online now.
        #[arg(long)]
        online: bool,
    },
    /// A guide goes online or offline.
    Status {
        /// online or offline.
        #[arg(value_parser = ["online", "offline"])]
        status: String,
    },
    /// Ask a guide for a consultation.
    Request {
        /// The guide's id.
        guide_id: i64,
        /// Birth details to attach.
        #[arg(long)]
        profile_id: Option<i64>,
    },
    /// A guide's pending requests.
    Requests,
    /// Accept a request (guide).
    Accept { id: String },
    /// Decline a request (guide).
    Reject { id: String },
    /// Withdraw a request (customer).
    Cancel { id: String },
    /// Open the chat.
    Join { id: String },
    /// End the consultation.
    Complete { id: String },
    /// Rate a completed consultation (customer).
    Rate {
        /// The consultation.
        id: String,
        /// 1 to 5.
        #[arg(long)]
        stars: i64,
        /// Words.
        #[arg(long)]
        text: Option<String>,
    },
    /// Queue a text and try to deliver it for up to --wait seconds.
    Send {
        /// The consultation.
        id: String,
        /// The text.
        text: String,
        /// Seconds to try.
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
    /// Compress and queue an image, then try to deliver it for up to --wait seconds.
    SendImage {
        /// The consultation.
        id: String,
        /// The image file.
        path: PathBuf,
        /// Seconds to try.
        #[arg(long, default_value_t = 15.0)]
        wait: f64,
    },
    /// Connect, resume, drain the outbox; exit 0 when nothing is left, 3 if still offline.
    Sync {
        /// Seconds to try.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Messages of a consultation, oldest first.
    History {
        /// The consultation.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Messages waiting to be sent, and failed ones.
    Outbox,
    /// The wallet's balance.
    Wallet,
    /// The wallet's ledger, newest first: one entry per line.
    Ledger {
        /// How many (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Pay money into the wallet (customer).
    Recharge {
        /// Whole units, 1 to 1000000.
        amount: i64,
        /// Names this recharge: the same key again never pays twice. A fresh one by default.
        #[arg(long)]
        key: Option<String>,
    },
    /// What a guide earned: today, in total, and the newest consultations (one JSON line).
    Earnings {
        /// How many consultations (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// An open chat window driven from stdin: `say TEXT`, `typing`, `read`, `report`
    /// (one per line); prints what it queued and, on `report`, what it shows.
    Chat {
        /// The consultation.
        id: String,
    },
    /// Events as they come (of one consultation, or all); holds the connection open.
    Tail {
        /// Only this consultation.
        id: Option<String>,
    },
}

const EXIT_REFUSED: i32 = 1;
const EXIT_OFFLINE: i32 = 3;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tara-cli: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(e) => {
                let (code, message) = match e.downcast_ref::<tara_core::Error>() {
                    Some(te) => (te.code.clone(), te.message.clone()),
                    None => ("CLI".to_owned(), format!("{e:#}")),
                };
                println!("{}", json!({"error": {"code": code, "message": message}}));
                eprintln!("tara-cli: {message}");
                1
            }
        }
    });
    std::process::exit(code);
}

fn print(v: impl serde::Serialize) {
    match serde_json::to_string(&v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("tara-cli: {e}"),
    }
}

fn default_profile() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|x| !x.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("tara").join("cli").join("default")
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let profile = cli.profile.clone().unwrap_or_else(default_profile);
    let mut config = ClientConfig::new(&cli.server, &profile);
    config.device_info.device_type = "cli".into();
    config.auto_connect = false;
    let (client, mut events) = Client::start(config).await?;
    let id = |s: &str| ConsultationId(s.to_owned());
    match cli.command {
        Command::Login {
            phone,
            as_,
            otp,
            dev_otp,
        } => {
            let (area, number) = phone::split(&phone).map_err(anyhow::Error::msg)?;
            let user_type = UserType::parse(&as_).context("--as is customer or guide")?;
            let sent = client.request_otp(&area, &number, user_type).await?;
            let code = if dev_otp {
                sent.dev_otp
                    .clone()
                    .context("the server is not in dev mode; it sent no code back")?
            } else {
                match otp.as_deref() {
                    Some("-") | None => {
                        if otp.is_none() {
                            eprintln!("code sent to {area} {number}; type it:");
                        }
                        let mut line = String::new();
                        std::io::stdin().lock().read_line(&mut line)?;
                        line.trim().to_owned()
                    }
                    Some(c) => c.to_owned(),
                }
            };
            let who = client
                .verify_otp(&area, &number, user_type, &sent.request_id, &code)
                .await?;
            print(
                json!({"signed_in": {"user_id": who.user_id, "user_type": who.user_type, "session_id": who.session_id}}),
            );
        }
        Command::Whoami => print(client.whoami().await?),
        Command::Logout => {
            client.sign_out().await?;
            print(json!({"signed_out": true}));
        }
        Command::Guides { online } => {
            for g in client.guides(online).await? {
                print(g);
            }
        }
        Command::Status { status } => print(client.set_status(status == "online").await?),
        Command::Request {
            guide_id,
            profile_id,
        } => print(client.request(UserId(guide_id), profile_id).await?),
        Command::Requests => {
            for r in client.requests().await? {
                print(r);
            }
        }
        Command::Accept { id: c } => print(client.accept(&id(&c)).await?),
        Command::Reject { id: c } => print(client.reject(&id(&c), None).await?),
        Command::Cancel { id: c } => print(client.cancel(&id(&c)).await?),
        Command::Join { id: c } => print(client.join(&id(&c)).await?),
        Command::Complete { id: c } => print(client.complete(&id(&c), None).await?),
        Command::Rate { id: c, stars, text } => {
            print(client.rate(&id(&c), stars, text, None).await?)
        }
        Command::Send { id: c, text, wait } => {
            let cid = id(&c);
            know(&client, &cid).await?;
            let m = client.send_text(&cid, &text).await?;
            return deliver(&client, &mut events, m.client_msg_id, wait).await;
        }
        Command::SendImage { id: c, path, wait } => {
            let cid = id(&c);
            know(&client, &cid).await?;
            let m = client.send_image(&cid, &path).await?;
            return deliver(&client, &mut events, m.client_msg_id, wait).await;
        }
        Command::Sync { timeout } => {
            client.connect();
            let report = client.sync(Duration::from_secs_f64(timeout)).await?;
            print(&report);
            client.disconnect();
            return Ok(if report.queued == 0 && report.connected {
                0
            } else {
                EXIT_OFFLINE
            });
        }
        Command::History { id: c, limit } => {
            for m in client.history(&id(&c), None, limit).await? {
                print(m);
            }
        }
        Command::Outbox => {
            for item in client.outbox().await? {
                print(json!({
                    "client_msg_id": item.client_msg_id, "consultation_id": item.consultation_id,
                    "kind": item.kind, "content": item.content, "state": item.state,
                    "attempts": item.attempts, "error": item.last_error,
                }));
            }
        }
        Command::Wallet => print(client.wallet().await?),
        Command::Ledger { limit } => {
            for entry in client.ledger(limit, None).await?.items {
                print(entry);
            }
        }
        Command::Recharge { amount, key } => print(client.recharge(amount, key).await?),
        Command::Earnings { limit } => print(client.earnings(limit, None).await?),
        Command::Chat { id: c } => return chat::run(client, events, id(&c)).await,
        Command::Tail { id: only } => {
            let only = only.map(|s| id(&s));
            if let Some(c) = &only {
                let _ = client.consultation(c).await;
                client.follow(c);
            }
            client.connect();
            while let Some(e) = events.recv().await {
                if only.as_ref().is_none_or(|c| concerns(&e, c)) {
                    print(&e);
                }
            }
        }
    }
    Ok(0)
}

/// Makes sure the device knows the consultation (fresh from the server when it can).
async fn know(client: &Client, id: &ConsultationId) -> anyhow::Result<()> {
    match client.consultation(id).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Connects and waits up to `wait` seconds for a queued message's fate.
async fn deliver(
    client: &Client,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    cmid: String,
    wait: f64,
) -> anyhow::Result<i32> {
    client.connect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait.max(0.0));
    loop {
        let next = tokio::time::timeout_at(deadline, events.recv()).await;
        let e = match next {
            Err(_) | Ok(None) => break,
            Ok(Some(e)) => e,
        };
        if let Event::MessageUpdated { message } | Event::MessageAdded { message } = &e {
            if message.client_msg_id != cmid {
                continue;
            }
            match message.status {
                MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read => {
                    print(json!({"status": "sent", "message": message}));
                    client.disconnect();
                    return Ok(0);
                }
                MessageStatus::Failed => {
                    print(json!({"status": "failed", "message": message}));
                    client.disconnect();
                    return Ok(EXIT_REFUSED);
                }
                _ => {}
            }
        }
    }
    let queued = client
        .outbox()
        .await?
        .iter()
        .any(|i| i.client_msg_id == cmid);
    print(json!({"status": if queued { "queued" } else { "unknown" }, "client_msg_id": cmid}));
    client.disconnect();
    if !queued {
        bail!("the message left the outbox without an answer");
    }
    Ok(0)
}

fn concerns(e: &Event, id: &ConsultationId) -> bool {
    let value: Value = serde_json::to_value(e).unwrap_or_default();
    let cid = value
        .get("consultation_id")
        .or_else(|| value.get("message").and_then(|m| m.get("consultation_id")))
        .or_else(|| {
            value
                .get("consultation")
                .and_then(|m| m.get("consultation_id"))
        });
    cid.is_none_or(|c| c == id.as_str())
}
