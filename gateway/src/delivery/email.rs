//! The SMTP engine: the two limits of contract section 2, exactly.
//!
//! At most `connections()` batches run at once, each over its own connection, each
//! carrying at most `batch_size()` e-mails before QUIT; as soon as one batch ends, the
//! next is leased and a new connection opened. With 100 and 5: five connections of
//! twenty; with 3 and 5: three connections of one.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::connection_slot::ConnectionSlot;
use super::email_batch as batch;
use crate::{
    app::{App, Live},
    store::{Channel, Leased},
};

/// How often an idle engine looks for retries that came due.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Runs until `stop` is cancelled, then lets the batches in flight finish.
///
/// A semaphore of `connections()` permits bounds the connections open at once (in a
/// fleet, with a slot of the fleet's as well); a batch gives its permit back as soon as
/// its connection is closed. The next batch is leased
/// while the engine waits for a permit, so a connection that closes is followed at
/// once by the next one.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let mut batches = JoinSet::new();
    let mut slots: Option<(u32, Arc<Semaphore>)> = None;
    let mut next: Option<(Arc<Live>, Vec<Leased>)> = None;
    while !stop.is_cancelled() {
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
        let (batch_live, leased) = match next.take() {
            Some(ready) => ready,
            None => match lease_batch(&app, &live).await {
                Ok(leased) if leased.is_empty() => {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = app.email_queued.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                    continue;
                }
                Ok(leased) => (live.clone(), leased),
                Err(error) => {
                    tracing::error!(%error, "cannot lease e-mails from the store; retrying in 1 s");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let semaphore = slots.as_ref().expect("set above").1.clone();
        let hold_for = batch_lease(&batch_live);
        // Stopping with a batch in hand: its leases are released with the others.
        let Some(slot) = ConnectionSlot::take(&app, &batch_live, semaphore, hold_for, &stop).await else {
            break;
        };
        batches.spawn(batch::deliver(app.clone(), batch_live, leased, slot));
        // Lease the next batch now, while this one connects.
        if !stop.is_cancelled() {
            if let Ok(leased) = lease_batch(&app, &live).await {
                if !leased.is_empty() {
                    next = Some((live.clone(), leased));
                }
            }
        }
    }
    while batches.join_next().await.is_some() {}
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
