//! The SMS delivery worker: leases due SMS from the store, sends them through the
//! module in force, and records the outcomes (sent, retry with backoff, or failed).
//!
//! A leased batch starts with one hop to the module's thread for all its sends
//! ([`Module::send_batch`](crate::modules::Module::send_batch)), and the outcomes known
//! then are written together; an SMS whose module asks for HTTP requests goes on in a
//! task of its own. Over a session module's sessions each SMS waits for its own answer.
//! Outcomes that come one at a time (over sessions, after HTTP requests) are written
//! together by one task, and SMS are leased in chunks of free slots, so that neither
//! costs a store transaction per SMS.
//!
//! The lease is the worker's claim on a message. When the worker dies the lease runs
//! out and the message is due again; that, and only that, is how an SMS can reach a
//! provider twice (at-least-once).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use plugin_api::{OutboundSms, Step};
use tokio::{
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{App, Live},
    metrics::Metrics,
    modules::steps::{self, Operation, StepError},
    sms::{
        send::{self, SendError},
        SmsPayload,
    },
    store::{settle_and_log, Channel, Leased, Outcome, Settlement},
};

/// SMS being sent at once by one worker.
const IN_FLIGHT: usize = 64;
/// Free slots a lease waits for: SMS are leased in chunks while others are in flight.
const LEASE_CHUNK: usize = IN_FLIGHT / 4;
/// How often an idle worker looks for retries that came due.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Runs until `stop` is cancelled, then waits for the sends in flight.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut sends = JoinSet::new();
    let (settler, outcomes) = mpsc::unbounded_channel();
    let settling = tokio::spawn(settle_as_they_come(app.clone(), outcomes));
    while !stop.is_cancelled() {
        while sends.try_join_next().is_some() {}
        // A chunk of free slots, and any more free now: each send frees its own slot
        // as it ends, and a lease for each would be a store transaction per SMS.
        let mut free = tokio::select! {
            _ = stop.cancelled() => break,
            free = slots.clone().acquire_many_owned(LEASE_CHUNK as u32) => {
                free.expect("the worker's slots are never closed")
            }
        };
        let more = slots.available_permits();
        if more > 0 {
            if let Ok(more) = slots.clone().try_acquire_many_owned(more as u32) {
                free.merge(more);
            }
        }
        let settings = &app.live().settings;
        let lease_for = lease_duration(settings);
        let leased = match app
            .store
            .lease(Channel::Sms, free.num_permits(), &app.gateway_id, lease_for)
            .await
        {
            Ok(leased) => leased,
            Err(error) => {
                drop(free);
                tracing::error!(%error, "cannot lease SMS from the store; retrying in 1 s");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if leased.is_empty() {
            drop(free);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = app.sms_queued.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        }
        let live = app.live();
        // One slot for each SMS leased; the rest are free again.
        let permits: Vec<OwnedSemaphorePermit> = (0..leased.len())
            .map(|_| free.split(1).expect("leased no more than the free slots"))
            .collect();
        drop(free);
        if live.sessions.is_some() {
            // Over sessions each SMS is pending until its own answer: one task each.
            for (message, permit) in leased.into_iter().zip(permits) {
                let (app, live) = (app.clone(), live.clone());
                let settler = settler.clone();
                sends.spawn(async move {
                    let outcome = match outbound(&message) {
                        Ok(sms) => {
                            let result = send::send(&live, sms).await;
                            outcome(&app, &live, &message, result)
                        }
                        Err(unreadable) => unreadable,
                    };
                    let _ = settler.send((message.settle(outcome), permit));
                });
            }
        } else {
            let (app, settler) = (app.clone(), settler.clone());
            sends.spawn(async move {
                let continuations = deliver_batch(&app, &live, leased, permits).await;
                let mut rest = JoinSet::new();
                for (message, sms, first, permit) in continuations {
                    let (app, live, settler) = (app.clone(), live.clone(), settler.clone());
                    rest.spawn(async move {
                        let operation = Operation::Send(sms);
                        let run = steps::run_from(&live.module, &live.http, operation, first).await;
                        let outcome = outcome(&app, &live, &message, run.outcome.map_err(SendError::from));
                        let _ = settler.send((message.settle(outcome), permit));
                    });
                }
                while rest.join_next().await.is_some() {}
            });
        }
    }
    while sends.join_next().await.is_some() {}
    drop(settler);
    let _ = settling.await;
}

/// The outcome of one SMS and its slot, freed once the outcome is written.
type Settled = (Settlement, OwnedSemaphorePermit);

/// How long outcomes that arrive wait for the write before theirs to land (to be
/// written together) before they are handed to the store anyway.
const SETTLE_WAIT: Duration = Duration::from_millis(10);

/// Writes the outcomes of SMS that end one by one (over a session, or after HTTP
/// requests) together: those that arrive while a write is under way make the next one.
///
/// A write that does not land soon (a full disk: the store keeps it and writes it again
/// until it can) does not hold back the outcomes behind it: they are handed to the store
/// too, where outcomes go ahead of any later lease. Held here instead, they would reach
/// the store after the lease that takes their SMS again once their leases ran out.
async fn settle_as_they_come(app: Arc<App>, mut outcomes: mpsc::UnboundedReceiver<Settled>) {
    let mut writing = JoinSet::new();
    let mut arrived = Vec::with_capacity(IN_FLIGHT);
    while outcomes.recv_many(&mut arrived, IN_FLIGHT).await > 0 {
        let (settlements, slots): (Vec<Settlement>, Vec<OwnedSemaphorePermit>) = arrived.drain(..).unzip();
        let app = app.clone();
        writing.spawn(async move {
            settle(&app, settlements).await;
            drop(slots);
        });
        let _ = tokio::time::timeout(SETTLE_WAIT, async {
            while writing.join_next().await.is_some() {}
        })
        .await;
    }
    while writing.join_next().await.is_some() {}
}

/// Long enough for every call and request one send may make.
fn lease_duration(settings: &crate::settings::Settings) -> Duration {
    crate::modules::steps::lease_duration(settings.sms.call_timeout, settings.sms.http_timeout)
}

/// An SMS of a batch whose module asked for an HTTP request: carried on by a task
/// of its own, so that a slow provider holds one slot, not the batch's.
type Continuation = (Leased, OutboundSms, Step, OwnedSemaphorePermit);

/// Starts every SMS of `leased` with one hop to the module's thread
/// ([`crate::modules::Module::send_batch`]) and writes the outcomes known at once
/// together; returns those that go on with HTTP requests.
async fn deliver_batch(
    app: &App,
    live: &Live,
    leased: Vec<Leased>,
    permits: Vec<OwnedSemaphorePermit>,
) -> Vec<Continuation> {
    let mut settled = Vec::new();
    // The slots of the SMS settled here, freed once their outcomes are written.
    let mut done = Vec::new();
    let mut started = Vec::with_capacity(leased.len());
    for (message, permit) in leased.into_iter().zip(permits) {
        match outbound(&message) {
            Ok(sms) => started.push((message, sms, permit)),
            Err(unreadable) => {
                settled.push(message.settle(unreadable));
                done.push(permit);
            }
        }
    }
    let batch = started.iter().map(|(_, sms, _)| sms.clone()).collect();
    let answers = live.module.send_batch(batch).await;
    let mut continuations = Vec::new();
    for ((message, sms, permit), answer) in started.into_iter().zip(answers) {
        let outcome = match answer {
            Some(Ok(Step::Http(request))) => {
                continuations.push((message, sms, Step::Http(request), permit));
                continue;
            }
            Some(Ok(first)) => {
                // Done, or a step this gateway does not know: the driver says which.
                let run = steps::run_from(&live.module, &live.http, Operation::Send(sms), first).await;
                outcome(app, live, &message, run.outcome.map_err(SendError::from))
            }
            Some(Err(error)) => outcome(app, live, &message, Err(SendError::from(StepError::from(error)))),
            // Never handed to the module: a call before it hung.
            None => Outcome::GiveBack {
                due_at: SystemTime::now(),
            },
        };
        settled.push(message.settle(outcome));
        done.push(permit);
    }
    settle(app, settled).await;
    drop(done);
    continuations
}

/// Ends leases with their outcomes. A store that cannot write keeps the outcomes and
/// writes them again until they land, ahead of any later lease, so this waits rather
/// than let a lease run out and the SMS be sent again.
async fn settle(app: &App, settlements: Vec<Settlement>) {
    settle_and_log(app.store.as_ref(), settlements).await;
}

/// The SMS `message` holds, or the outcome of one that cannot be read.
fn outbound(message: &Leased) -> Result<OutboundSms, Outcome> {
    match serde_json::from_str::<SmsPayload>(&message.payload) {
        Ok(payload) => Ok(OutboundSms {
            id: message.id.as_str().into(),
            to: payload.to.into(),
            sender: payload.sender.into(),
            text: payload.text.into(),
            attempt: message.attempts,
        }),
        Err(error) => {
            let reason = format!("the stored SMS cannot be read: {error}");
            tracing::error!(message_id = %message.id, %reason);
            Err(Outcome::Failed { error: reason })
        }
    }
}

/// What a send's result means for the message: sent, retried with backoff, or failed;
/// counted and logged.
fn outcome(app: &App, live: &Live, message: &Leased, result: Result<String, SendError>) -> Outcome {
    let (id, module) = (&message.id, live.module.name());
    let labels = Metrics::outcome(Channel::Sms, module);
    match result {
        Ok(provider_id) => {
            app.metrics.sent.get_or_create(&labels).inc();
            tracing::debug!(message_id = %id, module, %provider_id, "SMS sent");
            Outcome::Sent {
                provider_id: Some(provider_id),
            }
        }
        Err(error) if error.is_transient() && live.settings.sms.retry.may_retry(message.attempts) => {
            app.metrics.retried.get_or_create(&labels).inc();
            let delay = live.settings.sms.retry.backoff(message.attempts);
            tracing::warn!(message_id = %id, module, attempt = message.attempts, retry_in = ?delay, %error, "SMS not sent; will retry");
            Outcome::Retry {
                due_at: SystemTime::now() + delay,
                error: error.to_string(),
            }
        }
        Err(error) => {
            app.metrics.failed.get_or_create(&labels).inc();
            tracing::warn!(message_id = %id, module, attempt = message.attempts, %error, "SMS failed");
            Outcome::Failed {
                error: error.to_string(),
            }
        }
    }
}
