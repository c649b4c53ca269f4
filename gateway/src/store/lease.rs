//! A lease: a delivery worker's claim on one message while it tries to deliver it, and
//! the outcome that ends it.
//!
//! [`Store::lease`](super::Store::lease) hands a worker due messages, each with a
//! [`LeaseToken`] of its own. The worker ends each lease with one [`Settlement`]: the
//! message's id, its token, and the [`Outcome`]. The store applies a settlement only while
//! that very lease still holds the message; a lease that ran out and was taken again (by
//! another gateway, or by this one) has a new token, so the first holder's late outcome
//! changes nothing and cannot overwrite what the new holder records.
//!
//! Tokens are per lease, not per worker or per process: a gateway that leases the same
//! message twice (its first lease ran out while a slow SMTP server kept it waiting) holds
//! two different tokens, and only the newer one counts.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// The proof that a lease is still the one in force: random, unique per lease.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A new token, never handed out before.
    pub fn new() -> LeaseToken {
        LeaseToken(uuid::Uuid::now_v7().simple().to_string())
    }

    /// A token as stored.
    pub fn from_stored(token: String) -> LeaseToken {
        LeaseToken(token)
    }

    /// The token as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LeaseToken {
    fn default() -> Self {
        LeaseToken::new()
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({})", self.0)
    }
}

/// A message handed to a delivery worker by [`Store::lease`](super::Store::lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub id: String,
    /// This lease's token: every outcome for it must carry it.
    pub token: LeaseToken,
    /// The message's payload, JSON text as it was queued.
    pub payload: String,
    /// Attempts so far, this one included (1 on the first lease).
    pub attempts: u32,
    /// The mailing the message belongs to, if any.
    pub mailing_id: Option<String>,
    /// The mailing's shared payload (JSON text), when the message belongs to a mailing:
    /// read once per lease and shared by its messages, not copied into each.
    pub mailing_payload: Option<Arc<str>>,
}

impl Leased {
    /// The settlement that ends this lease with `outcome`.
    pub fn settle(&self, outcome: Outcome) -> Settlement {
        Settlement {
            id: self.id.clone(),
            token: self.token.clone(),
            outcome,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider or the SMTP server took the message: `sent`, with its id or reply.
    Sent { provider_id: Option<String> },
    /// Not this time: `queued` again, due at `due_at`, with the error kept.
    Retry { due_at: SystemTime, error: String },
    /// Failed for good, with the reason.
    Failed { error: String },
    /// Never attempted (its batch ended first): `queued` again, due at `due_at`, and the
    /// attempt its lease counted is uncounted.
    GiveBack { due_at: SystemTime },
}

/// One lease's outcome, as handed to [`Store::settle`](super::Store::settle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub id: String,
    pub token: LeaseToken,
    pub outcome: Outcome,
}

/// Ends leases with [`Store::settle`](super::Store::settle) and logs what did not apply:
/// a lease that had run out (another holder has the message now) or a store that closed
/// before the outcome could be written. Workers have nothing else to do about either.
pub async fn settle_and_log(store: &dyn super::Store, settlements: Vec<Settlement>) {
    let ids: Vec<String> = settlements.iter().map(|s| s.id.clone()).collect();
    match store.settle(settlements).await {
        Ok(applied) => {
            for (id, _) in ids.iter().zip(applied).filter(|(_, applied)| !applied) {
                tracing::warn!(message_id = %id, "outcome not recorded: the lease had run out");
            }
        }
        Err(error) => {
            tracing::error!(messages = ?ids, %error, "outcomes not recorded; those messages will be tried again")
        }
    }
}
