//! The suppression list: addresses no mailing may send to again.
//!
//! An address gets here three ways ([`SuppressionReason`]): its owner unsubscribed, a
//! server refused it for good at RCPT (a 5xx: the mailbox does not exist), or an admin
//! added it. A mailing created later skips it and counts it as `suppressed`
//! ([`Store::create_mailing`](super::Store::create_mailing), in the same transaction);
//! `POST /v1/email` skips it unless the request is transactional.
//!
//! Addresses are kept as mail servers compare them: the local part as written, the
//! domain in lower case (`delivery_key` in `email::message`); the caller normalises.
//! An address suppressed twice keeps its first entry (the reason it first got there).

use std::time::SystemTime;

use super::StoreError;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuppressionReason {
    /// Its owner followed an unsubscribe link.
    Unsubscribe,
    /// A server refused it for good (5xx at RCPT).
    Bounce,
    /// An admin added it.
    Admin,
}

impl SuppressionReason {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Unsubscribe => "unsubscribe",
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Admin => "admin",
        }
    }
}

impl std::str::FromStr for SuppressionReason {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unsubscribe" => Ok(SuppressionReason::Unsubscribe),
            "bounce" => Ok(SuppressionReason::Bounce),
            "admin" => Ok(SuppressionReason::Admin),
            other => Err(StoreError::Corrupt(format!(
                "unknown suppression reason {other:?}"
            ))),
        }
    }
}

/// An address to suppress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSuppression {
    /// Normalised (see the module doc).
    pub address: String,
    pub reason: SuppressionReason,
    /// The server's reply for a bounce, the mailing for an unsubscribe, an admin's note.
    pub detail: Option<String>,
}

/// An entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub address: String,
    pub reason: SuppressionReason,
    pub detail: Option<String>,
    pub created_at: SystemTime,
}

/// The suppression list: a side of the store of its own.
#[async_trait::async_trait]
pub trait Suppressions: Send + Sync {
    /// Adds `entries`; an address already listed keeps its entry. Returns how many were new.
    async fn suppress(&self, entries: Vec<NewSuppression>) -> Result<u64, StoreError>;

    /// Removes `address`; false if it was not listed.
    async fn unsuppress(&self, address: &str) -> Result<bool, StoreError>;

    /// Entries in address order: at most `limit`, after the address `after`.
    async fn suppressions(&self, limit: usize, after: Option<String>)
        -> Result<Vec<Suppression>, StoreError>;

    /// Which of `addresses` are listed, in the order given.
    async fn suppressed(&self, addresses: Vec<String>) -> Result<Vec<String>, StoreError>;

    /// The secret unsubscribe links are sealed with: `fresh` stored first if there is
    /// none yet, so the first gateway to ask makes it and every other one (and every
    /// restart) reads the same.
    async fn unsubscribe_secret(&self, fresh: String) -> Result<String, StoreError>;
}
