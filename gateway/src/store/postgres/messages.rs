//! Messages: enqueueing, leasing and settling leases, shared by every gateway of a
//! fleet. Each function runs in the caller's transaction (or on a connection, for reads).

use std::{collections::HashMap, sync::Arc};

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{execute, idempotency, optional_row, reports, rows, Attempt};
use crate::store::stored::{millis_duration, new_id, system_time, unix_millis};
use crate::store::{
    Channel, Enqueued, Idempotency, LeaseToken, Leased, MessageRecord, Outcome, QueueDepth, Settlement,
    StoreError,
};

/// The channel PostgreSQL notifies when work becomes due now: its payload is the
/// message's channel (`sms` or `email`), so idle workers across the fleet wake up.
pub(super) const QUEUED_NOTIFICATION: &str = "gateway_queued";

pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages
     (id, channel, status, payload, attempts, due_at, mailing_id, created_at, updated_at)
     VALUES ($1, $2, 'queued', $3, 0, gateway_now(), $4, gateway_now(), gateway_now())";

/// Tells idle workers of every gateway, once the transaction commits, that `channel`
/// has work due now.
pub(super) async fn notify_queued(db: &impl GenericClient, channel: Channel) -> Attempt<()> {
    execute(
        db,
        "SELECT pg_notify($1, $2)",
        &[&QUEUED_NOTIFICATION, &channel.as_str()],
    )
    .await?;
    Ok(())
}

/// Stores a message of its own without an idempotency key: one statement, which
/// PostgreSQL commits alone, notifying idle workers in the same breath.
pub(super) async fn insert_alone(
    db: &impl GenericClient,
    channel: Channel,
    payload: &str,
) -> Attempt<Enqueued> {
    let id = new_id();
    execute(
        db,
        "WITH queued AS (
             INSERT INTO messages
                 (id, channel, status, payload, attempts, due_at, mailing_id, created_at, updated_at)
             VALUES ($1, $2, 'queued', $3, 0, gateway_now(), NULL, gateway_now(), gateway_now())
             RETURNING channel)
         SELECT pg_notify($4, channel) FROM queued",
        &[&id, &channel.as_str(), &payload, &QUEUED_NOTIFICATION],
    )
    .await?;
    Ok(Enqueued { id, created: true })
}

pub(super) async fn insert(
    db: &impl GenericClient,
    channel: Channel,
    payload: &str,
    mailing_id: Option<&str>,
    idempotency: Option<&Idempotency>,
) -> Attempt<Enqueued> {
    let id = new_id();
    if let Some(idempotency) = idempotency {
        if let Some(first) = idempotency::claim(db, idempotency, &id).await? {
            return Ok(Enqueued {
                id: first,
                created: false,
            });
        }
    }
    if let Some(mailing_id) = mailing_id {
        if optional_row(db, "SELECT 1 FROM mailings WHERE id = $1", &[&mailing_id])
            .await?
            .is_none()
        {
            return Err(StoreError::Invalid(format!("there is no mailing {mailing_id}")).into());
        }
    }
    execute(
        db,
        INSERT_MESSAGE,
        &[&id, &channel.as_str(), &payload, &mailing_id],
    )
    .await?;
    notify_queued(db, channel).await?;
    Ok(Enqueued { id, created: true })
}

pub(super) async fn lease(
    db: &impl GenericClient,
    channel: Channel,
    limit: i64,
    owner: &str,
    lease_for: i64,
) -> Attempt<Vec<Leased>> {
    // Each half walks its own partial index in order, stops at `limit`, and skips rows
    // another gateway is leasing or settling this instant, so leasers never wait on each
    // other. A row whose lease another gateway just took no longer matches once locked.
    let taken = rows(
        db,
        "WITH queued AS (
             SELECT id, due_at FROM messages
             WHERE channel = $1 AND status = 'queued' AND due_at <= gateway_now()
             ORDER BY due_at LIMIT $2
             FOR UPDATE SKIP LOCKED
         ), expired AS (
             SELECT id, due_at FROM messages
             WHERE channel = $1 AND status = 'sending' AND lease_expires_at <= gateway_now()
             ORDER BY due_at LIMIT $2
             FOR UPDATE SKIP LOCKED
         ), picked AS (
             SELECT id FROM (SELECT * FROM queued UNION ALL SELECT * FROM expired) AS due
             ORDER BY due_at, id LIMIT $2
         )
         UPDATE messages
         SET status = 'sending', lease_owner = $3,
             lease_token = replace(gen_random_uuid()::text, '-', ''),
             lease_expires_at = gateway_now() + $4, attempts = attempts + 1, updated_at = gateway_now()
         FROM picked WHERE messages.id = picked.id
         RETURNING messages.id, messages.lease_token, messages.payload, messages.attempts,
                   messages.mailing_id, messages.due_at",
        &[&channel.as_str(), &limit, &owner, &lease_for],
    )
    .await?;

    let mailing_ids: Vec<String> = {
        let mut ids: Vec<String> = taken.iter().filter_map(|row| row.get(4)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut shared: HashMap<String, Arc<str>> = HashMap::new();
    if !mailing_ids.is_empty() {
        for row in rows(
            db,
            "SELECT id, payload FROM mailings WHERE id = ANY($1)",
            &[&mailing_ids],
        )
        .await?
        {
            shared.insert(row.get(0), row.get::<_, String>(1).into());
        }
    }

    let mut leased: Vec<(i64, Leased)> = taken
        .into_iter()
        .map(|row| {
            let mailing_id: Option<String> = row.get(4);
            let mailing_payload = mailing_id.as_ref().and_then(|id| shared.get(id).cloned());
            let leased = Leased {
                id: row.get(0),
                token: LeaseToken::from_stored(row.get(1)),
                payload: row.get(2),
                attempts: u32::try_from(row.get::<_, i32>(3)).unwrap_or(0),
                mailing_id,
                mailing_payload,
            };
            (row.get::<_, i64>(5), leased)
        })
        .collect();
    // UPDATE … RETURNING keeps no order: hand them out oldest due first, as SQLite does.
    leased.sort_by(|(a_due, a), (b_due, b)| a_due.cmp(b_due).then_with(|| a.id.cmp(&b.id)));
    Ok(leased.into_iter().map(|(_, leased)| leased).collect())
}

/// Applies one settlement on its own, in one statement (PostgreSQL commits it alone),
/// when it needs nothing else in its transaction: any outcome but an SMS sent, which
/// must take its held report with it. `None` when it must go through [`settle`] in a
/// transaction instead (an SMS sent, or a stale lease of an e-mail sent, which settles
/// nothing either way).
pub(super) async fn settle_alone(db: &impl GenericClient, settlement: &Settlement) -> Attempt<Option<bool>> {
    let Settlement { id, token, outcome } = settlement;
    match outcome {
        Outcome::Sent { provider_id } => {
            let sent = execute(
                db,
                "UPDATE messages
                 SET status = 'sent', provider_id = $3, error = NULL,
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                     updated_at = gateway_now()
                 WHERE id = $1 AND status = 'sending' AND lease_token = $2 AND channel = 'email'",
                &[id, &token.as_str(), provider_id],
            )
            .await?;
            Ok((sent == 1).then_some(true))
        }
        Outcome::Retry { .. } | Outcome::Failed { .. } | Outcome::GiveBack { .. } => {
            Ok(Some(settle(db, settlement).await?))
        }
    }
}

/// Applies one settlement if its lease is still the one in force; true if it applied.
pub(super) async fn settle(db: &impl GenericClient, settlement: &Settlement) -> Attempt<bool> {
    // Every outcome is guarded the same way: the message is still `sending` under this
    // very lease. A lease that ran out and was taken again has another token.
    let Settlement { id, token, outcome } = settlement;
    let token = token.as_str();
    let changed = match outcome {
        Outcome::Sent { provider_id } => {
            let sent = optional_row(
                db,
                "UPDATE messages
                 SET status = 'sent', provider_id = $3, error = NULL,
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                     updated_at = gateway_now()
                 WHERE id = $1 AND status = 'sending' AND lease_token = $2
                 RETURNING channel",
                &[id, &token, provider_id],
            )
            .await?;
            let channel: Option<String> = sent.map(|row| row.get(0));
            // A report that overtook this outcome waits in the hold: apply it now, in
            // this transaction, so the message is never seen `sent` once it is reported.
            if channel.as_deref() == Some(Channel::Sms.as_str()) {
                reports::apply_held(db, id, provider_id.as_deref()).await?;
            }
            u64::from(channel.is_some())
        }
        Outcome::Retry { due_at, error } => {
            execute(
                db,
                "UPDATE messages
                 SET status = 'queued', due_at = $3, error = $4,
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                     updated_at = gateway_now()
                 WHERE id = $1 AND status = 'sending' AND lease_token = $2",
                &[id, &token, &unix_millis(*due_at), error],
            )
            .await?
        }
        Outcome::Failed { error } => {
            execute(
                db,
                "UPDATE messages
                 SET status = 'failed', error = $3,
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                     updated_at = gateway_now()
                 WHERE id = $1 AND status = 'sending' AND lease_token = $2",
                &[id, &token, error],
            )
            .await?
        }
        Outcome::GiveBack { due_at } => {
            let given_back = optional_row(
                db,
                "UPDATE messages
                 SET status = 'queued', due_at = $3, attempts = greatest(attempts - 1, 0),
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                     updated_at = gateway_now()
                 WHERE id = $1 AND status = 'sending' AND lease_token = $2
                 RETURNING channel",
                &[id, &token, &unix_millis(*due_at)],
            )
            .await?;
            match given_back {
                Some(row) => {
                    let channel: String = row.get(0);
                    notify_queued(db, channel.parse()?).await?;
                    1
                }
                None => 0,
            }
        }
    };
    Ok(changed == 1)
}

/// Gives back every message `owner` holds: queued, due now, the attempt uncounted.
pub(super) async fn release(db: &impl GenericClient, owner: &str) -> Attempt<u64> {
    let released = execute(
        db,
        "UPDATE messages
         SET status = 'queued', due_at = gateway_now(), attempts = greatest(attempts - 1, 0),
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = gateway_now()
         WHERE status = 'sending' AND lease_owner = $1",
        &[&owner],
    )
    .await?;
    if released > 0 {
        notify_queued(db, Channel::Sms).await?;
        notify_queued(db, Channel::Email).await?;
    }
    Ok(released)
}

/// Ends every lease now, keeping the attempts counted.
pub(super) async fn expire_all_leases(db: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
    execute(
        db,
        "UPDATE messages SET lease_expires_at = gateway_now(), updated_at = gateway_now()
         WHERE status = 'sending' AND lease_expires_at > gateway_now()",
        &[],
    )
    .await
}

/// What a lease would pick now, and how long the oldest of it has waited.
pub(super) async fn queue_depth(
    db: &impl GenericClient,
    channel: Channel,
) -> Result<QueueDepth, tokio_postgres::Error> {
    let row = super::one_row(
        db,
        "SELECT count(*), gateway_now() - min(due_at) FROM (
             SELECT due_at FROM messages
             WHERE channel = $1 AND status = 'queued' AND due_at <= gateway_now()
             UNION ALL
             SELECT due_at FROM messages
             WHERE channel = $1 AND status = 'sending' AND lease_expires_at <= gateway_now()
         ) AS due",
        &[&channel.as_str()],
    )
    .await?;
    Ok(QueueDepth {
        due: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        oldest_due_age: row.get::<_, Option<i64>>(1).map(millis_duration),
    })
}

/// The message with this id.
pub(super) async fn get(db: &impl GenericClient, id: &str) -> Attempt<Option<MessageRecord>> {
    let row = optional_row(
        db,
        "SELECT id, channel, status, payload, attempts, due_at, lease_owner, lease_expires_at,
                provider_id, error, mailing_id, created_at, updated_at
         FROM messages WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(row.map(|row| message_record(&row)).transpose()?)
}

fn message_record(row: &Row) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        id: row.get(0),
        channel: row.get::<_, String>(1).parse()?,
        status: row.get::<_, String>(2).parse()?,
        payload: row.get(3),
        attempts: u32::try_from(row.get::<_, i32>(4)).unwrap_or(0),
        due_at: system_time(row.get(5)),
        lease_owner: row.get(6),
        lease_expires_at: row.get::<_, Option<i64>>(7).map(system_time),
        provider_id: row.get(8),
        error: row.get(9),
        mailing_id: row.get(10),
        created_at: system_time(row.get(11)),
        updated_at: system_time(row.get(12)),
    })
}
