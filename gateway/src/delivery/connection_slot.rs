//! The right to open one SMTP connection: a permit of this gateway's semaphore of
//! `connections()` and, in a fleet, one of the fleet's numbered SMTP slots held in the
//! shared store, so that *SMTP threads* bounds what the mail server sees from every
//! gateway together (contract section 2; [`crate::store::fleet`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Live};
use crate::store::fleet::SmtpSlot;

/// How often a gateway waiting for a fleet slot looks again, when no peer's wake-up
/// told it one was freed.
const SLOT_POLL: Duration = Duration::from_millis(200);

/// Held while one connection is open; [`ConnectionSlot::give_back`] ends it.
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    fleet: Option<SmtpSlot>,
}

impl ConnectionSlot {
    /// Waits for a local permit and, on a shared store, a fleet slot held for at most
    /// `hold_for` (the batch's lease: a dead gateway's slot comes back then at the
    /// latest, or sooner when a peer buries it). `None` if `stop` comes first.
    pub async fn take(
        app: &App,
        live: &Live,
        local: Arc<Semaphore>,
        hold_for: Duration,
        stop: &CancellationToken,
    ) -> Option<ConnectionSlot> {
        let permit = tokio::select! {
            () = stop.cancelled() => return None,
            permit = local.acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let Some(fleet) = app.store.fleet() else {
            return Some(ConnectionSlot {
                _permit: permit,
                fleet: None,
            });
        };
        let connections = live.settings.email.limits.connections();
        let dead_after = live.settings.storage.dead_after;
        loop {
            match fleet
                .take_smtp_slot(&app.gateway_id, connections, hold_for, dead_after)
                .await
            {
                Ok(Some(slot)) => {
                    return Some(ConnectionSlot {
                        _permit: permit,
                        fleet: Some(slot),
                    })
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot take an SMTP slot of the fleet; trying again"),
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = app.smtp_slot_freed.notified() => {}
                () = tokio::time::sleep(SLOT_POLL) => {}
            }
        }
    }

    /// Gives the slot back once its connection is closed.
    pub async fn give_back(self, app: &App) {
        if let (Some(slot), Some(fleet)) = (&self.fleet, app.store.fleet()) {
            if let Err(error) = fleet.give_back_smtp_slot(slot).await {
                tracing::warn!(%error, slot = slot.number, "cannot give back an SMTP slot; it comes back when its hold runs out");
            }
        }
    }
}
