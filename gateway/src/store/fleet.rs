//! A fleet: several gateways on one shared store, each knowing the others.
//!
//! Only a store that several gateways can share has a [`Fleet`] (PostgreSQL); a gateway
//! on SQLite is alone and needs none of this.
//!
//! - **Heartbeats.** Every gateway writes its own row every few seconds
//!   ([`Fleet::heartbeat`]), with what it must agree on with the others (a
//!   [`Fingerprint`] of its settings, its SMTP connection limit), and reads its peers'.
//! - **The dead.** A gateway whose heartbeat is older than `storage.dead_after` is
//!   gone: any peer ends its leases (its messages are due at once, their attempts still
//!   counted, since the dead one may have sent them) and frees its SMTP slots
//!   ([`Fleet::bury_dead`]). A gateway that stops gracefully gives back its leases and
//!   slots itself and leaves ([`Fleet::leave`]).
//! - **SMTP slots.** *SMTP threads* limits the connections one mail server sees from the
//!   whole fleet, not from each gateway: a connection is opened only under one of the
//!   numbered slots below the limit ([`Fleet::take_smtp_slot`]). While the limit
//!   changes, the fleet uses the smallest that any live gateway advertises, and counts
//!   every slot still held, those above a lowered limit too, so it never opens more
//!   than the old or the new limit allows.
//! - **Wake-ups.** Work queued or a slot freed on one gateway wakes the idle workers of
//!   all ([`FleetEvent`]); a lost wake-up costs only the workers' poll interval.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{Channel, StoreError};

/// What a gateway tells its peers with each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The gateway's id (`App::gateway_id`): unique per process.
    pub gateway: String,
    /// Its own SMTP connection limit (`EmailLimits::connections`).
    pub smtp_connections: u32,
    /// The settings the fleet must agree on, digested.
    pub fingerprint: Fingerprint,
}

/// Digests of the settings every gateway of a fleet must share (the SMTP limits, the SMS
/// module and its blob), so that two gateways can tell which keys differ without either
/// showing a value.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// Each key's digest (the first 16 hex digits of SHA-256 of its value).
    pub keys: BTreeMap<String, String>,
}

/// The first 16 hex digits of the SHA-256 of `value`: enough to tell values apart,
/// too little to guess a secret from.
fn short_digest(value: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Fingerprint {
    /// The fingerprint of these keys and values, each digested with the fleet's `salt`.
    pub fn of<'a>(salt: &str, settings: impl IntoIterator<Item = (&'a str, String)>) -> Fingerprint {
        let keys = settings
            .into_iter()
            .map(|(key, value)| (key.to_owned(), short_digest(&format!("{salt}\n{key}\n{value}"))))
            .collect();
        Fingerprint { keys }
    }

    /// One digest of every key: what metrics and the settings API show.
    pub fn digest(&self) -> String {
        let all: Vec<String> = self
            .keys
            .iter()
            .map(|(key, digest)| format!("{key}={digest}"))
            .collect();
        short_digest(&all.join("\n"))
    }

    /// The keys whose values differ between the two (or that only one has).
    pub fn differing_keys(&self, other: &Fingerprint) -> Vec<String> {
        let mut keys: Vec<String> = self
            .keys
            .keys()
            .chain(other.keys.keys())
            .filter(|key| self.keys.get(*key) != other.keys.get(*key))
            .cloned()
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// Another gateway of the fleet, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub gateway: String,
    pub smtp_connections: u32,
    pub fingerprint: Fingerprint,
    /// How long ago its last heartbeat was written, on the database's clock.
    pub silent_for: Duration,
}

/// What [`Fleet::bury_dead`] cleaned up after gateways that stopped beating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buried {
    /// The dead gateways' ids.
    pub gateways: Vec<String>,
    /// Their leases, ended: those messages are due now.
    pub leases: u64,
    /// Their SMTP slots, freed.
    pub smtp_slots: u64,
}

/// A connection slot held against the fleet's *SMTP threads* limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSlot {
    /// Which slot: from 0 to the limit less one.
    pub number: i32,
    /// This hold's own token: giving back a slot another holder has since taken (after
    /// this one's hold ran out) changes nothing.
    pub token: String,
}

/// Something another gateway did that an idle worker here may want to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetEvent {
    /// Work of this channel is due now.
    Queued(Channel),
    /// An SMTP slot was given back.
    SmtpSlotFreed,
    /// A gateway saved a new version of the console's settings.
    SettingsSaved,
}

/// The fleet's side of a shared store.
#[async_trait::async_trait]
pub trait Fleet: Send + Sync {
    /// The fleet's random salt for [`Fingerprint::of`], the same for every gateway.
    async fn salt(&self) -> Result<String, StoreError>;

    /// Writes this gateway's heartbeat and returns the live peers' (heartbeats newer
    /// than `dead_after`), this gateway left out.
    async fn heartbeat(&self, beat: &Heartbeat, dead_after: Duration) -> Result<Vec<Peer>, StoreError>;

    /// Ends the leases and frees the SMTP slots of every gateway whose heartbeat is
    /// older than `dead_after`, and forgets those gateways.
    async fn bury_dead(&self, dead_after: Duration) -> Result<Buried, StoreError>;

    /// On a graceful stop: gives back this gateway's SMTP slots and removes its
    /// heartbeat. (Its leases are released by `Store::release_leases`.)
    async fn leave(&self, gateway: &str) -> Result<(), StoreError>;

    /// Takes a free SMTP slot for `gateway` for at most `hold_for`, if fewer slots than
    /// the fleet's limit are held (whatever their numbers): the limit is the smaller of
    /// `connections` and every live peer's advertised limit (peers silent for longer
    /// than `dead_after` do not count).
    async fn take_smtp_slot(
        &self,
        gateway: &str,
        connections: u32,
        hold_for: Duration,
        dead_after: Duration,
    ) -> Result<Option<SmtpSlot>, StoreError>;

    /// Gives a slot back.
    async fn give_back_smtp_slot(&self, slot: &SmtpSlot) -> Result<(), StoreError>;

    /// How many SMTP slots are held now, by the whole fleet.
    async fn smtp_slots_held(&self) -> Result<u64, StoreError>;

    /// What other gateways do, as it happens (best effort: events may be missed).
    fn events(&self) -> broadcast::Receiver<FleetEvent>;
}
