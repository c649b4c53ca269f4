//! What providers tell the gateway: inbound SMS (stored, listed, forwarded to
//! `sms.inbound_webhook`) and delivery reports (moving a sent message to `delivered`
//! or `undelivered`).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use plugin_api::{CallbackEvent, CallbackEvent_NE, DeliveryStatus};
use tokio_util::sync::CancellationToken;

use super::number;
use crate::{
    app::{App, Live},
    store::{self, InboundRecord, NewInbound, StoreError},
};

/// What the gateway did with one callback's events.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Applied {
    /// Ids of the inbound SMS stored.
    pub inbound: Vec<String>,
    /// Ids of the messages whose status a report changed.
    pub reports: Vec<String>,
    /// Reports about messages this gateway does not know (or has not yet recorded as sent).
    pub unmatched_reports: usize,
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
                let sender = e164_or_as_given(&from, country);
                let recipient = e164_or_as_given(&to, country);
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
                status,
                detail,
                ..
            }) => {
                let status = match status {
                    DeliveryStatus::DELIVERED => store::DeliveryStatus::Delivered,
                    DeliveryStatus::UNDELIVERED => store::DeliveryStatus::Undelivered,
                    _ => continue, // in progress: nothing to record
                };
                let detail = (!detail.is_empty()).then_some(detail.as_str());
                match app
                    .store
                    .record_delivery_report(&provider_id, status, detail)
                    .await?
                {
                    Some(id) => {
                        tracing::info!(message_id = %id, ?status, "delivery report");
                        app.metrics
                            .delivery_reports
                            .get_or_create(&crate::metrics::ReportLabels {
                                module: live.module.name().to_string(),
                                status: store::Status::from(status).to_string(),
                            })
                            .inc();
                        applied.reports.push(id);
                    }
                    None => {
                        tracing::warn!(%provider_id, "delivery report for no message this gateway sent");
                        applied.unmatched_reports += 1;
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
fn e164_or_as_given(number: &str, country: Option<crate::settings::CountryCode>) -> String {
    number::normalize(number, country)
        .or_else(|error| {
            let digits = number.trim();
            if digits.len() > 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
                number::normalize(&format!("+{digits}"), None)
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
