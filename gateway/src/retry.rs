//! How often and how late a transient failure is retried: the policy both channels
//! (SMTP and SMS) take from their settings.

use std::time::Duration;

/// How often and how late a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a transient failure becomes final.
    pub max_attempts: u32,
    /// The first retry's delay; each further retry doubles it, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// Why a retry policy makes no sense; the settings checker names the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicyError {
    /// No attempt at all would be made.
    NoAttempts,
    /// The first delay is zero or longer than the longest.
    Delays,
}

impl RetryPolicy {
    pub fn new(
        max_attempts: u32,
        base_delay: Duration,
        max_delay: Duration,
    ) -> Result<RetryPolicy, RetryPolicyError> {
        if max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        if base_delay.is_zero() || max_delay < base_delay {
            return Err(RetryPolicyError::Delays);
        }
        Ok(RetryPolicy {
            max_attempts,
            base_delay,
            max_delay,
        })
    }

    /// The delay before the retry that follows attempt `attempt` (1-based):
    /// `base · 2^(attempt-1)`, capped, then a random point in its upper half, so
    /// that the retries of a burst spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Whether a transient failure of attempt `attempt` may be retried.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}
