//! The workers that deliver the queue: the SMTP engine ([`email`], with one
//! connection's batch in [`email_batch`] and its right to connect in
//! [`connection_slot`]) and the SMS worker ([`sms`]).
//!
//! They sit above the running gateway ([`crate::app::App`]): they take it to lease from
//! its store, use its settings and module, and settle what they did. The protocol code
//! they drive (`crate::email`, `crate::modules`) knows nothing of them, so nothing
//! beneath imports them back.

pub mod connection_slot;
pub mod email;
pub mod email_batch;
pub mod sms;
