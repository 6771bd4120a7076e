//! Small runs of the benchmark scenarios, for what they check rather than how fast: the
//! outbox arrives once each and in order, and every page of history is the page asked for.
//! Timing is never asserted here; `cargo xtask bench` measures.

use serde_json::Value;
use std::process::Command;

fn tara_load(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tara-load"))
        .args(args)
        .output()
        .expect("tara-load starts");
    assert!(
        out.status.success(),
        "tara-load {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report is the last line; the server it starts says where it listens before that.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn a_small_outbox_run_flushes_every_message_once_in_order() {
    let r = tara_load(&["--outbox", "300", "--runs", "2"]);
    assert_eq!(r["messages"], 300);
    let runs = r["every_run"].as_array().expect("every run");
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["in_order"], true, "{run}");
        // The seq the server gave the last of them: the 300 texts follow the system lines.
        assert!(run["last_seq"].as_i64().unwrap() > 300, "{run}");
    }
}

#[test]
fn a_small_history_run_reads_only_right_pages_from_newest_and_deep() {
    let r = tara_load(&[
        "--history",
        "3000",
        "--consultations",
        "20",
        "--clients",
        "4",
        "--seconds",
        "1",
    ]);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["consultations"], 20);
    // The long consultation holds a tenth of the messages: deep pages have room to be deep.
    assert_eq!(r["longest_history"].as_u64(), Some(300 + 1), "{r}");
    assert!(r["newest"]["requests"].as_u64().unwrap() > 0, "{r}");
    assert!(r["deep"]["requests"].as_u64().unwrap() > 0, "{r}");
}
