//! What the project needs from the machine, installed when missing: Debian packages through
//! apt-get (as root, or with passwordless sudo), tauri-driver through `cargo install`. Where it
//! cannot install, it says exactly what to run.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// To build everything: a C toolchain, libjpeg-turbo's build tools, and Tauri's libraries.
pub const BUILD: &[&str] = &[
    "build-essential",
    "pkg-config",
    "cmake",
    "nasm",
    "libwebkit2gtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libsoup-3.0-dev",
    "libxdo-dev",
    "libssl-dev",
];

/// To run the app's end-to-end tests: a virtual display and WebKit's WebDriver.
pub const TEST: &[&str] = &[
    "xvfb",
    "xauth",
    "webkit2gtk-driver",
    // The server's scenario tests run a second time on a PostgreSQL they start themselves.
    "postgresql",
    // Two-node tests carry realtime frames through a Redis they start themselves.
    "redis-server",
    // The chaos run moves one client's wall clock with libfaketime.
    "faketime",
];

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn sudo_works() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs the Debian packages of `sets` that are missing.
pub fn debian(sets: &[&[&str]]) -> Result<()> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "xtask: not a Debian-like system; make sure the equivalents of these are installed: {}",
            sets.concat().join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = sets
        .concat()
        .into_iter()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let prefix: &[&str] = if is_root() {
        &[]
    } else if sudo_works() {
        &["sudo", "-n"]
    } else {
        bail!(
            "missing Debian packages; install them with:\n  sudo apt-get install -y {}",
            missing.join(" ")
        );
    };
    println!("installing {}…", missing.join(" "));
    let apt = |args: &[&str]| -> Result<()> {
        let (cmd, rest) = match prefix.split_first() {
            Some((sudo, more)) => (*sudo, [more, &["apt-get"], args].concat()),
            None => ("apt-get", args.to_vec()),
        };
        let status = Command::new(cmd)
            .args(rest)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&[&["install", "-y", "-qq"][..], &missing].concat())
}

/// tauri-driver, the WebDriver bridge the end-to-end tests drive the app through.
pub fn tauri_driver() -> Result<()> {
    let in_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| d.join("tauri-driver").is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let in_cargo = cargo_home.is_some_and(|h| h.join("bin/tauri-driver").is_file());
    if in_path || in_cargo {
        return Ok(());
    }
    println!("installing tauri-driver…");
    let status = super::cargo()
        .args(["install", "tauri-driver", "--locked", "--version", "^2"])
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!("cargo install tauri-driver failed ({status})");
    }
    Ok(())
}

/// `cargo fuzz` (libFuzzer targets in fuzz/), installed by `cargo install` when missing.
pub fn cargo_fuzz() -> Result<()> {
    let have = super::cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if have {
        return Ok(());
    }
    println!("installing cargo-fuzz…");
    let status = super::cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}
