//! Inbound SMS: stored once per provider id, listed newest first, and forwarded to their
//! webhook under a short lease of their own.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::convert::{database, new_id, system_time};
use crate::store::{Enqueued, InboundRecord, NewInbound, StoreError};

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

/// Stores an inbound SMS, or finds the one already stored under its provider id.
pub(super) fn store(conn: &Connection, inbound: &NewInbound, now: i64) -> Result<Enqueued, StoreError> {
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
}

/// Inbound SMS, newest first: at most `limit`, older than the one with id `before`.
pub(super) fn list(
    conn: &Connection,
    limit: i64,
    before: Option<&str>,
) -> Result<Vec<InboundRecord>, StoreError> {
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
}

/// Leases up to `limit` inbound SMS due for forwarding, for `lease_for` milliseconds.
pub(super) fn lease_forwards(
    conn: &Connection,
    limit: i64,
    lease_for: i64,
    now: i64,
) -> Result<Vec<InboundRecord>, StoreError> {
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
}

/// Records that an inbound SMS reached its webhook.
pub(super) fn forward_done(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE inbound SET forward_status = 'forwarded', forward_error = NULL, forward_lease_until = NULL
         WHERE id = ?1",
    )
    .and_then(|mut update| update.execute([id]))
    .map(drop)
    .map_err(database("record a forward"))
}

/// Records a failed forward, due again at `due_at`.
pub(super) fn forward_retry(conn: &Connection, id: &str, due_at: i64, error: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE inbound SET forward_due_at = ?2, forward_error = ?3, forward_lease_until = NULL
         WHERE id = ?1 AND forward_status = 'pending'",
    )
    .and_then(|mut update| update.execute(params![id, due_at, error]))
    .map(drop)
    .map_err(database("record a failed forward"))
}
