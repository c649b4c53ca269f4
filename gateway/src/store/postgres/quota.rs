//! The sending quota in PostgreSQL, for the fleet: every take holds one advisory lock
//! for its transaction, so the gateways' sends are counted one at a time, together,
//! against the database's clock.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;

use super::{execute, one_row, optional_row, Attempt, PostgresStore};
use crate::store::quota::longest;
use crate::store::stored::{millis, system_time};
use crate::store::{QuotaWindow, SendQuota, StoreError};

/// The advisory lock held while a send is taken: "gw-quota" in ASCII.
const QUOTA_LOCK: i64 = 0x6777_2d71_756f_7461;

/// When the next send may go, if a window is full at `now` (unix ms).
async fn next_at(db: &impl GenericClient, windows: &[QuotaWindow], now: i64) -> Attempt<Option<i64>> {
    let mut next: Option<i64> = None;
    for window in windows {
        let since = now - millis(window.length);
        let held: i64 = one_row(db, "SELECT count(*) FROM email_sends WHERE at > $1", &[&since])
            .await?
            .get(0);
        let max = i64::from(window.max);
        if held >= max {
            let oldest = optional_row(
                db,
                "SELECT at FROM email_sends WHERE at > $1 ORDER BY at LIMIT 1 OFFSET $2",
                &[&since, &(held - max)],
            )
            .await?
            .map_or(now, |row| row.get::<_, i64>(0));
            let free_at = oldest + millis(window.length);
            next = Some(next.map_or(free_at, |n| n.max(free_at)));
        }
    }
    Ok(next)
}

async fn now(db: &impl GenericClient) -> Attempt<i64> {
    Ok(one_row(db, "SELECT gateway_now()", &[]).await?.get(0))
}

#[async_trait::async_trait]
impl SendQuota for PostgresStore {
    async fn take_send(&self, windows: &[QuotaWindow]) -> Result<Option<SystemTime>, StoreError> {
        if windows.is_empty() {
            return Ok(None);
        }
        self.run("take a send from the quota", move |mut client| async move {
            let tx = client.transaction().await?;
            execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&QUOTA_LOCK]).await?;
            let now = now(&tx).await?;
            if let Some(at) = next_at(&tx, windows, now).await? {
                return Ok(Some(system_time(at)));
            }
            let old = now - millis(longest(windows));
            execute(&tx, "DELETE FROM email_sends WHERE at <= $1", &[&old]).await?;
            execute(&tx, "INSERT INTO email_sends (at) VALUES ($1)", &[&now]).await?;
            tx.commit().await?;
            Ok(None)
        })
        .await
    }

    async fn next_send(&self, windows: &[QuotaWindow]) -> Result<Option<SystemTime>, StoreError> {
        if windows.is_empty() {
            return Ok(None);
        }
        self.read("read the quota", move |client| async move {
            let now = now(&client).await?;
            Ok(next_at(&client, windows, now).await?.map(system_time))
        })
        .await
    }
}
