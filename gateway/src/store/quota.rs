//! Sending quotas (`email.max_per_minute|hour|day`): every e-mail the engine hands to
//! the SMTP server first takes a send from the store, which keeps the time of each send
//! for the longest window. A send is taken only while every window has room, in one
//! transaction (on PostgreSQL under an advisory lock, so the whole fleet counts as
//! one), so no window ever holds more than its maximum, across restarts too.
//!
//! The windows slide: "30 per minute" means no 60 seconds hold more than 30 sends,
//! whenever they start.

use std::time::{Duration, SystemTime};

use super::StoreError;

/// One window of a quota: at most `max` sends within any `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindow {
    pub length: Duration,
    pub max: u32,
}

/// The sending quota: a side of the store of its own.
#[async_trait::async_trait]
pub trait SendQuota: Send + Sync {
    /// Takes one send if every window has room (`Ok(None)`), else takes nothing and
    /// answers when the next send may go (`Ok(Some(time))`). No windows: always room.
    async fn take_send(&self, windows: &[QuotaWindow]) -> Result<Option<SystemTime>, StoreError>;

    /// When the next send may go, if not now; takes nothing.
    async fn next_send(&self, windows: &[QuotaWindow]) -> Result<Option<SystemTime>, StoreError>;
}

/// The longest window: sends older than it are no longer counted, and are deleted.
pub(crate) fn longest(windows: &[QuotaWindow]) -> Duration {
    windows.iter().map(|w| w.length).max().unwrap_or_default()
}
