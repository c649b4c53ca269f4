//! SMS: numbers ([`number`]), one send through a module ([`send`]), and what providers
//! tell the gateway ([`inbound`]). The worker that delivers the queue is in
//! `crate::delivery::sms`.

pub mod country;
pub mod inbound;
pub mod number;
pub mod send;
pub mod sender;
pub mod session;

use serde::{Deserialize, Serialize};

/// An SMS as queued (the store's payload for channel `sms`): checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsPayload {
    /// E.164.
    pub to: String,
    pub text: String,
    pub sender: String,
}
