//! The short chaos run of `cargo xtask test`: one minute of faults from a fixed seed, then every
//! message ever queued is looked for on every participant (bench/src/bin/tara-chaos). What it
//! asserts is what a person would notice: nothing lost, nothing twice, nothing out of order,
//! nothing left pending, unread counts and receipts right, no "typing…" left on. No timing.

use serde_json::Value;
use std::process::Command;

#[test]
fn a_minute_of_faults_loses_nothing_duplicates_nothing_and_leaves_nothing_stuck() {
    let out = Command::new(env!("CARGO_BIN_EXE_tara-chaos"))
        .args(["--seconds", "60", "--seed", "1"])
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
}
