//! The sending quota in SQLite: a send is taken by the writer, so two takes never
//! interleave; the check reads on a read connection.

use rusqlite::{params, Connection};

use super::convert::{database, millis, now_millis, system_time};
use super::SqliteStore;
use crate::store::quota::longest;
use crate::store::{QuotaWindow, SendQuota, StoreError};
use std::time::SystemTime;

/// When the next send may go, if a window is full at `now` (unix ms).
fn next_at(conn: &Connection, windows: &[QuotaWindow], now: i64) -> rusqlite::Result<Option<i64>> {
    let mut next: Option<i64> = None;
    let mut count = conn.prepare_cached("SELECT count(*) FROM email_sends WHERE at > ?1")?;
    let mut nth =
        conn.prepare_cached("SELECT at FROM email_sends WHERE at > ?1 ORDER BY at LIMIT 1 OFFSET ?2")?;
    for window in windows {
        let since = now - millis(window.length);
        let held: i64 = count.query_row([since], |row| row.get(0))?;
        let max = i64::from(window.max);
        if held >= max {
            // Room comes back when the send that leaves max - 1 behind it ages out.
            let oldest: i64 = nth.query_row(params![since, held - max], |row| row.get(0))?;
            let free_at = oldest + millis(window.length);
            next = Some(next.map_or(free_at, |n| n.max(free_at)));
        }
    }
    Ok(next)
}

#[async_trait::async_trait]
impl SendQuota for SqliteStore {
    async fn take_send(&self, windows: &[QuotaWindow]) -> Result<Option<SystemTime>, StoreError> {
        if windows.is_empty() {
            return Ok(None);
        }
        let windows = windows.to_vec();
        self.write(move |conn, now| {
            let failed = database("take a send from the quota");
            if let Some(at) = next_at(conn, &windows, now).map_err(&failed)? {
                return Ok(Some(system_time(at)));
            }
            conn.prepare_cached("DELETE FROM email_sends WHERE at <= ?1")
                .and_then(|mut delete| delete.execute([now - millis(longest(&windows))]))
                .map_err(&failed)?;
            conn.prepare_cached("INSERT INTO email_sends (at) VALUES (?1)")
                .and_then(|mut insert| insert.execute([now]))
                .map_err(&failed)?;
            Ok(None)
        })
        .await
    }

    async fn next_send(&self, windows: &[QuotaWindow]) -> Result<Option<SystemTime>, StoreError> {
        if windows.is_empty() {
            return Ok(None);
        }
        let windows = windows.to_vec();
        self.read("read the quota", move |conn| {
            next_at(conn, &windows, now_millis())
                .map(|at| at.map(system_time))
                .map_err(database("read the quota"))
        })
        .await
    }
}
