//! How the gateway writes times for people and other programs: RFC 3339 in UTC, to the
//! millisecond. Below both the API and the workers, so neither imports the other for it.

use std::time::SystemTime;

/// `2026-12-02T12:21:50.211Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
