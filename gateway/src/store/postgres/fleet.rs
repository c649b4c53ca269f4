//! The fleet's rows: heartbeats, the dead's leases and slots, and the SMTP slots
//! themselves (see [`crate::store::fleet`]).

use deadpool_postgres::GenericClient;

use super::{execute, one_row, rows, Attempt};
use crate::store::fleet::{Buried, Fingerprint, Heartbeat, Peer, SmtpSlot};
use crate::store::stored::millis_duration;

/// The channel PostgreSQL notifies when an SMTP slot is given back.
pub(super) const SLOT_NOTIFICATION: &str = "gateway_smtp_slot";

/// The advisory lock key held while a slot is taken: "gw-slots" in ASCII. Takers count
/// the slots held, so they go one at a time: two counting at once could both see room
/// for one more.
const SLOT_LOCK: i64 = 0x6777_2d73_6c6f_7473;

pub(super) async fn heartbeat(
    db: &impl GenericClient,
    beat: &Heartbeat,
    dead_after: i64,
) -> Attempt<Vec<Peer>> {
    let fingerprint = serde_json::to_string(&beat.fingerprint).unwrap_or_default();
    let connections = i32::try_from(beat.smtp_connections).unwrap_or(i32::MAX);
    execute(
        db,
        "INSERT INTO gateways (id, started_at, heartbeat_at, smtp_connections, fingerprint)
         VALUES ($1, gateway_now(), gateway_now(), $2, $3)
         ON CONFLICT (id) DO UPDATE
         SET heartbeat_at = gateway_now(), smtp_connections = $2, fingerprint = $3",
        &[&beat.gateway, &connections, &fingerprint],
    )
    .await?;
    let peers = rows(
        db,
        "SELECT id, smtp_connections, fingerprint, gateway_now() - heartbeat_at FROM gateways
         WHERE id <> $1 AND heartbeat_at > gateway_now() - $2 ORDER BY id",
        &[&beat.gateway, &dead_after],
    )
    .await?;
    Ok(peers
        .iter()
        .map(|row| Peer {
            gateway: row.get(0),
            smtp_connections: u32::try_from(row.get::<_, i32>(1)).unwrap_or(1),
            fingerprint: serde_json::from_str::<Fingerprint>(row.get(2)).unwrap_or_default(),
            silent_for: millis_duration(row.get(3)),
        })
        .collect())
}

pub(super) async fn bury_dead(db: &impl GenericClient, dead_after: i64) -> Attempt<Buried> {
    // Locked and skipped if another peer is burying them this instant.
    let dead: Vec<String> = rows(
        db,
        "SELECT id FROM gateways WHERE heartbeat_at <= gateway_now() - $1 ORDER BY id FOR UPDATE SKIP LOCKED",
        &[&dead_after],
    )
    .await?
    .iter()
    .map(|row| row.get(0))
    .collect();
    if dead.is_empty() {
        return Ok(Buried::default());
    }
    // The dead may have sent what they held: the attempts stay counted.
    let leases = execute(
        db,
        "UPDATE messages SET lease_expires_at = gateway_now(), updated_at = gateway_now()
         WHERE status = 'sending' AND lease_owner = ANY($1) AND lease_expires_at > gateway_now()",
        &[&dead],
    )
    .await?;
    let smtp_slots = free_slots_of(db, &dead).await?;
    execute(db, "DELETE FROM gateways WHERE id = ANY($1)", &[&dead]).await?;
    if leases > 0 {
        super::messages::notify_queued(db, crate::store::Channel::Sms).await?;
        super::messages::notify_queued(db, crate::store::Channel::Email).await?;
    }
    Ok(Buried {
        gateways: dead,
        leases,
        smtp_slots,
    })
}

/// Frees every slot the gateways `holders` hold.
async fn free_slots_of(db: &impl GenericClient, holders: &[String]) -> Attempt<u64> {
    let freed = execute(
        db,
        "UPDATE smtp_slots SET holder = NULL, token = NULL, expires_at = NULL WHERE holder = ANY($1)",
        &[&holders],
    )
    .await?;
    if freed > 0 {
        execute(db, "SELECT pg_notify($1, '')", &[&SLOT_NOTIFICATION]).await?;
    }
    Ok(freed)
}

pub(super) async fn leave(db: &impl GenericClient, gateway: &str) -> Attempt<()> {
    free_slots_of(db, &[gateway.to_owned()]).await?;
    execute(db, "DELETE FROM gateways WHERE id = $1", &[&gateway]).await?;
    Ok(())
}

pub(super) async fn take_smtp_slot(
    db: &impl GenericClient,
    gateway: &str,
    connections: u32,
    hold_for: i64,
    dead_after: i64,
) -> Attempt<Option<SmtpSlot>> {
    let own = i32::try_from(connections).unwrap_or(i32::MAX);
    execute(db, "SELECT pg_advisory_xact_lock($1)", &[&SLOT_LOCK]).await?;
    // While an admin changes the limit, gateways disagree on it until each has reloaded:
    // the fleet keeps to the smallest any live gateway advertises, so it never opens more
    // connections than the old or the new limit allows.
    let limit: i32 = one_row(
        db,
        "SELECT least($1::integer, (SELECT min(smtp_connections) FROM gateways
                                    WHERE heartbeat_at > gateway_now() - $2))",
        &[&own, &dead_after],
    )
    .await?
    .get::<_, Option<i32>>(0)
    .unwrap_or(own);
    execute(
        db,
        "INSERT INTO smtp_slots (slot) SELECT generate_series(0, $1 - 1) ON CONFLICT (slot) DO NOTHING",
        &[&limit],
    )
    .await?;
    // Every live hold counts, below the limit or not: after the limit was lowered, the
    // connections opened under the old one still hold slots above the new one, and no
    // new connection opens until old and new together are below it.
    let taken = super::optional_row(
        db,
        "UPDATE smtp_slots
         SET holder = $2, token = replace(gen_random_uuid()::text, '-', ''),
             expires_at = gateway_now() + $3
         WHERE slot = (SELECT slot FROM smtp_slots
                       WHERE slot < $1 AND (holder IS NULL OR expires_at <= gateway_now())
                       ORDER BY slot LIMIT 1)
           AND (SELECT count(*) FROM smtp_slots
                WHERE holder IS NOT NULL AND expires_at > gateway_now()) < $1
         RETURNING slot, token",
        &[&limit, &gateway, &hold_for],
    )
    .await?;
    Ok(taken.map(|row| SmtpSlot {
        number: row.get(0),
        token: row.get(1),
    }))
}

pub(super) async fn give_back_smtp_slot(db: &impl GenericClient, slot: &SmtpSlot) -> Attempt<()> {
    let freed = execute(
        db,
        "UPDATE smtp_slots SET holder = NULL, token = NULL, expires_at = NULL
         WHERE slot = $1 AND token = $2",
        &[&slot.number, &slot.token],
    )
    .await?;
    if freed > 0 {
        execute(db, "SELECT pg_notify($1, '')", &[&SLOT_NOTIFICATION]).await?;
    }
    Ok(())
}

pub(super) async fn smtp_slots_held(db: &impl GenericClient) -> Attempt<u64> {
    let held: i64 = one_row(
        db,
        "SELECT count(*) FROM smtp_slots WHERE holder IS NOT NULL AND expires_at > gateway_now()",
        &[],
    )
    .await?
    .get(0);
    Ok(u64::try_from(held).unwrap_or(0))
}
