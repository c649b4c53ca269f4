//! Small conversions between the store's types and SQLite's: times as unix
//! milliseconds, ids, and errors that name the operation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::StoreError;

/// Turns a SQLite error into a [`StoreError`] naming what was being done.
pub(super) fn database(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database {
        operation,
        cause: e.to_string(),
    }
}

/// A new message or mailing id: UUIDv7, so ids sort by creation time (and stay ordered
/// within a millisecond, thanks to the uuid crate's counter).
pub(super) fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

pub(super) fn now_millis() -> i64 {
    unix_millis(SystemTime::now())
}

pub(super) fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => millis(since),
        Err(before) => -millis(before.duration()),
    }
}

pub(super) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn millis_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub(super) fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + millis_duration(ms)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}
