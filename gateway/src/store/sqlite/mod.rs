//! [`SqliteStore`]: the queue in one SQLite file, for a gateway that runs alone.
//!
//! **Writes** all take one path: a closure handed to the writer thread ([`writer`]),
//! which applies many callers' writes in one transaction and one fsync (group commit) and
//! answers each only once it is on disk. Leases are writes too, so they are serialised by
//! the writer: two workers leasing at the same time see each other's leases, and
//! `BEGIN IMMEDIATE` keeps that true even against another process writing the same file.
//!
//! **Reads** (`get`, `queue_depth`, `mailing_counts`, `list_inbound`) run on a small pool
//! of read connections on tokio's blocking threads; in WAL mode they never wait for the
//! writer.
//!
//! The SQL lives beside the concept it serves: [`messages`] (enqueue, lease, settle),
//! [`reports`] (delivery reports and their hold), [`idempotency`], [`mailings`],
//! [`inbound`], [`suppressions`], [`purge`] (retention), and [`schema`] (set-up and
//! migrations).

mod console_sessions;
mod convert;
mod idempotency;
mod inbound;
mod mailings;
mod messages;
mod purge;
mod quota;
mod reports;
mod schema;
mod settings_versions;
mod suppressions;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use self::convert::{database, millis, now_millis, unix_millis};
use self::messages::MessageRow;
use self::writer::{Write, WriterState};
use super::{
    Channel, DeliveryReport, Enqueued, Idempotency, InboundRecord, Leased, MailingCounts, MailingSummary,
    MessageRecord, NewInbound, NewMailing, NewMessage, PurgeKind, Purged, QueueDepth, ReportOutcome,
    Settlement, Store, StoreError, StoreHealth,
};

/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 4;

/// The queue in one SQLite file (WAL, `synchronous = FULL`).
///
/// Writes go through one writer thread that commits many callers' writes together (group
/// commit) and answers each only once it is on disk; reads use their own connections.
/// Dropping the store lets the writer finish what it was handed, then closes the file.
pub struct SqliteStore {
    path: PathBuf,
    writer: WriterHandle,
    readers: Arc<Readers>,
    state: Arc<WriterState>,
}

impl SqliteStore {
    /// Opens the queue in the file at `path`, creating the file, its directory and the
    /// schema as needed.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_error = |cause: String| StoreError::Open {
            store: path.display().to_string(),
            cause,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(format!("cannot create the directory {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        schema::configure_writer(&conn).map_err(open_error)?;
        schema::migrate(&mut conn, path)?;

        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        });
        // Open one reader now, so that a file readers cannot use fails here and not later.
        let reader = readers.checkout().map_err(|e| open_error(e.to_string()))?;
        readers.checkin(reader);

        let state = Arc::new(WriterState::default());
        let (writes, receiver) = mpsc::channel(writer::QUEUE_CAPACITY);
        let writer_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(conn, receiver, &writer_state))
            .map_err(|e| open_error(format!("cannot start the writer thread: {e}")))?;

        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: WriterHandle {
                writes: Some(writes),
                thread: Some(thread),
            },
            readers,
            state,
        })
    }

    /// The file the queue lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many transactions the writer has committed since the store was opened: with
    /// group commit, far fewer than the writes requested under load.
    pub fn commits(&self) -> u64 {
        self.state.commits.load(Ordering::Relaxed)
    }

    /// Hands `write(conn, now_millis)` to the writer, to run in the next batch's
    /// transaction, and waits until it is committed (or refused).
    async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.hand_over(write, false).await
    }

    /// Like [`SqliteStore::write`], for a write that must not be lost: if it cannot be
    /// committed now, the writer keeps it and tries again until it is.
    async fn write_until_written<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.hand_over(write, true).await
    }

    async fn hand_over<T, F>(&self, write: F, until_written: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let writes = self.writer.writes.as_ref().ok_or(StoreError::WriterStopped)?;
        let (reply, answer) = oneshot::channel();
        writes
            .send(Write::new(write, reply, until_written))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
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
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError> {
        let message = MessageRow {
            channel: message.channel,
            payload: message.payload.to_string(),
            mailing_id: message.mailing_id,
        };
        self.write(move |conn, now| messages::insert_message(conn, &message, idempotency.as_ref(), now))
            .await
    }

    async fn create_mailing(
        &self,
        mailing: NewMailing,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError> {
        if mailing.recipients.is_empty() {
            return Err(StoreError::Invalid(
                "a mailing needs at least one recipient".into(),
            ));
        }
        self.write(move |conn, now| mailings::insert_mailing(conn, &mailing, idempotency.as_ref(), now))
            .await
    }

    async fn lease(
        &self,
        channel: Channel,
        limit: usize,
        owner: &str,
        lease_for: Duration,
    ) -> Result<Vec<Leased>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let owner = owner.to_owned();
        let lease_for = millis(lease_for);
        self.write(move |conn, now| messages::lease(conn, channel, limit, &owner, lease_for, now))
            .await
    }

    async fn settle(&self, settlements: Vec<Settlement>) -> Result<Vec<bool>, StoreError> {
        if settlements.is_empty() {
            return Ok(Vec::new());
        }
        self.write_until_written(move |conn, now| messages::settle_all(conn, &settlements, now))
            .await
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.write(move |conn, now| messages::release(conn, &owner, now))
            .await
    }

    fn health(&self) -> StoreHealth {
        self.state.health()
    }

    async fn expire_all_leases(&self) -> Result<u64, StoreError> {
        self.write(messages::expire_all_leases).await
    }

    async fn record_delivery_report(&self, report: DeliveryReport) -> Result<ReportOutcome, StoreError> {
        self.write(move |conn, now| reports::record(conn, &report, now))
            .await
    }

    async fn purge(
        &self,
        kind: PurgeKind,
        older_than: SystemTime,
        limit: usize,
    ) -> Result<Purged, StoreError> {
        let (before, limit) = (unix_millis(older_than), i64::try_from(limit).unwrap_or(i64::MAX));
        if limit == 0 {
            return Ok(Purged::default());
        }
        self.write(move |conn, _now| purge::purge(conn, kind, before, limit))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        let id = id.to_owned();
        self.read("read a message", move |conn| messages::get(conn, &id))
            .await
    }

    async fn queue_depth(&self, channel: Channel) -> Result<QueueDepth, StoreError> {
        self.read("measure the queue", move |conn| {
            messages::queue_depth(conn, channel, now_millis())
        })
        .await
    }

    async fn mailing_counts(&self, id: &str) -> Result<Option<MailingCounts>, StoreError> {
        let id = id.to_owned();
        self.read("count a mailing", move |conn| {
            mailings::mailing_counts(conn, &id).map_err(database("count a mailing"))
        })
        .await
    }

    async fn recent_mailings(&self, limit: usize) -> Result<Vec<MailingSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("list mailings", move |conn| {
            mailings::recent(conn, limit).map_err(database("list mailings"))
        })
        .await
    }

    async fn store_inbound(&self, new: NewInbound) -> Result<Enqueued, StoreError> {
        self.write(move |conn, now| inbound::store(conn, &new, now)).await
    }

    async fn list_inbound(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> Result<Vec<InboundRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("list inbound SMS", move |conn| {
            inbound::list(conn, limit, before.as_deref())
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
        self.write(move |conn, now| inbound::lease_forwards(conn, limit, lease_for, now))
            .await
    }

    async fn forward_done(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |conn, _now| inbound::forward_done(conn, &id))
            .await
    }

    async fn forward_retry(&self, id: &str, due_at: SystemTime, error: &str) -> Result<(), StoreError> {
        let (id, error, due_at) = (id.to_owned(), error.to_owned(), unix_millis(due_at));
        self.write(move |conn, _now| inbound::forward_retry(conn, &id, due_at, &error))
            .await
    }
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
            conn.busy_timeout(schema::BUSY_TIMEOUT)?;
            conn.pragma_update(None, "query_only", true)?;
            schema::keep_plans(&conn)?;
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

/// The way to the writer thread. Dropping it lets the writer finish what was handed to it,
/// and waits for it to close the file.
struct WriterHandle {
    writes: Option<mpsc::Sender<Write>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.writes.take();
        if let Some(thread) = self.thread.take() {
            // A panic of the writer has already failed its callers; there is nothing to add.
            let _ = thread.join();
        }
    }
}
