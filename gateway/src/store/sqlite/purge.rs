//! Retention: one batch of old, finished rows deleted per write (see
//! [`crate::store::purge`]). Every query walks an index holding only rows it may
//! delete, oldest first, and stops at the batch's limit.

use rusqlite::{params, Connection, OptionalExtension};

use super::convert::database;
use crate::store::{PurgeKind, Purged, StoreError};

/// Deletes at most `limit` rows of `kind` older than `before` (unix milliseconds).
pub(super) fn purge(
    conn: &Connection,
    kind: PurgeKind,
    before: i64,
    limit: i64,
) -> Result<Purged, StoreError> {
    let failed = database("purge old rows");
    let delete = |sql: &str| -> Result<Purged, StoreError> {
        let rows = conn
            .prepare_cached(sql)
            .and_then(|mut delete| delete.execute(params![before, limit]))
            .map_err(&failed)?;
        let rows = u64::try_from(rows).unwrap_or(u64::MAX);
        Ok(Purged {
            rows,
            mailing_messages: 0,
            more: i64::try_from(rows).unwrap_or(i64::MAX) >= limit,
        })
    };
    match kind {
        PurgeKind::Messages => delete(
            "DELETE FROM messages WHERE id IN (
                 SELECT id FROM messages
                 WHERE mailing_id IS NULL AND status IN ('sent', 'failed', 'delivered', 'undelivered')
                   AND updated_at < ?1
                 ORDER BY updated_at LIMIT ?2)",
        ),
        PurgeKind::Inbound => delete(
            "DELETE FROM inbound WHERE id IN (
                 SELECT id FROM inbound
                 WHERE forward_status IN ('none', 'forwarded') AND received_at < ?1
                 ORDER BY received_at LIMIT ?2)",
        ),
        PurgeKind::HeldReports => delete(
            "DELETE FROM held_reports WHERE seq IN (
                 SELECT seq FROM held_reports WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)",
        ),
        PurgeKind::IdempotencyKeys => delete(
            "DELETE FROM idempotency_keys WHERE key IN (
                 SELECT key FROM idempotency_keys WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        ),
        PurgeKind::Mailings => purge_mailing(conn, before, limit),
    }
}

/// Deletes up to `limit` e-mails of the oldest finished mailing created before `before`,
/// and the mailing itself once none is left. A mailing of a million e-mails thus goes
/// in many writes; while it goes, its counts shrink, and then it is gone.
fn purge_mailing(conn: &Connection, before: i64, limit: i64) -> Result<Purged, StoreError> {
    let failed = database("purge an old mailing");
    let mailing: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM mailings
             WHERE created_at < ?1
               AND NOT EXISTS (SELECT 1 FROM messages
                               WHERE mailing_id = mailings.id AND status IN ('queued', 'sending'))
             ORDER BY created_at LIMIT 1",
        )
        .and_then(|mut select| select.query_row([before], |row| row.get(0)).optional())
        .map_err(&failed)?;
    let Some(mailing) = mailing else {
        return Ok(Purged::default());
    };
    let messages = conn
        .prepare_cached(
            "DELETE FROM messages WHERE id IN (
                 SELECT id FROM messages WHERE mailing_id = ?1 LIMIT ?2)",
        )
        .and_then(|mut delete| delete.execute(params![mailing, limit]))
        .map_err(&failed)?;
    let mailing_messages = u64::try_from(messages).unwrap_or(u64::MAX);
    if i64::try_from(messages).unwrap_or(i64::MAX) >= limit {
        return Ok(Purged {
            rows: 0,
            mailing_messages,
            more: true,
        });
    }
    conn.prepare_cached("DELETE FROM mailings WHERE id = ?1")
        .and_then(|mut delete| delete.execute([&mailing]))
        .map_err(&failed)?;
    Ok(Purged {
        rows: 1,
        mailing_messages,
        more: true,
    })
}
