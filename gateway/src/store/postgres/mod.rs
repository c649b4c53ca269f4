//! [`PostgresStore`]: the queue in a PostgreSQL database that several gateways share.
//!
//! Every operation is one transaction on a pooled connection, committed with
//! `synchronous_commit` as the server has it (on by default: a commit is on disk before
//! the API answers 202). PostgreSQL does the group commit itself.
//!
//! What sharing asks of it, beside what the SQLite store does:
//!
//! - **Leases** pick due rows with `FOR UPDATE SKIP LOCKED`, so gateways leasing at the
//!   same time never wait for each other and never take the same message; each lease
//!   gets its own token, which guards every outcome as in SQLite.
//! - **Time** is the database's (`gateway_now()`), so lease expiries mean the same to
//!   every gateway whatever its own clock says.
//! - **Idempotency keys and inbound SMS** are claimed with `INSERT … ON CONFLICT DO
//!   NOTHING` before anything else is written: of two gateways taking one key at once,
//!   the second waits for the first's commit and then answers with its id.
//! - **Delivery reports** and the send outcomes they wait for take advisory locks on the
//!   message and provider ids ([`reports`]), so a report cannot be held just as the
//!   outcome that would claim it commits on another gateway.
//! - **Transient failures** (a deadlock between two gateways, a lost connection) are
//!   retried; an outcome (`settle`) is retried until it is written, as in SQLite.
//!
//! The SQL lives beside the concept it serves, as in the SQLite store: [`messages`],
//! [`mailings`], [`reports`], [`idempotency`], [`inbound`], [`suppressions`], [`purge`],
//! [`schema`].

mod console_sessions;
mod fleet;
mod idempotency;
mod inbound;
mod listener;
mod mailings;
mod messages;
mod purge;
mod quota;
mod reports;
mod schema;
mod settings_versions;
mod suppressions;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use tokio_util::sync::CancellationToken;

use super::fleet::{Buried, Heartbeat, Peer, SmtpSlot};
use super::stored::{millis, unix_millis};
use super::{
    Channel, DeliveryReport, Enqueued, Fleet, FleetEvent, Idempotency, InboundRecord, Leased, MailingCounts,
    MailingSummary, MessageRecord, NewInbound, NewMailing, NewMessage, PurgeKind, Purged, QueueDepth,
    ReportOutcome, Settlement, Store, StoreError, StoreHealth,
};

/// Connections each gateway keeps to the database at most. Every API request and every
/// delivery worker's write holds one for a single short transaction.
const POOL_SIZE: usize = 16;

/// How long a write waits for a free connection, or for a new one, before it fails.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// How many times a transaction that lost to another (a deadlock, a serialisation
/// failure) is run again before its error is returned.
const CONFLICT_RETRIES: u32 = 5;

/// The queue in a PostgreSQL database that any number of gateways share.
pub struct PostgresStore {
    pool: Pool,
    /// What the listener hears from other gateways.
    events: broadcast::Sender<FleetEvent>,
    /// The database as logs may show it: the URL without its password.
    name: String,
    state: Arc<State>,
}

/// What `health()` reports, kept as writes succeed and fail.
#[derive(Default)]
struct State {
    unwritable: AtomicBool,
    pending_settlements: AtomicUsize,
    /// Cancelled when the store is dropped: settlements still retrying give up.
    closed: CancellationToken,
}

/// Why one attempt at a transaction failed: the database's error (which may be worth
/// another attempt), or the store's own verdict (which is not).
enum Failure {
    Database(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Failure::Database(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => Failure::Database(error),
            other => Failure::Store(StoreError::Database {
                operation: "get a database connection",
                cause: other.to_string(),
            }),
        }
    }
}

/// The result of one attempt.
type Attempt<T> = Result<T, Failure>;

impl Failure {
    /// Whether running the transaction again may succeed: it lost a race with another
    /// gateway's (a deadlock, a serialisation failure).
    fn is_conflict(&self) -> bool {
        match self {
            Failure::Database(error) => matches!(
                error.code(),
                Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            ),
            Failure::Store(_) => false,
        }
    }

    /// Whether the database could not be reached or refused to write at all, as
    /// opposed to refusing this one request.
    fn is_unavailable(&self) -> bool {
        match self {
            Failure::Database(error) => error.as_db_error().is_none_or(|db| {
                let class = &db.code().code()[..2];
                // Connection exceptions, insufficient resources (disk full), operator
                // intervention (a shutdown), system errors.
                matches!(class, "08" | "53" | "57" | "58")
            }),
            Failure::Store(StoreError::Database { .. }) => true,
            Failure::Store(_) => false,
        }
    }

    fn into_store_error(self, operation: &'static str) -> StoreError {
        match self {
            Failure::Database(error) => StoreError::Database {
                operation,
                cause: describe(&error),
            },
            Failure::Store(error) => error,
        }
    }
}

/// The database's own message, with its detail when it gives one.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => error.to_string(),
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/name`),
    /// and brings its schema up to date, or refuses a schema newer than this gateway's.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Open {
            store: "storage.url".into(),
            cause: format!("not a PostgreSQL URL: {e}"),
        })?;
        let name = display_name(&config);
        let open_error = |cause: String| StoreError::Open {
            store: name.clone(),
            cause,
        };
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(open_error(
                "sslmode=require asks for TLS, which this gateway does not speak to PostgreSQL \
                 yet: connect over a private network or a local socket with sslmode=disable"
                    .into(),
            ));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let mut client = pool.get().await.map_err(|e| open_error(e.to_string()))?;
        schema::migrate(&mut client, &name).await?;
        drop(client);
        let state = Arc::new(State::default());
        let (events, _) = broadcast::channel(64);
        tokio::spawn(listener::run(
            config,
            name.clone(),
            events.clone(),
            state.closed.clone(),
        ));
        Ok(PostgresStore {
            pool,
            events,
            name,
            state,
        })
    }

    /// The database as logs show it: its URL without the password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection of the pool, for work beside the queue's (the migration's copy).
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| Failure::from(e).into_store_error("get a database connection"))
    }

    /// Runs `attempt`, a write (one transaction on a connection of the pool), until it
    /// succeeds, fails for a reason of its own, or has lost [`CONFLICT_RETRIES`] races;
    /// what [`Store::health`] reports follows whether writes succeed.
    async fn run<T, F, Fut>(&self, operation: &'static str, attempt: F) -> Result<T, StoreError>
    where
        F: Fn(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        self.attempt(operation, true, attempt).await
    }

    /// Runs `attempt`, a read, as [`PostgresStore::run`] does; a database that answers
    /// reads may still refuse writes (a full disk), so health is left as it is.
    async fn read<T, F, Fut>(&self, operation: &'static str, attempt: F) -> Result<T, StoreError>
    where
        F: Fn(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        self.attempt(operation, false, attempt).await
    }

    async fn attempt<T, F, Fut>(
        &self,
        operation: &'static str,
        write: bool,
        attempt: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut conflicts = 0;
        loop {
            let result = match self.pool.get().await {
                Ok(client) => attempt(client).await,
                Err(error) => Err(Failure::from(error)),
            };
            match result {
                Ok(value) => {
                    if write {
                        self.state.unwritable.store(false, Ordering::Relaxed);
                    }
                    return Ok(value);
                }
                Err(failure) if failure.is_conflict() && conflicts < CONFLICT_RETRIES => conflicts += 1,
                Err(failure) => {
                    if write && failure.is_unavailable() {
                        self.state.unwritable.store(true, Ordering::Relaxed);
                    }
                    return Err(failure.into_store_error(operation));
                }
            }
        }
    }
}

/// Runs `sql` (prepared once per connection) and returns its rows.
async fn rows(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = db.prepare_cached(sql).await?;
    db.query(&statement, params).await
}

/// Runs `sql` and returns its row, if it gave one.
async fn optional_row(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = db.prepare_cached(sql).await?;
    db.query_opt(&statement, params).await
}

/// Runs `sql`, which gives exactly one row, and returns it.
async fn one_row(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, tokio_postgres::Error> {
    let statement = db.prepare_cached(sql).await?;
    db.query_one(&statement, params).await
}

/// Runs `sql` and returns how many rows it changed.
async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = db.prepare_cached(sql).await?;
    db.execute(&statement, params).await
}

/// `postgres://user@host:port/name`: the URL as logs and errors may show it, without
/// its password.
fn display_name(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            tokio_postgres::config::Host::Tcp(host) => format!("{host}:{port}"),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    let dbname = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{}/{dbname}", hosts.join(","))
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.name)
            .finish()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.state.closed.cancel();
        self.pool.close();
    }
}

/// How long a settlement that could not be written waits before the next try: doubling
/// from the first to the last.
const SETTLE_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn enqueue(
        &self,
        message: NewMessage,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError> {
        let payload = message.payload.to_string();
        let (payload, message, idempotency) = (&payload, &message, &idempotency);
        self.run("enqueue a message", move |mut client| async move {
            // A message of its own without a key needs nothing else in its transaction:
            // one statement, a third of the round trips.
            if idempotency.is_none() && message.mailing_id.is_none() {
                return messages::insert_alone(&client, message.channel, payload).await;
            }
            let tx = client.transaction().await?;
            let enqueued = messages::insert(
                &tx,
                message.channel,
                payload,
                message.mailing_id.as_deref(),
                idempotency.as_ref(),
            )
            .await?;
            tx.commit().await?;
            Ok(enqueued)
        })
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
        let (mailing, idempotency) = (&mailing, &idempotency);
        self.run("create a mailing", move |mut client| async move {
            let tx = client.transaction().await?;
            let enqueued = mailings::insert(&tx, mailing, idempotency.as_ref()).await?;
            tx.commit().await?;
            Ok(enqueued)
        })
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease_for = millis(lease_for);
        self.run("lease messages", move |mut client| async move {
            let tx = client.transaction().await?;
            let leased = messages::lease(&tx, channel, limit, owner, lease_for).await?;
            tx.commit().await?;
            Ok(leased)
        })
        .await
    }

    async fn settle(&self, settlements: Vec<Settlement>) -> Result<Vec<bool>, StoreError> {
        if settlements.is_empty() {
            return Ok(Vec::new());
        }
        let settlements = &settlements;
        let attempt = move |mut client: deadpool_postgres::Client| async move {
            // One outcome (an e-mail's, as the SMTP engine writes them) is most often one
            // statement: a third of the round trips of a transaction.
            if let [settlement] = settlements.as_slice() {
                if let Some(applied) = messages::settle_alone(&client, settlement).await? {
                    return Ok(vec![applied]);
                }
            }
            // The statements of every outcome go out at once (tokio-postgres pipelines
            // queries made together on one connection): one round trip for the batch,
            // not one per outcome. They touch different messages, so order is free.
            let tx = client.transaction().await?;
            let applied = futures_util::future::try_join_all(
                settlements
                    .iter()
                    .map(|settlement| messages::settle(&tx, settlement)),
            )
            .await?;
            tx.commit().await?;
            Ok(applied)
        };
        // An outcome must not be lost once a message may have reached its provider: one
        // that cannot be written now is tried again until it is, or the store closes.
        let mut wait = SETTLE_BACKOFF.0;
        let mut pending = false;
        let result = loop {
            match self.run("record delivery outcomes", &attempt).await {
                Err(StoreError::Database { operation, cause }) => {
                    if !pending {
                        pending = true;
                        self.state
                            .pending_settlements
                            .fetch_add(settlements.len(), Ordering::Relaxed);
                    }
                    tracing::warn!(%operation, %cause, retry_in = ?wait, "outcomes not written yet; trying again");
                    tokio::select! {
                        () = self.state.closed.cancelled() => break Err(StoreError::WriterStopped),
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(SETTLE_BACKOFF.1);
                }
                other => break other,
            }
        };
        if pending {
            self.state
                .pending_settlements
                .fetch_sub(settlements.len(), Ordering::Relaxed);
        }
        result
    }

    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        self.run("release leases", move |mut client| async move {
            let tx = client.transaction().await?;
            let released = messages::release(&tx, owner).await?;
            tx.commit().await?;
            Ok(released)
        })
        .await
    }

    fn fleet(&self) -> Option<&dyn Fleet> {
        Some(self)
    }

    fn health(&self) -> StoreHealth {
        StoreHealth {
            writable: !self.state.unwritable.load(Ordering::Relaxed),
            pending_settlements: self.state.pending_settlements.load(Ordering::Relaxed),
        }
    }

    async fn expire_all_leases(&self) -> Result<u64, StoreError> {
        self.run("expire leases", |client| async move {
            Ok(messages::expire_all_leases(&client).await?)
        })
        .await
    }

    async fn record_delivery_report(&self, report: DeliveryReport) -> Result<ReportOutcome, StoreError> {
        let report = &report;
        self.run("record a delivery report", move |mut client| async move {
            let tx = client.transaction().await?;
            let outcome = reports::record(&tx, report).await?;
            tx.commit().await?;
            Ok(outcome)
        })
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
        self.run("purge old rows", move |mut client| async move {
            let tx = client.transaction().await?;
            let purged = purge::purge(&tx, kind, before, limit).await?;
            tx.commit().await?;
            Ok(purged)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.read("read a message", |client| async move {
            messages::get(&client, id).await
        })
        .await
    }

    async fn queue_depth(&self, channel: Channel) -> Result<QueueDepth, StoreError> {
        self.read("measure the queue", |client| async move {
            Ok(messages::queue_depth(&client, channel).await?)
        })
        .await
    }

    async fn mailing_counts(&self, id: &str) -> Result<Option<MailingCounts>, StoreError> {
        self.read("count a mailing", |client| async move {
            mailings::counts(&client, id).await
        })
        .await
    }

    async fn recent_mailings(&self, limit: usize) -> Result<Vec<MailingSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("list mailings", move |client| async move {
            mailings::recent(&client, limit).await
        })
        .await
    }

    async fn store_inbound(&self, new: NewInbound) -> Result<Enqueued, StoreError> {
        let new = &new;
        self.run("store an inbound SMS", move |client| async move {
            Ok(inbound::store(&client, new).await?)
        })
        .await
    }

    async fn list_inbound(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> Result<Vec<InboundRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let before = before.as_deref();
        self.read("list inbound SMS", move |client| async move {
            inbound::list(&client, limit, before).await
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
        self.run("lease inbound forwards", move |client| async move {
            inbound::lease_forwards(&client, limit, lease_for).await
        })
        .await
    }

    async fn forward_done(&self, id: &str) -> Result<(), StoreError> {
        self.run("record a forward", |client| async move {
            Ok(inbound::forward_done(&client, id).await?)
        })
        .await
    }

    async fn forward_retry(&self, id: &str, due_at: SystemTime, error: &str) -> Result<(), StoreError> {
        let due_at = unix_millis(due_at);
        self.run("record a failed forward", |client| async move {
            Ok(inbound::forward_retry(&client, id, due_at, error).await?)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Fleet for PostgresStore {
    async fn salt(&self) -> Result<String, StoreError> {
        self.read("read the fleet's salt", |client| async move {
            Ok(one_row(&client, "SELECT salt FROM fleet", &[]).await?.get(0))
        })
        .await
    }

    async fn heartbeat(&self, beat: &Heartbeat, dead_after: Duration) -> Result<Vec<Peer>, StoreError> {
        let dead_after = millis(dead_after);
        self.run("write a heartbeat", |client| async move {
            fleet::heartbeat(&client, beat, dead_after).await
        })
        .await
    }

    async fn bury_dead(&self, dead_after: Duration) -> Result<Buried, StoreError> {
        let dead_after = millis(dead_after);
        self.run("release dead gateways' work", move |mut client| async move {
            let tx = client.transaction().await?;
            let buried = fleet::bury_dead(&tx, dead_after).await?;
            tx.commit().await?;
            Ok(buried)
        })
        .await
    }

    async fn leave(&self, gateway: &str) -> Result<(), StoreError> {
        self.run("leave the fleet", move |mut client| async move {
            let tx = client.transaction().await?;
            fleet::leave(&tx, gateway).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn take_smtp_slot(
        &self,
        gateway: &str,
        connections: u32,
        hold_for: Duration,
        dead_after: Duration,
    ) -> Result<Option<SmtpSlot>, StoreError> {
        let (hold_for, dead_after) = (millis(hold_for), millis(dead_after));
        self.run("take an SMTP slot", move |mut client| async move {
            let tx = client.transaction().await?;
            let slot = fleet::take_smtp_slot(&tx, gateway, connections, hold_for, dead_after).await?;
            tx.commit().await?;
            Ok(slot)
        })
        .await
    }

    async fn give_back_smtp_slot(&self, slot: &SmtpSlot) -> Result<(), StoreError> {
        self.run("give back an SMTP slot", |client| async move {
            fleet::give_back_smtp_slot(&client, slot).await
        })
        .await
    }

    async fn smtp_slots_held(&self) -> Result<u64, StoreError> {
        self.read("count SMTP slots", |client| async move {
            fleet::smtp_slots_held(&client).await
        })
        .await
    }

    fn events(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }
}
