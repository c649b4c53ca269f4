//! Inbound SMS: stored once per provider id (a repeated callback, even to another
//! gateway, finds the first), listed newest first, and forwarded to their webhook under
//! a short lease of their own.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{execute, one_row, optional_row, rows, Attempt};
use crate::store::stored::{new_id, system_time};
use crate::store::{Enqueued, InboundRecord, NewInbound};

/// The columns of an inbound row, in the order [`inbound_record`] reads them.
macro_rules! inbound_columns {
    () => {
        "id, module, sender, recipient, text, provider_id, received_at, forward_status, \
         forward_url, forward_attempts, forward_error"
    };
}

fn inbound_record(row: &Row) -> InboundRecord {
    InboundRecord {
        id: row.get(0),
        module: row.get(1),
        sender: row.get(2),
        recipient: row.get(3),
        text: row.get(4),
        provider_id: row.get(5),
        received_at: system_time(row.get(6)),
        forward_status: row.get(7),
        forward_url: row.get(8),
        forward_attempts: u32::try_from(row.get::<_, i32>(9)).unwrap_or(0),
        forward_error: row.get(10),
    }
}

/// Stores an inbound SMS, or finds the one already stored under its provider id.
pub(super) async fn store(
    db: &impl GenericClient,
    inbound: &NewInbound,
) -> Result<Enqueued, tokio_postgres::Error> {
    let status = if inbound.forward_url.is_some() {
        "pending"
    } else {
        "none"
    };
    let inserted = optional_row(
        db,
        "INSERT INTO inbound (id, module, sender, recipient, text, provider_id, received_at,
                              forward_status, forward_url, forward_due_at)
         VALUES ($1, $2, $3, $4, $5, $6, gateway_now(), $7, $8, gateway_now())
         ON CONFLICT (module, provider_id) DO NOTHING
         RETURNING id",
        &[
            &new_id(),
            &inbound.module,
            &inbound.sender,
            &inbound.recipient,
            &inbound.text,
            &inbound.provider_id,
            &status,
            &inbound.forward_url,
        ],
    )
    .await?;
    if let Some(row) = inserted {
        return Ok(Enqueued {
            id: row.get(0),
            created: true,
        });
    }
    let first = one_row(
        db,
        "SELECT id FROM inbound WHERE module = $1 AND provider_id = $2",
        &[&inbound.module, &inbound.provider_id],
    )
    .await?;
    Ok(Enqueued {
        id: first.get(0),
        created: false,
    })
}

/// Inbound SMS, newest first: at most `limit`, older than the one with id `before`.
pub(super) async fn list(
    db: &impl GenericClient,
    limit: i64,
    before: Option<&str>,
) -> Attempt<Vec<InboundRecord>> {
    // Ids are UUIDv7: their order is the order of arrival.
    let found = rows(
        db,
        concat!(
            "SELECT ",
            inbound_columns!(),
            " FROM inbound WHERE $1::text IS NULL OR id < $1 ORDER BY id DESC LIMIT $2"
        ),
        &[&before, &limit],
    )
    .await?;
    Ok(found.iter().map(inbound_record).collect())
}

/// Leases up to `limit` inbound SMS due for forwarding, for `lease_for` milliseconds.
pub(super) async fn lease_forwards(
    db: &impl GenericClient,
    limit: i64,
    lease_for: i64,
) -> Attempt<Vec<InboundRecord>> {
    let leased = rows(
        db,
        concat!(
            "UPDATE inbound SET forward_lease_until = gateway_now() + $2,
                                forward_attempts = forward_attempts + 1
             WHERE id IN (SELECT id FROM inbound
                          WHERE forward_status = 'pending' AND forward_due_at <= gateway_now()
                            AND (forward_lease_until IS NULL OR forward_lease_until <= gateway_now())
                          ORDER BY forward_due_at LIMIT $1
                          FOR UPDATE SKIP LOCKED)
             RETURNING ",
            inbound_columns!()
        ),
        &[&limit, &lease_for],
    )
    .await?;
    let mut leased: Vec<InboundRecord> = leased.iter().map(inbound_record).collect();
    leased.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(leased)
}

/// Records that an inbound SMS reached its webhook.
pub(super) async fn forward_done(db: &impl GenericClient, id: &str) -> Result<(), tokio_postgres::Error> {
    execute(
        db,
        "UPDATE inbound SET forward_status = 'forwarded', forward_error = NULL, forward_lease_until = NULL
         WHERE id = $1",
        &[&id],
    )
    .await
    .map(drop)
}

/// Records a failed forward, due again at `due_at`.
pub(super) async fn forward_retry(
    db: &impl GenericClient,
    id: &str,
    due_at: i64,
    error: &str,
) -> Result<(), tokio_postgres::Error> {
    execute(
        db,
        "UPDATE inbound SET forward_due_at = $2, forward_error = $3, forward_lease_until = NULL
         WHERE id = $1 AND forward_status = 'pending'",
        &[&id, &due_at, &error],
    )
    .await
    .map(drop)
}
