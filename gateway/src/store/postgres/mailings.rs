//! Mailings: one transaction stores the mailing and a message per recipient not on the
//! suppression list, the messages in one statement per thousand recipients.

use deadpool_postgres::GenericClient;

use super::messages::notify_queued;
use super::{execute, idempotency, optional_row, rows, Attempt};
use crate::store::stored::{new_id, system_time};
use crate::store::{
    mailing_subject, Channel, Enqueued, Idempotency, MailingCounts, MailingSummary, NewMailing,
};

/// Recipients inserted per statement: one round trip each, however large the mailing.
const RECIPIENTS_PER_STATEMENT: usize = 1000;

pub(super) async fn insert(
    db: &impl GenericClient,
    mailing: &NewMailing,
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
    let total = i64::try_from(mailing.recipients.len()).unwrap_or(i64::MAX);
    execute(
        db,
        "INSERT INTO mailings (id, payload, total, created_at) VALUES ($1, $2, $3, gateway_now())",
        &[&id, &mailing.shared.to_string(), &total],
    )
    .await?;
    let mut suppressed: i64 = 0;
    let mut recipients = mailing.recipients.iter();
    let mut addresses = (0..).map(|n| mailing.addresses.get(n));
    loop {
        let payloads: Vec<&str> = recipients.by_ref().take(RECIPIENTS_PER_STATEMENT).collect();
        if payloads.is_empty() {
            break;
        }
        let ids: Vec<String> = payloads.iter().map(|_| new_id()).collect();
        // A NULL address (none given) is never on the list.
        let addresses: Vec<Option<&str>> = addresses.by_ref().take(payloads.len()).collect();
        let inserted = execute(
            db,
            "INSERT INTO messages
                 (id, channel, status, payload, attempts, due_at, mailing_id, created_at, updated_at)
             SELECT recipient.id, 'email', 'queued', recipient.payload, 0, gateway_now(), $3,
                    gateway_now(), gateway_now()
             FROM unnest($1::text[], $2::text[], $4::text[])
                  WITH ORDINALITY AS recipient (id, payload, address, n)
             WHERE NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.address = recipient.address)
             ORDER BY recipient.n",
            &[&ids, &payloads, &id, &addresses],
        )
        .await?;
        suppressed += i64::try_from(payloads.len() as u64 - inserted).unwrap_or(0);
    }
    if suppressed > 0 {
        execute(
            db,
            "UPDATE mailings SET suppressed = $2 WHERE id = $1",
            &[&id, &suppressed],
        )
        .await?;
    }
    notify_queued(db, Channel::Email).await?;
    Ok(Enqueued { id, created: true })
}

pub(super) async fn counts(db: &impl GenericClient, id: &str) -> Attempt<Option<MailingCounts>> {
    let Some(found) =
        optional_row(db, "SELECT total, suppressed FROM mailings WHERE id = $1", &[&id]).await?
    else {
        return Ok(None);
    };
    let mut counts = MailingCounts::new(
        u64::try_from(found.get::<_, i64>(0)).unwrap_or(0),
        u64::try_from(found.get::<_, i64>(1)).unwrap_or(0),
    );
    for row in rows(
        db,
        "SELECT status, count(*) FROM messages WHERE mailing_id = $1 GROUP BY status",
        &[&id],
    )
    .await?
    {
        let status: String = row.get(0);
        counts.add(status.parse()?, u64::try_from(row.get::<_, i64>(1)).unwrap_or(0));
    }
    Ok(Some(counts))
}

/// The newest mailings with their counts.
pub(super) async fn recent(db: &impl GenericClient, limit: i64) -> Attempt<Vec<MailingSummary>> {
    let found = rows(
        db,
        "SELECT id, payload, created_at FROM mailings ORDER BY id DESC LIMIT $1",
        &[&limit],
    )
    .await?;
    let mut mailings = Vec::with_capacity(found.len());
    for row in found {
        let id: String = row.get(0);
        if let Some(counts) = counts(db, &id).await? {
            mailings.push(MailingSummary {
                subject: mailing_subject(row.get(1)),
                created_at: system_time(row.get(2)),
                id,
                counts,
            });
        }
    }
    Ok(mailings)
}
