//! The SMS delivery worker: leases due SMS from the store, sends each through the
//! module in force, and records the outcome (sent, retry with backoff, or failed).
//!
//! The lease is the worker's claim on a message. When the worker dies the lease runs
//! out and the message is due again; that, and only that, is how an SMS can reach a
//! provider twice (at-least-once).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use plugin_api::OutboundSms;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    metrics::Metrics,
    sms::{send, SmsPayload},
    store::{settle_and_log, Channel, Leased, Outcome},
};

/// SMS being sent at once by one worker.
const IN_FLIGHT: usize = 64;
/// How often an idle worker looks for retries that came due.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Runs until `stop` is cancelled, then waits for the sends in flight.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut sends = JoinSet::new();
    while !stop.is_cancelled() {
        while sends.try_join_next().is_some() {}
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = sends.join_next() => continue,
            }
        }
        let settings = &app.live().settings;
        let lease_for = lease_duration(settings);
        let leased = match app
            .store
            .lease(Channel::Sms, free, &app.gateway_id, lease_for)
            .await
        {
            Ok(leased) => leased,
            Err(error) => {
                tracing::error!(%error, "cannot lease SMS from the store; retrying in 1 s");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if leased.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = app.sms_queued.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        }
        for message in leased {
            let permit = slots
                .clone()
                .try_acquire_owned()
                .expect("leased no more than the free slots");
            let app = app.clone();
            sends.spawn(async move {
                deliver(&app, message).await;
                drop(permit);
            });
        }
    }
    while sends.join_next().await.is_some() {}
}

/// Long enough for every call and request one send may make.
fn lease_duration(settings: &crate::settings::Settings) -> Duration {
    crate::modules::steps::lease_duration(settings.sms.call_timeout, settings.sms.http_timeout)
}

/// Sends one leased SMS and records what happened.
async fn deliver(app: &App, message: Leased) {
    let id = message.id.clone();
    let live = app.live();
    let payload: SmsPayload = match serde_json::from_str(&message.payload) {
        Ok(payload) => payload,
        Err(error) => {
            let reason = format!("the stored SMS cannot be read: {error}");
            tracing::error!(message_id = %id, %reason);
            settle(app, &message, Outcome::Failed { error: reason }).await;
            return;
        }
    };
    let sms = OutboundSms {
        id: id.as_str().into(),
        to: payload.to.into(),
        sender: payload.sender.into(),
        text: payload.text.into(),
        attempt: message.attempts,
    };
    let module = &live.module;
    let labels = Metrics::outcome(Channel::Sms, module.name());
    match send::send(&live, sms).await {
        Ok(provider_id) => {
            app.metrics.sent.get_or_create(&labels).inc();
            tracing::debug!(message_id = %id, module = module.name(), %provider_id, "SMS sent");
            let provider_id = Some(provider_id);
            settle(app, &message, Outcome::Sent { provider_id }).await;
        }
        Err(error) if error.is_transient() && live.settings.sms.retry.may_retry(message.attempts) => {
            app.metrics.retried.get_or_create(&labels).inc();
            let delay = live.settings.sms.retry.backoff(message.attempts);
            tracing::warn!(message_id = %id, module = module.name(), attempt = message.attempts, retry_in = ?delay, %error, "SMS not sent; will retry");
            let due_at = SystemTime::now() + delay;
            let error = error.to_string();
            settle(app, &message, Outcome::Retry { due_at, error }).await;
        }
        Err(error) => {
            app.metrics.failed.get_or_create(&labels).inc();
            tracing::warn!(message_id = %id, module = module.name(), attempt = message.attempts, %error, "SMS failed");
            let error = error.to_string();
            settle(app, &message, Outcome::Failed { error }).await;
        }
    }
}

/// Ends the message's lease with `outcome`. A store that cannot write keeps the outcome
/// and writes it again until it lands, so this waits rather than let the lease run out
/// and the SMS be sent again.
async fn settle(app: &App, message: &Leased, outcome: Outcome) {
    settle_and_log(app.store.as_ref(), vec![message.settle(outcome)]).await;
}
