//! `tara-load`: a quick local load run. Starts a real server in this process on a loopback port
//! (SQLite in a temp dir, rate limits lifted), opens `--pairs` consultations, and has both parties
//! of each send `--messages` texts over WebSockets, each waiting for its ack (an ack means the
//! message is committed). Reports messages persisted per second and ack latency percentiles.
//!
//! With `--database-url postgres://…` (a PostgreSQL server and a database to connect to
//! first), the server stores in PostgreSQL instead: each pass gets a fresh database there,
//! dropped afterwards; `--store-only` then measures both stores side by side in one run.
//!
//! `--outbox N` times tara-core's outbox draining N messages queued offline, and `--history N`
//! (see `history.rs`) pages of history from N stored messages; with `--report DIR` each writes
//! its JSON to DIR and prints its table for BENCHMARKS.md (`cargo xtask bench outbox|history`).
//!
//! The load client shares the machine (and, here, the process) with the server, so the figures
//! are a floor for the server alone.

mod history;

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tara_server::metrics::METRICS;
use tara_server::store::postgres::PostgresStore;
use tara_server::store::sqlite::{SqliteStore, MAX_BATCH};
use tara_server::store::{CommitListener, Committed, NewGuide, Store};
use tara_server::Config;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A quick local load run of tara-server.
#[derive(Parser, Debug)]
struct Args {
    /// Consultations in parallel (two senders each).
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 500)]
    messages: usize,
    /// Characters per message.
    #[arg(long, default_value_t = 80)]
    size: usize,
    /// Drive the storage layer directly (no HTTP, no WebSockets): what group commit alone sustains.
    #[arg(long)]
    store_only: bool,
    /// Queue this many messages offline with tara-core, then time how long the outbox takes to flush.
    #[arg(long)]
    outbox: Option<usize>,
    /// Carry realtime between nodes through this Redis (`redis://…`); with `--nodes`.
    #[arg(long, env = "TARA_LOAD_REDIS_URL")]
    redis_url: Option<String>,
    /// Server nodes sharing the database (`--database-url`) and Redis (`--redis-url`): each
    /// consultation's guide on one node and its customer on the next, so every message crosses.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Runs of `--outbox`, each on a fresh server and device; the report gives the median.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Store this many messages, then time pages of history read from them (see `history.rs`).
    #[arg(long)]
    history: Option<usize>,
    /// `--history`: consultations the messages are spread over.
    #[arg(long, default_value_t = 10_000)]
    consultations: usize,
    /// `--history`: HTTP clients reading at once, each on its own connection.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// `--history`: how long the clients read.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// `--outbox`, `--history`: write the result as NAME.json in this folder and print its
    /// Markdown table on stdout.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// Store in PostgreSQL: a server's URL with a database to connect to first (say
    /// `postgres://tara@127.0.0.1:5432/postgres`); each pass creates its own database there.
    #[arg(long, env = "TARA_LOAD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// A fresh database on the PostgreSQL server of `admin_url`, dropped by [`drop_database`].
async fn fresh_database(admin_url: &str) -> Result<(String, String)> {
    let name = format!("tara_load_{}", uuid::Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("--database-url: cannot connect")?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .context("CREATE DATABASE")?;
    // The same server and credentials, the new database.
    let (head, tail) = admin_url.split_at(admin_url.find('?').unwrap_or(admin_url.len()));
    let base = head
        .rfind('/')
        .filter(|&i| i > "postgres://".len())
        .map_or(head, |i| &head[..i]);
    Ok((format!("{base}/{name}{tail}"), name))
}

async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Guide number `i` of a load run.
fn load_guide(i: usize) -> NewGuide {
    NewGuide {
        phone: format!("+9170000{i:05}"),
        name: format!("Guide {i}"),
        // Free: the load measures messages, and a priced guide would need a funded wallet.
        rate_per_minute: 0,
        skills: vec![],
        languages: vec![],
        available: true,
    }
}

/// A dev server's settings with the per-person limits lifted: the load is many people at once.
fn load_config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir).dev(true);
    config.message_burst = u32::MAX / 2;
    config.messages_per_minute = u32::MAX / 2;
    config.otp_resend_after = Duration::ZERO;
    config.otp_per_hour = u32::MAX;
    config.outgoing_queue = 64 * 1024;
    // Every load connection comes from 127.0.0.1.
    config.otp_per_ip_burst = u32::MAX / 2;
    config.otp_per_ip_per_hour = u32::MAX / 2;
    config.logins_per_ip_burst = u32::MAX / 2;
    config.logins_per_ip_per_minute = u32::MAX / 2;
    config.max_connections_per_ip = usize::MAX / 2;
    config
}

struct Quiet;
impl CommitListener for Quiet {
    fn committed(&self, _: &[Committed]) {}
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(n) = args.outbox {
        rt.block_on(outbox_runs(&args, n))
    } else if let Some(n) = args.history {
        rt.block_on(history::history(&args, n))
    } else if args.store_only {
        rt.block_on(store_only(args))
    } else {
        rt.block_on(run(args))
    }
}

/// Writes `report` as `NAME.json` and `table` as `NAME.md` in `--report`, and prints the
/// table on stdout; without `--report`, prints the JSON.
fn report(name: &str, report: &Value, table: &str, args: &Args) -> Result<()> {
    match &args.report {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let file = dir.join(format!("{name}.json"));
            std::fs::write(&file, serde_json::to_string_pretty(report)?)
                .with_context(|| format!("writing {}", file.display()))?;
            // The table also goes to a file: stdout carries the server's own lines too.
            std::fs::write(dir.join(format!("{name}.md")), table)?;
            print!("{table}");
        }
        None => println!("{report}"),
    }
    Ok(())
}

/// The outbox goal of the benchmark issue: 10,000 queued messages acked within 2 s.
const OUTBOX_GOAL_SECONDS: f64 = 2.0;

/// `--runs` outbox runs, each on a fresh server and device, reported with their median.
async fn outbox_runs(args: &Args, n: usize) -> Result<()> {
    let mut runs = Vec::new();
    for _ in 0..args.runs.max(1) {
        runs.push(outbox(n).await?);
    }
    let median = |key: &str| {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (flush, queue) = (median("flush_seconds"), median("queue_seconds"));
    // The goal is set for 10,000; a smaller run is held to its share.
    let goal = OUTBOX_GOAL_SECONDS * n as f64 / 10_000.0;
    let summary = json!({
        "benchmark": "outbox", "date": tara_bench::today(), "machine": tara_bench::machine(),
        "messages": n, "runs": runs.len(),
        "flush_seconds_median": flush, "flushed_per_second": (n as f64 / flush).round(),
        "queue_seconds_median": queue, "queued_per_second": (n as f64 / queue).round(),
        "goal_flush_seconds": goal, "every_run": runs,
    });
    let table = format!(
        "Outbox, {n} texts queued offline in tara-core, then the network returns; median of {} runs, \
         each on a fresh server and device, on {} ({}):\n\n\
         | step | median s | per second | goal | against the goal |\n|---|---|---|---|---|\n\
         | flush: reconnect until every message is acked, in order, once each | {flush:.2} | {:.0} | ≤ {goal:.1} s | {:.2}x the goal ({}) |\n\
         | queue: `send_text` while offline (message, outbox entry, count) | {queue:.2} | {:.0} | not the slow part | {:.1}x the flush's time ({}) |\n",
        runs.len(),
        tara_bench::machine(),
        tara_bench::today(),
        n as f64 / flush,
        flush / goal,
        if flush <= goal { "met" } else { "missed" },
        n as f64 / queue,
        queue / flush,
        if queue <= flush { "met" } else { "missed" },
    );
    report("outbox", &summary, &table, args)
}

/// Queues `n` texts with tara-core while disconnected, then reconnects and times the flush
/// (pipelined, as the engine sends: up to its window in flight on one connection), and checks
/// that all `n` were stored once each, in the order written.
async fn outbox(n: usize) -> Result<Value> {
    use tara_core::{Client, ClientConfig, ConnectionState};
    use tara_protocol::auth::UserType;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("server");
    {
        let store = SqliteStore::open(&dir, Arc::new(Quiet))?;
        store
            .add_guide(load_guide(0), chrono::Utc::now().timestamp_millis())
            .await?;
    }
    let config = load_config(&dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tara_server::launch(config, listener, async move {
        let _ = stop_rx.await;
    }));
    wait_up(&reqwest::Client::new(), &format!("{url}/api/v1")).await?;
    let open = |who: &str| ClientConfig::new(&url, tmp.path().join(who));
    let (guide, _guide_events) = Client::start(open("guide")).await?;
    let (customer, _events) = Client::start(open("customer")).await?;
    for (c, phone, t) in [
        (&guide, "7000000000", UserType::Guide),
        (&customer, "8000000001", UserType::Customer),
    ] {
        let sent = c.request_otp("+91", phone, t).await?;
        c.verify_otp(
            "+91",
            phone,
            t,
            &sent.request_id,
            sent.dev_otp.as_deref().context("dev otp")?,
        )
        .await?;
    }
    let mut state = guide.connection();
    state.wait_for(|s| *s == ConnectionState::Online).await?;
    guide.set_status(true).await?;
    let guide_id = guide.identity().context("guide")?.user_id;
    let id = customer.request(guide_id, None).await?.consultation_id;
    guide.accept(&id).await?;
    customer.join(&id).await?;
    guide.join(&id).await?;

    customer.disconnect();
    let mut state = customer.connection();
    state.wait_for(|s| *s == ConnectionState::Idle).await?;
    let started = Instant::now();
    for i in 0..n {
        customer
            .send_text(&id, &format!("queued offline {i}"))
            .await?;
    }
    let queued_in = started.elapsed();
    let started = Instant::now();
    customer.connect();
    let report = customer.sync(Duration::from_secs(600)).await?;
    let flushed_in = started.elapsed();
    if report.queued != 0 || report.failed != 0 {
        bail!("the outbox did not drain: {report:?}");
    }
    // The sender's device holds each with the seq the server gave it: their order by seq must
    // be the order written, once each.
    let mut own: Vec<(i64, String)> = customer
        .history(&id, None, n + 100)
        .await?
        .into_iter()
        .filter(|m| m.content.starts_with("queued offline "))
        .map(|m| (m.seq.unwrap_or(0), m.content))
        .collect();
    own.sort();
    let in_order = own.len() == n
        && own
            .iter()
            .enumerate()
            .all(|(i, (_, text))| *text == format!("queued offline {i}"))
        && own.windows(2).all(|w| w[1].0 == w[0].0 + 1);
    if !in_order {
        bail!(
            "the outbox did not arrive once each in order: {} stored",
            own.len()
        );
    }
    let run = json!({
        "mode": "outbox", "messages": n,
        "queue_seconds": queued_in.as_secs_f64(), "queued_per_second": (n as f64 / queued_in.as_secs_f64()).round(),
        "flush_seconds": flushed_in.as_secs_f64(), "flushed_per_second": (n as f64 / flushed_in.as_secs_f64()).round(),
        "last_seq": own.last().map(|(seq, _)| *seq), "in_order": in_order,
    });
    eprintln!(
        "{n} messages queued offline in {:.2} s ({:.0}/s), flushed in order in {:.2} s ({:.0}/s)",
        queued_in.as_secs_f64(),
        n as f64 / queued_in.as_secs_f64(),
        flushed_in.as_secs_f64(),
        n as f64 / flushed_in.as_secs_f64()
    );
    drop((guide, customer));
    let _ = stop_tx.send(());
    server.await??;
    Ok(run)
}

/// Appends straight to the SQLite store from `pairs * 2` concurrent senders, each waiting for its
/// commit before the next, as the realtime path does. Measures group commit, then, in the same
/// run and with the same senders, one transaction per message (the peer group commit replaces).
async fn store_only(args: Args) -> Result<()> {
    let grouped = store_pass(&args, MAX_BATCH, args.messages, None).await?;
    // The peer is slow; a tenth of the messages gives a steady rate in a few seconds.
    let single = store_pass(&args, 1, (args.messages / 10).max(1), None).await?;
    let postgres = match &args.database_url {
        Some(url) => {
            let grouped = store_pass(&args, MAX_BATCH, args.messages, Some(url)).await?;
            let single = store_pass(&args, 1, (args.messages / 10).max(1), Some(url)).await?;
            Some((grouped, single))
        }
        None => None,
    };
    println!(
        "{}",
        json!({
            "mode": "store_only", "senders": args.pairs * 2,
            "group_commit": grouped.json(), "commit_per_message": single.json(),
            "postgres": postgres.as_ref().map(|(g, s)| json!({
                "group_commit": g.json(), "commit_per_message": s.json(),
            })),
        })
    );
    if let Some((g, s)) = &postgres {
        eprintln!(
            "PostgreSQL, {} senders each waiting for its commit:",
            args.pairs * 2
        );
        eprintln!("  group commit:       {}", g.line());
        eprintln!("  commit per message: {}", s.line());
    }
    eprintln!(
        "storage alone, {} senders each waiting for its commit:",
        args.pairs * 2
    );
    eprintln!("  group commit:       {}", grouped.line());
    eprintln!("  commit per message: {}", single.line());
    eprintln!(
        "  group commit persists {:.1}x as many messages per second",
        grouped.rate() / single.rate()
    );
    Ok(())
}

/// What one storage pass measured.
struct Pass {
    sent: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    per_commit: f64,
}

impl Pass {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }
    /// The `p` quantile of the commit latencies, in ms.
    fn pct(&self, p: f64) -> f64 {
        tara_bench::quantile_ms(&self.latencies, p)
    }
    fn json(&self) -> Value {
        json!({
            "messages": self.sent, "seconds": self.elapsed.as_secs_f64(),
            "messages_per_second": self.rate().round(),
            "commit_p50_ms": self.pct(0.5),
            "commit_p99_ms": self.pct(0.99),
            "messages_per_commit": self.per_commit,
        })
    }
    fn line(&self) -> String {
        format!(
            "{} messages in {:.2} s: {:.0} msg/s, p50 {:.2} ms, p99 {:.2} ms, {:.1} per commit",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.per_commit
        )
    }
}

/// Consultation number `i` on a store: guide `i` and customer `i` (phones from the index),
/// requested and accepted, so both may write. Returns (id, guide, customer).
async fn accepted_consultation(
    store: &Arc<dyn Store>,
    i: usize,
) -> Result<(
    tara_protocol::ConsultationId,
    tara_protocol::UserId,
    tara_protocol::UserId,
)> {
    use tara_server::state::Action;
    use tara_server::store::{Actor, NewConsultation};
    let now = || chrono::Utc::now().timestamp_millis();
    let guide = store.add_guide(load_guide(i), now()).await?;
    let customer = store
        .ensure_customer(&format!("+9180000{i:05}"), "Customer", now(), 0)
        .await?;
    let id = tara_protocol::ConsultationId(uuid::Uuid::now_v7().to_string());
    store
        .create_consultation(NewConsultation {
            consultation_id: id.clone(),
            customer_id: customer.id,
            guide_id: guide,
            mode: "chat".into(),
            rate_per_minute: 0,
            intake: None,
            now_ms: now(),
        })
        .await?;
    store
        .transition(&id, Action::Accept, Actor::User(guide), now())
        .await?;
    Ok((id, guide, customer.id))
}

/// One pass over a fresh store committing at most `batch` jobs together: SQLite in a temp
/// dir, or a fresh database on the PostgreSQL server of `postgres`.
async fn store_pass(
    args: &Args,
    batch: usize,
    messages: usize,
    postgres: Option<&String>,
) -> Result<Pass> {
    use tara_protocol::messages::MessageKind;
    use tara_protocol::{ClientMsgId, UserId};
    use tara_server::store::NewMessage;
    let tmp = tempfile::tempdir()?;
    let mut database = None;
    let store: Arc<dyn Store> = match postgres {
        Some(admin) => {
            let (url, name) = fresh_database(admin).await?;
            database = Some((admin, name));
            Arc::new(PostgresStore::open_with_batch(&url, Arc::new(Quiet), batch).await?)
        }
        None => Arc::new(SqliteStore::open_with_batch(
            tmp.path(),
            Arc::new(Quiet),
            batch,
        )?),
    };
    let now = || chrono::Utc::now().timestamp_millis();
    let mut senders = Vec::new();
    for i in 0..args.pairs {
        let (id, guide, customer) = accepted_consultation(&store, i).await?;
        senders.push((id.clone(), guide));
        senders.push((id, customer));
    }
    let text: String = "✶ the stars say ".chars().cycle().take(args.size).collect();
    let commits_before = METRICS.commits.load(Relaxed);
    let jobs_before = METRICS.commit_jobs.load(Relaxed);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (id, sender) in senders {
        let (store, text) = (store.clone(), text.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(messages);
            for i in 0..messages {
                let t = Instant::now();
                let new = NewMessage {
                    consultation_id: id.clone(),
                    sender_id: UserId(sender.0),
                    client_msg_id: ClientMsgId(uuid::Uuid::now_v7().to_string()),
                    kind: MessageKind::Text,
                    content: format!("{i} {text}"),
                    media_id: None,
                    chain: None,
                };
                store
                    .append_message(new, now(), Box::new(|| Ok(())))
                    .await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let commits = METRICS.commits.load(Relaxed) - commits_before;
    let jobs = METRICS.commit_jobs.load(Relaxed) - jobs_before;
    latencies.sort();
    drop(store);
    if let Some((admin, name)) = database {
        drop_database(admin, &name).await?;
    }
    Ok(Pass {
        sent: latencies.len(),
        elapsed,
        latencies,
        per_commit: if commits == 0 {
            0.0
        } else {
            jobs as f64 / commits as f64
        },
    })
}

async fn run(args: Args) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().to_path_buf();
    let database = match &args.database_url {
        Some(admin) => Some(fresh_database(admin).await?),
        None => None,
    };
    {
        let store: Arc<dyn Store> = match &database {
            Some((url, _)) => Arc::new(PostgresStore::open(url, Arc::new(Quiet)).await?),
            None => Arc::new(SqliteStore::open(&dir, Arc::new(Quiet))?),
        };
        for i in 0..args.pairs {
            store
                .add_guide(load_guide(i), chrono::Utc::now().timestamp_millis())
                .await?;
        }
    }
    let nodes = args.nodes.max(1);
    if nodes > 1 && (database.is_none() || args.redis_url.is_none()) {
        bail!("--nodes {nodes} needs --database-url and --redis-url: nodes share both");
    }
    let http = reqwest::Client::new();
    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for n in 0..nodes {
        let mut config = load_config(&dir);
        config.database_url = database.as_ref().map(|(url, _)| url.clone());
        config.redis_url = args.redis_url.clone();
        config.node_id = format!("load-{}", n + 1);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(tara_server::launch(config, listener, async move {
            let _ = stop_rx.await;
        }));
        // One at a time: the first makes the signing key the others read.
        wait_up(&http, &format!("http://{addr}/api/v1")).await?;
        addrs.push(addr);
        servers.push((stop_tx, server));
    }
    let addr = addrs[0];
    let base = format!("http://{addr}/api/v1");

    eprintln!("setting up {} consultations…", args.pairs);
    let mut senders = Vec::new();
    let mut consultations = Vec::new();
    for i in 0..args.pairs {
        let guide = login(&http, &base, &format!("70000{i:05}"), "guide").await?;
        let customer = login(&http, &base, &format!("80000{i:05}"), "customer").await?;
        let mut guide_ws = connect(addrs[i % nodes], &guide.1).await?;
        post(
            &http,
            &base,
            "/guide/status",
            &guide.1,
            json!({"status": "online"}),
        )
        .await?;
        let c = post(
            &http,
            &base,
            "/consultation",
            &customer.1,
            json!({"guide_id": guide.0, "mode": "chat"}),
        )
        .await?;
        let id = c["consultation_id"]
            .as_str()
            .context("consultation id")?
            .to_owned();
        post(
            &http,
            &base,
            &format!("/consultation/{id}/accept"),
            &guide.1,
            json!({}),
        )
        .await?;
        post(
            &http,
            &base,
            &format!("/consultation/{id}/join"),
            &customer.1,
            json!({}),
        )
        .await?;
        post(
            &http,
            &base,
            &format!("/consultation/{id}/join"),
            &guide.1,
            json!({}),
        )
        .await?;
        let mut customer_ws = connect(addrs[(i + 1) % nodes], &customer.1).await?;
        for ws in [&mut guide_ws, &mut customer_ws] {
            ws.send(WsMessage::Text(
                json!({"type":"subscribe","consultation_id":id,"after_seq":0})
                    .to_string()
                    .into(),
            ))
            .await?;
        }
        senders.push((id.clone(), guide_ws));
        senders.push((id.clone(), customer_ws));
        consultations.push((id, customer.1));
    }

    let stored_before = METRICS.messages_stored.load(Relaxed);
    let commits_before = METRICS.commits.load(Relaxed);
    let jobs_before = METRICS.commit_jobs.load(Relaxed);
    eprintln!(
        "sending {} messages from {} connections…",
        args.pairs * 2 * args.messages,
        senders.len()
    );
    let text: String = "✶ the stars say ".chars().cycle().take(args.size).collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (id, ws) in senders {
        let text = text.clone();
        let n = args.messages;
        tasks.push(tokio::spawn(async move { send_all(ws, id, n, text).await }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let stored = METRICS.messages_stored.load(Relaxed) - stored_before;
    let commits = METRICS.commits.load(Relaxed) - commits_before;
    let jobs = METRICS.commit_jobs.load(Relaxed) - jobs_before;

    // Check what was persisted, from storage, through the API.
    let mut persisted = 0;
    for (id, token) in &consultations {
        let page = get(
            &http,
            &base,
            &format!("/consultation/{id}/messages?limit=1"),
            token,
        )
        .await?;
        let head = page["messages"][0]["seq"].as_i64().unwrap_or(0);
        persisted += head - 2; // accepted and started are system lines
    }
    let sent = (args.pairs * 2 * args.messages) as i64;
    if persisted != sent {
        bail!("{sent} messages were acked but {persisted} are in storage");
    }
    latencies.sort();
    let pct = |p: f64| tara_bench::quantile_ms(&latencies, p);
    let rate = sent as f64 / elapsed.as_secs_f64();
    let summary = json!({
        "store": if database.is_some() { "postgres" } else { "sqlite" },
        "nodes": nodes,
        "redis": args.redis_url.is_some(),
        "pairs": args.pairs,
        "connections": args.pairs * 2,
        "messages": sent,
        "persisted": persisted,
        "stored_by_writer": stored,
        "seconds": elapsed.as_secs_f64(),
        "messages_per_second": rate.round(),
        "ack_p50_ms": pct(0.50),
        "ack_p99_ms": pct(0.99),
        "ack_max_ms": latencies.last().map(|d| d.as_secs_f64() * 1e3),
        "commits": commits,
        "messages_per_commit": if commits == 0 { 0.0 } else { jobs as f64 / commits as f64 },
    });
    println!("{summary}");
    eprintln!(
        "{sent} messages persisted in {:.2} s: {:.0} msg/s, ack p50 {:.2} ms, p99 {:.2} ms, {:.1} jobs per commit",
        elapsed.as_secs_f64(),
        rate,
        pct(0.50),
        pct(0.99),
        if commits == 0 { 0.0 } else { jobs as f64 / commits as f64 }
    );
    for (stop_tx, server) in servers {
        let _ = stop_tx.send(());
        server.await??;
    }
    if let (Some(admin), Some((_, name))) = (&args.database_url, &database) {
        drop_database(admin, name).await?;
    }
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The two fields of a server frame the load client looks at.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    client_msg_id: Option<&'a str>,
}

async fn send_all(mut ws: Socket, id: String, n: usize, text: String) -> Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let cmid = uuid::Uuid::now_v7().to_string();
        let frame = json!({"type":"send","client_msg_id":cmid,"consultation_id":id,"kind":"text","content":format!("{i} {text}")});
        let t = Instant::now();
        ws.send(WsMessage::Text(frame.to_string().into())).await?;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .context("no ack within 30 s")?
                .context("socket closed")??;
            let WsMessage::Text(t2) = msg else { continue };
            // Only the tag and the id matter here; the client reads no more than it must, so
            // that the machine's CPU goes to the server.
            let f: Peek<'_> = serde_json::from_str(t2.as_str())?;
            if f.kind == "ack" && f.client_msg_id == Some(cmid.as_str()) {
                break;
            }
            if f.kind == "error" {
                bail!("send refused: {}", t2.as_str());
            }
        }
        lat.push(t.elapsed());
    }
    Ok(lat)
}

async fn wait_up(http: &reqwest::Client, base: &str) -> Result<()> {
    for _ in 0..500 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the server did not come up")
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: Value,
) -> Result<Value> {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{path}: {status} {v}");
    }
    Ok(v)
}

/// A GET's status and JSON body.
async fn get_status(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
) -> Result<(u16, Value)> {
    let r = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

async fn get(http: &reqwest::Client, base: &str, path: &str, token: &str) -> Result<Value> {
    Ok(get_status(http, base, path, token).await?.1)
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    phone: &str,
    user_type: &str,
) -> Result<(i64, String)> {
    let g: Value = http
        .post(format!("{base}/auth/otp/generate"))
        .json(&json!({"area_code":"+91","phone_number":phone,"user_type":user_type,"purpose":"login"}))
        .send()
        .await?
        .json()
        .await?;
    let t: Value = http
        .post(format!("{base}/auth/otp/validate"))
        .json(&json!({"request_id":g["request_id"],"otp_code":g["dev_otp"],"user_type":user_type,
            "device_info":{"device_type":"bench","platform":"linux"},"phone_number":phone,"area_code":"+91"}))
        .send()
        .await?
        .json()
        .await?;
    Ok((
        t["auth_user_id"]
            .as_i64()
            .with_context(|| format!("login failed: {t}"))?,
        t["access_token"].as_str().context("token")?.to_owned(),
    ))
}

async fn connect(addr: std::net::SocketAddr, token: &str) -> Result<Socket> {
    let mut req = format!("ws://{addr}/api/v1/realtime").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(tara_protocol::realtime::SOCKET_READ_BYTES);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await?;
    Ok(ws)
}
