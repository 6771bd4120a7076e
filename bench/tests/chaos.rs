//! The short chaos runs of `cargo xtask test`: one minute of faults from a fixed seed, on one
//! SQLite node and on two nodes with PostgreSQL and Redis, then every message ever queued is
//! looked for on every participant (bench/src/bin/tara-chaos). What it
//! asserts is what a person would notice: nothing lost, nothing twice, nothing out of order,
//! nothing left pending, unread counts and receipts right, no "typing…" left on. No timing.

use serde_json::Value;
use std::process::Command;

/// Runs tara-chaos, checks what every run must show, and returns its report.
fn chaos(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tara-chaos"))
        .args(args)
        .output()
        .expect("tara-chaos starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    let r: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{e}: no report; stdout {stdout}; stderr {stderr}"));
    eprintln!("{stderr}");
    assert_eq!(r["problems"], serde_json::json!([]), "{stderr}");
    assert!(out.status.success(), "{stderr}");
    for k in [
        "lost",
        "duplicated",
        "order_breaks",
        "sender_order_breaks",
        "stuck",
    ] {
        assert_eq!(r[k], 0, "{k}: {stderr}");
    }
    // A run that broke nothing or said nothing would prove nothing.
    assert!(r["faults"].as_u64().unwrap() >= 50, "{r}");
    for kind in [
        "cut",
        "late_writes",
        "lost_acks",
        "server_kill",
        "client_kill",
    ] {
        assert!(r["by_kind"][kind].as_u64().unwrap() > 0, "no {kind}: {r}");
    }
    assert!(r["queued"].as_u64().unwrap() >= 40, "{r}");
    assert!(r["stored"].as_u64() >= r["queued"].as_u64(), "{r}");
    r
}

#[test]
fn a_minute_of_faults_loses_nothing_duplicates_nothing_and_leaves_nothing_stuck() {
    let r = chaos(&["--seconds", "60", "--seed", "1"]);
    assert_eq!(r["backend"], "one node on SQLite", "{r}");
}

/// The same minute on two nodes sharing a PostgreSQL and a Redis of the run's own, each
/// consultation's two people on different nodes, with node kills and Redis restarts among the
/// faults.
#[test]
fn a_minute_of_faults_on_two_nodes_with_redis_restarts_loses_nothing() {
    let r = chaos(&["--seconds", "60", "--seed", "1", "--cluster"]);
    assert_eq!(r["backend"], "two nodes on PostgreSQL + Redis", "{r}");
    assert!(r["by_kind"]["redis_restart"].as_u64().unwrap() > 0, "{r}");
}
