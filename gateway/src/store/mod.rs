//! The durable message queue.
//!
//! Every message the gateway accepts is a row here before the API answers 202, and every
//! delivery worker takes its work from here. The [`Store`] trait is what the HTTP API and
//! the workers hold (as `Arc<dyn Store>`); [`SqliteStore`] is the embedded implementation,
//! and a PostgreSQL one can follow on the same schema (`schema.sql`).
//!
//! A message's life:
//!
//! ```text
//!  enqueue / create_mailing          lease              settle: Sent          delivery report
//!  ───────────────────────► queued ────────► sending ──────────────────► sent ─────────────────► delivered
//!                             ▲                │  │                                            └─► undelivered
//!                             │ settle: Retry, │  │ settle: Failed
//!                             │ GiveBack;      │  └────────────────► failed
//!                             └─release_leases─┘
//! ```
//!
//! - **Durability.** Every write returns only once it is committed and on disk. Writers are
//!   batched: many concurrent callers share one transaction and one fsync (group commit).
//! - **Leases.** A worker leases due messages for a while (`lease_for`); a lease that runs out
//!   (a crashed or hung worker) makes the message due again. Each lease has its own token,
//!   and an outcome applies only with the token of the lease in force ([`lease`]).
//! - **Idempotency.** An idempotency key stands for one request ([`idempotency`]): the
//!   same key with the same request returns the same id with `created: false` and stores
//!   nothing; with another request it is refused.
//! - **Delivery reports** find their message by its id or its provider id, and wait in the
//!   store when they overtake the send's outcome ([`report`]).
//! - **Retention.** Finished work is deleted in small batches once old enough ([`purge`]).
//! - **What this is not.** The store does not interpret payloads (JSON the API and the
//!   workers agree on), compute backoff, or decide when to purge.

pub mod console_sessions;
pub mod fleet;
pub mod idempotency;
pub mod lease;
pub mod migrate;
mod postgres;
pub mod purge;
pub mod quota;
pub mod report;
pub mod settings_versions;
mod sqlite;
mod stored;
pub mod suppression;
mod texts;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

pub use console_sessions::{ConsoleSession, ConsoleSessions, NewConsoleSession};
pub use fleet::{Fleet, FleetEvent};
pub use idempotency::Idempotency;
pub use lease::{settle_and_log, LeaseToken, Leased, Outcome, Settlement};
pub use postgres::PostgresStore;
pub use purge::{PurgeKind, Purged};
pub use quota::{QuotaWindow, SendQuota};
pub use report::{DeliveryReport, ReportOutcome};
pub use settings_versions::{NewSettingsVersion, SettingsVersion, SettingsVersions};
pub use sqlite::SqliteStore;
pub use suppression::{NewSuppression, Suppression, SuppressionReason, Suppressions};
pub use texts::Texts;

/// The queue as the API and the delivery workers see it.
///
/// Every method that changes state returns only after the change is durable. The
/// console's saved settings and its sessions are sides of their own
/// ([`SettingsVersions`], [`ConsoleSessions`]), and so are the suppression list
/// ([`Suppressions`]) and the sending quota ([`SendQuota`]).
#[async_trait::async_trait]
pub trait Store:
    SettingsVersions + ConsoleSessions + Suppressions + SendQuota + Send + Sync + 'static
{
    /// Stores one message, `queued` and due now.
    ///
    /// With an idempotency key already used for the same request, returns the id that
    /// request created with `created: false` and stores nothing; a key used for another
    /// request (endpoint or body) is [`StoreError::IdempotencyKeyReused`].
    async fn enqueue(
        &self,
        message: NewMessage,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError>;

    /// Stores a mailing and one `email` message per recipient, all in one transaction: either
    /// the whole mailing is queued or none of it. The returned id is the mailing's. An
    /// idempotency key is treated as in [`Store::enqueue`].
    ///
    /// A recipient whose address (in [`NewMailing::addresses`]) is on the suppression
    /// list when the mailing is stored gets no message; it is counted as `suppressed`.
    async fn create_mailing(
        &self,
        mailing: NewMailing,
        idempotency: Option<Idempotency>,
    ) -> Result<Enqueued, StoreError>;

    /// Leases up to `limit` due messages of `channel` for `lease_for`, oldest due first,
    /// each with a token of its own (see [`lease`]). `owner` names this gateway, so that
    /// [`Store::release_leases`] finds its leases when it stops.
    ///
    /// Due means `queued` with its due time passed, or `sending` under a lease that ran out.
    /// Each leased message becomes `sending` and counts one more attempt. No message is
    /// leased twice while a lease on it is still valid.
    async fn lease(
        &self,
        channel: Channel,
        limit: usize,
        owner: &str,
        lease_for: Duration,
    ) -> Result<Vec<Leased>, StoreError>;

    /// Ends leases with their outcomes, and says for each (in order) whether it applied:
    /// a settlement applies only while its token's lease still holds the message, so a
    /// stale one changes nothing and answers false.
    ///
    /// An SMS settled as sent takes, in the same transaction, the newest delivery report
    /// held for it (by its id or its provider id); the held reports are then deleted.
    ///
    /// Settlements are the one write that must not be lost once a message may have
    /// reached its provider: one that cannot be written now (a full disk, an I/O error) is
    /// kept and written again, ahead of any new lease, until it lands. The call returns
    /// once it has, or with [`StoreError::WriterStopped`] if the store is closed first.
    async fn settle(&self, settlements: Vec<Settlement>) -> Result<Vec<bool>, StoreError>;

    /// Gives back every message leased by `owner` (on a graceful shutdown): they become
    /// `queued` and due now, and the attempt they were counted for is uncounted, since it
    /// never happened. Returns how many were released.
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError>;

    /// The fleet this store is shared by, if several gateways can share it
    /// (PostgreSQL); `None` for a store only one gateway uses (SQLite).
    fn fleet(&self) -> Option<&dyn Fleet> {
        None
    }

    /// Whether the store can take writes now: what `GET /readyz` reports.
    fn health(&self) -> StoreHealth;

    /// Ends every lease now, keeping the attempts they counted (an SMS may have reached
    /// its provider before the holder died). For a store only one gateway uses, such as
    /// SQLite, called at start: every lease still held belongs to a process that is gone,
    /// and its messages are due at once instead of when the lease would run out.
    async fn expire_all_leases(&self) -> Result<u64, StoreError>;

    /// Records a provider's delivery report on its SMS, found by the report's message id
    /// if it names an SMS, else by its provider id (the most recent SMS sent under it).
    /// A report that finds no sent SMS (its message is still `sending`, or unknown) is
    /// held, to be applied when the send's outcome is recorded ([`report`]).
    ///
    /// A report for an undelivered message keeps `detail` as the message's error.
    async fn record_delivery_report(&self, report: DeliveryReport) -> Result<ReportOutcome, StoreError>;

    /// Deletes one batch of at most `limit` rows of `kind` that are finished and older than
    /// `older_than`, in one write ([`purge`]).
    async fn purge(
        &self,
        kind: PurgeKind,
        older_than: SystemTime,
        limit: usize,
    ) -> Result<Purged, StoreError>;

    /// The message with this id, if there is one.
    async fn get(&self, id: &str) -> Result<Option<MessageRecord>, StoreError>;

    /// How much work of `channel` is waiting to be leased now.
    async fn queue_depth(&self, channel: Channel) -> Result<QueueDepth, StoreError>;

    /// How the messages of a mailing stand, if the mailing exists.
    async fn mailing_counts(&self, id: &str) -> Result<Option<MailingCounts>, StoreError>;

    /// The newest mailings, newest first, at most `limit`, each with its counts.
    async fn recent_mailings(&self, limit: usize) -> Result<Vec<MailingSummary>, StoreError>;

    /// Stores an inbound SMS. The same `(module, provider_id)` again (a provider
    /// repeating its callback) returns the first one's id with `created: false`.
    async fn store_inbound(&self, inbound: NewInbound) -> Result<Enqueued, StoreError>;

    /// Inbound SMS, newest first: at most `limit`, older than the one with id `before`.
    async fn list_inbound(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> Result<Vec<InboundRecord>, StoreError>;

    /// Leases up to `limit` inbound SMS due for forwarding to their webhook.
    async fn lease_forwards(
        &self,
        limit: usize,
        lease_for: Duration,
    ) -> Result<Vec<InboundRecord>, StoreError>;

    /// Records that an inbound SMS reached its webhook.
    async fn forward_done(&self, id: &str) -> Result<(), StoreError>;

    /// Records a failed forward; it is due again at `due_at`. Forwards are never given
    /// up: an inbound SMS is never lost because a webhook was down.
    async fn forward_retry(&self, id: &str, due_at: SystemTime, error: &str) -> Result<(), StoreError>;
}

/// An inbound SMS to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    /// The module that parsed it.
    pub module: String,
    /// E.164 when it could be normalised.
    pub sender: String,
    pub recipient: String,
    pub text: String,
    pub provider_id: String,
    /// The webhook to forward it to, if one is configured.
    pub forward_url: Option<String>,
}

/// An inbound SMS as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InboundRecord {
    pub id: String,
    pub module: String,
    pub sender: String,
    pub recipient: String,
    pub text: String,
    pub provider_id: String,
    #[serde(skip)]
    pub received_at: SystemTime,
    /// `none`, `pending`, `forwarded` or `failed`.
    pub forward_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_url: Option<String>,
    pub forward_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_error: Option<String>,
}

/// Which kind of delivery worker a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sms" => Ok(Channel::Sms),
            "email" => Ok(Channel::Email),
            other => Err(StoreError::Corrupt(format!("unknown channel {other:?}"))),
        }
    }
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for its due time or for a worker.
    Queued,
    /// Leased by a worker that is delivering it.
    Sending,
    /// Accepted by the provider or the SMTP server.
    Sent,
    /// Failed for good; the message's error says why.
    Failed,
    /// The provider reported it reached the phone.
    Delivered,
    /// The provider reported it could not reach the phone.
    Undelivered,
}

impl Status {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Delivered => "delivered",
            Status::Undelivered => "undelivered",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(Status::Queued),
            "sending" => Ok(Status::Sending),
            "sent" => Ok(Status::Sent),
            "failed" => Ok(Status::Failed),
            "delivered" => Ok(Status::Delivered),
            "undelivered" => Ok(Status::Undelivered),
            other => Err(StoreError::Corrupt(format!("unknown message status {other:?}"))),
        }
    }
}

/// What a provider's delivery report says happened to a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Delivered,
    Undelivered,
}

impl From<DeliveryStatus> for Status {
    fn from(status: DeliveryStatus) -> Self {
        match status {
            DeliveryStatus::Delivered => Status::Delivered,
            DeliveryStatus::Undelivered => Status::Undelivered,
        }
    }
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Which workers deliver it.
    pub channel: Channel,
    /// What to send, as the API and the workers agree on; stored as JSON text.
    pub payload: serde_json::Value,
    /// The mailing it belongs to; `None` for a message posted on its own.
    pub mailing_id: Option<String>,
}

/// A bulk mailing to queue: one e-mail per recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMailing {
    /// What every e-mail of the mailing shares (sender, subject, bodies); stored once, with
    /// the mailing, and handed to workers as [`Leased::mailing_payload`].
    pub shared: serde_json::Value,
    /// One payload per recipient (its JSON text), each becoming the payload of one
    /// `email` message. Text, not `serde_json::Value`: a mailing of 200,000 recipients
    /// held as values takes several times the memory of their text.
    pub recipients: Texts,
    /// Each recipient's address as the suppression list keeps it, in the same order; a
    /// recipient listed there is skipped. Empty: no recipient is checked.
    pub addresses: Texts,
}

/// The answer to a request that creates something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The message's (or mailing's) id: a UUIDv7, so ids sort by creation time.
    pub id: String,
    /// False when the idempotency key had been used before and nothing new was stored.
    pub created: bool,
}

/// A message as stored, for the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: String,
    pub channel: Channel,
    pub status: Status,
    /// The payload, JSON text as it was queued.
    pub payload: String,
    /// Leases taken so far (attempts released on shutdown are not counted).
    pub attempts: u32,
    /// When the message is (or was) next due for a worker.
    pub due_at: SystemTime,
    /// The gateway holding the message while it is `sending`.
    pub lease_owner: Option<String>,
    /// When that worker's lease runs out.
    pub lease_expires_at: Option<SystemTime>,
    /// The provider's id for the message, once sent.
    pub provider_id: Option<String>,
    /// Why the last attempt failed, or why the message is failed or undelivered.
    pub error: Option<String>,
    pub mailing_id: Option<String>,
    pub created_at: SystemTime,
    /// When the message last changed; the API prints it as RFC 3339.
    pub updated_at: SystemTime,
}

/// The work waiting for one channel's workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages that a lease would pick now.
    pub due: u64,
    /// How long the oldest of them has been due; `None` when nothing is due.
    pub oldest_due_age: Option<Duration>,
}

/// How the messages of a mailing stand.
///
/// E-mail has no delivery reports, but should one ever mark a mailing's message delivered it
/// counts as `sent`, and undelivered as `failed`, so the counts always add up to `total`
/// (suppressed recipients included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MailingCounts {
    pub total: u64,
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    /// Recipients on the suppression list when the mailing was stored: never sent.
    pub suppressed: u64,
}

impl MailingCounts {
    /// A mailing of `total` recipients, `suppressed` of them skipped, none counted yet.
    pub fn new(total: u64, suppressed: u64) -> MailingCounts {
        MailingCounts {
            total,
            queued: 0,
            sending: 0,
            sent: 0,
            failed: 0,
            suppressed,
        }
    }

    /// Counts `count` more messages of `status`.
    pub fn add(&mut self, status: Status, count: u64) {
        let bucket = match status {
            Status::Queued => &mut self.queued,
            Status::Sending => &mut self.sending,
            Status::Sent | Status::Delivered => &mut self.sent,
            Status::Failed | Status::Undelivered => &mut self.failed,
        };
        *bucket += count;
    }
}

/// A mailing as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailingSummary {
    pub id: String,
    /// The shared part's subject, if it has one.
    pub subject: Option<String>,
    pub created_at: SystemTime,
    pub counts: MailingCounts,
}

/// The subject of a mailing's shared payload (JSON text), for a list of mailings.
pub(crate) fn mailing_subject(shared: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(shared)
        .ok()?
        .get("subject")?
        .as_str()
        .map(str::to_owned)
}

/// Whether the store can take writes, for readiness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StoreHealth {
    /// False since a write failed (a full disk, an I/O error), until one succeeds again.
    pub writable: bool,
    /// Outcomes of attempts made that wait to be written again.
    pub pending_settlements: usize,
}

/// What went wrong in the store.
///
/// Every message names the operation (and, when opening, the file), since these end up in
/// an operator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or prepared. `store` names it: the SQLite file's
    /// path, or the PostgreSQL URL without its password.
    #[error("cannot open the queue store {store}: {cause}")]
    Open { store: String, cause: String },
    /// The database holds a newer schema than this gateway knows.
    #[error(
        "the queue store {store} has schema version {found}, but this gateway knows only up to \
         {supported}: run a newer gateway"
    )]
    SchemaTooNew {
        store: String,
        found: i64,
        supported: i64,
    },
    /// A query or a commit failed.
    #[error("queue store: {operation} failed: {cause}")]
    Database { operation: &'static str, cause: String },
    /// The request itself cannot be stored (a caller's mistake).
    #[error("queue store: {0}")]
    Invalid(String),
    /// An idempotency key first used for another request: on `endpoint`, or there with
    /// another body.
    #[error(
        "the idempotency key was used for another request ({endpoint}{}); use a new key for a new request",
        if *same_endpoint { " with another body" } else { "" }
    )]
    IdempotencyKeyReused { endpoint: String, same_endpoint: bool },
    /// A settings version based on one that is no longer the latest: another admin
    /// saved in between.
    #[error(
        "the settings were changed by someone else (version {latest} is the latest, this change \
         was made on version {base}): load them again and redo the change"
    )]
    StaleSettingsVersion { base: u64, latest: u64 },
    /// A row holds something this gateway does not understand.
    #[error("queue store: unreadable row: {0}")]
    Corrupt(String),
    /// The store is shutting down, or its writer died; nothing more can be written.
    #[error("queue store: the writer has stopped")]
    WriterStopped,
}
