//! Retention: one batch of old, finished rows deleted per transaction (see
//! [`crate::store::purge`]). Every query walks an index holding only rows it may
//! delete, oldest first, and stops at the batch's limit. Rows another gateway's purge is
//! deleting at the same moment are skipped, not waited for.

use deadpool_postgres::GenericClient;

use super::{execute, optional_row, Attempt};
use crate::store::{PurgeKind, Purged};

/// Deletes at most `limit` rows of `kind` older than `before` (unix milliseconds).
pub(super) async fn purge(
    db: &impl GenericClient,
    kind: PurgeKind,
    before: i64,
    limit: i64,
) -> Attempt<Purged> {
    let sql = match kind {
        PurgeKind::Messages => {
            "DELETE FROM messages WHERE id IN (
                 SELECT id FROM messages
                 WHERE mailing_id IS NULL AND status IN ('sent', 'failed', 'delivered', 'undelivered')
                   AND updated_at < $1
                 ORDER BY updated_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)"
        }
        PurgeKind::Inbound => {
            "DELETE FROM inbound WHERE id IN (
                 SELECT id FROM inbound
                 WHERE forward_status IN ('none', 'forwarded') AND received_at < $1
                 ORDER BY received_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)"
        }
        PurgeKind::HeldReports => {
            "DELETE FROM held_reports WHERE seq IN (
                 SELECT seq FROM held_reports WHERE received_at < $1 ORDER BY received_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)"
        }
        PurgeKind::IdempotencyKeys => {
            "DELETE FROM idempotency_keys WHERE key IN (
                 SELECT key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)"
        }
        PurgeKind::Mailings => return purge_mailing(db, before, limit).await,
    };
    let rows = execute(db, sql, &[&before, &limit]).await?;
    Ok(Purged {
        rows,
        mailing_messages: 0,
        more: i64::try_from(rows).unwrap_or(i64::MAX) >= limit,
    })
}

/// Deletes up to `limit` e-mails of the oldest finished mailing created before `before`,
/// and the mailing itself once none is left.
async fn purge_mailing(db: &impl GenericClient, before: i64, limit: i64) -> Attempt<Purged> {
    let mailing = optional_row(
        db,
        "SELECT id FROM mailings
         WHERE created_at < $1
           AND NOT EXISTS (SELECT 1 FROM messages
                           WHERE mailing_id = mailings.id AND status IN ('queued', 'sending'))
         ORDER BY created_at LIMIT 1
         FOR UPDATE SKIP LOCKED",
        &[&before],
    )
    .await?;
    let Some(mailing) = mailing else {
        return Ok(Purged::default());
    };
    let mailing: String = mailing.get(0);
    let mailing_messages = execute(
        db,
        "DELETE FROM messages WHERE id IN (
             SELECT id FROM messages WHERE mailing_id = $1 LIMIT $2)",
        &[&mailing, &limit],
    )
    .await?;
    if i64::try_from(mailing_messages).unwrap_or(i64::MAX) >= limit {
        return Ok(Purged {
            rows: 0,
            mailing_messages,
            more: true,
        });
    }
    execute(db, "DELETE FROM mailings WHERE id = $1", &[&mailing]).await?;
    Ok(Purged {
        rows: 1,
        mailing_messages,
        more: true,
    })
}
