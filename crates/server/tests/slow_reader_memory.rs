//! What sockets that never read cost the server in memory, measured: its own test binary, so
//! no other test's allocations run in the same process while resident memory is read.
//!
//! Four connections subscribe and then read nothing while the other side writes the longest
//! texts the contract allows. Each is dropped once its outgoing queue (`outgoing_queue`, 1024
//! frames by default) is full; the server's resident memory grows by at most what four full
//! queues hold, and writing on after they are dropped grows it no further.

mod common;

use common::{cmid, metric, tight_connection, TestServer, Ws, WAIT};
use futures_util::StreamExt;
use serde_json::json;

const READERS: usize = 4;
/// The longest text: 4000 characters of three bytes each.
fn longest_text() -> String {
    "ॐ".repeat(4000)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Sends `n` of the longest texts in windows of 32, each window's acks read before the next.
async fn write_longest(ws: &mut Ws, id: &str, n: usize) {
    let text = longest_text();
    for _ in 0..n / 32 {
        let ids: Vec<String> = (0..32).map(|_| cmid()).collect();
        for c in &ids {
            ws.send(json!({"type": "send", "client_msg_id": c, "consultation_id": id, "kind": "text", "content": text}))
                .await;
        }
        for c in &ids {
            let ack = ws.next_of("ack").await;
            assert_eq!(
                ack["client_msg_id"],
                c.as_str(),
                "acks keep coming, in order"
            );
        }
    }
}

#[tokio::test]
async fn sockets_that_never_read_cost_at_most_their_queues_and_are_dropped() {
    let mut queue = 0;
    let server = TestServer::start_with(|c| {
        c.message_burst = 100_000;
        c.messages_per_minute = 10_000_000;
        queue = c.outgoing_queue;
    })
    .await;
    assert_eq!(queue, 1024, "the default queue is what this measures");
    let (guide, mut guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543210").await;
    let id = server.open_consultation(&customer, &guide).await;
    // Warm up the write path (writer, statement cache, allocator arenas) before measuring.
    write_longest(&mut guide_ws, &id, 64).await;

    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut ws = tight_connection(&server, &customer.token).await;
        ws.subscribe(&id, 0).await;
        readers.push(ws);
    }
    let dropped_before = metric(&server, "tara_slow_consumers_total").await;
    let before = rss_kib();

    // Past a full queue for every reader: each must be dropped.
    let mut peak = before;
    let mut sent = 0;
    while metric(&server, "tara_slow_consumers_total").await < dropped_before + READERS as u64 {
        assert!(
            sent < 3 * queue,
            "{sent} messages written and not every never-reading socket was dropped"
        );
        write_longest(&mut guide_ws, &id, 128).await;
        sent += 128;
        peak = peak.max(rss_kib());
    }
    let at_drop = rss_kib();
    // Writing on costs nothing more: nobody is holding frames any longer.
    write_longest(&mut guide_ws, &id, queue).await;
    let after_more = rss_kib();

    // One frame of the longest text: the JSON of 4000 three-byte characters and its fields.
    let frame_kib = (longest_text().len() + 400) as u64 / 1024 + 1;
    let queues_kib = READERS as u64 * queue as u64 * frame_kib;
    let growth = peak.saturating_sub(before);
    eprintln!(
        "never-reading sockets: {READERS} dropped after {sent} messages of {} bytes; RSS {before} KiB \
         before, peak {peak} KiB (+{growth} KiB, {} KiB a socket; {READERS} full queues would be \
         {queues_kib} KiB), {at_drop} KiB at the drop, {after_more} KiB after {queue} more",
        longest_text().len(),
        growth / READERS as u64,
    );
    assert!(
        growth <= queues_kib + 32 * 1024,
        "the server grew by {growth} KiB for {READERS} never-reading sockets, more than their \
         queues ({queues_kib} KiB) and 32 MiB"
    );
    assert!(
        after_more <= at_drop.max(peak) + 16 * 1024,
        "writing {queue} more after the drop grew the server from {at_drop} KiB to {after_more} KiB"
    );

    // Each was closed, and the server says so: none is left half open.
    for mut ws in readers {
        let end = tokio::time::timeout(WAIT * 3, async {
            while let Some(frame) = ws.stream.next().await {
                if frame.is_err() {
                    break;
                }
            }
        })
        .await;
        assert!(end.is_ok(), "a dropped socket was left open");
    }
    assert_eq!(
        metric(&server, "tara_slow_consumers_total").await,
        dropped_before + READERS as u64,
        "each never-reading socket was counted once"
    );
}
