//! The SMTP engine: the two limits of contract section 2, exactly.
//!
//! At most `connections()` batches run at once, each over its own connection, each
//! carrying at most `batch_size()` e-mails before QUIT; as soon as one batch ends, the
//! next is leased and a new connection opened. With 100 and 5: five connections of
//! twenty; with 3 and 5: three connections of one.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::connection_slot::ConnectionSlot;
use super::email_batch as batch;
use crate::{
    app::{App, Live},
    store::{Channel, Leased},
};

/// How often an idle engine looks for retries that came due.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// How many batches may wait leased for a connection slot: enough that a slot that
/// frees never waits for the store, few enough that a fleet's peers are not starved of
/// work near a queue's end.
const LEASED_AHEAD: usize = 1;

/// A batch leased ahead, with its place among the [`LEASED_AHEAD`], given back once the
/// batch has its connection slot.
type Ahead = (OwnedSemaphorePermit, Vec<Leased>);

/// Runs until `stop` is cancelled, then lets the batches in flight finish.
///
/// A semaphore of `connections()` permits bounds the connections open at once (in a
/// fleet, with a slot of the fleet's as well); a batch gives its permit back as soon as
/// its connection is closed. Batches are leased by a task of their own, ahead of the
/// slots, so a connection that closes is followed at once by the next one: the lease's
/// write is never between a free slot and its next connection.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let (ready, mut leased_ahead) = mpsc::channel::<Ahead>(LEASED_AHEAD);
    let leaser = tokio::spawn(lease_ahead(app.clone(), ready, stop.clone()));
    let mut batches = JoinSet::new();
    let mut slots: Option<(u32, Arc<Semaphore>)> = None;
    'batches: while let Some((place, leased)) = tokio::select! {
        _ = stop.cancelled() => None,
        leased = leased_ahead.recv() => leased,
    } {
        while batches.try_join_next().is_some() {}
        let live = app.live();
        let limits = live.settings.email.limits;
        if slots.as_ref().map(|(n, _)| *n) != Some(limits.connections()) {
            // New limits (a reload): the old batches' connections close first, so that
            // old and new never add up to more than either allows.
            if slots.is_some() {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = async { while batches.join_next().await.is_some() {} } => {}
                }
            }
            let connections = limits.connections();
            slots = Some((connections, Arc::new(Semaphore::new(connections as usize))));
        }
        let semaphore = &slots.as_ref().expect("set above").1;
        // A batch leased before a reload that lowered the limit goes over more
        // connections, each within the new limit.
        let mut leased = leased;
        while !leased.is_empty() {
            let rest = leased.split_off(leased.len().min(limits.batch_size() as usize));
            // Stopping with a batch in hand: its leases are released with the others.
            let Some(slot) =
                ConnectionSlot::take(&app, &live, semaphore.clone(), batch_lease(&live), &stop).await
            else {
                break 'batches;
            };
            batches.spawn(batch::deliver(app.clone(), live.clone(), leased, slot));
            leased = rest;
        }
        drop(place);
    }
    drop(leased_ahead);
    let _ = leaser.await;
    while batches.join_next().await.is_some() {}
}

/// Leases one connection's batch after another into `ready`, each as soon as one of
/// the [`LEASED_AHEAD`] places is free, while the sending quota allows; waits for new
/// e-mails when none are due.
async fn lease_ahead(app: Arc<App>, ready: mpsc::Sender<Ahead>, stop: CancellationToken) {
    let places = Arc::new(Semaphore::new(LEASED_AHEAD));
    loop {
        let place = tokio::select! {
            _ = stop.cancelled() => return,
            place = places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
        };
        let live = app.live();
        if !quota_allows(&app, &live, &stop).await {
            continue;
        }
        match lease_batch(&app, &live).await {
            Ok(leased) if leased.is_empty() => {
                drop(place);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = app.email_queued.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            Ok(leased) => {
                if ready.send((place, leased)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot lease e-mails from the store; retrying in 1 s");
                drop(place);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Whether the sending quota lets an e-mail go now; if not, waits until it may (or a
/// stop; at most 5 s, so a reload that changes the quota is seen), showing the time in
/// `/metrics`, and answers false.
async fn quota_allows(app: &App, live: &Live, stop: &CancellationToken) -> bool {
    let windows = &live.settings.email.quota;
    let gauge = &app.metrics.email_quota_next_send;
    if windows.is_empty() {
        gauge.set(0.0);
        return true;
    }
    let wait = match app.store.next_send(windows).await {
        Ok(None) => {
            gauge.set(0.0);
            return true;
        }
        Ok(Some(at)) => {
            let unix = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            gauge.set(unix.as_secs_f64());
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the sending quota; retrying in 1 s");
            Duration::from_secs(1)
        }
    };
    tracing::debug!(?wait, "the sending quota holds the queue");
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(wait.min(Duration::from_secs(5))) => {}
    }
    false
}

/// How long one connection's batch is leased: long enough that every command of it
/// may time out.
fn batch_lease(live: &Live) -> Duration {
    let email = &live.settings.email;
    let batch = email.limits.batch_size();
    email.connect_timeout + email.command_timeout * (4 + 4 * batch) + Duration::from_secs(30)
}

/// Leases one connection's batch.
async fn lease_batch(app: &App, live: &Live) -> Result<Vec<Leased>, crate::store::StoreError> {
    let batch = live.settings.email.limits.batch_size();
    app.store
        .lease(Channel::Email, batch as usize, &app.gateway_id, batch_lease(live))
        .await
}
