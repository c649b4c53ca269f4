//! Retention: what is deleted once it is older than `storage.retention` (held delivery
//! reports: `sms.report_hold`), and in which batches.
//!
//! Only what is finished goes: a message that is sent, failed, delivered or
//! undelivered (a mailing's e-mails go with their mailing, once none of them is queued
//! or sending), an inbound SMS forwarded or received without a webhook. What is still
//! to be done is kept however old it is. Each call deletes a small batch in one write,
//! so a purge of millions of rows never holds the writer for long: other writes are
//! committed between its batches.

use std::fmt;

/// What a purge deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgeKind {
    /// Finished messages sent on their own, by when they last changed.
    Messages,
    /// Mailings whose e-mails are all finished, by creation, with those e-mails.
    Mailings,
    /// Inbound SMS with nothing left to forward, by arrival.
    Inbound,
    /// Delivery reports no message claimed, by arrival.
    HeldReports,
    /// Idempotency keys, by first use.
    IdempotencyKeys,
}

impl PurgeKind {
    /// Every kind, in the order a purge round takes them.
    pub const ALL: [PurgeKind; 5] = [
        PurgeKind::Messages,
        PurgeKind::Mailings,
        PurgeKind::Inbound,
        PurgeKind::HeldReports,
        PurgeKind::IdempotencyKeys,
    ];

    /// The name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeKind::Messages => "messages",
            PurgeKind::Mailings => "mailings",
            PurgeKind::Inbound => "inbound",
            PurgeKind::HeldReports => "held_reports",
            PurgeKind::IdempotencyKeys => "idempotency_keys",
        }
    }
}

impl fmt::Display for PurgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one purge write deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Rows of the kind asked for (for [`PurgeKind::Mailings`], whole mailings).
    pub rows: u64,
    /// E-mails deleted with their mailing ([`PurgeKind::Mailings`] only).
    pub mailing_messages: u64,
    /// Whether more of this kind may be due: call again.
    pub more: bool,
}
