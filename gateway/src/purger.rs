//! The purger: deletes what `storage.retention` (and, for held delivery reports,
//! `sms.report_hold`) no longer keeps, so that the store does not grow forever.
//!
//! It runs once at start and then every minute, or as often as the shortest of the two
//! settings when that is shorter, so nothing outlives its time by more than one round.
//! Each round deletes in batches of [`BATCH`] rows, one write each ([`Store::purge`]):
//! the writer commits other callers' writes between two batches, so a purge of millions
//! of rows never makes an API request wait for more than one batch.
//!
//! [`Store::purge`]: crate::store::Store::purge

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    metrics::PurgeLabels,
    store::{PurgeKind, Purged},
};

/// Rows deleted per write.
pub const BATCH: usize = 500;
/// The longest wait between two rounds.
const EVERY: Duration = Duration::from_secs(60);
/// The shortest: a tiny retention must not make the purger spin.
const AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// Purges a round at once, then one every interval, until `stop`.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    loop {
        round(&app, &stop).await;
        let settings = &app.live().settings;
        let every = EVERY
            .min(settings.storage.retention)
            .min(settings.sms.report_hold)
            .max(AT_MOST_EVERY);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Deletes everything due now, kind by kind, batch by batch, counting it in
/// `gateway_purged_total`. A store error ends the round; the next round tries again.
pub async fn round(app: &App, stop: &CancellationToken) {
    let now = SystemTime::now();
    let live = app.live();
    for kind in PurgeKind::ALL {
        let keep = match kind {
            PurgeKind::HeldReports => live.settings.sms.report_hold,
            _ => live.settings.storage.retention,
        };
        let Some(older_than) = now.checked_sub(keep) else {
            continue;
        };
        let mut total = Purged::default();
        loop {
            if stop.is_cancelled() {
                return;
            }
            match app.store.purge(kind, older_than, BATCH).await {
                Ok(purged) => {
                    count(app, kind, &purged);
                    total.rows += purged.rows;
                    total.mailing_messages += purged.mailing_messages;
                    if !purged.more {
                        break;
                    }
                }
                Err(error) => {
                    tracing::error!(%kind, %error, "cannot purge old rows; trying again next round");
                    return;
                }
            }
        }
        if total.rows + total.mailing_messages > 0 {
            tracing::info!(%kind, rows = total.rows, mailing_messages = total.mailing_messages, "purged");
        }
    }
}

fn count(app: &App, kind: PurgeKind, purged: &Purged) {
    let add = |kind: PurgeKind, n: u64| {
        if n > 0 {
            app.metrics
                .purged
                .get_or_create(&PurgeLabels {
                    kind: kind.as_str().into(),
                })
                .inc_by(n);
        }
    };
    add(kind, purged.rows);
    // A mailing's e-mails are messages too.
    add(PurgeKind::Messages, purged.mailing_messages);
}
