//! The SQLite backend: one file in the data dir, WAL, one writer thread with group commit, and a
//! small pool of read connections used from `spawn_blocking`.
//!
//! Every write is a job sent to the writer thread. The thread takes whatever jobs are waiting
//! (up to [`MAX_BATCH`]), runs each inside its own savepoint (a refused job rolls back alone),
//! commits once, and only then answers each caller. So an ack always means "committed", while
//! one fsync is shared by everything that arrived during the previous one.
//!
//! The hottest job, appending a message, runs without a savepoint (see [`SqliteStore::write_direct`]):
//! it refuses before it writes. Should one fail after writing anyway (a full disk, an I/O
//! error), the group it was in is rolled back and every job of it answered with an error.

mod accounts;
mod consultations;
mod devices;
mod messages;
mod rows;
mod schema;
mod store_impl;
mod wallet;

use crate::error::{Error, Result};
use crate::store::{ChainLink, CommitListener, Committed, SendChain, Tariff};
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
type Job = Box<dyn FnOnce(&Connection, &mut Vec<Committed>) -> Ran + Send>;

/// What running a job left behind.
struct Ran {
    /// Answers the caller once the group's fate (committed or not) is known.
    finish: Finisher,
    /// The job failed with part of its writes in the transaction: the group must not commit.
    broke: bool,
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointing: Arc<AtomicBool>,
    tariff: Tariff,
}

impl SqliteStore {
    /// Opens (creating and migrating) `tara.db` in `dir`; committed messages go to `listener`.
    pub fn open(dir: &Path, listener: Arc<dyn CommitListener>) -> Result<Self> {
        Self::open_with_batch(dir, listener, MAX_BATCH)
    }

    /// [`Self::open`], committing at most `max_batch` jobs together. With 1, every write is its
    /// own transaction: the load tool measures group commit against that.
    pub fn open_with_batch(
        dir: &Path,
        listener: Arc<dyn CommitListener>,
        max_batch: usize,
    ) -> Result<Self> {
        let max_batch = max_batch.clamp(1, MAX_BATCH);
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
                move || write_loop(conn, wal, rx, listener, max_batch)
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
            tariff: Tariff::default(),
        })
    }

    /// Prices completions and opens wallets at `tariff` (the default: 30% commission, INR).
    pub fn with_tariff(mut self, tariff: Tariff) -> Self {
        self.tariff = tariff;
        self
    }

    /// Runs `f` in its own savepoint of the writer's transaction; answers after the commit.
    /// A refusal (`Err`) undoes whatever `f` wrote and nothing else.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> Result<T> + Send + 'static,
    {
        self.submit(
            move |conn, committed| match in_savepoint(conn, committed, f) {
                Ok(v) => (Ok(v), false),
                Err(Undo::Refused(e)) => (Err(e), false),
                Err(Undo::Failed(e)) => (Err(e), true),
            },
        )
        .await
    }

    /// Runs `f` straight in the writer's transaction, without a savepoint (which copies every
    /// page it touches, a cost paid per job). `f` must refuse before it writes; if it fails
    /// after writing anyway, the whole group is rolled back rather than committed half-done.
    /// Returns once the job is queued; the answer comes after the commit, and breaks `chain`
    /// (before any later job runs) when it is a refusal that may pass.
    async fn queue_direct<T, F>(
        &self,
        f: F,
        chain: Option<Arc<SendChain>>,
    ) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> Result<T> + Send + 'static,
    {
        self.enqueue(
            move |conn, committed| {
                let before = conn.total_changes();
                let mut mine = Vec::new();
                match f(conn, &mut mine) {
                    Ok(v) => {
                        committed.append(&mut mine);
                        (Ok(v), false)
                    }
                    Err(e) => {
                        let broke = conn.total_changes() != before;
                        (Err(e), broke)
                    }
                }
            },
            chain,
        )
        .await
    }

    /// [`Self::queue_direct`], waiting for the answer.
    #[cfg(test)]
    async fn write_direct<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> Result<T> + Send + 'static,
    {
        self.queue_direct(f, None)
            .await?
            .await
            .map_err(|_| Error::internal("the database writer dropped a job"))?
    }

    /// Queues a job for the writer and waits for its answer, which comes after the commit.
    async fn submit<T, F>(&self, run: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> (Result<T>, bool) + Send + 'static,
    {
        self.enqueue(run, None)
            .await?
            .await
            .map_err(|_| Error::internal("the database writer dropped a job"))?
    }

    /// Queues a job for the writer; the receiver gets its answer after the commit.
    async fn enqueue<T, F>(
        &self,
        run: F,
        chain: Option<Arc<SendChain>>,
    ) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> (Result<T>, bool) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        // Dropped unrun (the writer could not begin, or has stopped), it breaks the chain.
        let link = ChainLink::new(chain);
        let job: Job = Box::new(move |conn, committed| {
            let (outcome, broke) = run(conn, committed);
            // A refusal breaks the chain now, before the next job of this group is decided.
            link.note(&outcome);
            let finish: Finisher = Box::new(move |commit_ok| {
                let answer = match outcome {
                    Ok(v) if commit_ok => Ok(v),
                    Ok(_) => Err(Error::internal("the database could not commit")),
                    Err(e) => Err(e),
                };
                // A group that did not commit breaks it before the next group runs.
                link.settle(&answer);
                // The caller may have gone away (client disconnected); nothing to do then.
                let _ = tx.send(answer);
            });
            Ran { finish, broke }
        });
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::internal("the store is closed"))?;
        jobs.send(job)
            .await
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        Ok(rx)
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
        if !ticks.is_multiple_of(2) {
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

/// Why a savepointed job did not go through.
enum Undo {
    /// It refused, and its writes (if any) are undone.
    Refused(Error),
    /// Its writes could not be undone (or released): the transaction holds part of them.
    Failed(Error),
}

fn in_savepoint<T>(
    conn: &Connection,
    committed: &mut Vec<Committed>,
    f: impl FnOnce(&Connection, &mut Vec<Committed>) -> Result<T>,
) -> std::result::Result<T, Undo> {
    let run = |sql: &str| -> Result<()> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    run("SAVEPOINT job").map_err(Undo::Refused)?;
    let mut mine = Vec::new();
    match f(conn, &mut mine) {
        Ok(v) => {
            run("RELEASE job").map_err(Undo::Failed)?;
            committed.append(&mut mine);
            Ok(v)
        }
        Err(e) => match conn.execute_batch("ROLLBACK TO job; RELEASE job") {
            Ok(()) => Err(Undo::Refused(e)),
            Err(undo) => {
                tracing::error!(error = %undo, "could not undo a refused job");
                Err(Undo::Failed(e))
            }
        },
    }
}

fn write_loop(
    conn: Connection,
    wal: PathBuf,
    mut rx: mpsc::Receiver<Job>,
    listener: Arc<dyn CommitListener>,
    max_batch: usize,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut groups = 0u64;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut jobs = batch.drain(..);
        // Usually one pass; another only when a job broke the transaction before the rest ran.
        while jobs.len() > 0 {
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                tracing::error!(error = %e, "could not begin a write transaction");
                // Run nothing; dropping the jobs tells every caller it failed.
                jobs.by_ref().for_each(drop);
                break;
            }
            let mut committed = Vec::new();
            let mut finishers = Vec::with_capacity(jobs.len());
            let mut broke = false;
            for job in jobs.by_ref() {
                let ran = job(&conn, &mut committed);
                finishers.push(ran.finish);
                if ran.broke {
                    broke = true;
                    break;
                }
            }
            let ok = if broke {
                tracing::error!("a job failed half-way; its group is rolled back");
                let _ = conn.execute_batch("ROLLBACK");
                false
            } else {
                match conn.execute_batch("COMMIT") {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "commit failed; the group is rolled back");
                        let _ = conn.execute_batch("ROLLBACK");
                        false
                    }
                }
            };
            crate::metrics::METRICS.record_commit(finishers.len());
            if ok && !committed.is_empty() {
                listener.committed(&committed);
            }
            for finish in finishers {
                finish(ok);
            }
        }
        groups += 1;
        if groups.is_multiple_of(32) {
            restart_wal_if_large(&conn, &wal);
        }
    }
    tracing::debug!("sqlite writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl CommitListener for Quiet {
        fn committed(&self, _: &[Committed]) {}
    }

    fn users(store: &SqliteStore) -> i64 {
        let conn = Connection::open(&store.path).expect("open");
        conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .expect("count")
    }

    fn add_user(c: &Connection, phone: &str) -> Result<()> {
        c.execute(
            "INSERT INTO users (user_type, phone, display_name, created_at) VALUES ('customer', ?1, 'x', 0)",
            [phone],
        )?;
        Ok(())
    }

    #[tokio::test]
    async fn a_direct_job_that_fails_after_writing_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Arc::new(Quiet)).expect("open");
        store
            .write_direct(|c, _| add_user(c, "+911"))
            .await
            .expect("a plain write goes through");
        let failed = store
            .write_direct(|c, _| {
                add_user(c, "+912")?;
                Err::<(), _>(Error::internal("the disk filled up"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(users(&store), 1, "the half-done write was rolled back");
        // A refusal before any write costs its group nothing.
        let refused = store
            .write_direct(|c, _| {
                add_user(c, "+911")?; // the same phone: refused by the unique key, nothing written
                Ok(())
            })
            .await;
        assert!(refused.is_err());
        store
            .write_direct(|c, _| add_user(c, "+913"))
            .await
            .expect("the writer carries on");
        assert_eq!(users(&store), 2);
    }

    #[tokio::test]
    async fn a_savepointed_job_that_refuses_after_writing_undoes_only_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Arc::new(Quiet)).expect("open");
        let refused = store
            .write(|c, _| {
                add_user(c, "+911")?;
                Err::<(), _>(Error::validation("changed my mind"))
            })
            .await;
        assert!(refused.is_err());
        store
            .write(|c, _| add_user(c, "+912"))
            .await
            .expect("the next job is fine");
        assert_eq!(users(&store), 1);
    }
}
