//! `tara-chaos`: four people in two consultations chat through fault-injecting links while a
//! driver breaks everything it can, at random from a seed; at the end every message ever queued
//! is looked for on every participant.
//!
//! The parts are the real ones: the `tara-server` binary on a data dir, and each person a
//! `tara-cli chat` process (the client engine with its SQLite outbox) on a profile of its own,
//! talking to the server through a proxy of its own (`proxy.rs`). Faults, one at a time, a
//! random pause apart:
//!
//! - `cut`: every connection of one link reset at once;
//! - `blackhole`: one link carries nothing for 1 to 8 s (now and then past the client's 30 s
//!   dead-link timer), then goes on with what it held;
//! - `delay`: every chunk on one link late by 50 ms to 1 s, for a few seconds;
//! - `late_writes`: what a client wrote reaches the server up to 1.5 s after its connection was
//!   cut, so the old connection's sends arrive after (or between) the new one's resends;
//! - `lost_acks`: what the server says on one link is thrown away, then the link is cut;
//! - `slow_reader`: one client reads at 200 B/s to 2 KB/s for a few seconds;
//! - `server_kill`: the server gets SIGKILL and starts again on the same data dir;
//! - `client_kill`: a client process gets SIGKILL and starts again on the same profile;
//! - `clock`: one client's wall clock jumps (up to two days either way; by libfaketime, when
//!   Debian's `faketime` is installed).
//!
//! Meanwhile each person writes texts of 40 to 200 characters every 2.5 s on average (the
//! server's message limit is 30 a minute), types, and now and then reads. Then the links heal,
//! everyone reads or not (at random), and the driver asks every client what it shows until all
//! agree or 120 s pass. Checked on every participant: each queued message there exactly once,
//! in a gapless seq order, each sender's messages in the order written, texts as written, no
//! message left pending or failed, unread counts and receipts equal to what the history implies,
//! no typing indicator left on.

mod backends;
mod check;
mod proxy;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tara_bench::Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Break the links, the server and the clients while four people chat; then find every message.
#[derive(Parser)]
#[command(name = "tara-chaos")]
struct Args {
    /// Minutes of faults.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Seconds of faults (instead of --minutes).
    #[arg(long)]
    seconds: Option<f64>,
    /// The seed: the same seed makes the same choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean pause between two faults, in milliseconds.
    #[arg(long, default_value_t = 550)]
    fault_every_ms: u64,
    /// Write chaos.json and chaos.md here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The tara-server binary (default: beside this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The tara-cli binary (default: beside this one).
    #[arg(long)]
    cli_bin: Option<PathBuf>,
    /// Keep the run's folder (data dir, profiles, logs) and say where it is.
    #[arg(long)]
    keep: bool,
    /// Two server nodes on a PostgreSQL and a Redis of the run's own, each consultation's two
    /// people on different nodes; faults also kill a node (its clients' links go to the other
    /// while it is down) and kill and restart Redis.
    #[arg(long)]
    cluster: bool,
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The kinds of fault, with their weights.
const KINDS: &[(&str, u64)] = &[
    ("cut", 18),
    ("blackhole", 10),
    ("delay", 10),
    ("late_writes", 15),
    ("lost_acks", 15),
    ("slow_reader", 8),
    ("server_kill", 5),
    ("client_kill", 10),
    ("clock", 5),
    ("redis_restart", 4),
];

fn beside_me(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let mut dir = me.parent().context("no folder")?.to_path_buf();
    // A test binary lives in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    if !p.exists() {
        bail!(
            "{} is not built (cargo build -p {name}); or pass its path",
            p.display()
        );
    }
    Ok(p)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run(&args))?;
    let ok = report["problems"].as_array().is_some_and(|p| p.is_empty());
    println!("{}", serde_json::to_string(&report)?);
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("chaos.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        std::fs::write(dir.join("chaos.md"), table(&report))?;
    }
    eprint!("{}", table(&report));
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

fn table(r: &Value) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "chaos: seed {}, {} s of faults, {} faults, {} messages queued ({} written), {} stored\n\n",
        r["seed"], r["seconds"], r["faults"], r["queued"], r["written"], r["stored"]
    ));
    s.push_str("| fault | injected |\n|---|---|\n");
    if let Some(kinds) = r["by_kind"].as_object() {
        for (k, v) in kinds {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
    }
    s.push_str("\n| check | found |\n|---|---|\n");
    for k in [
        "lost",
        "duplicated",
        "order_breaks",
        "sender_order_breaks",
        "stuck",
    ] {
        s.push_str(&format!("| {k} | {} |\n", r[k]));
    }
    if let Some(p) = r["problems"].as_array() {
        for line in p.iter().take(40) {
            s.push_str(&format!("- {}\n", line.as_str().unwrap_or_default()));
        }
    }
    s
}

/// The server process, restarted on the same port and data dir.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
    /// `--database-url`, `--redis-url` and `--node-id` of a cluster's node.
    cluster: Vec<String>,
}

impl Server {
    async fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new(&self.bin)
            .args(["serve", "--dev", "--no-per-ip-limits", "--bind"])
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data)
            .args(&self.cluster)
            .env_remove("TARA_DATABASE_URL")
            .env_remove("TARA_REDIS_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("tara-server starts")?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), out.next_line())
            .await
            .context("tara-server says it listens")??
            .unwrap_or_default();
        if !first.starts_with("listening on") {
            bail!("tara-server: {first}");
        }
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

/// One person: a profile, a link, and (while alive) a `tara-cli chat` process.
struct Person {
    name: String,
    profile: PathBuf,
    link: proxy::Link,
    consultation: String,
    user_id: i64,
    /// The child and its stdin, while it runs.
    child: Option<(Child, ChildStdin)>,
    /// Texts written to it, by number (the number is in the text: per-sender order).
    written: u64,
    clock: PathBuf,
}

/// What the clients print, by person.
enum Line {
    Queued(usize, String, String),
    Report(usize, Value),
    /// A client that exited by itself, or printed an error.
    Finding(String),
}

struct World {
    cli: PathBuf,
    people: Vec<Person>,
    lines: mpsc::UnboundedSender<Line>,
    faketime: bool,
    /// Lives of each client, to tell a kill from a crash.
    lives: Vec<u64>,
}

impl World {
    fn cli(&self, p: &Person) -> Command {
        let mut c = Command::new(&self.cli);
        c.arg("--server")
            .arg(format!("http://{}", p.link.addr))
            .arg("--profile")
            .arg(&p.profile)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn once(&self, i: usize, args: &[&str]) -> Result<Value> {
        let p = &self.people[i];
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            self.cli(p).args(args).stderr(Stdio::piped()).output(),
        )
        .await
        .context("tara-cli in time")??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "{} {args:?}: {stdout} {}",
                p.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let last = stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        serde_json::from_str(last).with_context(|| format!("{args:?}: {stdout}"))
    }

    fn start_chat(&mut self, i: usize) -> Result<()> {
        self.lives[i] += 1;
        let life = self.lives[i];
        let p = &self.people[i];
        let mut cmd = self.cli(p);
        cmd.args(["chat", &p.consultation])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p.profile.join("chat.log"))?,
            );
        if self.faketime {
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &p.clock)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        let mut child = cmd.spawn().context("tara-cli chat starts")?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let tx = self.lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(q) = v.get("queued") {
                    let cmid = q["client_msg_id"].as_str().unwrap_or_default().to_owned();
                    let text = q["text"].as_str().unwrap_or_default().to_owned();
                    let _ = tx.send(Line::Queued(i, cmid, text));
                } else if let Some(r) = v.get("report") {
                    let _ = tx.send(Line::Report(i, r.clone()));
                } else if v.get("error").is_some() {
                    let _ = tx.send(Line::Finding(format!("life {life}: {line}")));
                }
            }
        });
        self.people[i].child = Some((child, stdin));
        Ok(())
    }

    async fn kill_chat(&mut self, i: usize) {
        if let Some((mut c, _)) = self.people[i].child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// Writes one command line to a client; false when it is not running.
    async fn tell(&mut self, i: usize, line: &str) -> bool {
        let Some((child, stdin)) = self.people[i].child.as_mut() else {
            return false;
        };
        if let Ok(Some(status)) = child.try_wait() {
            let _ = self.lines.send(Line::Finding(format!(
                "{} exited by itself: {status}",
                self.people[i].name
            )));
            self.people[i].child = None;
            return false;
        }
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .is_ok()
    }
}

const WORDS: &[&str] = &[
    "will",
    "my",
    "career",
    "change",
    "this",
    "year",
    "saturn",
    "moves",
    "into",
    "your",
    "seventh",
    "house",
    "and",
    "marriage",
    "looks",
    "likely",
    "after",
    "march",
    "what",
    "about",
    "health",
    "venus",
    "is",
    "strong",
    "in",
    "chart",
    "so",
    "relationships",
    "bring",
    "joy",
    "travel",
    "abroad",
    "soon",
    "money",
    "comes",
    "slowly",
    "but",
    "surely",
    "मेरा",
    "भविष्य",
    "क्या",
    "है",
    "🙏",
    "✨",
];

/// A text of 40 to 200 characters that starts with who wrote it and its number.
fn text(rng: &mut Rng, who: &str, n: u64) -> String {
    let want = rng.between(40, 200) as usize;
    let mut s = format!("{who}#{n}");
    while s.chars().count() < want {
        s.push(' ');
        s.push_str(WORDS[rng.between(0, WORDS.len() as u64 - 1) as usize]);
    }
    s.chars().take(want.max(12)).collect()
}

async fn run(args: &Args) -> Result<Value> {
    let seconds = args.seconds.unwrap_or(args.minutes * 60.0);
    let mut rng = Rng(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => beside_me("tara-server")?,
    };
    let cli = match &args.cli_bin {
        Some(p) => p.clone(),
        None => beside_me("tara-cli")?,
    };
    let tmp = tempfile::Builder::new().prefix("tara-chaos").tempdir()?;
    let root = tmp.path().to_path_buf();
    let data = root.join("server");
    std::fs::create_dir_all(&data)?;

    let (pg, mut redis) = if args.cluster {
        (
            Some(backends::Postgres::start(&root.join("postgres"))?),
            Some(backends::Redis::start(&root.join("redis"))?),
        )
    } else {
        (None, None)
    };
    let database: Vec<String> = pg
        .iter()
        .flat_map(|p| ["--database-url".to_owned(), p.url.clone()])
        .collect();
    // Two guides, added as an operator does.
    let mut guides = Vec::new();
    for g in 0..2 {
        let out = Command::new(&server_bin)
            .args(["guide", "add", "--data-dir"])
            .arg(&data)
            .args(&database)
            .args([
                "--phone",
                &format!("+91900000000{g}"),
                "--name",
                &format!("Guide {g}"),
                "--rate",
                "1",
            ])
            .env_remove("TARA_DATABASE_URL")
            .output()
            .await?;
        if !out.status.success() {
            bail!("guide add: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout)?;
        guides.push(v["guide_id"].as_i64().context("guide_id")?);
    }

    // One node, or two sharing the data dir (the signing key) and the backends; the first
    // runs the migrations before the second starts.
    let mut servers = Vec::new();
    for n in 0..if args.cluster { 2 } else { 1 } {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cluster = database.clone();
        if let Some(r) = &redis {
            cluster.extend(["--redis-url".to_owned(), r.url()]);
            cluster.extend(["--node-id".to_owned(), format!("node-{n}")]);
        }
        let mut s = Server {
            bin: server_bin.clone(),
            data: data.clone(),
            addr: format!("127.0.0.1:{port}").parse()?,
            child: None,
            log: root.join(format!("server-{n}.log")),
            cluster,
        };
        s.start().await?;
        servers.push(s);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();

    let faketime = Path::new(LIBFAKETIME).exists();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut world = World {
        cli,
        people: Vec::new(),
        lines: tx,
        faketime,
        lives: vec![0; 4],
    };
    // c0 with g0, c1 with g1; on two nodes, c0 and g1 on the first, c1 and g0 on the second,
    // so that every message crosses Redis.
    for (i, name) in ["c0", "c1", "g0", "g1"].into_iter().enumerate() {
        let mut upstreams = addrs.clone();
        if [1, 2].contains(&i) {
            upstreams.rotate_left(1);
        }
        let profile = root.join(name);
        std::fs::create_dir_all(&profile)?;
        let clock = profile.join("clock");
        std::fs::write(&clock, "+0\n")?;
        world.people.push(Person {
            name: name.to_string(),
            profile,
            link: proxy::Link::start(upstreams).await?,
            consultation: String::new(),
            user_id: 0,
            child: None,
            written: 0,
            clock,
        });
    }
    for i in 0..4 {
        let (phone, as_) = if i < 2 {
            (format!("+9198000000{i:02}"), "customer")
        } else {
            (format!("+91900000000{}", i - 2), "guide")
        };
        let v = world
            .once(i, &["login", "--phone", &phone, "--as", as_, "--dev-otp"])
            .await?;
        world.people[i].user_id = v["signed_in"]["user_id"].as_i64().context("user_id")?;
    }
    // The guides hold a connection while they go online and take the requests.
    let mut tails = Vec::new();
    for g in 2..4 {
        let mut tail = world.cli(&world.people[g]);
        tail.arg("tail").stdout(Stdio::null()).stderr(Stdio::null());
        tails.push(tail.spawn()?);
        world.once(g, &["status", "online"]).await?;
    }
    for (c, guide) in guides.iter().enumerate() {
        world.once(c, &["recharge", "100000"]).await?;
        let id = loop {
            // The guide is online once its connection is up.
            match world.once(c, &["request", &guide.to_string()]).await {
                Ok(v) => break v["consultation_id"].as_str().context("id")?.to_owned(),
                Err(e) if e.to_string().contains("GUIDE_UNAVAILABLE") => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => return Err(e),
            }
        };
        world.once(c + 2, &["accept", &id]).await?;
        world.once(c, &["join", &id]).await?;
        world.once(c + 2, &["join", &id]).await?;
        world.people[c].consultation = id.clone();
        world.people[c + 2].consultation = id;
    }
    for mut t in tails {
        let _ = t.start_kill();
        let _ = t.wait().await;
    }
    for i in 0..4 {
        world.start_chat(i)?;
    }

    // What each client said it queued, in order, and everything else it printed.
    let mut queued: Vec<Vec<(String, String)>> = vec![Vec::new(); 4];
    let mut reports: Vec<Option<Value>> = vec![None; 4];
    let mut findings: Vec<String> = Vec::new();
    let mut drain = |rx: &mut mpsc::UnboundedReceiver<Line>,
                     queued: &mut Vec<Vec<(String, String)>>,
                     reports: &mut Vec<Option<Value>>| {
        while let Ok(line) = rx.try_recv() {
            match line {
                Line::Queued(i, cmid, text) => queued[i].push((cmid, text)),
                Line::Report(i, r) => reports[i] = Some(r),
                Line::Finding(what) => findings.push(what),
            }
        }
    };

    // Redis is restarted only where there is one.
    let kinds: Vec<(&str, u64)> = KINDS
        .iter()
        .copied()
        .filter(|(k, _)| *k != "redis_restart" || redis.is_some())
        .collect();
    let mut by_kind: BTreeMap<&str, u64> = kinds.iter().map(|(k, _)| (*k, 0)).collect();
    let mut restart_at: Vec<Option<Instant>> = vec![None; 4];
    let mut server_back_at: Vec<Option<Instant>> = vec![None; servers.len()];
    let mut redis_back_at: Option<Instant> = None;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut next_fault = start + Duration::from_millis(rng.between(0, args.fault_every_ms * 2));
    // Each person's talk and the end draw from streams of their own, so the faults chosen for
    // a seed do not depend on how often the loop found someone due to talk.
    let mut talk: Vec<Rng> = (0..4u64)
        .map(|i| Rng((args.seed ^ (i + 1) << 40).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1))
        .collect();
    let mut end_rng = Rng((args.seed ^ 0xE4D).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut next_say: Vec<Instant> = talk
        .iter_mut()
        .map(|r| start + Duration::from_millis(r.between(0, 2500)))
        .collect();
    let total_weight: u64 = kinds.iter().map(|(_, w)| w).sum();

    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        drain(&mut rx, &mut queued, &mut reports);
        let now = Instant::now();
        for (s, at) in servers.iter_mut().zip(server_back_at.iter_mut()) {
            if at.is_some_and(|t| now >= t) {
                s.start().await?;
                *at = None;
            }
        }
        if let Some(r) = redis.as_mut() {
            if redis_back_at.is_some_and(|t| now >= t) {
                r.restart()?;
                redis_back_at = None;
            }
        }
        for (i, at) in restart_at.iter_mut().enumerate() {
            if at.is_some_and(|t| now >= t) {
                world.start_chat(i)?;
                *at = None;
            }
        }
        // People talk.
        for (i, next) in next_say.iter_mut().enumerate() {
            if now < *next {
                continue;
            }
            let rng = &mut talk[i];
            *next = now + Duration::from_millis(rng.between(500, 4500));
            let roll = rng.between(0, 9);
            if roll < 2 {
                world.tell(i, "typing").await;
            } else if roll < 3 {
                world.tell(i, "read").await;
            }
            if roll == 0 {
                // Typed, and thought better of it.
                continue;
            }
            let n = world.people[i].written + 1;
            let t = text(&mut talk[i], &world.people[i].name, n);
            if world.tell(i, &format!("say {t}")).await {
                world.people[i].written = n;
            }
        }
        // Things break.
        if now < next_fault {
            continue;
        }
        next_fault = now + Duration::from_millis(rng.between(0, args.fault_every_ms * 2));
        let mut pick = rng.between(0, total_weight - 1);
        let kind = kinds
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(k, _)| *k)
            .unwrap_or("cut");
        let who = rng.between(0, 3) as usize;
        let done = match kind {
            "cut" => {
                world.people[who].link.cut();
                true
            }
            "blackhole" => {
                let ms = if rng.between(0, 5) == 0 {
                    rng.between(31_000, 36_000)
                } else {
                    rng.between(1_000, 8_000)
                };
                world.people[who].link.blackhole(Duration::from_millis(ms));
                true
            }
            "delay" => {
                world.people[who].link.delay(
                    rng.between(50, 1000),
                    Duration::from_millis(rng.between(1000, 6000)),
                );
                true
            }
            "late_writes" => {
                world.people[who]
                    .link
                    .late_writes(Duration::from_millis(rng.between(200, 1500)));
                true
            }
            "lost_acks" => {
                world.people[who]
                    .link
                    .lose_acks(Duration::from_millis(rng.between(200, 1500)));
                true
            }
            "slow_reader" => {
                world.people[who].link.slow_reader(
                    rng.between(200, 2000),
                    Duration::from_millis(rng.between(2000, 8000)),
                );
                true
            }
            "server_kill" => {
                let n = rng.between(0, servers.len() as u64 - 1) as usize;
                if server_back_at[n].is_none() {
                    servers[n].kill().await;
                    server_back_at[n] = Some(now + Duration::from_millis(rng.between(0, 1500)));
                    true
                } else {
                    false
                }
            }
            "redis_restart" if redis_back_at.is_none() => match redis.as_mut() {
                Some(r) => {
                    r.kill();
                    redis_back_at = Some(now + Duration::from_millis(rng.between(0, 2000)));
                    true
                }
                None => false,
            },
            "client_kill" if restart_at[who].is_none() => {
                world.kill_chat(who).await;
                restart_at[who] = Some(now + Duration::from_millis(rng.between(0, 2000)));
                true
            }
            "clock" if world.faketime => {
                let secs = rng.between(0, 4 * 86_400) as i64 - 2 * 86_400;
                std::fs::write(&world.people[who].clock, format!("{secs:+}\n"))?;
                true
            }
            _ => false,
        };
        if done {
            *by_kind.entry(kind).or_default() += 1;
        }
    }

    // The faults stop: links heal, the server and every client are up.
    for p in &world.people {
        p.link.heal();
    }
    if let Some(r) = redis.as_mut() {
        if !r.is_up() {
            r.restart()?;
        }
    }
    for s in servers.iter_mut() {
        if s.child.is_none() {
            s.start().await?;
        }
    }
    for (i, at) in restart_at.iter().enumerate() {
        if at.is_some() {
            world.start_chat(i)?;
        }
    }
    // Once everyone is back online, some are typing when it goes quiet and send nothing: the
    // server ends typing 6 s after the last one. That waited out, each person reads (or leaves
    // their unread count standing), and the clients are asked until they agree.
    enum Phase {
        Back(Instant),
        Typed(Instant),
        Checking(Instant),
    }
    let mut phase = Phase::Back(Instant::now() + Duration::from_secs(90));
    let mut typed_at_end = 0;
    let (mut problems, counts) = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for i in 0..4 {
            if !world.tell(i, "report").await {
                // A client that died by itself is a finding; start it again to go on.
                world.start_chat(i)?;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        drain(&mut rx, &mut queued, &mut reports);
        let now = Instant::now();
        match phase {
            Phase::Back(by) => {
                let up = reports.iter().all(|r| {
                    r.as_ref()
                        .is_some_and(|r| r["connection"] == "online" && r["outbox"]["queued"] == 0)
                });
                if up || now >= by {
                    for i in 0..4 {
                        if end_rng.between(0, 1) == 0 && world.tell(i, "typing").await {
                            typed_at_end += 1;
                        }
                    }
                    phase = Phase::Typed(now + Duration::from_secs(8));
                }
            }
            Phase::Typed(until) => {
                if now >= until {
                    for i in 0..4 {
                        if end_rng.between(0, 2) > 0 {
                            world.tell(i, "read").await;
                        }
                    }
                    reports = vec![None; 4];
                    phase = Phase::Checking(now + Duration::from_secs(120));
                }
            }
            Phase::Checking(deadline) => {
                let people: Vec<check::Person> = world
                    .people
                    .iter()
                    .enumerate()
                    .map(|(i, p)| check::Person {
                        name: p.name.clone(),
                        user_id: p.user_id,
                        consultation: p.consultation.clone(),
                        queued: queued[i].clone(),
                        written: p.written,
                        report: reports[i].clone(),
                    })
                    .collect();
                let (problems, counts) = check::check(&people);
                if problems.is_empty() || now >= deadline {
                    break (problems, counts);
                }
            }
        }
    };
    problems.extend(findings.iter().map(|e| format!("client: {e}")));

    for i in 0..4 {
        world.kill_chat(i).await;
    }
    for s in servers.iter_mut() {
        s.kill().await;
    }
    drop(redis);
    drop(pg);
    if args.keep {
        std::fs::write(
            root.join("reports.json"),
            serde_json::to_string_pretty(&json!({"queued": queued, "reports": reports}))?,
        )?;
        let kept = tmp.keep();
        eprintln!("the run's folder: {}", kept.display());
    }
    let faults: u64 = by_kind.values().sum();
    let accepted: u64 = world.people.iter().map(|p| p.link.accepted()).sum();
    Ok(json!({
        "seed": args.seed,
        "backend": if args.cluster { "two nodes on PostgreSQL + Redis" } else { "one node on SQLite" },
        "seconds": seconds,
        "faults": faults,
        "by_kind": by_kind,
        "connections": accepted,
        "typing_at_end": typed_at_end,
        "clock_faults": if faketime { "libfaketime" } else { "skipped: Debian's faketime is not installed" },
        "written": world.people.iter().map(|p| p.written).sum::<u64>(),
        "queued": queued.iter().map(Vec::len).sum::<usize>(),
        "stored": counts.stored,
        "lost": counts.lost,
        "duplicated": counts.duplicated,
        "order_breaks": counts.order_breaks,
        "sender_order_breaks": counts.sender_order_breaks,
        "stuck": counts.stuck,
        "problems": problems,
    }))
}
