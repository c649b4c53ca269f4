//! Delivery reports: what a provider says became of an SMS it was sent.
//!
//! A report finds its message by the gateway's own message id when the provider echoes
//! it (a client reference), else by the provider's id, as the send's answer recorded it.
//! When the message id names an SMS, it decides alone: providers report multipart SMS
//! part by part under ids of their own, and the id the send's answer gave is only one
//! of them, so requiring both ids to agree would drop those reports.
//!
//! A report may arrive before the outcome of its send is recorded (a provider that
//! reports before it answers the send, or a report racing the answer): the message is
//! still `sending`, or its provider id is not stored yet. Such a report is not dropped
//! but **held** in the store, and applied the moment the send's outcome is recorded as
//! sent (in the same transaction). A held report nobody claims is purged after
//! `sms.report_hold`.

use super::{DeliveryStatus, Status};

/// A delivery report as a module parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The module that parsed it.
    pub module: String,
    /// The provider's id for the message; `None` when the report carries none.
    pub provider_id: Option<String>,
    /// The gateway's message id, when the provider echoes it.
    pub message_id: Option<String>,
    pub status: DeliveryStatus,
    /// The provider's own words, kept as the message's error when undelivered.
    pub detail: Option<String>,
}

/// What became of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// It changed the message with this id.
    Applied { message_id: String },
    /// No message could take it yet: it is held until its send's outcome is recorded.
    Held,
}

impl Status {
    /// Whether a delivery report may change a message of this status: its send's outcome
    /// is recorded and it reached the provider. A later report replaces an earlier one.
    pub fn takes_reports(self) -> bool {
        matches!(self, Status::Sent | Status::Delivered | Status::Undelivered)
    }
}
