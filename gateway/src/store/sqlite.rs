//! [`SqliteStore`]: the queue in one SQLite file, for a gateway that runs alone.
//!
//! **Writes** go through one writer thread that owns the only write connection. Callers
//! hand it requests over a channel and wait on a oneshot. The writer takes every request
//! waiting (up to [`MAX_BATCH`]), applies them in one `BEGIN IMMEDIATE` transaction, each in
//! its own savepoint so that one failing request does not undo the others, commits once
//! (`synchronous = FULL`, so the commit is fsync'd), and only then answers each caller.
//! While it commits, new requests pile up and make the next batch: under load, one fsync
//! serves many callers (group commit), and a lone caller still waits for a single commit.
//! A request whose caller has gone away is still applied; its answer is dropped.
//!
//! Leases are writes too, so they are serialised by the writer: two workers leasing at the
//! same time see each other's leases, and `BEGIN IMMEDIATE` keeps that true even against
//! another process writing the same file.
//!
//! **Reads** (`get`, `queue_depth`, `mailing_counts`) run on a small pool of read
//! connections on tokio's blocking threads; in WAL mode they never wait for the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{
    Channel, DeliveryStatus, Enqueued, InboundRecord, Leased, MailingCounts, MessageRecord, NewInbound,
    NewMailing, NewMessage, QueueDepth, Settled, Status, Store, StoreError,
};

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 2;

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests applied in one transaction, so that a flood of requests still gets answers
/// in bounded time.
const MAX_BATCH: usize = 1024;
/// Most requests waiting for the writer; past that, callers wait to hand theirs over.
const QUEUE_CAPACITY: usize = 8192;
/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 4;

/// The queue in one SQLite file (WAL, `synchronous = FULL`).
///
/// Writes go through one writer thread that commits many callers' requests together (group
/// commit) and answers each only once its request is on disk; reads use their own
/// connections. Dropping the store lets the writer finish what it was handed, then closes
/// the file.
pub struct SqliteStore {
    path: PathBuf,
    writer: WriterHandle,
    readers: Arc<Readers>,
    /// Transactions the writer has committed since the store was opened.
    commits: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens the queue in the file at `path`, creating the file, its directory and the
    /// schema as needed.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_error = |cause: String| StoreError::Open {
            path: path.to_path_buf(),
            cause,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(format!("cannot create the directory {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        configure_writer(&conn).map_err(open_error)?;
        migrate(&mut conn, path)?;

        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        });
        // Open one reader now, so that a file readers cannot use fails here and not later.
        let reader = readers.checkout().map_err(|e| open_error(e.to_string()))?;
        readers.checkin(reader);

        let commits = Arc::new(AtomicU64::new(0));
        let (requests, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer_commits = Arc::clone(&commits);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(conn, receiver, &writer_commits))
            .map_err(|e| open_error(format!("cannot start the writer thread: {e}")))?;

        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: WriterHandle {
                requests: Some(requests),
                thread: Some(thread),
            },
            readers,
            commits,
        })
    }

    /// The file the queue lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many transactions the writer has committed since the store was opened: with
    /// group commit, far fewer than the writes requested under load.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Hands a request to the writer and waits until it is committed (or refused).
    async fn write<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let requests = self.writer.requests.as_ref().ok_or(StoreError::WriterStopped)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(request(reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Hands `write(conn, now_millis)` to the writer, to run in the next batch's
    /// transaction, and waits until it is committed.
    async fn write_job<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.write(|reply| Request::Job(Box::new(FnJob { write, reply })))
            .await
    }

    /// Runs `query` on a read connection, on a blocking thread.
    async fn read<T, F>(&self, operation: &'static str, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let conn = readers.checkout()?;
            let result = query(&conn);
            readers.checkin(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Database {
            operation,
            cause: format!("the reading task failed: {e}"),
        })?
    }
}

/// The columns of an inbound row, in the order [`inbound_record`] reads them.
const INBOUND_COLUMNS: &str =
    "id, module, sender, recipient, text, provider_id, received_at, forward_status, \
                               forward_url, forward_attempts, forward_error";

fn inbound_record(row: &Row<'_>) -> rusqlite::Result<InboundRecord> {
    Ok(InboundRecord {
        id: row.get(0)?,
        module: row.get(1)?,
        sender: row.get(2)?,
        recipient: row.get(3)?,
        text: row.get(4)?,
        provider_id: row.get(5)?,
        received_at: system_time(row.get(6)?),
        forward_status: row.get(7)?,
        forward_url: row.get(8)?,
        forward_attempts: row.get(9)?,
        forward_error: row.get(10)?,
    })
}

impl SqliteStore {
    async fn store_inbound_row(&self, inbound: NewInbound) -> Result<Enqueued, StoreError> {
        self.write_job(move |conn, now| {
            let existing: Option<String> = conn
                .prepare_cached("SELECT id FROM inbound WHERE module = ?1 AND provider_id = ?2")
                .and_then(|mut select| {
                    select
                        .query_row(params![inbound.module, inbound.provider_id], |row| row.get(0))
                        .optional()
                })
                .map_err(database("find an inbound SMS"))?;
            if let Some(id) = existing {
                return Ok(Enqueued { id, created: false });
            }
            let id = new_id();
            let status = if inbound.forward_url.is_some() {
                "pending"
            } else {
                "none"
            };
            conn.prepare_cached(
                "INSERT INTO inbound (id, module, sender, recipient, text, provider_id, received_at,
                                      forward_status, forward_url, forward_due_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?7)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    id,
                    inbound.module,
                    inbound.sender,
                    inbound.recipient,
                    inbound.text,
                    inbound.provider_id,
                    now,
                    status,
                    inbound.forward_url
                ])
            })
            .map_err(database("store an inbound SMS"))?;
            Ok(Enqueued { id, created: true })
        })
        .await
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("commits", &self.commits())
            .finish()
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn enqueue(
        &self,
        message: NewMessage,
        idempotency_key: Option<String>,
    ) -> Result<Enqueued, StoreError> {
        let message = MessageRow {
            channel: message.channel,
            payload: message.payload.to_string(),
            mailing_id: message.mailing_id,
        };
        self.write(|reply| Request::Enqueue {
            message,
            idempotency_key,
            reply,
        })
        .await
    }

    async fn create_mailing(
        &self,
        mailing: NewMailing,
        idempotency_key: Option<String>,
    ) -> Result<Enqueued, StoreError> {
        if mailing.recipients.is_empty() {
            return Err(StoreError::Invalid(
                "a mailing needs at least one recipient".into(),
            ));
        }
        self.write(|reply| Request::Mailing {
            mailing,
            idempotency_key,
            reply,
        })
        .await
    }

    async fn lease(
        &self,
        channel: Channel,
        limit: usize,
        lease_owner: &str,
        lease_for: Duration,
    ) -> Result<Vec<Leased>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let owner = lease_owner.to_owned();
        let lease_for = millis(lease_for);
        self.write(|reply| Request::Lease {
            channel,
            limit,
            owner,
            lease_for,
            reply,
        })
        .await
    }

    async fn mark_sent(
        &self,
        id: &str,
        lease_owner: &str,
        provider_id: Option<String>,
    ) -> Result<bool, StoreError> {
        self.settle(id, lease_owner, Outcome::Sent { provider_id }).await
    }

    async fn mark_retry(
        &self,
        id: &str,
        lease_owner: &str,
        due_at: SystemTime,
        error: &str,
    ) -> Result<bool, StoreError> {
        let outcome = Outcome::Retry {
            due_at: unix_millis(due_at),
            error: error.to_owned(),
        };
        self.settle(id, lease_owner, outcome).await
    }

    async fn mark_failed(&self, id: &str, lease_owner: &str, error: &str) -> Result<bool, StoreError> {
        self.settle(
            id,
            lease_owner,
            Outcome::Failed {
                error: error.to_owned(),
            },
        )
        .await
    }

    async fn settle_many(
        &self,
        lease_owner: &str,
        outcomes: Vec<(String, Settled)>,
    ) -> Result<usize, StoreError> {
        let owner = lease_owner.to_owned();
        self.write_job(move |conn, now| {
            let mut applied = 0;
            for (id, settled) in outcomes {
                let outcome = match settled {
                    Settled::Sent(provider_id) => Outcome::Sent { provider_id },
                    Settled::Failed(error) => Outcome::Failed { error },
                };
                applied += usize::from(settle(conn, &id, &owner, &outcome, now)?);
            }
            Ok(applied)
        })
        .await
    }

    async fn give_back(&self, id: &str, lease_owner: &str, due_at: SystemTime) -> Result<bool, StoreError> {
        self.settle(
            id,
            lease_owner,
            Outcome::GiveBack {
                due_at: unix_millis(due_at),
            },
        )
        .await
    }

    async fn release_leases(&self, lease_owner: &str) -> Result<u64, StoreError> {
        let owner = lease_owner.to_owned();
        self.write(|reply| Request::Release { owner, reply }).await
    }

    async fn expire_all_leases(&self) -> Result<u64, StoreError> {
        self.write(|reply| Request::ExpireAllLeases { reply }).await
    }

    async fn record_delivery_report(
        &self,
        provider_id: &str,
        status: DeliveryStatus,
        detail: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let provider_id = provider_id.to_owned();
        let detail = detail.map(str::to_owned);
        self.write(|reply| Request::Report {
            provider_id,
            status,
            detail,
            reply,
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        let id = id.to_owned();
        self.read("read a message", move |conn| {
            conn.prepare_cached(
                "SELECT id, channel, status, payload, attempts, due_at, lease_owner, lease_expires_at,
                        provider_id, error, mailing_id, created_at, updated_at
                 FROM messages WHERE id = ?1",
            )
            .and_then(|mut select| select.query_row([&id], message_record).optional())
            .map_err(database("read a message"))
        })
        .await
    }

    async fn queue_depth(&self, channel: Channel) -> Result<QueueDepth, StoreError> {
        self.read("measure the queue", move |conn| {
            let now = now_millis();
            let (due, oldest): (i64, Option<i64>) = conn
                .prepare_cached(
                    "SELECT count(*), min(due_at) FROM (
                         SELECT due_at FROM messages
                         WHERE channel = ?1 AND status = 'queued' AND due_at <= ?2
                         UNION ALL
                         SELECT due_at FROM messages
                         WHERE channel = ?1 AND status = 'sending' AND lease_expires_at <= ?2)",
                )
                .and_then(|mut select| {
                    select.query_row(params![channel.as_str(), now], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                })
                .map_err(database("measure the queue"))?;
            Ok(QueueDepth {
                due: u64::try_from(due).unwrap_or(0),
                oldest_due_age: oldest.map(|due_at| millis_duration(now.saturating_sub(due_at))),
            })
        })
        .await
    }

    async fn mailing_counts(&self, id: &str) -> Result<Option<MailingCounts>, StoreError> {
        let id = id.to_owned();
        self.read("count a mailing", move |conn| {
            mailing_counts(conn, &id).map_err(database("count a mailing"))
        })
        .await
    }

    async fn store_inbound(&self, inbound: NewInbound) -> Result<Enqueued, StoreError> {
        self.store_inbound_row(inbound).await
    }

    async fn list_inbound(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> Result<Vec<InboundRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("list inbound SMS", move |conn| {
            // Ids are UUIDv7: their order is the order of arrival.
            let sql = format!(
                "SELECT {INBOUND_COLUMNS} FROM inbound WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2"
            );
            conn.prepare_cached(&sql)
                .and_then(|mut select| {
                    select
                        .query_map(params![before, limit], inbound_record)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(database("list inbound SMS"))
        })
        .await
    }

    async fn lease_forwards(
        &self,
        limit: usize,
        lease_for: Duration,
    ) -> Result<Vec<InboundRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease_for = millis(lease_for);
        self.write_job(move |conn, now| {
            let sql = format!(
                "UPDATE inbound SET forward_lease_until = ?2 + ?3, forward_attempts = forward_attempts + 1
                 WHERE id IN (SELECT id FROM inbound
                              WHERE forward_status = 'pending' AND forward_due_at <= ?2
                                AND (forward_lease_until IS NULL OR forward_lease_until <= ?2)
                              ORDER BY forward_due_at LIMIT ?1)
                 RETURNING {INBOUND_COLUMNS}"
            );
            conn.prepare_cached(&sql)
                .and_then(|mut update| {
                    update
                        .query_map(params![limit, now, lease_for], inbound_record)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(database("lease inbound forwards"))
        })
        .await
    }

    async fn forward_done(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write_job(move |conn, _now| {
            conn.prepare_cached(
                "UPDATE inbound SET forward_status = 'forwarded', forward_error = NULL, forward_lease_until = NULL
                 WHERE id = ?1",
            )
            .and_then(|mut update| update.execute([&id]))
            .map(drop)
            .map_err(database("record a forward"))
        })
        .await
    }

    async fn forward_retry(&self, id: &str, due_at: SystemTime, error: &str) -> Result<(), StoreError> {
        let (id, error, due_at) = (id.to_owned(), error.to_owned(), unix_millis(due_at));
        self.write_job(move |conn, _now| {
            conn.prepare_cached(
                "UPDATE inbound SET forward_due_at = ?2, forward_error = ?3, forward_lease_until = NULL
                 WHERE id = ?1 AND forward_status = 'pending'",
            )
            .and_then(|mut update| update.execute(params![id, due_at, error]))
            .map(drop)
            .map_err(database("record a failed forward"))
        })
        .await
    }
}

impl SqliteStore {
    async fn settle(&self, id: &str, lease_owner: &str, outcome: Outcome) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let owner = lease_owner.to_owned();
        self.write(|reply| Request::Settle {
            id,
            owner,
            outcome,
            reply,
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Opening

fn configure_writer(conn: &Connection) -> Result<(), String> {
    let sqlite = |e: rusqlite::Error| e.to_string();
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // WAL needs shared memory beside the file; without it readers would block the writer.
        return Err(format!(
            "the file system refused write-ahead logging (journal mode stays {mode})"
        ));
    }
    // FULL: a commit is on disk before the writer answers, which is what a 202 promises.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sqlite)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(sqlite)?;
    // A large mailing grows the write-ahead log; give the space back once it is checkpointed.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(sqlite)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_error = |e: rusqlite::Error| StoreError::Open {
        path: path.to_path_buf(),
        cause: e.to_string(),
    };
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_error)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        tx.execute_batch(SCHEMA).map_err(open_error)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(open_error)?;
        tx.commit().map_err(open_error)?;
    }
    Ok(())
}

/// Idle read connections, opened as needed.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn checkout(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(conn);
        }
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&self.path)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "query_only", true)?;
            Ok(conn)
        };
        open().map_err(database("open a read connection"))
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The writer

/// The way to the writer thread. Dropping it lets the writer finish what was handed to it,
/// and waits for it to close the file.
struct WriterHandle {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            // A panic of the writer has already failed its callers; there is nothing to add.
            let _ = thread.join();
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write waiting for the writer, with the way to answer its caller.
enum Request {
    Enqueue {
        message: MessageRow,
        idempotency_key: Option<String>,
        reply: Reply<Enqueued>,
    },
    Mailing {
        mailing: NewMailing,
        idempotency_key: Option<String>,
        reply: Reply<Enqueued>,
    },
    Lease {
        channel: Channel,
        limit: usize,
        owner: String,
        lease_for: i64,
        reply: Reply<Vec<Leased>>,
    },
    Settle {
        id: String,
        owner: String,
        outcome: Outcome,
        reply: Reply<bool>,
    },
    Release {
        owner: String,
        reply: Reply<u64>,
    },
    ExpireAllLeases {
        reply: Reply<u64>,
    },
    /// Any other write, as a closure (see [`SqliteStore::write_job`]).
    Job(Box<dyn Job>),
    Report {
        provider_id: String,
        status: DeliveryStatus,
        detail: Option<String>,
        reply: Reply<Option<String>>,
    },
}

/// A message as the writer inserts it: the payload already JSON text.
struct MessageRow {
    channel: Channel,
    payload: String,
    mailing_id: Option<String>,
}

/// How a worker's attempt ended.
enum Outcome {
    Sent { provider_id: Option<String> },
    Retry { due_at: i64, error: String },
    Failed { error: String },
    GiveBack { due_at: i64 },
}

fn run_writer(conn: Connection, mut requests: mpsc::Receiver<Request>, commits: &AtomicU64) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Returns 0 only once every sender is gone and nothing is left: the store was dropped.
    while requests.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        apply_batch(&conn, batch.drain(..), commits);
    }
}

/// Applies `batch` in one transaction, counts the commit, then answers every caller.
fn apply_batch(conn: &Connection, batch: impl Iterator<Item = Request>, commits: &AtomicU64) {
    let mut batch = batch;
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let error = database("begin a transaction")(e);
        tracing::error!(%error, "queue store: a batch of writes was refused");
        batch.for_each(|request| request.refuse(&error));
        return;
    }
    let mut answers: Vec<Box<dyn Answer>> = Vec::new();
    while let Some(request) = batch.next() {
        answers.push(apply(conn, request));
        if conn.is_autocommit() {
            // SQLite rolls the whole transaction back on some errors (I/O, a full disk):
            // nothing of this batch is stored, so nobody may hear otherwise.
            let error = StoreError::Database {
                operation: "a write",
                cause: "the database rolled the transaction back".into(),
            };
            tracing::error!(%error, "queue store: a batch of writes was rolled back");
            answers.into_iter().for_each(|answer| answer.send(Some(&error)));
            batch.for_each(|request| request.refuse(&error));
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            answers.into_iter().for_each(|answer| answer.send(None));
        }
        Err(e) => {
            let error = database("commit")(e);
            tracing::error!(%error, "queue store: a batch of writes was not committed");
            let _ = conn.execute_batch("ROLLBACK");
            answers.into_iter().for_each(|answer| answer.send(Some(&error)));
        }
    }
}

/// Applies one request in its own savepoint, keeping its answer until the commit.
fn apply(conn: &Connection, request: Request) -> Box<dyn Answer> {
    let now = now_millis();
    match request {
        Request::Enqueue {
            message,
            idempotency_key,
            reply,
        } => {
            let result = savepoint(conn, |conn| {
                insert_message(conn, &message, idempotency_key.as_deref(), now)
            });
            pending(reply, result)
        }
        Request::Mailing {
            mailing,
            idempotency_key,
            reply,
        } => {
            let result = savepoint(conn, |conn| {
                insert_mailing(conn, &mailing, idempotency_key.as_deref(), now)
            });
            pending(reply, result)
        }
        Request::Lease {
            channel,
            limit,
            owner,
            lease_for,
            reply,
        } => {
            let result = savepoint(conn, |conn| lease(conn, channel, limit, &owner, lease_for, now));
            pending(reply, result)
        }
        Request::Settle {
            id,
            owner,
            outcome,
            reply,
        } => {
            let result = savepoint(conn, |conn| settle(conn, &id, &owner, &outcome, now));
            pending(reply, result)
        }
        Request::Release { owner, reply } => {
            let result = savepoint(conn, |conn| release(conn, &owner, now));
            pending(reply, result)
        }
        Request::ExpireAllLeases { reply } => {
            let result = savepoint(conn, |conn| expire_all_leases(conn, now));
            pending(reply, result)
        }
        Request::Job(job) => job.apply(conn, now),
        Request::Report {
            provider_id,
            status,
            detail,
            reply,
        } => {
            let result = savepoint(conn, |conn| {
                report(conn, &provider_id, status, detail.as_deref(), now)
            });
            pending(reply, result)
        }
    }
}

impl Request {
    /// Answers the caller with `error` without applying the request.
    fn refuse(self, error: &StoreError) {
        let error = error.clone();
        // A caller that has gone away needs no answer.
        match self {
            Request::Enqueue { reply, .. } | Request::Mailing { reply, .. } => drop(reply.send(Err(error))),
            Request::Lease { reply, .. } => drop(reply.send(Err(error))),
            Request::Settle { reply, .. } => drop(reply.send(Err(error))),
            Request::Release { reply, .. } | Request::ExpireAllLeases { reply } => {
                drop(reply.send(Err(error)))
            }
            Request::Report { reply, .. } => drop(reply.send(Err(error))),
            Request::Job(job) => job.refuse(error),
        }
    }
}

/// A write given as a closure: applied in its own savepoint like every request.
trait Job: Send {
    fn apply(self: Box<Self>, conn: &Connection, now: i64) -> Box<dyn Answer>;
    fn refuse(self: Box<Self>, error: StoreError);
}

struct FnJob<T, F> {
    write: F,
    reply: Reply<T>,
}

impl<T, F> Job for FnJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
{
    fn apply(self: Box<Self>, conn: &Connection, now: i64) -> Box<dyn Answer> {
        let FnJob { write, reply } = *self;
        let result = savepoint(conn, |conn| write(conn, now));
        pending(reply, result)
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// A request's result, held until the batch's commit decides what the caller hears.
trait Answer: Send {
    /// Sends the result, or `batch_error` instead when the batch was not committed.
    fn send(self: Box<Self>, batch_error: Option<&StoreError>);
}

struct Pending<T> {
    reply: Reply<T>,
    result: Result<T, StoreError>,
}

impl<T: Send> Answer for Pending<T> {
    fn send(self: Box<Self>, batch_error: Option<&StoreError>) {
        let result = match batch_error {
            Some(error) => Err(error.clone()),
            None => self.result,
        };
        // A caller that has gone away needs no answer.
        let _ = self.reply.send(result);
    }
}

fn pending<T: Send + 'static>(reply: Reply<T>, result: Result<T, StoreError>) -> Box<dyn Answer> {
    Box::new(Pending { reply, result })
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

// ---------------------------------------------------------------------------------------
// The writes, each run inside the writer's transaction

const INSERT_MESSAGE: &str = "INSERT INTO messages
     (id, channel, status, payload, attempts, due_at, mailing_id, idempotency_key, created_at, updated_at)
     VALUES (?1, ?2, 'queued', ?3, 0, ?4, ?5, ?6, ?4, ?4)";

fn insert_message(
    conn: &Connection,
    message: &MessageRow,
    idempotency_key: Option<&str>,
    now: i64,
) -> Result<Enqueued, StoreError> {
    let failed = database("enqueue a message");
    if let Some(key) = idempotency_key {
        let existing = conn
            .prepare_cached("SELECT id FROM messages WHERE idempotency_key = ?1")
            .and_then(|mut select| select.query_row([key], |row| row.get(0)).optional())
            .map_err(&failed)?;
        if let Some(id) = existing {
            return Ok(Enqueued { id, created: false });
        }
    }
    if let Some(mailing_id) = &message.mailing_id {
        let known = conn
            .prepare_cached("SELECT 1 FROM mailings WHERE id = ?1")
            .and_then(|mut select| select.exists([mailing_id]))
            .map_err(&failed)?;
        if !known {
            return Err(StoreError::Invalid(format!("there is no mailing {mailing_id}")));
        }
    }
    let id = new_id();
    conn.prepare_cached(INSERT_MESSAGE)
        .and_then(|mut insert| {
            insert.execute(params![
                id,
                message.channel.as_str(),
                message.payload,
                now,
                message.mailing_id,
                idempotency_key
            ])
        })
        .map_err(&failed)?;
    Ok(Enqueued { id, created: true })
}

fn insert_mailing(
    conn: &Connection,
    mailing: &NewMailing,
    idempotency_key: Option<&str>,
    now: i64,
) -> Result<Enqueued, StoreError> {
    let failed = database("create a mailing");
    if let Some(key) = idempotency_key {
        let existing = conn
            .prepare_cached("SELECT id FROM mailings WHERE idempotency_key = ?1")
            .and_then(|mut select| select.query_row([key], |row| row.get(0)).optional())
            .map_err(&failed)?;
        if let Some(id) = existing {
            return Ok(Enqueued { id, created: false });
        }
    }
    let id = new_id();
    let total = i64::try_from(mailing.recipients.len()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO mailings (id, payload, total, idempotency_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            id,
            mailing.shared.to_string(),
            total,
            idempotency_key,
            now
        ])
    })
    .map_err(&failed)?;

    let mut insert = conn.prepare_cached(INSERT_MESSAGE).map_err(&failed)?;
    for recipient in &mailing.recipients {
        let payload = recipient.to_string();
        let no_key: Option<&str> = None;
        insert
            .execute(params![
                new_id(),
                Channel::Email.as_str(),
                payload,
                now,
                id,
                no_key
            ])
            .map_err(&failed)?;
    }
    Ok(Enqueued { id, created: true })
}

fn lease(
    conn: &Connection,
    channel: Channel,
    limit: usize,
    owner: &str,
    lease_for: i64,
    now: i64,
) -> Result<Vec<Leased>, StoreError> {
    let failed = database("lease messages");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Each half walks its own partial index in order and stops at `limit`, so a lease
    // costs the same with ten messages queued or ten million.
    let due: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM (
                 SELECT * FROM (
                     SELECT id, due_at FROM messages
                     WHERE channel = ?1 AND status = 'queued' AND due_at <= ?2
                     ORDER BY due_at LIMIT ?3)
                 UNION ALL
                 SELECT * FROM (
                     SELECT id, due_at FROM messages
                     WHERE channel = ?1 AND status = 'sending' AND lease_expires_at <= ?2
                     ORDER BY due_at LIMIT ?3))
             ORDER BY due_at, id LIMIT ?3",
        )
        .and_then(|mut select| {
            select
                .query_map(params![channel.as_str(), now, limit], |row| row.get(0))?
                .collect()
        })
        .map_err(&failed)?;

    let mut take = conn
        .prepare_cached(
            "UPDATE messages
             SET status = 'sending', lease_owner = ?2, lease_expires_at = ?3,
                 attempts = attempts + 1, updated_at = ?4
             WHERE id = ?1
             RETURNING payload, attempts, mailing_id",
        )
        .map_err(&failed)?;
    let mut shared = conn
        .prepare_cached("SELECT payload FROM mailings WHERE id = ?1")
        .map_err(&failed)?;
    let mut mailing_payloads: HashMap<String, String> = HashMap::new();
    let expires = now.saturating_add(lease_for);

    let mut leased = Vec::with_capacity(due.len());
    for id in due {
        let (payload, attempts, mailing_id): (String, i64, Option<String>) = take
            .query_row(params![id, owner, expires, now], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(&failed)?;
        let mailing_payload = match &mailing_id {
            None => None,
            Some(mailing) => match mailing_payloads.get(mailing) {
                Some(payload) => Some(payload.clone()),
                None => {
                    let payload: String = shared.query_row([mailing], |row| row.get(0)).map_err(&failed)?;
                    mailing_payloads.insert(mailing.clone(), payload.clone());
                    Some(payload)
                }
            },
        };
        leased.push(Leased {
            id,
            payload,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            mailing_id,
            mailing_payload,
        });
    }
    Ok(leased)
}

fn settle(conn: &Connection, id: &str, owner: &str, outcome: &Outcome, now: i64) -> Result<bool, StoreError> {
    // Every outcome is guarded the same way: the message is still `sending` under this
    // owner's lease. An owner whose lease was taken over finds nothing to change.
    let changed = match outcome {
        Outcome::Sent { provider_id } => conn
            .prepare_cached(
                "UPDATE messages
                 SET status = 'sent', provider_id = ?3, error = NULL,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = ?4
                 WHERE id = ?1 AND status = 'sending' AND lease_owner = ?2",
            )
            .and_then(|mut update| update.execute(params![id, owner, provider_id, now])),
        Outcome::Retry { due_at, error } => conn
            .prepare_cached(
                "UPDATE messages
                 SET status = 'queued', due_at = ?3, error = ?4,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5
                 WHERE id = ?1 AND status = 'sending' AND lease_owner = ?2",
            )
            .and_then(|mut update| update.execute(params![id, owner, due_at, error, now])),
        Outcome::Failed { error } => conn
            .prepare_cached(
                "UPDATE messages
                 SET status = 'failed', error = ?3,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = ?4
                 WHERE id = ?1 AND status = 'sending' AND lease_owner = ?2",
            )
            .and_then(|mut update| update.execute(params![id, owner, error, now])),
        Outcome::GiveBack { due_at } => conn
            .prepare_cached(
                "UPDATE messages
                 SET status = 'queued', due_at = ?3, attempts = max(attempts - 1, 0),
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = ?4
                 WHERE id = ?1 AND status = 'sending' AND lease_owner = ?2",
            )
            .and_then(|mut update| update.execute(params![id, owner, due_at, now])),
    };
    Ok(changed.map_err(database("record a delivery attempt"))? == 1)
}

fn release(conn: &Connection, owner: &str, now: i64) -> Result<u64, StoreError> {
    // `channel IN (...)` lets the lease-expiry index (only leased rows) serve the search.
    let released = conn
        .prepare_cached(
            "UPDATE messages
             SET status = 'queued', due_at = ?2, attempts = max(attempts - 1, 0),
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2
             WHERE channel IN ('sms', 'email') AND status = 'sending' AND lease_owner = ?1",
        )
        .and_then(|mut update| update.execute(params![owner, now]))
        .map_err(database("release leases"))?;
    Ok(u64::try_from(released).unwrap_or(u64::MAX))
}

fn expire_all_leases(conn: &Connection, now: i64) -> Result<u64, StoreError> {
    let expired = conn
        .prepare_cached(
            "UPDATE messages SET lease_expires_at = ?1, updated_at = ?1
             WHERE channel IN ('sms', 'email') AND status = 'sending' AND lease_expires_at > ?1",
        )
        .and_then(|mut update| update.execute(params![now]))
        .map_err(database("expire leases"))?;
    Ok(u64::try_from(expired).unwrap_or(u64::MAX))
}

fn report(
    conn: &Connection,
    provider_id: &str,
    status: DeliveryStatus,
    detail: Option<&str>,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let error = match status {
        DeliveryStatus::Delivered => None,
        DeliveryStatus::Undelivered => detail,
    };
    // Providers may reuse ids over time (or two modules may share one): the report is for
    // the most recent message sent under that id. Later reports replace earlier ones.
    conn.prepare_cached(
        "UPDATE messages SET status = ?2, error = ?3, updated_at = ?4
         WHERE id = (
             SELECT id FROM messages
             WHERE provider_id = ?1 AND status IN ('sent', 'delivered', 'undelivered')
             ORDER BY created_at DESC LIMIT 1)
         RETURNING id",
    )
    .and_then(|mut update| {
        update
            .query_row(
                params![provider_id, Status::from(status).as_str(), error, now],
                |row| row.get(0),
            )
            .optional()
    })
    .map_err(database("record a delivery report"))
}

// ---------------------------------------------------------------------------------------
// Reads

fn message_record(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    let unreadable = |index: usize| {
        move |e: StoreError| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))
    };
    Ok(MessageRecord {
        id: row.get(0)?,
        channel: row.get::<_, String>(1)?.parse().map_err(unreadable(1))?,
        status: row.get::<_, String>(2)?.parse().map_err(unreadable(2))?,
        payload: row.get(3)?,
        attempts: u32::try_from(row.get::<_, i64>(4)?).unwrap_or(u32::MAX),
        due_at: system_time(row.get(5)?),
        lease_owner: row.get(6)?,
        lease_expires_at: row.get::<_, Option<i64>>(7)?.map(system_time),
        provider_id: row.get(8)?,
        error: row.get(9)?,
        mailing_id: row.get(10)?,
        created_at: system_time(row.get(11)?),
        updated_at: system_time(row.get(12)?),
    })
}

fn mailing_counts(conn: &Connection, id: &str) -> rusqlite::Result<Option<MailingCounts>> {
    let total: Option<i64> = conn
        .prepare_cached("SELECT total FROM mailings WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    let Some(total) = total else { return Ok(None) };
    let mut counts = MailingCounts {
        total: u64::try_from(total).unwrap_or(0),
        queued: 0,
        sending: 0,
        sent: 0,
        failed: 0,
    };
    let mut select =
        conn.prepare_cached("SELECT status, count(*) FROM messages WHERE mailing_id = ?1 GROUP BY status")?;
    let mut rows = select.query([id])?;
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let count = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
        match status.as_str() {
            "queued" => counts.queued += count,
            "sending" => counts.sending += count,
            "sent" | "delivered" => counts.sent += count,
            _ => counts.failed += count,
        }
    }
    Ok(Some(counts))
}

// ---------------------------------------------------------------------------------------
// Small conversions

/// Turns a SQLite error into a [`StoreError`] naming what was being done.
fn database(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database {
        operation,
        cause: e.to_string(),
    }
}

/// A new message or mailing id: UUIDv7, so ids sort by creation time (and stay ordered
/// within a millisecond, thanks to the uuid crate's counter).
fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

fn now_millis() -> i64 {
    unix_millis(SystemTime::now())
}

fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => millis(since),
        Err(before) => -millis(before.duration()),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn millis_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + millis_duration(ms)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Instant;

    use serde_json::json;

    use super::*;

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("data").join("queue.db")).expect("open the store")
    }

    fn sms(text: &str) -> NewMessage {
        NewMessage {
            channel: Channel::Sms,
            payload: json!({ "to": "+447700900123", "text": text }),
            mailing_id: None,
        }
    }

    fn email(subject: &str) -> NewMessage {
        NewMessage {
            channel: Channel::Email,
            payload: json!({ "to": ["a@example.com"], "subject": subject }),
            mailing_id: None,
        }
    }

    /// Asks the file itself, the way an operator with the sqlite3 shell would.
    fn count(store: &SqliteStore, sql: &str) -> i64 {
        let conn = Connection::open(store.path()).expect("open the file");
        conn.query_row(sql, [], |row| row.get(0)).expect("count")
    }

    #[tokio::test]
    async fn enqueued_message_reads_back_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let before = SystemTime::now() - Duration::from_millis(1);

        let enqueued = store.enqueue(sms("hello"), None).await.unwrap();

        assert!(enqueued.created);
        let uuid = uuid::Uuid::parse_str(&enqueued.id).expect("the id is a UUID");
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(
            enqueued.id,
            uuid.hyphenated().to_string(),
            "printed plain, lowercase, no braces"
        );
        let record = store.get(&enqueued.id).await.unwrap().expect("stored");
        assert_eq!(record.id, enqueued.id);
        assert_eq!(record.channel, Channel::Sms);
        assert_eq!(record.status, Status::Queued);
        assert_eq!(record.attempts, 0);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&record.payload).unwrap(),
            sms("hello").payload
        );
        assert_eq!(
            (
                record.lease_owner,
                record.provider_id,
                record.error,
                record.mailing_id
            ),
            (None, None, None, None)
        );
        assert!(record.updated_at >= before && record.updated_at <= SystemTime::now());
        assert_eq!(store.get("no-such-id").await.unwrap(), None);
    }

    #[tokio::test]
    async fn ids_sort_by_creation() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let mut ids = Vec::new();
        for n in 0..20 {
            ids.push(store.enqueue(sms(&n.to_string()), None).await.unwrap().id);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[tokio::test]
    async fn same_idempotency_key_twice_stores_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);

        let first = store.enqueue(sms("once"), Some("key-1".into())).await.unwrap();
        let second = store.enqueue(sms("once"), Some("key-1".into())).await.unwrap();
        let other = store.enqueue(sms("once"), Some("key-2".into())).await.unwrap();

        assert!(first.created);
        assert_eq!(
            second,
            Enqueued {
                id: first.id.clone(),
                created: false
            }
        );
        assert!(other.created);
        assert_ne!(other.id, first.id);
        assert_eq!(count(&store, "SELECT count(*) FROM messages"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_idempotency_key_concurrently_stores_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir));

        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store: Arc<dyn Store> = store.clone();
                tokio::spawn(async move { store.enqueue(sms("once"), Some("same".into())).await.unwrap() })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }

        let ids: HashSet<_> = answers.iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids.len(), 1, "every caller got the same id");
        assert_eq!(
            answers.iter().filter(|a| a.created).count(),
            1,
            "exactly one caller created it"
        );
        assert_eq!(count(&store, "SELECT count(*) FROM messages"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn five_hundred_concurrent_enqueues_share_few_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir));
        let commits_before = store.commits();
        let requests = 500;

        let started = Instant::now();
        let tasks: Vec<_> = (0..requests)
            .map(|n| {
                let store: Arc<dyn Store> = store.clone();
                tokio::spawn(async move { store.enqueue(sms(&format!("message {n}")), None).await })
            })
            .collect();
        let mut ids = HashSet::new();
        for task in tasks {
            let enqueued = task.await.unwrap().expect("every enqueue succeeds");
            assert!(enqueued.created);
            ids.insert(enqueued.id);
        }
        let elapsed = started.elapsed();
        let commits = store.commits() - commits_before;

        println!("{requests} concurrent enqueues: {elapsed:?}, {commits} commits");
        assert_eq!(ids.len(), requests);
        assert_eq!(count(&store, "SELECT count(*) FROM messages"), requests as i64);
        assert!(
            commits < requests as u64 / 4,
            "{commits} commits for {requests} enqueues"
        );
    }

    /// Feeds the writer one batch by hand, so that what shares a transaction is certain.
    #[test]
    fn one_batch_survives_a_failing_request_and_dedups_a_repeated_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let mut conn = Connection::open(&path).unwrap();
        configure_writer(&conn).unwrap();
        migrate(&mut conn, &path).unwrap();
        let message = |mailing_id: Option<&str>| MessageRow {
            channel: Channel::Sms,
            payload: "{}".into(),
            mailing_id: mailing_id.map(str::to_owned),
        };
        let mut answers = Vec::new();
        let mut batch = Vec::new();
        for (mailing_id, key) in [
            (None, Some("k")),
            (Some("no-such-mailing"), None),
            (None, Some("k")),
            (None, None),
        ] {
            let (reply, answer) = oneshot::channel();
            answers.push(answer);
            let idempotency_key = key.map(str::to_owned);
            batch.push(Request::Enqueue {
                message: message(mailing_id),
                idempotency_key,
                reply,
            });
        }

        let commits = AtomicU64::new(0);
        apply_batch(&conn, batch.into_iter(), &commits);

        assert_eq!(
            commits.load(Ordering::Relaxed),
            1,
            "one commit for the whole batch"
        );

        let answers: Vec<_> = answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap())
            .collect();
        let first = answers[0].clone().expect("the first request is stored");
        assert!(first.created);
        assert!(
            matches!(&answers[1], Err(StoreError::Invalid(why)) if why.contains("no-such-mailing")),
            "{:?}",
            answers[1]
        );
        assert_eq!(
            answers[2],
            Ok(Enqueued {
                id: first.id.clone(),
                created: false
            })
        );
        assert!(answers[3].as_ref().expect("the last request is stored").created);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[tokio::test]
    async fn expired_lease_is_taken_over_and_the_first_owner_loses() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let id = store.enqueue(sms("hi"), None).await.unwrap().id;

        let first = store
            .lease(Channel::Sms, 10, "worker-a", Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(
            first
                .iter()
                .map(|l| (l.id.as_str(), l.attempts))
                .collect::<Vec<_>>(),
            [(id.as_str(), 1)]
        );
        assert_eq!(first[0].payload, sms("hi").payload.to_string());
        assert!(store
            .lease(Channel::Sms, 10, "worker-b", Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty());

        tokio::time::sleep(Duration::from_millis(150)).await;
        let second = store
            .lease(Channel::Sms, 10, "worker-b", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            second
                .iter()
                .map(|l| (l.id.as_str(), l.attempts))
                .collect::<Vec<_>>(),
            [(id.as_str(), 2)]
        );

        assert!(!store
            .mark_sent(&id, "worker-a", Some("late".into()))
            .await
            .unwrap());
        assert!(!store.mark_failed(&id, "worker-a", "late").await.unwrap());
        let record = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.lease_owner.as_deref()),
            (Status::Sending, Some("worker-b"))
        );

        assert!(store
            .mark_sent(&id, "worker-b", Some("provider-1".into()))
            .await
            .unwrap());
        let record = store.get(&id).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Sent);
        assert_eq!(record.provider_id.as_deref(), Some("provider-1"));
        assert_eq!((record.lease_owner, record.lease_expires_at), (None, None));
        assert!(
            !store.mark_sent(&id, "worker-b", None).await.unwrap(),
            "an outcome applies once"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_leasers_never_share_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir));
        for n in 0..200 {
            store.enqueue(sms(&n.to_string()), None).await.unwrap();
        }

        let leasers: Vec<_> = (0..4)
            .map(|worker| {
                let store: Arc<dyn Store> = store.clone();
                tokio::spawn(async move {
                    let owner = format!("worker-{worker}");
                    let mut mine = Vec::new();
                    loop {
                        let leased = store
                            .lease(Channel::Sms, 7, &owner, Duration::from_secs(60))
                            .await
                            .unwrap();
                        if leased.is_empty() {
                            return mine;
                        }
                        mine.extend(leased.into_iter().map(|l| l.id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for leaser in leasers {
            all.extend(leaser.await.unwrap());
        }

        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 200, "every message leased once");
        assert_eq!(distinct.len(), 200, "no message leased twice");
    }

    #[tokio::test]
    async fn lease_takes_the_oldest_due_first_and_only_its_channel() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let a = store.enqueue(sms("a"), None).await.unwrap().id;
        let b = store.enqueue(sms("b"), None).await.unwrap().id;
        let mail = store.enqueue(email("e"), None).await.unwrap().id;
        let c = store.enqueue(sms("c"), None).await.unwrap().id;
        let leased = store
            .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(leased[0].id, a);
        // Due long ago: now the oldest due of all.
        assert!(store
            .mark_retry(&a, "w", UNIX_EPOCH + Duration::from_secs(1), "busy")
            .await
            .unwrap());

        let leased = store
            .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
            .await
            .unwrap();

        assert_eq!(leased.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [a, b, c]);
        let email = store
            .lease(Channel::Email, 10, "w", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(email.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [mail]);
    }

    #[tokio::test]
    async fn retry_waits_for_its_due_time_and_failure_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let id = store.enqueue(sms("later"), None).await.unwrap().id;
        store
            .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
            .await
            .unwrap();

        let later = SystemTime::now() + Duration::from_secs(3600);
        assert!(store.mark_retry(&id, "w", later, "provider busy").await.unwrap());

        let record = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.error.as_deref()),
            (Status::Queued, Some("provider busy"))
        );
        assert_eq!(unix_millis(record.due_at), unix_millis(later));
        assert!(store
            .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty());

        let doomed = store.enqueue(sms("doomed"), None).await.unwrap().id;
        store
            .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store
            .mark_failed(&doomed, "w", "number unreachable")
            .await
            .unwrap());
        let record = store.get(&doomed).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.error.as_deref()),
            (Status::Failed, Some("number unreachable"))
        );
        assert!(store
            .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn inbound_sms_are_kept_once_listed_newest_first_and_forwarded_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let inbound = |n: u32, url: Option<&str>| NewInbound {
            module: "file".into(),
            sender: "+447911123456".into(),
            recipient: "+447700900000".into(),
            text: format!("reply {n}"),
            provider_id: format!("p{n}"),
            forward_url: url.map(str::to_string),
        };
        let first = store.store_inbound(inbound(1, None)).await.unwrap();
        let again = store.store_inbound(inbound(1, None)).await.unwrap();
        assert_eq!((again.id.as_str(), again.created), (first.id.as_str(), false));
        let second = store
            .store_inbound(inbound(2, Some("http://127.0.0.1:9/hook")))
            .await
            .unwrap();

        let page = store.list_inbound(10, None).await.unwrap();
        assert_eq!(
            page.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            ["reply 2", "reply 1"]
        );
        let older = store.list_inbound(10, Some(second.id.clone())).await.unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].id, first.id);

        let due = store.lease_forwards(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(due.len(), 1, "only the one with a webhook is forwarded");
        assert!(
            store
                .lease_forwards(10, Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        store
            .forward_retry(&second.id, SystemTime::now(), "connection refused")
            .await
            .unwrap();
        let due = store.lease_forwards(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!((due.len(), due[0].forward_attempts), (1, 2));
        store.forward_done(&second.id).await.unwrap();
        assert!(store
            .lease_forwards(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty());
        let record = &store.list_inbound(1, None).await.unwrap()[0];
        assert_eq!(record.forward_status, "forwarded");
    }

    #[tokio::test]
    async fn after_a_crash_every_lease_is_void_and_its_attempt_still_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(&dir);
            store.enqueue(sms("in flight"), None).await.unwrap();
            store.enqueue(sms("waiting"), None).await.unwrap();
            let leased = store
                .lease(Channel::Sms, 1, "dead", Duration::from_secs(3600))
                .await
                .unwrap();
            assert_eq!(leased.len(), 1);
        }
        let store = open(&dir);
        assert_eq!(store.expire_all_leases().await.unwrap(), 1);
        let leased = store
            .lease(Channel::Sms, 10, "next", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(leased.len(), 2, "the dead process's message is due at once");
        let retried = leased.iter().find(|l| l.payload.contains("in flight")).unwrap();
        assert_eq!(retried.attempts, 2, "the interrupted attempt still counts");
        assert_eq!(store.expire_all_leases().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn release_leases_requeues_and_uncounts_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        for n in 0..3 {
            store.enqueue(sms(&n.to_string()), None).await.unwrap();
        }
        let leased = store
            .lease(Channel::Sms, 2, "leaving", Duration::from_secs(60))
            .await
            .unwrap();
        let kept = store
            .lease(Channel::Sms, 1, "staying", Duration::from_secs(60))
            .await
            .unwrap();

        assert_eq!(store.release_leases("leaving").await.unwrap(), 2);

        for message in &leased {
            let record = store.get(&message.id).await.unwrap().unwrap();
            assert_eq!(
                (record.status, record.attempts, record.lease_owner),
                (Status::Queued, 0, None)
            );
        }
        let record = store.get(&kept[0].id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.lease_owner.as_deref()),
            (Status::Sending, Some("staying"))
        );
        let again = store
            .lease(Channel::Sms, 10, "next", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|l| l.attempts == 1));
        assert_eq!(store.release_leases("nobody").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn queue_depth_counts_what_a_lease_would_pick() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        assert_eq!(
            store.queue_depth(Channel::Sms).await.unwrap(),
            QueueDepth {
                due: 0,
                oldest_due_age: None
            }
        );
        store.enqueue(sms("1"), None).await.unwrap();
        store.enqueue(sms("2"), None).await.unwrap();
        store.enqueue(email("3"), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;

        let depth = store.queue_depth(Channel::Sms).await.unwrap();
        assert_eq!(depth.due, 2);
        assert!(
            depth.oldest_due_age.unwrap() >= Duration::from_millis(30),
            "{depth:?}"
        );
        assert_eq!(store.queue_depth(Channel::Email).await.unwrap().due, 1);

        store
            .lease(Channel::Sms, 10, "w", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            store.queue_depth(Channel::Sms).await.unwrap().due,
            2,
            "expired leases are due"
        );
        store
            .lease(Channel::Sms, 10, "w", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            store.queue_depth(Channel::Sms).await.unwrap(),
            QueueDepth {
                due: 0,
                oldest_due_age: None
            }
        );
    }

    #[tokio::test]
    async fn mailing_of_100k_recipients_in_one_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let shared = json!({ "from": "news@example.com", "subject": "Spring news", "text": "Hello" });
        let recipients: Vec<_> = (0..100_000)
            .map(|n| json!({ "to": format!("reader{n}@example.com"), "name": format!("Reader {n}") }))
            .collect();
        let mailing = NewMailing {
            shared: shared.clone(),
            recipients,
        };

        let started = Instant::now();
        let created = store
            .create_mailing(mailing.clone(), Some("spring".into()))
            .await
            .unwrap();
        let elapsed = started.elapsed();
        println!("mailing of 100000 recipients: {elapsed:?}");

        assert!(created.created);
        let counts = store
            .mailing_counts(&created.id)
            .await
            .unwrap()
            .expect("the mailing exists");
        assert_eq!(
            counts,
            MailingCounts {
                total: 100_000,
                queued: 100_000,
                sending: 0,
                sent: 0,
                failed: 0
            }
        );

        let again = store
            .create_mailing(mailing, Some("spring".into()))
            .await
            .unwrap();
        assert_eq!(
            again,
            Enqueued {
                id: created.id.clone(),
                created: false
            }
        );
        assert_eq!(count(&store, "SELECT count(*) FROM messages"), 100_000);

        let leased = store
            .lease(Channel::Email, 10, "w", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(leased.len(), 10);
        for message in &leased {
            assert_eq!(message.mailing_id.as_deref(), Some(created.id.as_str()));
            assert_eq!(
                message.mailing_payload.as_deref(),
                Some(shared.to_string().as_str())
            );
        }
        assert_eq!(
            leased[0].payload,
            json!({ "to": "reader0@example.com", "name": "Reader 0" }).to_string()
        );
        assert!(store.mark_sent(&leased[0].id, "w", None).await.unwrap());
        assert!(store
            .mark_failed(&leased[1].id, "w", "550 no such user")
            .await
            .unwrap());
        let counts = store.mailing_counts(&created.id).await.unwrap().unwrap();
        assert_eq!(
            counts,
            MailingCounts {
                total: 100_000,
                queued: 99_990,
                sending: 8,
                sent: 1,
                failed: 1
            }
        );
        assert_eq!(store.mailing_counts("no-such-mailing").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_mailing_without_recipients_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let empty = NewMailing {
            shared: json!({}),
            recipients: Vec::new(),
        };
        assert!(matches!(
            store.create_mailing(empty, None).await,
            Err(StoreError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn everything_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (sent, queued, mailing) = {
            let store = open(&dir);
            let sent = store
                .enqueue(sms("sent"), Some("key-sent".into()))
                .await
                .unwrap()
                .id;
            store
                .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
                .await
                .unwrap();
            assert!(store
                .mark_sent(&sent, "w", Some("provider-9".into()))
                .await
                .unwrap());
            let queued = store.enqueue(sms("queued"), None).await.unwrap().id;
            let recipients = vec![json!({ "to": "a@example.com" }), json!({ "to": "b@example.com" })];
            let mailing = store
                .create_mailing(
                    NewMailing {
                        shared: json!({}),
                        recipients,
                    },
                    None,
                )
                .await
                .unwrap()
                .id;
            (sent, queued, mailing)
        };

        let store = open(&dir);

        let record = store
            .get(&sent)
            .await
            .unwrap()
            .expect("the sent message is still there");
        assert_eq!(
            (record.status, record.provider_id.as_deref()),
            (Status::Sent, Some("provider-9"))
        );
        assert_eq!(store.get(&queued).await.unwrap().unwrap().status, Status::Queued);
        let counts = store.mailing_counts(&mailing).await.unwrap().unwrap();
        assert_eq!((counts.total, counts.queued), (2, 2));
        let again = store.enqueue(sms("sent"), Some("key-sent".into())).await.unwrap();
        assert_eq!(
            again,
            Enqueued {
                id: sent,
                created: false
            },
            "idempotency keys outlive a restart"
        );
        let leased = store
            .lease(Channel::Sms, 10, "w2", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(leased.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [queued]);
    }

    #[tokio::test]
    async fn delivery_report_moves_sent_to_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let first = store.enqueue(sms("1"), None).await.unwrap().id;
        let second = store.enqueue(sms("2"), None).await.unwrap().id;
        store
            .lease(Channel::Sms, 2, "w", Duration::from_secs(60))
            .await
            .unwrap();
        store.mark_sent(&first, "w", Some("p-1".into())).await.unwrap();
        store.mark_sent(&second, "w", Some("p-2".into())).await.unwrap();

        let delivered = store
            .record_delivery_report("p-1", DeliveryStatus::Delivered, Some("DELIVRD"))
            .await;
        let undelivered =
            store.record_delivery_report("p-2", DeliveryStatus::Undelivered, Some("absent subscriber"));

        assert_eq!(delivered.unwrap(), Some(first.clone()));
        assert_eq!(undelivered.await.unwrap(), Some(second.clone()));
        let record = store.get(&first).await.unwrap().unwrap();
        assert_eq!((record.status, record.error), (Status::Delivered, None));
        let record = store.get(&second).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.error.as_deref()),
            (Status::Undelivered, Some("absent subscriber"))
        );
        assert_eq!(
            store
                .record_delivery_report("p-unknown", DeliveryStatus::Delivered, None)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_report_before_the_message_is_sent_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let id = store.enqueue(sms("1"), None).await.unwrap().id;
        store
            .lease(Channel::Sms, 1, "w", Duration::from_secs(60))
            .await
            .unwrap();

        assert_eq!(
            store
                .record_delivery_report("p-1", DeliveryStatus::Delivered, None)
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.get(&id).await.unwrap().unwrap().status, Status::Sending);
    }

    /// Set for the child process of `an_acknowledged_enqueue_survives_kill_9`.
    const CRASH_CHILD_DB: &str = "GATEWAY_STORE_CRASH_CHILD_DB";

    /// Does nothing in a normal run. In the child process of
    /// `an_acknowledged_enqueue_survives_kill_9` it enqueues without end, printing each id
    /// once its enqueue has returned, until it is killed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crash_child_enqueues_until_killed() {
        let Some(path) = std::env::var_os(CRASH_CHILD_DB) else {
            return;
        };
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(Path::new(&path)).unwrap());
        loop {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move { store.enqueue(sms("crash"), None).await.unwrap().id })
                })
                .collect();
            for task in tasks {
                let id = task.await.unwrap();
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "acknowledged {id}").unwrap();
                stdout.flush().unwrap();
            }
        }
    }

    /// The contract's promise: once enqueue returns (the API's 202), a `kill -9` loses nothing.
    #[test]
    fn an_acknowledged_enqueue_survives_kill_9() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::sqlite::tests::crash_child_enqueues_until_killed",
                "--nocapture",
            ])
            .env(CRASH_CHILD_DB, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acknowledged = Vec::new();
        while acknowledged.len() < 300 {
            let line = lines.next().expect("the child prints until killed").unwrap();
            if let Some(id) = line.strip_prefix("acknowledged ") {
                acknowledged.push(id.to_owned());
            }
        }

        child.kill().unwrap(); // SIGKILL: no destructor, no clean close of the file
        child.wait().unwrap();
        // What the child printed before it died was acknowledged too.
        acknowledged.extend(
            lines
                .map_while(Result::ok)
                .filter_map(|line| line.strip_prefix("acknowledged ").map(str::to_owned)),
        );

        let conn = Connection::open(&path).unwrap();
        let mut select = conn
            .prepare("SELECT count(*) FROM messages WHERE id = ?1 AND status = 'queued'")
            .unwrap();
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| select.query_row([id], |row| row.get::<_, i64>(0)).unwrap() != 1)
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged messages lost: {missing:?}",
            missing.len(),
            acknowledged.len()
        );
    }

    #[test]
    fn opening_an_unusable_path_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-directory");
        std::fs::write(&blocker, "").unwrap();
        let path = blocker.join("queue.db");

        let error = SqliteStore::open(&path).expect_err("a file stands where the directory should be");

        assert!(
            matches!(&error, StoreError::Open { path: p, .. } if *p == path),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();

        let error = SqliteStore::open(&path).expect_err("schema 99 is unknown");

        assert_eq!(
            error,
            StoreError::SchemaTooNew {
                path,
                found: 99,
                supported: SCHEMA_VERSION
            }
        );
    }

    #[test]
    fn the_file_is_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let conn = Connection::open(store.path()).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// Regression guard for queue latency: leasing and releasing must walk the partial
    /// indexes, never the whole table, or a lease slows down as the queue grows.
    #[test]
    fn leases_use_the_partial_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let conn = Connection::open(store.path()).unwrap();
        let plan = |sql: &str| -> String {
            let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = explain.query_map([], |row| row.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
        };
        let lease_plan = plan(
            "SELECT id FROM messages WHERE channel = 'sms' AND status = 'queued' AND due_at <= 5 ORDER BY due_at LIMIT 3",
        );
        assert!(lease_plan.contains("messages_queued_due"), "{lease_plan}");
        assert!(!lease_plan.contains("TEMP B-TREE"), "{lease_plan}");
        let release_plan = plan(
            "SELECT id FROM messages WHERE channel IN ('sms', 'email') AND status = 'sending' AND lease_owner = 'w'",
        );
        assert!(release_plan.contains("messages_lease_expiry"), "{release_plan}");
    }
}
