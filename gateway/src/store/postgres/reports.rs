//! Delivery reports: matched to their SMS by message id or provider id, held when they
//! overtake the send's outcome, and applied from the hold when that outcome is recorded
//! (see [`crate::store::report`]).
//!
//! In a fleet the report and the outcome it waits for may be written at the same
//! instant by two gateways. Both take transaction-scoped advisory locks on the message
//! id and the provider id, in that order, before they look: the one that locks second
//! sees what the first committed, so a report is never held just after the outcome that
//! would have claimed it looked for it.

use deadpool_postgres::GenericClient;

use super::{execute, optional_row, Attempt};
use crate::store::{DeliveryReport, DeliveryStatus, ReportOutcome, Status, StoreError};

/// Takes the advisory locks that order reports and send outcomes for one message.
async fn lock(db: &impl GenericClient, message_id: Option<&str>, provider_id: Option<&str>) -> Attempt<()> {
    let keys = [
        message_id.map(|id| format!("report-message:{id}")),
        provider_id.map(|id| format!("report-provider:{id}")),
    ];
    for key in keys.iter().flatten() {
        execute(
            db,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[key],
        )
        .await?;
    }
    Ok(())
}

/// Applies `report` to its SMS, or holds it if there is none that can take it yet.
pub(super) async fn record(db: &impl GenericClient, report: &DeliveryReport) -> Attempt<ReportOutcome> {
    lock(db, report.message_id.as_deref(), report.provider_id.as_deref()).await?;
    // The message id decides when it names an SMS; one that names none (a provider's
    // reference of another kind, or a purged message) is no use later either.
    let by_message_id: Option<(String, String)> = match &report.message_id {
        Some(id) => optional_row(
            db,
            "SELECT id, status FROM messages WHERE id = $1 AND channel = 'sms'",
            &[id],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))),
        None => None,
    };
    let target = match (&by_message_id, &report.provider_id) {
        (Some(found), _) => Some(found.clone()),
        // Providers may reuse ids over time (or two modules may share one): the report is
        // for the most recent SMS sent under that id.
        (None, Some(provider_id)) => optional_row(
            db,
            "SELECT id, status FROM messages
             WHERE provider_id = $1 AND channel = 'sms' AND status IN ('sent', 'delivered', 'undelivered')
             ORDER BY created_at DESC LIMIT 1",
            &[provider_id],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))),
        (None, None) => None,
    };
    if let Some((id, status)) = target {
        if status.parse::<Status>()?.takes_reports() {
            apply(db, &id, report.status, report.detail.as_deref()).await?;
            return Ok(ReportOutcome::Applied { message_id: id });
        }
    }
    let message_id = by_message_id.map(|(id, _)| id);
    if message_id.is_none() && report.provider_id.is_none() {
        return Err(
            StoreError::Invalid("a delivery report needs a provider id or a message id".into()).into(),
        );
    }
    execute(
        db,
        "INSERT INTO held_reports (module, provider_id, message_id, status, detail, received_at)
         VALUES ($1, $2, $3, $4, $5, gateway_now())",
        &[
            &report.module,
            &report.provider_id,
            &message_id,
            &Status::from(report.status).as_str(),
            &report.detail,
        ],
    )
    .await?;
    Ok(ReportOutcome::Held)
}

/// Applies the newest report held for the SMS `id` just recorded as sent under
/// `provider_id`, and deletes every report held for it. True if one applied.
pub(super) async fn apply_held(
    db: &impl GenericClient,
    id: &str,
    provider_id: Option<&str>,
) -> Attempt<bool> {
    lock(db, Some(id), provider_id).await?;
    // A held report with a message id is for that message alone; one without is for
    // whichever SMS its provider id turns out to belong to.
    let newest = optional_row(
        db,
        "SELECT status, detail FROM held_reports
         WHERE message_id = $1 OR (message_id IS NULL AND provider_id = $2)
         ORDER BY seq DESC LIMIT 1",
        &[&id, &provider_id],
    )
    .await?;
    let Some(newest) = newest else {
        return Ok(false);
    };
    let status = match newest.get::<_, String>(0).parse::<Status>()? {
        Status::Delivered => DeliveryStatus::Delivered,
        Status::Undelivered => DeliveryStatus::Undelivered,
        other => return Err(StoreError::Corrupt(format!("a held report of status {other}")).into()),
    };
    let detail: Option<String> = newest.get(1);
    apply(db, id, status, detail.as_deref()).await?;
    execute(
        db,
        "DELETE FROM held_reports WHERE message_id = $1 OR (message_id IS NULL AND provider_id = $2)",
        &[&id, &provider_id],
    )
    .await?;
    Ok(true)
}

/// Moves the message to the report's status; an undelivered one keeps `detail` as its error.
async fn apply(
    db: &impl GenericClient,
    id: &str,
    status: DeliveryStatus,
    detail: Option<&str>,
) -> Attempt<()> {
    let error = match status {
        DeliveryStatus::Delivered => None,
        DeliveryStatus::Undelivered => detail,
    };
    execute(
        db,
        "UPDATE messages SET status = $2, error = $3, updated_at = gateway_now() WHERE id = $1",
        &[&id, &Status::from(status).as_str(), &error],
    )
    .await?;
    Ok(())
}
