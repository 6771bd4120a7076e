//! The fault-injecting TCP proxy: one listener per client, in front of the server. Each
//! connection through it is two directions, and each direction a reader and a writer joined by
//! a queue, so that a fault can act on bytes already read: hold them (a blackhole), make them
//! late (a delay), let them through slowly (a slow reader), throw them away (lost acks), or keep
//! writing them to the server after the client's side was cut (writes of an old connection
//! arriving after the new one's).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

/// What the faults set for one link; read by every connection of it.
#[derive(Default)]
struct Faults {
    /// Nothing moves, either way, until this time (bytes wait).
    stalled_until: Mutex<Option<Instant>>,
    /// Extra milliseconds on every chunk, both ways.
    delay_ms: AtomicU64,
    /// Server-to-client bytes per second, 0 for no limit.
    down_rate: AtomicU64,
}

impl Faults {
    fn stall_end(&self) -> Option<Instant> {
        let until = *self.stalled_until.lock().unwrap_or_else(|p| p.into_inner());
        until.filter(|t| *t > Instant::now())
    }
}

/// One proxied connection's handles.
struct Conn {
    /// The client-to-server reader, the server-to-client reader and writer.
    client_side: Vec<JoinHandle<()>>,
    /// The client-to-server writer: it outlives a late cut to deliver what it holds.
    upstream_writer: JoinHandle<()>,
    /// Server-to-client bytes are dropped while set.
    drop_down: Arc<AtomicBool>,
}

impl Conn {
    fn cut(self) {
        for h in self.client_side {
            h.abort();
        }
        self.upstream_writer.abort();
    }
}

/// One client's link to the server.
pub struct Link {
    pub addr: SocketAddr,
    faults: Arc<Faults>,
    conns: Arc<Mutex<Vec<Conn>>>,
    accepted: Arc<AtomicU64>,
}

impl Link {
    /// Listens on a free loopback port and forwards to the first of `servers` that takes the
    /// connection, as a balancer in front of several nodes does.
    pub async fn start(servers: Vec<SocketAddr>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Faults::default());
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let (f, c, a) = (faults.clone(), conns.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::Relaxed);
                let (f, c, servers) = (f.clone(), c.clone(), servers.clone());
                tokio::spawn(async move {
                    let mut upstream = None;
                    for s in &servers {
                        if let Ok(u) = TcpStream::connect(s).await {
                            upstream = Some(u);
                            break;
                        }
                    }
                    // No server takes it: the proxy refuses too, by closing.
                    let Some(upstream) = upstream else {
                        let _ = client.set_zero_linger();
                        return;
                    };
                    let conn = splice(client, upstream, f);
                    let mut list = c.lock().unwrap_or_else(|p| p.into_inner());
                    list.retain(|k| !k.upstream_writer.is_finished());
                    list.push(conn);
                });
            }
        });
        Ok(Self {
            addr,
            faults,
            conns,
            accepted,
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn take(&self) -> Vec<Conn> {
        std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every connection is cut at once, both sides (reset).
    pub fn cut(&self) -> usize {
        let conns = self.take();
        let n = conns.len();
        conns.into_iter().for_each(Conn::cut);
        n
    }

    /// Nothing moves for `d`, on open connections and new ones; then everything held goes on.
    pub fn blackhole(&self, d: Duration) {
        *self
            .faults
            .stalled_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + d);
    }

    /// Every chunk is late by `ms`, both ways, for `d`.
    pub fn delay(&self, ms: u64, d: Duration) {
        self.faults.delay_ms.store(ms, Ordering::Relaxed);
        let faults = self.faults.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            faults.delay_ms.store(0, Ordering::Relaxed);
        });
    }

    /// The client reads at `bytes_per_second` for `d`.
    pub fn slow_reader(&self, bytes_per_second: u64, d: Duration) {
        self.faults
            .down_rate
            .store(bytes_per_second, Ordering::Relaxed);
        let faults = self.faults.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            faults.down_rate.store(0, Ordering::Relaxed);
        });
    }

    /// Writes of the client go on reaching the server `late` after the client's side is cut,
    /// so the server gets them after (or while) the client's next connection resends them.
    pub fn late_writes(&self, late: Duration) {
        self.faults
            .delay_ms
            .store(late.as_millis() as u64, Ordering::Relaxed);
        let conns = self.take();
        let faults = self.faults.clone();
        tokio::spawn(async move {
            // Let some writes be read and held, then cut the client's side only.
            tokio::time::sleep(late / 2).await;
            for c in conns {
                for h in c.client_side {
                    h.abort();
                }
            }
            faults.delay_ms.store(0, Ordering::Relaxed);
        });
    }

    /// Whatever the server says on open connections is lost for `d`, then they are cut: acks
    /// of stored messages never arrive.
    pub fn lose_acks(&self, d: Duration) -> usize {
        let conns = self.take();
        let n = conns.len();
        for c in &conns {
            c.drop_down.store(true, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            conns.into_iter().for_each(Conn::cut);
        });
        n
    }

    /// Back to a clean link: no stall, no delay, full speed.
    pub fn heal(&self) {
        *self
            .faults
            .stalled_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.faults.delay_ms.store(0, Ordering::Relaxed);
        self.faults.down_rate.store(0, Ordering::Relaxed);
    }
}

fn splice(client: TcpStream, upstream: TcpStream, faults: Arc<Faults>) -> Conn {
    // A cut is a reset to the client, as a dropped link looks to whoever still writes; the
    // server's side closes in order, so what the proxy delivers late is not thrown away.
    let _ = client.set_zero_linger();
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = upstream.into_split();
    let drop_down = Arc::new(AtomicBool::new(false));
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    // A side that ends (cut, or closed by its peer) ends its reader; the writer of that
    // direction then delivers what it holds and closes, and the other direction follows.
    let up_reader = tokio::spawn(read_into(client_r, up_tx, faults.clone()));
    let upstream_writer = tokio::spawn(write_from(up_rx, server_w, faults.clone(), None));
    let down_reader = tokio::spawn(read_into(server_r, down_tx, faults.clone()));
    let down_writer = tokio::spawn(write_from(
        down_rx,
        client_w,
        faults,
        Some(drop_down.clone()),
    ));
    Conn {
        client_side: vec![up_reader, down_reader, down_writer],
        upstream_writer,
        drop_down,
    }
}

type Chunk = (Instant, Vec<u8>);

async fn read_into(mut from: OwnedReadHalf, to: mpsc::UnboundedSender<Chunk>, faults: Arc<Faults>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let due =
                    Instant::now() + Duration::from_millis(faults.delay_ms.load(Ordering::Relaxed));
                if to.send((due, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes what the reader queued, as the faults allow. `down` is the flag that drops the
/// server-to-client bytes (None for the client-to-server direction).
async fn write_from(
    mut from: mpsc::UnboundedReceiver<Chunk>,
    mut to: OwnedWriteHalf,
    faults: Arc<Faults>,
    down: Option<Arc<AtomicBool>>,
) {
    while let Some((due, bytes)) = from.recv().await {
        sleep_until(due).await;
        while let Some(end) = faults.stall_end() {
            sleep_until(end).await;
        }
        if down.as_ref().is_some_and(|d| d.load(Ordering::Relaxed)) {
            continue;
        }
        let rate = if down.is_some() {
            faults.down_rate.load(Ordering::Relaxed)
        } else {
            0
        };
        let written = if rate == 0 {
            to.write_all(&bytes).await
        } else {
            // A tenth of a second's worth at a time.
            let piece = (rate / 10).max(1) as usize;
            let mut result = Ok(());
            for part in bytes.chunks(piece) {
                result = to.write_all(part).await;
                if result.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result
        };
        if written.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}
