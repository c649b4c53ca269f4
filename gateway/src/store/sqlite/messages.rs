//! Messages: enqueueing, leasing and settling leases; each function runs inside the
//! writer's transaction (or on a read connection, for reads).

use std::{collections::HashMap, sync::Arc};

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::convert::{database, millis_duration, new_id, system_time, unix_millis};
use super::{idempotency, reports};
use crate::store::{
    Channel, Enqueued, Idempotency, LeaseToken, Leased, MessageRecord, Outcome, QueueDepth, Settlement,
    StoreError,
};

/// A message as the writer inserts it: the payload already JSON text.
pub(super) struct MessageRow {
    pub channel: Channel,
    pub payload: String,
    pub mailing_id: Option<String>,
}

pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages
     (id, channel, status, payload, attempts, due_at, mailing_id, created_at, updated_at)
     VALUES (?1, ?2, 'queued', ?3, 0, ?4, ?5, ?4, ?4)";

pub(super) fn insert_message(
    conn: &Connection,
    message: &MessageRow,
    idempotency: Option<&Idempotency>,
    now: i64,
) -> Result<Enqueued, StoreError> {
    let failed = database("enqueue a message");
    if let Some(idempotency) = idempotency {
        if let Some(id) = idempotency::find(conn, idempotency)? {
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
            ])
        })
        .map_err(&failed)?;
    if let Some(idempotency) = idempotency {
        idempotency::record(conn, idempotency, &id, now)?;
    }
    Ok(Enqueued { id, created: true })
}
pub(super) fn lease(
    conn: &Connection,
    channel: Channel,
    limit: usize,
    owner: &str,
    lease_for: i64,
    now: i64,
) -> Result<Vec<Leased>, StoreError> {
    let failed = database("lease messages");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // One statement takes the whole batch. Each half of the choice walks its own
    // partial index in order and stops at `limit`, so a lease costs the same with ten
    // messages queued or ten million; every row gets a token of its own, 128 random bits.
    let mut taken: Vec<(i64, Leased)> = conn
        .prepare_cached(
            "UPDATE messages
             SET status = 'sending', lease_owner = ?4, lease_token = lower(hex(randomblob(16))),
                 lease_expires_at = ?5, attempts = attempts + 1, updated_at = ?2
             WHERE id IN (
                 SELECT id FROM (
                     SELECT * FROM (
                         SELECT id, due_at FROM messages
                         WHERE channel = ?1 AND status = 'queued' AND due_at <= ?2
                         ORDER BY due_at LIMIT ?3)
                     UNION ALL
                     SELECT * FROM (
                         SELECT id, due_at FROM messages
                         WHERE channel = ?1 AND status = 'sending' AND lease_expires_at <= ?2
                         ORDER BY due_at LIMIT ?3))
                 ORDER BY due_at, id LIMIT ?3)
             RETURNING due_at, id, lease_token, payload, attempts, mailing_id",
        )
        .and_then(|mut take| {
            let expires = now.saturating_add(lease_for);
            take.query_map(params![channel.as_str(), now, limit, owner, expires], |row| {
                Ok((
                    row.get(0)?,
                    Leased {
                        id: row.get(1)?,
                        token: LeaseToken::from_stored(row.get(2)?),
                        payload: row.get(3)?,
                        attempts: u32::try_from(row.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                        mailing_id: row.get(5)?,
                        mailing_payload: None,
                    },
                ))
            })?
            .collect()
        })
        .map_err(&failed)?;
    // RETURNING gives the rows in no promised order: the oldest due go first.
    taken.sort_unstable_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.id.cmp(&y.id)));

    let mut shared = conn
        .prepare_cached("SELECT payload FROM mailings WHERE id = ?1")
        .map_err(&failed)?;
    let mut mailing_payloads: HashMap<String, Arc<str>> = HashMap::new();
    let mut leased = Vec::with_capacity(taken.len());
    for (_, mut message) in taken {
        if let Some(mailing) = &message.mailing_id {
            let payload = match mailing_payloads.get(mailing) {
                Some(payload) => payload.clone(),
                None => {
                    let payload: Arc<str> = shared
                        .query_row([mailing], |row| row.get::<_, String>(0))
                        .map_err(&failed)?
                        .into();
                    mailing_payloads.insert(mailing.clone(), payload.clone());
                    payload
                }
            };
            message.mailing_payload = Some(payload);
        }
        leased.push(message);
    }
    Ok(leased)
}
/// Applies settlements whose leases are still the ones in force; true for each that
/// applied.
pub(super) fn settle_all(
    conn: &Connection,
    settlements: &[Settlement],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    // Reports that overtook their outcomes are rare: when none waits, a sent SMS need not
    // look for one.
    let any_held = reports::any_held(conn)?;
    settlements
        .iter()
        .map(|settlement| settle(conn, settlement, any_held, now))
        .collect()
}

/// Applies one settlement if its lease is still the one in force; true if it applied.
/// `any_held`: whether any delivery report waits in the hold.
fn settle(conn: &Connection, settlement: &Settlement, any_held: bool, now: i64) -> Result<bool, StoreError> {
    // Every outcome is guarded the same way: the message is still `sending` under this
    // very lease. A lease that ran out and was taken again has another token.
    let Settlement { id, token, outcome } = settlement;
    let token = token.as_str();
    let changed = match outcome {
        Outcome::Sent { provider_id } => {
            // No RETURNING: SQLite builds a temporary table for it on every run.
            let sent = conn
                .prepare_cached(
                    "UPDATE messages
                     SET status = 'sent', provider_id = ?3, error = NULL,
                         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?4
                     WHERE id = ?1 AND status = 'sending' AND lease_token = ?2",
                )
                .and_then(|mut update| update.execute(params![id, token, provider_id, now]))
                .map_err(database("record a delivery attempt"))?;
            // A report that overtook this outcome waits in the hold: apply it now, in
            // this transaction, so the message is never seen `sent` once it is reported.
            if sent == 1 && any_held && channel_of(conn, id)? == Some(Channel::Sms) {
                reports::apply_held(conn, id, provider_id.as_deref(), now)?;
            }
            Ok(sent)
        }
        Outcome::Retry { due_at, error } => conn
            .prepare_cached(
                "UPDATE messages
                 SET status = 'queued', due_at = ?3, error = ?4,
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?5
                 WHERE id = ?1 AND status = 'sending' AND lease_token = ?2",
            )
            .and_then(|mut update| update.execute(params![id, token, unix_millis(*due_at), error, now])),
        Outcome::Failed { error } => conn
            .prepare_cached(
                "UPDATE messages
                 SET status = 'failed', error = ?3,
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?4
                 WHERE id = ?1 AND status = 'sending' AND lease_token = ?2",
            )
            .and_then(|mut update| update.execute(params![id, token, error, now])),
        Outcome::GiveBack { due_at } => conn
            .prepare_cached(
                "UPDATE messages
                 SET status = 'queued', due_at = ?3, attempts = max(attempts - 1, 0),
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?4
                 WHERE id = ?1 AND status = 'sending' AND lease_token = ?2",
            )
            .and_then(|mut update| update.execute(params![id, token, unix_millis(*due_at), now])),
    };
    Ok(changed.map_err(database("record a delivery attempt"))? == 1)
}

/// The channel of message `id`, if it exists.
fn channel_of(conn: &Connection, id: &str) -> Result<Option<Channel>, StoreError> {
    let channel: Option<String> = conn
        .prepare_cached("SELECT channel FROM messages WHERE id = ?1")
        .and_then(|mut select| select.query_row([id], |row| row.get(0)).optional())
        .map_err(database("read a message's channel"))?;
    channel.map(|channel| channel.parse()).transpose()
}

pub(super) fn release(conn: &Connection, owner: &str, now: i64) -> Result<u64, StoreError> {
    // `channel IN (...)` lets the lease-expiry index (only leased rows) serve the search.
    let released = conn
        .prepare_cached(
            "UPDATE messages
             SET status = 'queued', due_at = ?2, attempts = max(attempts - 1, 0),
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?2
             WHERE channel IN ('sms', 'email') AND status = 'sending' AND lease_owner = ?1",
        )
        .and_then(|mut update| update.execute(params![owner, now]))
        .map_err(database("release leases"))?;
    Ok(u64::try_from(released).unwrap_or(u64::MAX))
}

pub(super) fn expire_all_leases(conn: &Connection, now: i64) -> Result<u64, StoreError> {
    let expired = conn
        .prepare_cached(
            "UPDATE messages SET lease_expires_at = ?1, updated_at = ?1
             WHERE channel IN ('sms', 'email') AND status = 'sending' AND lease_expires_at > ?1",
        )
        .and_then(|mut update| update.execute(params![now]))
        .map_err(database("expire leases"))?;
    Ok(u64::try_from(expired).unwrap_or(u64::MAX))
}

/// What a lease would pick now, and how long the oldest of it has waited.
pub(super) fn queue_depth(conn: &Connection, channel: Channel, now: i64) -> Result<QueueDepth, StoreError> {
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
}

/// The message with this id.
pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<MessageRecord>, StoreError> {
    conn.prepare_cached(
        "SELECT id, channel, status, payload, attempts, due_at, lease_owner, lease_expires_at,
                provider_id, error, mailing_id, created_at, updated_at
         FROM messages WHERE id = ?1",
    )
    .and_then(|mut select| select.query_row([id], message_record).optional())
    .map_err(database("read a message"))
}

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
