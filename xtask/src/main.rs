//! `cargo xtask run | test | load`: the project's two sacred commands and the load tool.
//!
//! - `run`: builds the server and starts it with `--dev --demo` on 127.0.0.1:7700, data in the
//!   user's data folder, and prints how to log in.
//! - `test`: `cargo fmt --check`, clippy with `-D warnings`, every test of the workspace.
//! - `load`: a quick local load run of the server (see `bench/`).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

const USAGE: &str = "usage: cargo xtask <run | test | load [ARGS…]>
  run    build and start the server (--dev --demo) on 127.0.0.1:7700
  test   fmt check, clippy -D warnings, every test
  load   a local load run: messages persisted per second, ack latency";

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

fn run(args: &[String]) -> Result<()> {
    let bind = args
        .windows(2)
        .find(|w| w[0] == "--bind")
        .map(|w| w[1].clone())
        .unwrap_or_else(|| "127.0.0.1:7700".into());
    println!("building tara-server…");
    check(
        "cargo build",
        cargo().args(["build", "-p", "tara-server"]).status(),
    )?;
    let data = data_home().join("server");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let exe = target_dir().join("debug").join("tara-server");
    println!(
        "
Tara server on http://{bind} (dev mode, demo guides), data in {data}
Log codes print below as `dev otp for +91…: NNNNNN`, and dev mode also returns them as `dev_otp`.

Log in as a customer:
  curl -s -X POST http://{bind}/api/v1/auth/otp/generate -H 'content-type: application/json' \\
    -d '{{\"area_code\":\"+91\",\"phone_number\":\"9876543210\",\"user_type\":\"customer\",\"purpose\":\"login\"}}'
  curl -s -X POST http://{bind}/api/v1/auth/otp/validate -H 'content-type: application/json' \\
    -d '{{\"request_id\":\"<request_id>\",\"otp_code\":\"<dev_otp>\",\"user_type\":\"customer\",\"device_info\":{{\"device_type\":\"cli\",\"platform\":\"linux\"}},\"phone_number\":\"9876543210\",\"area_code\":\"+91\"}}'
Demo guides log in the same way with user_type guide and phones 0000000001 to 0000000004.
The README walks through a whole consultation. Ctrl-C stops the server.
",
        data = data.display()
    );
    let status = Command::new(&exe)
        .args(["serve", "--bind", &bind, "--dev", "--demo", "--data-dir"])
        .arg(&data)
        .status();
    check("tara-server", status)
}

fn test() -> Result<()> {
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
    Ok(())
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
