//! The PostgreSQL backend: a connection pool for reads, and one writer task per server that
//! commits jobs in groups, as the SQLite writer does.
//!
//! Every write is a job sent to the writer task. It takes whatever jobs are waiting (up to
//! [`MAX_BATCH`]), runs them in order in one transaction on one connection, commits once, then
//! hands the committed messages to the [`CommitListener`] and only then answers each caller. So
//! an ack always means "committed", and the listener sees messages in commit order.
//!
//! A job runs inside its own savepoint, so one that is refused (or hits a constraint) undoes
//! only itself. Message appends are the hot path: a run of them in a group is stored with a
//! handful of statements for the whole run (see [`messages::append_run`]), not a few per message.
//!
//! Several servers may share one database. Whatever must happen once (a transition, a seq) is
//! decided under a row lock taken in the job's transaction, or by a unique index, never by what
//! one server holds in memory.

mod accounts;
mod consultations;
mod devices;
mod messages;
mod rows;
mod schema;
mod store_impl;
mod wallet;

use crate::error::{Error, Result};
use crate::store::{
    Admission, Appended, ChainLink, CommitListener, Committed, NewMessage, PendingAppend, Tariff,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

/// Jobs committed together at most.
pub const MAX_BATCH: usize = 1024;
/// Connections in the pool (the writer's included).
const POOL_SIZE: usize = 16;

/// A pooled connection.
pub(crate) type Conn = deadpool_postgres::ClientWrapper;
/// A boxed future borrowing the connection.
pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// Query parameters.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

type Finisher = Box<dyn FnOnce(bool) + Send>;
type General = Box<dyn for<'a> FnOnce(&'a Conn, &'a mut Vec<Committed>) -> BoxFut<'a, Ran> + Send>;

/// What running a job left behind.
struct Ran {
    /// Answers the caller once the group's fate (committed or not) is known.
    finish: Finisher,
    /// The transaction can no longer commit (its savepoint could not be undone).
    broke: bool,
}

/// A message to append, with who waits for it.
pub(crate) struct AppendJob {
    pub new: NewMessage,
    pub now_ms: i64,
    pub admit: Admission,
    pub reply: oneshot::Sender<Result<Appended>>,
    /// Dropped unanswered (no connection, no transaction), it breaks the message's chain.
    pub link: ChainLink,
}

enum Job {
    General(General),
    Append(AppendJob),
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    tariff: Tariff,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), brings the schema up to date and
    /// starts the writer; committed messages go to `listener`.
    pub async fn open(url: &str, listener: Arc<dyn CommitListener>) -> Result<Self> {
        Self::open_with_batch(url, listener, MAX_BATCH).await
    }

    /// [`Self::open`], committing at most `max_batch` jobs together.
    pub async fn open_with_batch(
        url: &str,
        listener: Arc<dyn CommitListener>,
        max_batch: usize,
    ) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::validation(format!("--database-url: {e}")))?;
        // An ack means committed: every connection waits for its commit's WAL flush, whatever
        // the server's default (`synchronous_commit = off` would let an acked message vanish
        // when PostgreSQL stops short).
        let options = match config.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c synchronous_commit=on"),
            _ => "-c synchronous_commit=on".to_owned(),
        };
        config.options(&options);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| Error::internal(format_args!("postgres pool: {e}")))?;
        {
            // Said plainly: this is what an operator sees when the URL is wrong.
            let mut conn = pool.get().await.map_err(|e| {
                Error::new(
                    tara_protocol::ErrorCode::Internal,
                    format!("cannot connect to PostgreSQL: {e}"),
                )
            })?;
            schema::migrate(&mut conn).await.map_err(|e| {
                Error::new(
                    tara_protocol::ErrorCode::Internal,
                    format!(
                        "cannot bring the PostgreSQL schema up to date: {}",
                        e.message
                    ),
                )
            })?;
        }
        let (tx, rx) = mpsc::channel::<Job>(16 * 1024);
        let handle = tokio::spawn(write_loop(
            pool.clone(),
            rx,
            listener,
            max_batch.clamp(1, MAX_BATCH),
        ));
        Ok(Self {
            pool,
            jobs: Some(tx),
            writer: Mutex::new(Some(handle)),
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
        F: for<'a> FnOnce(&'a Conn, &'a mut Vec<Committed>) -> BoxFut<'a, Result<T>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job = general(move |conn, committed| {
            Box::pin(async move {
                let (outcome, broke) = in_savepoint(conn, committed, f).await;
                let finish: Finisher = Box::new(move |commit_ok| {
                    let answer = match outcome {
                        Ok(v) if commit_ok => Ok(v),
                        Ok(_) => Err(Error::internal("the database could not commit")),
                        Err(e) => Err(e),
                    };
                    // The caller may have gone away; nothing to do then.
                    let _ = tx.send(answer);
                });
                Ran { finish, broke }
            })
        });
        self.submit(Job::General(job)).await?;
        rx.await
            .map_err(|_| Error::internal("the database writer dropped a job"))?
    }

    /// Queues a message for the writer; the answer comes after the commit.
    async fn append(
        &self,
        new: NewMessage,
        now_ms: i64,
        admit: Admission,
    ) -> Result<PendingAppend> {
        let (reply, rx) = oneshot::channel();
        let link = ChainLink::new(new.chain.clone());
        self.submit(Job::Append(AppendJob {
            link,
            new,
            now_ms,
            admit,
            reply,
        }))
        .await?;
        Ok(PendingAppend::new(rx))
    }

    async fn submit(&self, job: Job) -> Result<()> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::internal("the store is closed"))?;
        jobs.send(job)
            .await
            .map_err(|_| Error::internal("the database writer has stopped"))
    }

    /// A pooled connection for reads.
    async fn conn(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Waits until the writer has committed everything queued and stopped (closing the store).
    pub async fn close(mut self) {
        self.jobs = None;
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer task once the queued jobs are committed.
        self.jobs = None;
    }
}

/// Names a general job's closure type (so closures are inferred higher-ranked).
fn general<F>(f: F) -> General
where
    F: for<'a> FnOnce(&'a Conn, &'a mut Vec<Committed>) -> BoxFut<'a, Ran> + Send + 'static,
{
    Box::new(f)
}

/// Runs `f` between `SAVEPOINT` and `RELEASE`; a refusal rolls back to the savepoint. The bool
/// says the transaction is broken (the savepoint could not be undone).
async fn in_savepoint<T, F>(conn: &Conn, committed: &mut Vec<Committed>, f: F) -> (Result<T>, bool)
where
    F: for<'a> FnOnce(&'a Conn, &'a mut Vec<Committed>) -> BoxFut<'a, Result<T>>,
{
    if let Err(e) = conn.batch_execute("SAVEPOINT job").await {
        return (Err(e.into()), true);
    }
    let mut mine = Vec::new();
    match f(conn, &mut mine).await {
        Ok(v) => match conn.batch_execute("RELEASE job").await {
            Ok(()) => {
                committed.append(&mut mine);
                (Ok(v), false)
            }
            Err(e) => (Err(e.into()), true),
        },
        Err(e) => match conn.batch_execute("ROLLBACK TO job; RELEASE job").await {
            Ok(()) => (Err(e), false),
            Err(undo) => {
                tracing::error!(error = %undo, "could not undo a refused job");
                (Err(e), true)
            }
        },
    }
}

async fn write_loop(
    pool: Pool,
    mut rx: mpsc::Receiver<Job>,
    listener: Arc<dyn CommitListener>,
    max_batch: usize,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let conn = match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no database connection for the writer");
                // Dropping the jobs tells every caller it failed (and breaks their chains).
                batch.clear();
                continue;
            }
        };
        run_group(&conn, batch.drain(..), &*listener).await;
    }
    tracing::debug!("postgres writer stopped");
}

/// Runs one group of jobs in one transaction (or more, when a job broke one).
async fn run_group(conn: &Conn, jobs: std::vec::Drain<'_, Job>, listener: &dyn CommitListener) {
    let mut jobs = jobs.peekable();
    while jobs.peek().is_some() {
        if let Err(e) = conn.batch_execute("BEGIN").await {
            tracing::error!(error = %e, "could not begin a write transaction");
            jobs.by_ref().for_each(drop);
            return;
        }
        let mut committed = Vec::new();
        let mut finishers: Vec<Finisher> = Vec::new();
        let mut broke = false;
        while let Some(job) = jobs.next() {
            match job {
                Job::General(run) => {
                    let ran = run(conn, &mut committed).await;
                    finishers.push(ran.finish);
                    broke = ran.broke;
                }
                Job::Append(first) => {
                    // Every append queued right behind this one goes in the same run.
                    let mut run = vec![first];
                    while let Some(Job::Append(_)) = jobs.peek() {
                        if let Some(Job::Append(a)) = jobs.next() {
                            run.push(a);
                        }
                    }
                    let (mut f, b) = messages::append_run(conn, run, &mut committed).await;
                    finishers.append(&mut f);
                    broke = b;
                }
            }
            if broke {
                break;
            }
        }
        let ok = if broke {
            tracing::error!("a job failed half-way; its group is rolled back");
            let _ = conn.batch_execute("ROLLBACK").await;
            false
        } else {
            match conn.batch_execute("COMMIT").await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "commit failed; the group is rolled back");
                    let _ = conn.batch_execute("ROLLBACK").await;
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
}

// --- small query helpers, all through the connection's statement cache

pub(crate) async fn query(c: &Conn, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, params).await?)
}

pub(crate) async fn query_opt(c: &Conn, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, params).await?)
}

pub(crate) async fn query_one(c: &Conn, sql: &str, params: Params<'_>) -> Result<Row> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_one(&st, params).await?)
}

pub(crate) async fn execute(c: &Conn, sql: &str, params: Params<'_>) -> Result<u64> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, params).await?)
}

/// The constraint a statement broke, when it broke a unique one.
pub(crate) fn unique_violation(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
        Some(db.constraint().unwrap_or(""))
    } else {
        None
    }
}
