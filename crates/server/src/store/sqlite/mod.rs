//! The SQLite backend: one file in the data dir, WAL, one writer thread with group commit, and a
//! small pool of read connections used from `spawn_blocking`.
//!
//! Every write is a job sent to the writer thread. The thread takes whatever jobs are waiting
//! (up to [`MAX_BATCH`]), runs each inside its own savepoint (a refused job rolls back alone),
//! commits once, and only then answers each caller. So an ack always means "committed", while
//! one fsync is shared by everything that arrived during the previous one.

mod accounts;
mod consultations;
mod messages;
mod rows;
mod schema;
mod store_impl;

use crate::error::{Error, Result};
use crate::store::{CommitListener, Committed};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Jobs committed together at most.
pub const MAX_BATCH: usize = 1024;
/// Read connections kept open.
const READ_POOL: usize = 8;

type Finisher = Box<dyn FnOnce(bool) + Send>;
type Job = Box<dyn FnOnce(&Connection, &mut Vec<Committed>) -> Finisher + Send>;

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointing: Arc<AtomicBool>,
}

impl SqliteStore {
    /// Opens (creating and migrating) `tara.db` in `dir`; committed messages go to `listener`.
    pub fn open(dir: &Path, listener: Arc<dyn CommitListener>) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("tara.db");
        let mut conn = Connection::open(&path)?;
        schema::configure(&conn)?;
        schema::migrate(&mut conn)?;
        schema::configure_writer(&conn)?;
        let (tx, rx) = mpsc::channel::<Job>(16 * 1024);
        let handle = std::thread::Builder::new()
            .name("tara-sqlite-writer".into())
            .spawn({
                let wal = dir.join("tara.db-wal");
                move || write_loop(conn, wal, rx, listener)
            })?;
        let running = Arc::new(AtomicBool::new(true));
        let checkpoints = Connection::open(&path)?;
        schema::configure(&checkpoints)?;
        let flag = running.clone();
        std::thread::Builder::new()
            .name("tara-sqlite-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, flag))?;
        Ok(Self {
            path,
            jobs: Some(tx),
            readers: Arc::new(Mutex::new(Vec::new())),
            writer: Mutex::new(Some(handle)),
            checkpointing: running,
        })
    }

    /// Runs `f` in the writer's transaction; answers after the commit.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn, committed| {
            let outcome = in_savepoint(conn, committed, f);
            Box::new(move |commit_ok| {
                let answer = match outcome {
                    Ok(v) if commit_ok => Ok(v),
                    Ok(_) => Err(Error::internal("the database could not commit")),
                    Err(e) => Err(e),
                };
                // The caller may have gone away (client disconnected); nothing to do then.
                let _ = tx.send(answer);
            })
        });
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::internal("the store is closed"))?;
        jobs.send(job)
            .await
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        rx.await
            .map_err(|_| Error::internal("the database writer dropped a job"))?
    }

    /// Runs `f` on a read connection, off the async executor.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            // The lock is held only to pop or push a connection, never while querying.
            let pooled = readers
                .lock()
                .map_err(|_| Error::internal("reader pool poisoned"))?
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open(&path)?;
                    schema::configure(&c)?;
                    c
                }
            };
            let out = f(&conn);
            if let Ok(mut pool) = readers.lock() {
                if pool.len() < READ_POOL {
                    pool.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|e| Error::internal(format_args!("read task: {e}")))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once the queued jobs are committed.
        self.jobs = None;
        if let Some(handle) = self.writer.lock().ok().and_then(|mut h| h.take()) {
            let _ = handle.join();
        }
        self.checkpointing.store(false, Ordering::Relaxed);
    }
}

/// Past this size the writer restarts the WAL between two groups.
const WAL_LIMIT: u64 = 32 * 1024 * 1024;

/// Copies the WAL into the database every 100 ms, off the writer's path, so that when the
/// writer restarts the log (see `write_loop`) there is little left to copy. Ends with a
/// truncating checkpoint when the store closes.
fn checkpointer(conn: Connection, running: Arc<AtomicBool>) {
    let mut ticks = 0u32;
    while running.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        ticks += 1;
        if ticks % 2 != 0 {
            continue;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// Restarts the log when it has grown past [`WAL_LIMIT`]. Only the writer can do this under
/// sustained load: another connection never finds a gap between the writer's transactions,
/// and a log that only grows costs a fresh (zeroed) page for every frame written.
fn restart_wal_if_large(conn: &Connection, wal: &Path) {
    if std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_LIMIT) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "could not restart the WAL yet");
        }
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    committed: &mut Vec<Committed>,
    f: impl FnOnce(&Connection, &mut Vec<Committed>) -> Result<T>,
) -> Result<T> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let mut mine = Vec::new();
    match f(conn, &mut mine) {
        Ok(v) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            committed.append(&mut mine);
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn write_loop(
    conn: Connection,
    wal: PathBuf,
    mut rx: mpsc::Receiver<Job>,
    listener: Arc<dyn CommitListener>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut groups = 0u64;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut committed = Vec::new();
        let mut finishers = Vec::with_capacity(batch.len());
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = began {
            tracing::error!(error = %e, "could not begin a write transaction");
            for job in batch.drain(..) {
                // Run nothing; tell every caller it failed.
                drop(job);
            }
            continue;
        }
        for job in batch.drain(..) {
            finishers.push(job(&conn, &mut committed));
        }
        let ok = match conn.execute_batch("COMMIT") {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the group is rolled back");
                let _ = conn.execute_batch("ROLLBACK");
                false
            }
        };
        crate::metrics::METRICS.record_commit(finishers.len());
        if ok && !committed.is_empty() {
            listener.committed(&committed);
        }
        for finish in finishers {
            finish(ok);
        }
        groups += 1;
        if groups % 32 == 0 {
            restart_wal_if_large(&conn, &wal);
        }
    }
    tracing::debug!("sqlite writer stopped");
}
