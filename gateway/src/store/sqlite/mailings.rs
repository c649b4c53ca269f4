//! Mailings: one transaction stores the mailing and a message per recipient not on the
//! suppression list; counts are read from the index on (mailing, status).

use rusqlite::{params, Connection, OptionalExtension};

use super::convert::{database, new_id, system_time};
use super::idempotency;
use super::messages::INSERT_MESSAGE;
use crate::store::{
    mailing_subject, Channel, Enqueued, Idempotency, MailingCounts, MailingSummary, NewMailing, StoreError,
};

pub(super) fn insert_mailing(
    conn: &Connection,
    mailing: &NewMailing,
    idempotency: Option<&Idempotency>,
    now: i64,
) -> Result<Enqueued, StoreError> {
    let failed = database("create a mailing");
    if let Some(idempotency) = idempotency {
        if let Some(id) = idempotency::find(conn, idempotency)? {
            return Ok(Enqueued { id, created: false });
        }
    }
    let id = new_id();
    let total = i64::try_from(mailing.recipients.len()).unwrap_or(i64::MAX);
    conn.prepare_cached("INSERT INTO mailings (id, payload, total, created_at) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut insert| insert.execute(params![id, mailing.shared.to_string(), total, now]))
        .map_err(&failed)?;

    let mut insert = conn.prepare_cached(INSERT_MESSAGE).map_err(&failed)?;
    let mut listed = conn
        .prepare_cached("SELECT 1 FROM suppressions WHERE address = ?1")
        .map_err(&failed)?;
    let mut suppressed: i64 = 0;
    for (n, recipient) in mailing.recipients.iter().enumerate() {
        if let Some(address) = mailing.addresses.get(n) {
            if listed.exists([address]).map_err(&failed)? {
                suppressed += 1;
                continue;
            }
        }
        insert
            .execute(params![new_id(), Channel::Email.as_str(), recipient, now, id])
            .map_err(&failed)?;
    }
    if suppressed > 0 {
        conn.prepare_cached("UPDATE mailings SET suppressed = ?2 WHERE id = ?1")
            .and_then(|mut update| update.execute(params![id, suppressed]))
            .map_err(&failed)?;
    }
    if let Some(idempotency) = idempotency {
        idempotency::record(conn, idempotency, &id, now)?;
    }
    Ok(Enqueued { id, created: true })
}
pub(super) fn mailing_counts(conn: &Connection, id: &str) -> rusqlite::Result<Option<MailingCounts>> {
    let found: Option<(i64, i64)> = conn
        .prepare_cached("SELECT total, suppressed FROM mailings WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((total, suppressed)) = found else {
        return Ok(None);
    };
    let mut counts = MailingCounts::new(
        u64::try_from(total).unwrap_or(0),
        u64::try_from(suppressed).unwrap_or(0),
    );
    let mut select =
        conn.prepare_cached("SELECT status, count(*) FROM messages WHERE mailing_id = ?1 GROUP BY status")?;
    let mut rows = select.query([id])?;
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let status = status.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?;
        counts.add(status, u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0));
    }
    Ok(Some(counts))
}

/// The newest mailings with their counts (the mailings are few; each count reads the
/// index on (mailing, status)).
pub(super) fn recent(conn: &Connection, limit: i64) -> rusqlite::Result<Vec<MailingSummary>> {
    let mut select =
        conn.prepare_cached("SELECT id, payload, created_at FROM mailings ORDER BY id DESC LIMIT ?1")?;
    let found: Vec<(String, String, i64)> = select
        .query_map([limit], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut mailings = Vec::with_capacity(found.len());
    for (id, payload, created_at) in found {
        if let Some(counts) = mailing_counts(conn, &id)? {
            mailings.push(MailingSummary {
                subject: mailing_subject(&payload),
                created_at: system_time(created_at),
                id,
                counts,
            });
        }
    }
    Ok(mailings)
}
