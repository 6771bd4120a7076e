//! `cargo xtask fuzz [--seconds N] [TARGET…]`: each libFuzzer target in fuzz/ for N seconds
//! (default 60), starting from its committed seeds in fuzz/corpus/TARGET. New inputs it finds
//! go to a scratch corpus, so the committed one changes only when someone copies a case in.
//! A crash, a hang (an input over 30 s) or more than 256 MB resident stops the run and leaves
//! the input in fuzz/artifacts/TARGET/.
//!
//! The targets build on the stable toolchain with `--sanitizer none`: libFuzzer's coverage
//! guidance and its crash, timeout and memory checks work; AddressSanitizer needs a nightly
//! compiler, which this project does not assume (Rust code here is memory-safe by the
//! compiler; the C in the build, SQLite and libjpeg-turbo, runs unsanitized).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Every target, in the order they run.
pub const TARGETS: &[&str] = &[
    "client_frame",
    "image_header",
    "compress",
    "rest_bodies",
    "hub_frames",
    "server_frames",
];

pub fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a whole number")?;
            }
            t if TARGETS.contains(&t) => chosen.push(t),
            other => bail!(
                "unknown fuzz argument {other:?}; targets are: {}",
                TARGETS.join(", ")
            ),
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.to_vec();
    }
    super::deps::cargo_fuzz()?;
    let root = super::root();
    let fuzz_dir = root.join("fuzz");
    let scratch = tempfile_dir()?;
    let mut report = Vec::new();
    for target in chosen {
        let work = scratch.join(target);
        std::fs::create_dir_all(&work)?;
        let seeds = fuzz_dir.join("corpus").join(target);
        println!("fuzzing {target} for {seconds} s…");
        let out = super::cargo()
            .current_dir(&fuzz_dir)
            .args(["fuzz", "run", "--sanitizer", "none", "--release", target])
            .arg(&work)
            .arg(&seeds)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=256",
                "-timeout=30",
                "-max_len=65536",
                "-print_final_stats=1",
            ])
            .env("RUST_LOG", "off")
            // Instrumented builds of their own: the workspace's artifacts stay as they are.
            .env("CARGO_TARGET_DIR", super::target_dir().join("fuzz"))
            .output()
            .context("running cargo fuzz")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let runs = stat(&stderr, "stat::number_of_executed_units:");
        let corpus = count(&work) + count(&seeds);
        report.push((target, runs, corpus, out.status.success()));
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("{}", tail.join("\n"));
            print_report(&report, seconds);
            bail!("fuzz target {target} failed; the input is in fuzz/artifacts/{target}/");
        }
    }
    print_report(&report, seconds);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn print_report(report: &[(&str, Option<u64>, usize, bool)], seconds: u64) {
    println!("\n| target | seconds | executions | corpus | result |\n|---|---|---|---|---|");
    for (target, runs, corpus, ok) in report {
        println!(
            "| {target} | {seconds} | {} | {corpus} | {} |",
            runs.map_or("?".into(), |r| r.to_string()),
            if *ok {
                "no crash, hang or OOM"
            } else {
                "FAILED"
            }
        );
    }
}

fn stat(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tara-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
