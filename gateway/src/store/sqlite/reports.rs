//! Delivery reports: matched to their SMS by message id or provider id, held when they
//! overtake the send's outcome, and applied from the hold when that outcome is recorded
//! (see [`crate::store::report`]).

use rusqlite::{params, Connection, OptionalExtension};

use super::convert::database;
use crate::store::{DeliveryReport, DeliveryStatus, ReportOutcome, Status, StoreError};

/// Applies `report` to its SMS, or holds it if there is none that can take it yet.
pub(super) fn record(
    conn: &Connection,
    report: &DeliveryReport,
    now: i64,
) -> Result<ReportOutcome, StoreError> {
    let failed = database("record a delivery report");
    // The message id decides when it names an SMS; one that names none (a provider's
    // reference of another kind, or a purged message) is no use later either.
    let by_message_id: Option<(String, String)> = match &report.message_id {
        Some(id) => conn
            .prepare_cached("SELECT id, status FROM messages WHERE id = ?1 AND channel = 'sms'")
            .and_then(|mut select| {
                select
                    .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(&failed)?,
        None => None,
    };
    let target = match (&by_message_id, &report.provider_id) {
        (Some(found), _) => Some(found.clone()),
        // Providers may reuse ids over time (or two modules may share one): the report is
        // for the most recent SMS sent under that id.
        (None, Some(provider_id)) => conn
            .prepare_cached(
                "SELECT id, status FROM messages
                 WHERE provider_id = ?1 AND channel = 'sms' AND status IN ('sent', 'delivered', 'undelivered')
                 ORDER BY created_at DESC LIMIT 1",
            )
            .and_then(|mut select| {
                select
                    .query_row([provider_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(&failed)?,
        (None, None) => None,
    };
    let takes_reports = |status: &str| status.parse::<Status>().is_ok_and(Status::takes_reports);
    if let Some((id, _)) = target.filter(|(_, status)| takes_reports(status)) {
        apply(conn, &id, report.status, report.detail.as_deref(), now)?;
        return Ok(ReportOutcome::Applied { message_id: id });
    }
    let message_id = by_message_id.map(|(id, _)| id);
    if message_id.is_none() && report.provider_id.is_none() {
        return Err(StoreError::Invalid(
            "a delivery report needs a provider id or a message id".into(),
        ));
    }
    conn.prepare_cached(
        "INSERT INTO held_reports (module, provider_id, message_id, status, detail, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            report.module,
            report.provider_id,
            message_id,
            Status::from(report.status).as_str(),
            report.detail,
            now
        ])
    })
    .map_err(database("hold a delivery report"))?;
    Ok(ReportOutcome::Held)
}

/// Whether any delivery report waits in the hold.
pub(super) fn any_held(conn: &Connection) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM held_reports)")
        .and_then(|mut select| select.query_row([], |row| row.get(0)))
        .map_err(database("look for held delivery reports"))
}

/// Applies the newest report held for the SMS `id` just recorded as sent under
/// `provider_id`, and deletes every report held for it. True if one applied.
pub(super) fn apply_held(
    conn: &Connection,
    id: &str,
    provider_id: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let failed = database("apply a held delivery report");
    // A held report with a message id is for that message alone; one without is for
    // whichever SMS its provider id turns out to belong to.
    let newest: Option<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT status, detail FROM held_reports
             WHERE message_id = ?1 OR (message_id IS NULL AND provider_id = ?2)
             ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut select| {
            select
                .query_row(params![id, provider_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(&failed)?;
    let Some((status, detail)) = newest else {
        return Ok(false);
    };
    let status = match status.parse::<Status>()? {
        Status::Delivered => DeliveryStatus::Delivered,
        Status::Undelivered => DeliveryStatus::Undelivered,
        other => return Err(StoreError::Corrupt(format!("a held report of status {other}"))),
    };
    apply(conn, id, status, detail.as_deref(), now)?;
    conn.prepare_cached(
        "DELETE FROM held_reports WHERE message_id = ?1 OR (message_id IS NULL AND provider_id = ?2)",
    )
    .and_then(|mut delete| delete.execute(params![id, provider_id]))
    .map_err(&failed)?;
    Ok(true)
}

/// Moves the message to the report's status; an undelivered one keeps `detail` as its error.
fn apply(
    conn: &Connection,
    id: &str,
    status: DeliveryStatus,
    detail: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let error = match status {
        DeliveryStatus::Delivered => None,
        DeliveryStatus::Undelivered => detail,
    };
    conn.prepare_cached("UPDATE messages SET status = ?2, error = ?3, updated_at = ?4 WHERE id = ?1")
        .and_then(|mut update| update.execute(params![id, Status::from(status).as_str(), error, now]))
        .map(drop)
        .map_err(database("record a delivery report"))
}
