//! The two limits of the SMTP engine, exactly as the contract (section 2) states them,
//! and what follows from them: how many e-mails a connection carries and how many
//! connections are open at once.

use std::num::NonZeroU32;

/// `email.max_per_connection` and `email.smtp_threads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailLimits {
    /// "Max number of e-mails sent per SMTP connection for all simultaneous threads".
    pub max_per_connection: NonZeroU32,
    /// "SMTP threads": the most connections open at once.
    pub smtp_threads: NonZeroU32,
}

impl EmailLimits {
    /// E-mails one connection carries before QUIT: `max(1, max / threads)`.
    pub fn batch_size(&self) -> u32 {
        (self.max_per_connection.get() / self.smtp_threads.get()).max(1)
    }
    /// Connections open at once: `threads`, or `max` when it is smaller.
    pub fn connections(&self) -> u32 {
        self.smtp_threads.get().min(self.max_per_connection.get())
    }
}
