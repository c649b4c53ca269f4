//! Idempotency keys: looked up before a message or mailing is created, recorded with it
//! in the same transaction, so that concurrent requests with one key create one thing.

use rusqlite::{params, Connection, OptionalExtension};

use super::convert::database;
use crate::store::{Idempotency, StoreError};

/// What the request with this key created before: its id, or `None` if the key is new.
/// A key first used on another endpoint or with another body is refused. A key stored
/// before bodies were digested matches on its endpoint alone.
pub(super) fn find(conn: &Connection, idempotency: &Idempotency) -> Result<Option<String>, StoreError> {
    let first: Option<(String, Option<String>, String)> = conn
        .prepare_cached("SELECT endpoint, body_digest, created_id FROM idempotency_keys WHERE key = ?1")
        .and_then(|mut select| {
            select
                .query_row([&idempotency.key], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })
        .map_err(database("look up an idempotency key"))?;
    match first {
        None => Ok(None),
        Some((endpoint, digest, id)) => idempotency.repeats(endpoint, digest.as_deref(), id).map(Some),
    }
}

/// Records that the request with this key created `created_id`.
pub(super) fn record(
    conn: &Connection,
    idempotency: &Idempotency,
    created_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (key, endpoint, body_digest, created_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            idempotency.key,
            idempotency.endpoint,
            idempotency.body_digest,
            created_id,
            now
        ])
    })
    .map(drop)
    .map_err(database("record an idempotency key"))
}
