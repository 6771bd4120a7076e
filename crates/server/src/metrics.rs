//! Prometheus metrics: a handful of atomics rendered as text on `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed buckets.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Relaxed);
                break;
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric of the server.
pub struct Metrics {
    /// Open realtime connections.
    pub connections: AtomicU64,
    /// Messages stored (user and system).
    pub messages_stored: AtomicU64,
    /// Sends answered from storage because they were already stored.
    pub messages_duplicate: AtomicU64,
    /// HTTP requests answered.
    pub http_requests: AtomicU64,
    /// Error frames sent on realtime connections.
    pub realtime_errors: AtomicU64,
    /// Connections dropped for not reading fast enough.
    pub slow_consumers: AtomicU64,
    /// Write transactions committed.
    pub commits: AtomicU64,
    /// Jobs in those transactions.
    pub commit_jobs: AtomicU64,
    /// From a send arriving to its ack leaving.
    pub send_latency: Histogram,
    /// HTTP request handling time.
    pub http_latency: Histogram,
    /// Pushes the providers accepted.
    pub pushes_sent: AtomicU64,
    /// Pushes a provider refused or that did not arrive (dead tokens not counted).
    pub pushes_failed: AtomicU64,
    /// Pushes dropped because the push queue was full.
    pub pushes_dropped: AtomicU64,
    /// Pushes replaced by a newer one for the same recipient and consultation.
    pub pushes_collapsed: AtomicU64,
    /// Publications sent to the other nodes over Redis.
    pub bus_published: AtomicU64,
    /// Publications from other nodes applied here.
    pub bus_received: AtomicU64,
    /// Publications not sent because Redis was away (repaired from the store).
    pub bus_dropped: AtomicU64,
}

/// The process-wide metrics.
pub static METRICS: Metrics = Metrics {
    connections: AtomicU64::new(0),
    messages_stored: AtomicU64::new(0),
    messages_duplicate: AtomicU64::new(0),
    http_requests: AtomicU64::new(0),
    realtime_errors: AtomicU64::new(0),
    slow_consumers: AtomicU64::new(0),
    commits: AtomicU64::new(0),
    commit_jobs: AtomicU64::new(0),
    send_latency: Histogram::new(),
    http_latency: Histogram::new(),
    pushes_sent: AtomicU64::new(0),
    pushes_failed: AtomicU64::new(0),
    pushes_dropped: AtomicU64::new(0),
    pushes_collapsed: AtomicU64::new(0),
    bus_published: AtomicU64::new(0),
    bus_received: AtomicU64::new(0),
    bus_dropped: AtomicU64::new(0),
};

impl Metrics {
    /// One committed group of `jobs` jobs.
    pub fn record_commit(&self, jobs: usize) {
        self.commits.fetch_add(1, Relaxed);
        self.commit_jobs.fetch_add(jobs as u64, Relaxed);
    }

    /// The Prometheus text exposition; `node` names this server in `tara_node_info`.
    pub fn render(&self, node: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let label: String = node
            .chars()
            .flat_map(|c| match c {
                '\\' => vec!['\\', '\\'],
                '"' => vec!['\\', '"'],
                '\n' => vec!['\\', 'n'],
                c => vec![c],
            })
            .collect();
        let _ = writeln!(
            out,
            "# HELP tara_node_info The node answering (--node-id) and its version.\n# TYPE tara_node_info gauge\ntara_node_info{{node=\"{label}\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let mut counter = |name: &str, kind: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        };
        counter(
            "tara_realtime_connections",
            "gauge",
            "Open realtime connections.",
            &self.connections,
        );
        counter(
            "tara_messages_stored_total",
            "counter",
            "Messages stored.",
            &self.messages_stored,
        );
        counter(
            "tara_messages_duplicate_total",
            "counter",
            "Sends that were already stored.",
            &self.messages_duplicate,
        );
        counter(
            "tara_http_requests_total",
            "counter",
            "HTTP requests answered.",
            &self.http_requests,
        );
        counter(
            "tara_realtime_errors_total",
            "counter",
            "Error frames sent.",
            &self.realtime_errors,
        );
        counter(
            "tara_slow_consumers_total",
            "counter",
            "Connections dropped for reading too slowly.",
            &self.slow_consumers,
        );
        counter(
            "tara_bus_published_total",
            "counter",
            "Publications sent to the other nodes over Redis.",
            &self.bus_published,
        );
        counter(
            "tara_bus_received_total",
            "counter",
            "Publications from other nodes applied on this one.",
            &self.bus_received,
        );
        counter(
            "tara_bus_dropped_total",
            "counter",
            "Publications not sent because Redis was away; the store repairs them.",
            &self.bus_dropped,
        );
        counter(
            "tara_db_commits_total",
            "counter",
            "Write transactions committed.",
            &self.commits,
        );
        counter(
            "tara_db_commit_jobs_total",
            "counter",
            "Jobs in committed transactions.",
            &self.commit_jobs,
        );
        for (name, help, v) in [
            (
                "tara_pushes_sent_total",
                "Pushes the providers accepted.",
                &self.pushes_sent,
            ),
            (
                "tara_pushes_failed_total",
                "Pushes that failed.",
                &self.pushes_failed,
            ),
            (
                "tara_pushes_dropped_total",
                "Pushes dropped: the queue was full.",
                &self.pushes_dropped,
            ),
            (
                "tara_pushes_collapsed_total",
                "Pushes replaced by a newer one.",
                &self.pushes_collapsed,
            ),
        ] {
            counter(name, "counter", help, v);
        }
        self.send_latency.render(
            "tara_send_ack_seconds",
            "Time from a send to its ack.",
            &mut out,
        );
        self.http_latency.render(
            "tara_http_request_seconds",
            "HTTP request handling time.",
            &mut out,
        );
        out
    }
}
