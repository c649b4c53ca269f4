//! How the store's values are written, whichever database holds them: ids are UUIDv7
//! text, times are unix milliseconds in a 64-bit integer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A new message, mailing or inbound id: UUIDv7, so ids sort by creation time (and stay
/// ordered within a millisecond, thanks to the uuid crate's counter).
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

pub(crate) fn now_millis() -> i64 {
    unix_millis(SystemTime::now())
}

pub(crate) fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => millis(since),
        Err(before) => -millis(before.duration()),
    }
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn millis_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub(crate) fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + millis_duration(ms)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}
