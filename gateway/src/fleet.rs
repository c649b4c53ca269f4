//! This gateway's part in a fleet (several gateways on one PostgreSQL store; see
//! [`crate::store::fleet`]): its heartbeat, the burial of dead peers, the check that
//! peers agree on the settings they must share, and wake-ups from peers' work.
//!
//! On a store only one gateway uses (SQLite) none of this runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::settings::Settings;
use crate::store::fleet::{Fingerprint, Heartbeat, Peer};
use crate::store::{Channel, FleetEvent};

/// The settings every gateway of a fleet must share: the two SMTP limits (the fleet
/// holds them together), the mail server they apply to, and the SMS module with its
/// blob (peers deliver each other's SMS).
pub const SHARED_KEYS: &[&str] = &[
    "email.host",
    "email.port",
    "email.max_per_connection",
    "email.smtp_threads",
    "sms.module",
    "sms.plugin_config",
];

/// The fingerprint of `settings`' [`SHARED_KEYS`], digested with the fleet's salt.
pub fn fingerprint(salt: &str, settings: &Settings) -> Fingerprint {
    let email = &settings.email;
    let sms = &settings.sms;
    let values = [
        email.host.clone(),
        email.port.to_string(),
        email.limits.max_per_connection.to_string(),
        email.limits.smtp_threads.to_string(),
        sms.module.to_string(),
        sms.plugin_config.expose().to_owned(),
    ];
    Fingerprint::of(salt, SHARED_KEYS.iter().copied().zip(values))
}

/// What the settings API shows of the fleet.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FleetStatus {
    /// This gateway's id, as its leases and heartbeat name it.
    pub gateway: String,
    /// The digest of this gateway's shared settings.
    pub fingerprint: String,
    /// The live peers, as their last heartbeat described them.
    pub peers: Vec<PeerStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerStatus {
    pub gateway: String,
    pub fingerprint: String,
    /// Shared keys whose values differ from this gateway's (never the values).
    pub differing_keys: Vec<String>,
    pub silent_for_ms: u64,
}

/// The fleet as this gateway last saw it; `None` until the first heartbeat, and on a
/// store of its own.
#[derive(Debug, Default)]
pub struct FleetView(Mutex<Option<FleetStatus>>);

impl FleetView {
    pub fn get(&self) -> Option<FleetStatus> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, status: FleetStatus) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }
}

/// Beats until `stop` is cancelled: every `storage.dead_after / 3`, and at once after a
/// reload, so that peers learn a changed SMTP limit without delay.
pub async fn run(app: Arc<App>, stop: CancellationToken) {
    let Some(fleet) = app.store.fleet() else {
        return;
    };
    let salt = loop {
        match fleet.salt().await {
            Ok(salt) => break salt,
            Err(error) => tracing::warn!(%error, "cannot read the fleet's salt; trying again"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    // What was last warned about, per peer, so that a lasting disagreement is logged
    // when it starts or changes, not at every heartbeat.
    let mut warned: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        // A peer's console save is announced at once (`wake_on_peers`); this catches one
        // whose announcement was missed (a lost listening connection).
        app.follow_console().await;
        let live = app.live();
        let storage = &live.settings.storage;
        let fingerprint = fingerprint(&salt, &live.settings);
        let beat = Heartbeat {
            gateway: app.gateway_id.clone(),
            smtp_connections: live.settings.email.limits.connections(),
            fingerprint: fingerprint.clone(),
        };
        match fleet.heartbeat(&beat, storage.dead_after).await {
            Ok(peers) => {
                let status = status(&app.gateway_id, &fingerprint, &peers);
                warn_of_disagreement(&status, &mut warned);
                app.metrics
                    .fleet_gateways
                    .set(i64::try_from(peers.len() + 1).unwrap_or(i64::MAX));
                app.metrics.set_fingerprint(&status.fingerprint);
                app.fleet.set(status);
            }
            Err(error) => tracing::warn!(%error, "cannot write this gateway's heartbeat"),
        }
        match fleet.bury_dead(storage.dead_after).await {
            Ok(buried) if !buried.gateways.is_empty() => tracing::warn!(
                gateways = ?buried.gateways,
                leases = buried.leases,
                smtp_slots = buried.smtp_slots,
                dead_after = ?storage.dead_after,
                "gateways stopped beating: their messages are due again and their SMTP slots free"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot release the work of dead gateways"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(storage.heartbeat_every()) => {}
            () = app.reloaded.notified() => {}
        }
    }
}

fn status(gateway: &str, fingerprint: &Fingerprint, peers: &[Peer]) -> FleetStatus {
    FleetStatus {
        gateway: gateway.to_owned(),
        fingerprint: fingerprint.digest(),
        peers: peers
            .iter()
            .map(|peer| PeerStatus {
                gateway: peer.gateway.clone(),
                fingerprint: peer.fingerprint.digest(),
                differing_keys: fingerprint.differing_keys(&peer.fingerprint),
                silent_for_ms: u64::try_from(peer.silent_for.as_millis()).unwrap_or(u64::MAX),
            })
            .collect(),
    }
}

fn warn_of_disagreement(status: &FleetStatus, warned: &mut BTreeMap<String, Vec<String>>) {
    warned.retain(|gateway, _| status.peers.iter().any(|peer| &peer.gateway == gateway));
    for peer in &status.peers {
        let before = warned.get(&peer.gateway).cloned().unwrap_or_default();
        if peer.differing_keys == before {
            continue;
        }
        if peer.differing_keys.is_empty() {
            tracing::info!(peer = %peer.gateway, "a peer's shared settings agree with this gateway's again");
        } else {
            tracing::warn!(
                peer = %peer.gateway,
                keys = ?peer.differing_keys,
                "a peer's shared settings differ from this gateway's; the fleet should agree on them"
            );
        }
        warned.insert(peer.gateway.clone(), peer.differing_keys.clone());
    }
}

/// Turns what peers do into wake-ups of this gateway's idle workers, until `stop`.
pub async fn wake_on_peers(app: Arc<App>, stop: CancellationToken) {
    let Some(fleet) = app.store.fleet() else {
        return;
    };
    let mut events = fleet.events();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(FleetEvent::Queued(Channel::Sms)) => app.sms_queued.notify_one(),
            Ok(FleetEvent::Queued(Channel::Email)) => app.email_queued.notify_one(),
            Ok(FleetEvent::SmtpSlotFreed) => app.smtp_slot_freed.notify_one(),
            Ok(FleetEvent::SettingsSaved) => {
                let app = app.clone();
                tokio::spawn(async move { app.follow_console().await });
            }
            // Missed some: wake everyone, who will find out for themselves.
            Err(RecvError::Lagged(_)) => {
                let follower = app.clone();
                tokio::spawn(async move { follower.follow_console().await });
                app.sms_queued.notify_one();
                app.email_queued.notify_one();
                app.smtp_slot_freed.notify_one();
            }
            Err(RecvError::Closed) => return,
        }
    }
}
