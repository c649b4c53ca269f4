//! The writer: one thread that owns the only write connection and applies every write.
//!
//! Callers hand it [`Write`]s over a channel and wait on a oneshot. The writer takes every
//! write waiting (up to [`MAX_BATCH`]), applies them in one `BEGIN IMMEDIATE` transaction,
//! each in its own savepoint so that one failing write does not undo the others, commits
//! once (`synchronous = FULL`, so the commit is fsync'd), and only then answers each
//! caller. While it commits, new writes pile up and make the next batch: under load, one
//! fsync serves many callers (group commit), and a lone caller still waits for a single
//! commit. A write whose caller has gone away is still applied; its answer is dropped.
//!
//! **Writes that must land.** A settlement records what a worker did with a message it may
//! already have handed to a provider; losing it would let the lease run out and the
//! message be sent again. So a write marked [`Write::until_written`] that cannot be
//! committed (a full disk, an I/O error) is not answered with the error: the writer keeps
//! it and applies it again, first in every following batch, until it commits. Because
//! it goes first, and the writes after it in a batch where it fails are refused
//! unapplied, no lease can take its message before it lands.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::convert::{database, now_millis};
use crate::store::{StoreError, StoreHealth};

/// Most writes applied in one transaction, so that a flood of writes still gets answers
/// in bounded time.
pub(super) const MAX_BATCH: usize = 1024;
/// Most writes waiting for the writer; past that, callers wait to hand theirs over.
pub(super) const QUEUE_CAPACITY: usize = 8192;
/// How long the writer waits before trying kept writes again, at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(500);

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer shares with the store: counters and health.
#[derive(Debug, Default)]
pub(super) struct WriterState {
    /// Transactions committed since the store was opened.
    pub commits: AtomicU64,
    /// False since a batch failed to commit, until one commits with nothing kept back.
    failing: AtomicBool,
    /// Writes kept to be applied again.
    kept: AtomicUsize,
}

impl WriterState {
    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            writable: !self.failing.load(Ordering::Relaxed),
            pending_settlements: self.kept.load(Ordering::Relaxed),
        }
    }
}

/// One write for the writer, with the way to answer its caller.
pub(super) struct Write {
    job: Box<dyn Job>,
    /// Kept and applied again, batch after batch, until it commits (see the module doc).
    until_written: bool,
}

impl Write {
    /// A write that runs `write(conn, now_millis)` in the writer's transaction. It must be
    /// repeatable: a write kept after a failed batch runs again.
    pub fn new<T, F>(write: F, reply: Reply<T>, until_written: bool) -> Write
    where
        T: Send + 'static,
        F: Fn(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        Write {
            job: Box::new(FnJob {
                write,
                reply,
                result: None,
            }),
            until_written,
        }
    }
}

/// A write, type-erased so that writes of every result type share one queue.
trait Job: Send {
    /// Applies the write in the open transaction, in its own savepoint, and keeps the
    /// result until the batch's commit decides what the caller hears.
    fn apply(&mut self, conn: &Connection, now: i64);
    /// Whether the last apply failed because the database could not write.
    fn failed_to_write(&self) -> bool;
    /// Answers the caller: its result, or `batch_error` when the batch did not commit.
    fn answer(self: Box<Self>, batch_error: Option<&StoreError>);
}

struct FnJob<T, F> {
    write: F,
    reply: Reply<T>,
    result: Option<Result<T, StoreError>>,
}

impl<T, F> Job for FnJob<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
{
    fn apply(&mut self, conn: &Connection, now: i64) {
        self.result = Some(savepoint(conn, |conn| (self.write)(conn, now)));
    }

    fn failed_to_write(&self) -> bool {
        matches!(self.result, Some(Err(StoreError::Database { .. })))
    }

    fn answer(self: Box<Self>, batch_error: Option<&StoreError>) {
        let result = match (batch_error, self.result) {
            (Some(error), _) => Err(error.clone()),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::WriterStopped),
        };
        // A caller that has gone away needs no answer.
        let _ = self.reply.send(result);
    }
}

/// The writer thread's loop: batches until every sender is gone, then a last try at
/// what it kept.
pub(super) fn run(conn: Connection, mut writes: mpsc::Receiver<Write>, state: &WriterState) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut kept: Vec<Write> = Vec::new();
    let mut wait = RETRY_FIRST;
    loop {
        if kept.is_empty() {
            // Returns 0 only once every sender is gone and nothing is left.
            if writes.blocking_recv_many(&mut batch, MAX_BATCH) == 0 {
                break;
            }
            wait = RETRY_FIRST;
        } else {
            std::thread::sleep(wait);
            wait = (wait * 2).min(RETRY_MAX);
            let closed = take_waiting(&mut writes, &mut batch);
            if closed && batch.is_empty() {
                break;
            }
        }
        let mut todo = std::mem::take(&mut kept);
        todo.append(&mut batch);
        kept = apply_batch(&conn, todo, state);
        state.kept.store(kept.len(), Ordering::Relaxed);
    }
    if !kept.is_empty() {
        // The store is closing: one last try, then the callers hear the error.
        let lost = apply_batch(&conn, kept, state);
        if !lost.is_empty() {
            let error = StoreError::WriterStopped;
            tracing::error!(
                writes = lost.len(),
                "queue store closed with outcomes it could not write; those messages may be sent again"
            );
            lost.into_iter().for_each(|write| write.job.answer(Some(&error)));
        }
    }
}

/// Moves what is waiting into `batch` without blocking; true once every sender is gone.
fn take_waiting(writes: &mut mpsc::Receiver<Write>, batch: &mut Vec<Write>) -> bool {
    while batch.len() < MAX_BATCH {
        match writes.try_recv() {
            Ok(write) => batch.push(write),
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
    false
}

/// Applies `writes` in one transaction, counts the commit and answers every caller but
/// those of writes that must land and did not: those it returns, to be applied again.
pub(super) fn apply_batch(conn: &Connection, writes: Vec<Write>, state: &WriterState) -> Vec<Write> {
    if let Err(e) = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut begin| begin.execute([]))
    {
        let error = database("begin a transaction")(e);
        tracing::error!(%error, "queue store: a batch of writes was refused");
        return fail(writes, &error, state);
    }
    let mut applied: Vec<Write> = Vec::with_capacity(writes.len());
    // Once a write that must land has failed, the other writes of the batch are refused
    // unapplied: in its own savepoint a lease can succeed where an outcome failed (it
    // needs no new page), and would take a message whose outcome is still waiting.
    let mut refused: Vec<Write> = Vec::new();
    let mut must_land_failed = false;
    let mut writes = writes.into_iter();
    while let Some(mut write) = writes.next() {
        if must_land_failed && !write.until_written {
            refused.push(write);
            continue;
        }
        write.job.apply(conn, now_millis());
        must_land_failed |= write.until_written && write.job.failed_to_write();
        applied.push(write);
        if conn.is_autocommit() {
            // SQLite rolls the whole transaction back on some errors (I/O, a full disk):
            // nothing of this batch is stored, so nobody may hear otherwise.
            let error = StoreError::Database {
                operation: "a write",
                cause: "the database rolled the transaction back".into(),
            };
            tracing::error!(%error, "queue store: a batch of writes was rolled back");
            applied.extend(writes);
            applied.extend(refused);
            return fail(applied, &error, state);
        }
    }
    match conn
        .prepare_cached("COMMIT")
        .and_then(|mut commit| commit.execute([]))
    {
        Ok(_) => {
            state.commits.fetch_add(1, Ordering::Relaxed);
            let waiting = StoreError::Database {
                operation: "a write",
                cause: "outcomes that must be written first cannot be written (is the disk full?)".into(),
            };
            refused
                .into_iter()
                .for_each(|write| write.job.answer(Some(&waiting)));
            let mut kept = Vec::new();
            for write in applied {
                if write.until_written && write.job.failed_to_write() {
                    kept.push(write);
                } else {
                    write.job.answer(None);
                }
            }
            if !kept.is_empty() {
                tracing::error!(
                    kept = kept.len(),
                    "queue store: outcomes could not be written; trying again until they are"
                );
            }
            state.failing.store(!kept.is_empty(), Ordering::Relaxed);
            kept
        }
        Err(e) => {
            let error = database("commit")(e);
            tracing::error!(%error, "queue store: a batch of writes was not committed");
            let _ = conn.execute_batch("ROLLBACK");
            applied.extend(refused);
            fail(applied, &error, state)
        }
    }
}

/// A batch that did not commit: writes that must land are kept, the rest hear `error`.
fn fail(writes: Vec<Write>, error: &StoreError, state: &WriterState) -> Vec<Write> {
    state.failing.store(true, Ordering::Relaxed);
    let (kept, refused): (Vec<Write>, Vec<Write>) = writes.into_iter().partition(|write| write.until_written);
    refused
        .into_iter()
        .for_each(|write| write.job.answer(Some(error)));
    kept
}

/// Runs `write` so that, if it fails, it leaves no trace and the batch goes on.
fn savepoint<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT request")
        .map_err(database("open a savepoint"))?;
    let result = write(conn);
    let end = if result.is_ok() {
        "RELEASE request"
    } else {
        "ROLLBACK TO request; RELEASE request"
    };
    match conn.execute_batch(end) {
        Ok(()) => result,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO request; RELEASE request");
            Err(database("close a savepoint")(e))
        }
    }
}
