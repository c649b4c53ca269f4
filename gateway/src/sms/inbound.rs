//! What providers tell the gateway: inbound SMS (stored, listed, forwarded to
//! `sms.inbound_webhook`) and delivery reports (moving a sent message to `delivered`
//! or `undelivered`, or held until its send's outcome is recorded: see
//! [`crate::store::report`]).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use plugin_api::{CallbackEvent, CallbackEvent_NE, DeliveryStatus};
use tokio_util::sync::CancellationToken;

use super::number;
use crate::{
    app::{App, Live},
    store::{self, DeliveryReport, InboundRecord, NewInbound, ReportOutcome, StoreError},
};

/// What the gateway did with one callback's events.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Applied {
    /// Ids of the inbound SMS stored.
    pub inbound: Vec<String>,
    /// Ids of the messages whose status a report changed.
    pub reports: Vec<String>,
    /// Reports held for a message whose send's outcome is not recorded yet (or that
    /// this gateway does not know): applied when it is, purged after `sms.report_hold`.
    pub held_reports: usize,
    /// Events of kinds this gateway does not know (from a newer module).
    pub unknown: usize,
}

/// Stores what a module parsed out of a callback.
pub async fn apply(app: &App, live: &Live, events: Vec<CallbackEvent_NE>) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    for event in events {
        match event.into_enum() {
            Ok(CallbackEvent::Inbound {
                from,
                to,
                text,
                provider_id,
            }) => {
                let country = live.settings.sms.default_country_code;
                let check = live.settings.sms.number_check;
                let sender = e164_or_as_given(&from, country, check);
                let recipient = e164_or_as_given(&to, country, check);
                let stored = app
                    .store
                    .store_inbound(NewInbound {
                        module: live.module.name().to_string(),
                        sender,
                        recipient,
                        text: text.into_string(),
                        provider_id: provider_id.into_string(),
                        forward_url: live.settings.sms.inbound_webhook.clone(),
                    })
                    .await?;
                tracing::info!(inbound_id = %stored.id, module = live.module.name(), new = stored.created, "inbound SMS");
                if stored.created {
                    app.metrics.inbound.inc();
                }
                applied.inbound.push(stored.id);
            }
            Ok(CallbackEvent::DeliveryReport {
                provider_id,
                message_id,
                status,
                detail,
            }) => {
                let status = match status {
                    DeliveryStatus::DELIVERED => store::DeliveryStatus::Delivered,
                    DeliveryStatus::UNDELIVERED => store::DeliveryStatus::Undelivered,
                    _ => continue, // in progress: nothing to record
                };
                let given = |text: String| Some(text).filter(|t| !t.trim().is_empty());
                let report = DeliveryReport {
                    module: live.module.name().to_string(),
                    provider_id: given(provider_id.into_string()),
                    message_id: message_id.into_option().and_then(|id| given(id.into_string())),
                    status,
                    detail: given(detail.into_string()),
                };
                if report.provider_id.is_none() && report.message_id.is_none() {
                    tracing::warn!(
                        module = live.module.name(),
                        "delivery report naming no message; ignored"
                    );
                    applied.unknown += 1;
                    continue;
                }
                let labels = crate::metrics::ReportLabels {
                    module: report.module.clone(),
                    status: store::Status::from(status).to_string(),
                };
                let (provider_id, message_id) = (report.provider_id.clone(), report.message_id.clone());
                match app.store.record_delivery_report(report).await? {
                    ReportOutcome::Applied { message_id } => {
                        tracing::info!(%message_id, ?status, "delivery report");
                        app.metrics.delivery_reports.get_or_create(&labels).inc();
                        applied.reports.push(message_id);
                    }
                    ReportOutcome::Held => {
                        tracing::info!(
                            ?provider_id,
                            ?message_id,
                            ?status,
                            "delivery report for no SMS recorded as sent yet; held until its outcome is"
                        );
                        app.metrics.delivery_reports_held.get_or_create(&labels).inc();
                        applied.held_reports += 1;
                    }
                }
            }
            _ => applied.unknown += 1,
        }
    }
    if !applied.inbound.is_empty() && live.settings.sms.inbound_webhook.is_some() {
        app.inbound_received.notify_one();
    }
    Ok(applied)
}

/// A provider's number in E.164 when it can be: national numbers take the default
/// country code, and bare international digits (`447911123456`, as several providers
/// send them) get their `+`. An alphanumeric sender stays as it is.
fn e164_or_as_given(
    number: &str,
    country: Option<super::country::CountryCode>,
    check: number::NumberCheck,
) -> String {
    number::normalize(number, country, check)
        .or_else(|error| {
            let digits = number.trim();
            if digits.len() > 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
                number::normalize(&format!("+{digits}"), None, check)
            } else {
                Err(error)
            }
        })
        .map(|n| n.to_string())
        .unwrap_or_else(|_| number.to_string())
}

/// How often an idle forwarder looks for forwards that came due.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Forwards inbound SMS to their webhook until `stop`; a forward that fails is
/// retried with backoff for as long as it takes.
pub async fn forward(app: Arc<App>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let due = match app.store.lease_forwards(16, Duration::from_secs(60)).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read inbound SMS to forward");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = app.inbound_received.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        }
        let live = app.live();
        for record in due {
            forward_one(&app, &live, record).await;
        }
    }
}

async fn forward_one(app: &App, live: &Live, record: InboundRecord) {
    let Some(url) = record.forward_url.clone() else {
        return;
    };
    let body = serde_json::json!({
        "id": record.id,
        "from": record.sender,
        "to": record.recipient,
        "text": record.text,
        "module": record.module,
        "provider_id": record.provider_id,
        "received_at": crate::time::rfc3339(record.received_at),
    });
    let result = match live.http.post_json(&url, &body).await {
        Ok(status) if (200..300).contains(&status) => app.store.forward_done(&record.id).await,
        outcome => {
            let error = match outcome {
                Ok(status) => format!("the webhook answered {status}"),
                Err(error) => error.to_string(),
            };
            let retry = live.settings.sms.retry;
            let delay = retry.backoff(record.forward_attempts.min(12));
            tracing::warn!(inbound_id = %record.id, attempt = record.forward_attempts, retry_in = ?delay, %error, "inbound SMS not forwarded; will retry");
            app.store
                .forward_retry(&record.id, SystemTime::now() + delay, &error)
                .await
        }
    };
    if let Err(error) = result {
        tracing::error!(inbound_id = %record.id, %error, "forward outcome not recorded; it will be retried");
    }
}
