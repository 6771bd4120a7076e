//! `tara-load --history N`: history pages from a server holding N stored messages.
//!
//! Seeds a fresh SQLite store (through the store's own write path, group commit and all) with
//! `--consultations` consultations holding N messages between them: a thousandth of the
//! consultations are long (a tenth of all messages between them), the rest share the others.
//! Then a real server opens that store on a loopback port, and `--clients` HTTP clients, each
//! with its own keep-alive connection, ask for pages of 50 for `--seconds`: half the newest page
//! of a consultation picked at random, half a deep page (`before_seq` anywhere in one of the long
//! histories). Each answer is checked (50 messages, ascending, contiguous, ending where it
//! should): a wrong page counts as an error, and any error fails the run.

use super::{accepted_consultation, get_status, load_config, login, wait_up, Args, Quiet};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tara_bench::{machine, quantile_ms, today, Rng};
use tara_protocol::messages::MessageKind;
use tara_protocol::{ClientMsgId, UserId};
use tara_server::store::sqlite::SqliteStore;
use tara_server::store::{NewMessage, Store};

/// The page size the app asks for.
const PAGE: usize = 50;
/// The goal of the benchmark issue: p99 under 5 ms.
const GOAL_P99_MS: f64 = 5.0;

/// One seeded consultation: its id, its customer's index, and its highest seq.
#[derive(Clone)]
struct Seeded {
    id: String,
    customer: usize,
    head: u64,
}

/// A text of realistic length (40–200 characters) for message `i`.
fn text(i: usize) -> String {
    let len = 40 + (i * 37) % 161;
    format!("{i} ")
        .chars()
        .chain("the moon in the seventh house, ".chars().cycle())
        .take(len)
        .collect()
}

/// How many messages consultation `i` of `c` holds when `n` are spread as the module says.
fn share(i: usize, c: usize, n: usize) -> usize {
    let long = (c / 1000).max(1).min(c);
    let (pool, count, k) = if long == c {
        (n, c, i)
    } else if i < long {
        (n / 10, long, i)
    } else {
        (n - n / 10, c - long, i - long)
    };
    pool / count + usize::from(k < pool % count)
}

/// Fills a fresh store in `dir`; returns what each consultation holds.
async fn seed(dir: &std::path::Path, c: usize, n: usize) -> Result<Vec<Seeded>> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir, Arc::new(Quiet))?);
    let now = || chrono::Utc::now().timestamp_millis();
    let mut seeded = Vec::with_capacity(c);
    for i in 0..c {
        let (id, guide, customer) = accepted_consultation(&store, i).await?;
        seeded.push((id, guide, customer, share(i, c, n)));
    }
    // Many consultations written at once, each queueing its messages in runs and waiting for
    // them, so the writer commits big groups as it does under load.
    let started = Instant::now();
    let workers = 64.min(c.max(1));
    let seeded = Arc::new(seeded);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (store, seeded) = (store.clone(), seeded.clone());
        tasks.push(tokio::spawn(async move {
            let mut heads = Vec::new();
            for i in (w..seeded.len()).step_by(workers) {
                let (id, guide, customer, count) = &seeded[i];
                let mut head = 0u64;
                let mut k = 0;
                while k < *count {
                    let run = (*count - k).min(256);
                    let mut pending = Vec::with_capacity(run);
                    for j in k..k + run {
                        let sender = if j % 2 == 0 { *customer } else { *guide };
                        let new = NewMessage {
                            consultation_id: id.clone(),
                            sender_id: UserId(sender.0),
                            client_msg_id: ClientMsgId(uuid::Uuid::now_v7().to_string()),
                            kind: MessageKind::Text,
                            content: text(j),
                            media_id: None,
                            chain: None,
                        };
                        pending.push(store.queue_message(new, now(), Box::new(|| Ok(()))).await?);
                    }
                    for p in pending {
                        head = head.max(p.wait().await?.message.seq as u64);
                    }
                    k += run;
                }
                heads.push((i, head));
            }
            anyhow::Ok(heads)
        }));
    }
    let mut out: Vec<Seeded> = seeded
        .iter()
        .enumerate()
        .map(|(i, (id, ..))| Seeded {
            id: id.0.clone(),
            customer: i,
            head: 0,
        })
        .collect();
    for t in tasks {
        for (i, head) in t.await?? {
            out[i].head = head;
        }
    }
    store.flush().await?;
    eprintln!(
        "seeded {n} messages over {c} consultations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// What a page must be: `PAGE` messages, ascending and contiguous, the last one `last`.
fn check_page(page: &Value, last: u64) -> Result<()> {
    let messages = page["messages"].as_array().context("no messages array")?;
    if messages.len() != PAGE {
        bail!("{} messages, not {PAGE}", messages.len());
    }
    let seqs: Vec<u64> = messages.iter().filter_map(|m| m["seq"].as_u64()).collect();
    if seqs.len() != PAGE || seqs.windows(2).any(|w| w[1] != w[0] + 1) {
        bail!("seqs not ascending and contiguous: {seqs:?}");
    }
    if seqs[PAGE - 1] != last {
        bail!("the page ends at {}, not {last}", seqs[PAGE - 1]);
    }
    if page["has_more"] != json!(seqs[0] > 1) {
        bail!(
            "has_more is {} with the page starting at {}",
            page["has_more"],
            seqs[0]
        );
    }
    Ok(())
}

/// What one kind of page measured.
struct Kind {
    latencies: Vec<Duration>,
}

impl Kind {
    fn json(&mut self, seconds: f64) -> Value {
        self.latencies.sort();
        let l = &self.latencies;
        json!({
            "requests": l.len(),
            "requests_per_second": (l.len() as f64 / seconds).round(),
            "p50_ms": quantile_ms(l, 0.50),
            "p99_ms": quantile_ms(l, 0.99),
            "p999_ms": quantile_ms(l, 0.999),
        })
    }
}

pub async fn history(args: &Args, n: usize) -> Result<()> {
    let c = args.consultations.max(1);
    if n < c * (PAGE + 1) {
        bail!(
            "--history {n} is too few for {c} consultations: each needs more than a page ({PAGE})"
        );
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("server");
    let seeded = seed(&dir, c, n).await?;
    let long = (c / 1000).max(1).min(c);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tara_server::launch(
        load_config(&dir),
        listener,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let http = reqwest::Client::new();
    wait_up(&http, &base).await?;

    // The readers: every long consultation's customer, and up to a thousand others spread
    // over the rest, each logged in once (a bearer token serves any number of clients).
    let step = ((c - long) / 1000).max(1);
    let chosen: Vec<Seeded> = seeded[..long]
        .iter()
        .chain(seeded[long..].iter().step_by(step))
        .cloned()
        .collect();
    let mut readers = Vec::with_capacity(chosen.len());
    for s in chosen {
        let (_, token) =
            login(&http, &base, &format!("80000{:05}", s.customer), "customer").await?;
        readers.push((s, token));
    }
    let readers = Arc::new(readers);
    eprintln!(
        "{} clients reading pages of {PAGE} for {} s from {} consultations…",
        args.clients,
        args.seconds,
        readers.len()
    );

    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..args.clients {
        let (readers, base) = (readers.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            // One keep-alive connection per client, as an app holds.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B ^ ((k as u64 + 1) * 0x9E37_79B9));
            let (mut newest, mut deep, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let is_deep = i.is_multiple_of(2);
                let (s, token) = if is_deep {
                    &readers[rng.between(0, long as u64 - 1) as usize]
                } else {
                    &readers[rng.between(0, readers.len() as u64 - 1) as usize]
                };
                let (path, last) = if is_deep {
                    let before = rng.between(PAGE as u64 + 1, s.head);
                    (
                        format!(
                            "/consultation/{}/messages?before_seq={before}&limit={PAGE}",
                            s.id
                        ),
                        before - 1,
                    )
                } else {
                    (
                        format!("/consultation/{}/messages?limit={PAGE}", s.id),
                        s.head,
                    )
                };
                let t = Instant::now();
                let got = get_status(&http, &base, &path, token).await;
                let took = t.elapsed();
                match got.and_then(|(status, page)| {
                    if status != 200 {
                        bail!("{path}: {status} {page}");
                    }
                    check_page(&page, last).with_context(|| path.clone())
                }) {
                    Ok(()) if is_deep => deep.push(took),
                    Ok(()) => newest.push(took),
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            anyhow::Ok((newest, deep, errors))
        }));
    }
    let (mut newest, mut deep, mut errors) = (
        Kind { latencies: vec![] },
        Kind { latencies: vec![] },
        Vec::new(),
    );
    for t in tasks {
        let (a, b, e) = t.await??;
        newest.latencies.extend(a);
        deep.latencies.extend(b);
        errors.extend(e);
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    server.await??;
    for e in errors.iter().take(5) {
        eprintln!("wrong page: {e}");
    }
    let report = json!({
        "benchmark": "history", "date": today(), "machine": machine(),
        "messages": n, "consultations": c, "long_consultations": long,
        "longest_history": seeded[..long].iter().map(|s| s.head).max(),
        "clients": args.clients, "seconds": seconds, "page": PAGE,
        "newest": newest.json(seconds), "deep": deep.json(seconds),
        "errors": errors.len(), "goal_p99_ms": GOAL_P99_MS,
    });
    super::report("history", &report, &history_table(&report), args)?;
    if !errors.is_empty() {
        bail!("{} pages were wrong", errors.len());
    }
    Ok(())
}

fn history_table(r: &Value) -> String {
    let mut s = format!(
        "History, {} messages over {} consultations (the {} longest reach seq {}), {} clients \
         for {:.0} s, pages of {PAGE}, on {} ({}):\n\n\
         | page | requests | req/s | p50 ms | p99 ms | p99.9 ms | goal p99 | p99 against the goal |\n\
         |---|---|---|---|---|---|---|---|\n",
        r["messages"], r["consultations"], r["long_consultations"], r["longest_history"],
        r["clients"], r["seconds"].as_f64().unwrap_or(0.0), r["machine"].as_str().unwrap_or(""),
        r["date"].as_str().unwrap_or("")
    );
    for (label, k) in [("newest", &r["newest"]), ("deep `before_seq`", &r["deep"])] {
        let p99 = k["p99_ms"].as_f64().unwrap_or(0.0);
        s += &format!(
            "| {label} | {} | {} | {:.2} | {:.2} | {:.2} | < {GOAL_P99_MS} ms | {:.2}x the goal ({}) |\n",
            k["requests"],
            k["requests_per_second"],
            k["p50_ms"].as_f64().unwrap_or(0.0),
            p99,
            k["p999_ms"].as_f64().unwrap_or(0.0),
            p99 / GOAL_P99_MS,
            if p99 < GOAL_P99_MS { "met" } else { "missed" }
        );
    }
    s += &format!("\nWrong pages: {}.\n", r["errors"]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_add_up_and_the_long_ones_hold_a_tenth() {
        for (c, n) in [(10_000, 1_000_000), (20, 2_000), (3, 1_000), (1, 500)] {
            let total: usize = (0..c).map(|i| share(i, c, n)).sum();
            assert_eq!(total, n, "{c} consultations, {n} messages");
        }
        assert_eq!(share(0, 10_000, 1_000_000), 10_000);
        // 900,000 over the other 9,990: 90 each, the remainder one more to the first ones.
        assert_eq!(share(10, 10_000, 1_000_000), 91);
        assert_eq!(share(9_999, 10_000, 1_000_000), 90);
    }

    #[test]
    fn texts_are_of_realistic_length() {
        for i in 0..1000 {
            let n = text(i).chars().count();
            assert!((40..=200).contains(&n), "{n}");
        }
    }
}
