//! The SMTP engine: the two limits of contract section 2, exactly.
//!
//! At most `connections()` batches run at once, each over its own connection, each
//! carrying at most `batch_size()` e-mails before QUIT; as soon as one batch ends, the
//! next is leased and a new connection opened. With 100 and 5: five connections of
//! twenty; with 3 and 5: three connections of one.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::batch;
use crate::{app::App, store::Channel};

/// How often an idle engine looks for retries that came due.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Runs until `stop` is cancelled, then lets the batches in flight finish.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let mut batches = JoinSet::new();
    while !stop.is_cancelled() {
        while batches.try_join_next().is_some() {}
        let live = app.live();
        let limits = live.settings.email.limits;
        if batches.len() >= limits.connections() as usize {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = batches.join_next() => continue,
            }
        }
        let email = &live.settings.email;
        let lease_for = email.connect_timeout
            + email.command_timeout * (4 + 4 * limits.batch_size())
            + Duration::from_secs(30);
        let leased = match app
            .store
            .lease(
                Channel::Email,
                limits.batch_size() as usize,
                &app.lease_owner,
                lease_for,
            )
            .await
        {
            Ok(leased) => leased,
            Err(error) => {
                tracing::error!(%error, "cannot lease e-mails from the store; retrying in 1 s");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if leased.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = app.email_queued.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
            continue;
        }
        batches.spawn(batch::deliver(app.clone(), live.clone(), leased));
    }
    while batches.join_next().await.is_some() {}
}
