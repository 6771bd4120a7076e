//! `cargo xtask run | test | load | screenshots`: the project's two sacred commands and helpers.
//!
//! - `run`: installs what is missing, builds the server and the app, starts the server with
//!   `--dev --demo` on 127.0.0.1:7700 (data in the user's data folder) and opens two app
//!   windows, a customer and a guide, and says how to log in.
//! - `test`: installs what is missing, then `cargo fmt --check`, clippy with `-D warnings`, and
//!   every test of the workspace (the app's end-to-end tests under Xvfb included).
//! - `load`: a quick local load run of the server (see `bench/`).
//! - `screenshots`: reruns the app's end-to-end test and saves its pictures in docs/screenshots.
//! - `fuzz`: each libFuzzer target in fuzz/ for a bounded time (see `fuzz.rs`).
//! - `bench`: benchmarks beside their peers, tables in BENCHMARKS.md (see `bench.rs`).
//! - `cluster`: PostgreSQL, Redis, two nodes and nginx on 127.0.0.1:7700, and the app windows
//!   (see `cluster.rs` and docs/deploy.md).

mod bench;
mod cluster;
mod deps;
mod fuzz;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo xtask <run | test | load [ARGS…] | screenshots | fuzz [--seconds N] [TARGET…] | bench [NAME…] [--quick] | cluster [--nodes N] [--server-only] | chaos [--minutes N] [--seed S] [--cluster]>
  run          build, start the server (--dev --demo) on 127.0.0.1:7700, open a customer and a guide window
  test         fmt check, clippy -D warnings, every test (installs what is missing)
  load         a local load run: messages persisted per second, ack latency
  screenshots  rerun the app's end-to-end test, saving its screenshots to docs/screenshots
  fuzz         run each fuzz target (client_frame, image_header, compress, rest_bodies, hub_frames,
               server_frames) for N seconds (default 60) from its seeds in fuzz/corpus
  bench        benchmarks beside their peers (built: images, outbox, history), results in bench/results
               and BENCHMARKS.md
  cluster      PostgreSQL, Redis, N nodes (--nodes N, default 2) and nginx on 127.0.0.1:7700, then the
               app windows as `run` opens them (--server-only: none)
  chaos        four tara-cli clients chat through fault-injecting links while the server and clients
               are killed (default 10 minutes, seed 1); every message checked on every participant;
               --cluster: two nodes on PostgreSQL + Redis, nodes and Redis killed too";

fn main() {
    if let Err(e) = real_main() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "run" => run(&rest),
        "test" => test(),
        "load" => load(&rest),
        "screenshots" => screenshots(),
        "fuzz" => fuzz::fuzz(&rest),
        "bench" => bench::bench(&rest),
        "cluster" => cluster::cluster(&rest),
        "chaos" => chaos(&rest),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn check(what: &str, status: std::io::Result<ExitStatus>) -> Result<()> {
    let status = status.with_context(|| format!("could not start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Where the user's data lives: `$XDG_DATA_HOME/tara`, or `~/.local/share/tara`.
fn data_home() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("tara");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/share/tara");
    }
    root().join("tara-data")
}

/// Children stopped when `run` ends, however it ends.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn wait_for_health(bind: &str) -> Result<()> {
    let addr: std::net::SocketAddr = bind
        .parse()
        .with_context(|| format!("--bind {bind} is not an address"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the server did not start listening on {bind}")
}

/// Whether there is a display to open app windows on.
fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
}

/// The customer's and the guide's app windows, each with a profile of its own, on `url`.
fn open_windows(bin: &Path, url: &str, running: &mut Running) -> Result<()> {
    for profile in ["customer", "guide"] {
        running.0.push(
            Command::new(bin.join("tara-app"))
                .args(["--profile", profile, "--server", url])
                .spawn()
                .context("starting tara-app")?,
        );
    }
    Ok(())
}

fn run(args: &[String]) -> Result<()> {
    let bind = args
        .windows(2)
        .find(|w| w[0] == "--bind")
        .map(|w| w[1].clone())
        .unwrap_or_else(|| "127.0.0.1:7700".into());
    let server_only = args.iter().any(|a| a == "--server-only");
    let with_app = !server_only && has_display();
    if with_app {
        deps::debian(&[deps::BUILD])?;
    } else {
        deps::debian(&[&["build-essential", "cmake", "nasm"]])?;
    }
    println!("building…");
    let mut build = cargo();
    build.args(["build", "-p", "tara-server"]);
    if with_app {
        build.args(["-p", "tara-app"]);
    }
    check("cargo build", build.status())?;

    let data = data_home().join("server");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let bin = target_dir().join("debug");
    let mut running = Running(Vec::new());
    running.0.push(
        Command::new(bin.join("tara-server"))
            .args(["serve", "--bind", &bind, "--dev", "--demo", "--data-dir"])
            .arg(&data)
            .spawn()
            .context("starting tara-server")?,
    );
    wait_for_health(&bind)?;
    let url = format!("http://{bind}");
    if with_app {
        open_windows(&bin, &url, &mut running)?;
    }
    println!(
        "
Tara is running: the server on {url} (dev mode, demo guides), data in {data}.
{windows}
Log in (dev mode shows the code on the login screen, and the server log prints
`dev otp for +91…: NNNNNN`):
  Guide window:    choose Astrologer, country +91, phone 0000000001 (Asha Iyer, a demo guide),
                   then switch yourself Online.
  Customer window: choose Customer, +91 and any phone, e.g. 9876543210; pick Asha Iyer, request a chat.
  The guide accepts; chat, send a picture, end the chat and rate it.
Scripts can talk to the same server: see the README (curl, websocat, tara-cli).
Ctrl-C stops everything.
",
        data = data.display(),
        windows = if with_app {
            "Two app windows are opening: \"Tara — customer\" and \"Tara — guide\"."
        } else if server_only {
            "(--server-only: no app windows.)"
        } else {
            "No display found (DISPLAY/WAYLAND_DISPLAY unset), so no app windows: server only."
        },
    );
    // Ends when the server ends (Ctrl-C reaches the whole foreground group).
    let status = running.0[0].wait();
    check("tara-server", status)
}

fn test() -> Result<()> {
    deps::debian(&[deps::BUILD, deps::TEST])?;
    deps::tauri_driver()?;
    check(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]).status(),
    )?;
    check(
        "cargo clippy",
        cargo()
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .status(),
    )?;
    check(
        "cargo test",
        cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .status(),
    )?;
    // The same scenario tests, on the PostgreSQL store (the harness starts its own server).
    check(
        "cargo test -p tara-server on PostgreSQL",
        cargo()
            .args(["test", "-p", "tara-server", "--no-fail-fast"])
            .env("TARA_TEST_DATABASE", "postgres")
            .status(),
    )?;
    Ok(())
}

/// The chaos run (bench/src/bin/tara-chaos): builds the server, the command line and the
/// driver, runs it with these arguments, and leaves its report in bench/results/.
fn chaos(args: &[String]) -> Result<()> {
    deps::debian(&[deps::BUILD, &["faketime", "postgresql", "redis-server"]])?;
    check(
        "cargo build",
        cargo()
            .args([
                "build",
                "-p",
                "tara-server",
                "-p",
                "tara-cli",
                "-p",
                "tara-bench",
            ])
            .status(),
    )?;
    let report = root().join("bench").join("results");
    check(
        "tara-chaos",
        Command::new(target_dir().join("debug").join("tara-chaos"))
            .args(args)
            .arg("--report")
            .arg(&report)
            .status(),
    )
}

fn load(args: &[String]) -> Result<()> {
    check(
        "the load tool",
        cargo()
            .args([
                "run",
                "--release",
                "-p",
                "tara-bench",
                "--bin",
                "tara-load",
                "--",
            ])
            .args(args)
            .status(),
    )
}

fn screenshots() -> Result<()> {
    deps::debian(&[deps::BUILD, deps::TEST])?;
    deps::tauri_driver()?;
    check(
        "the app's end-to-end test",
        cargo()
            .args(["test", "-p", "tara-app", "--test", "app"])
            .env("TARA_SCREENSHOTS", root().join("docs/screenshots"))
            .status(),
    )
}
