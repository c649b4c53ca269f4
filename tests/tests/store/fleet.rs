//! The fleet's side of a shared store (`gateway::store::Fleet`): heartbeats, the burial
//! of a dead gateway, and the fleet-wide SMTP slots. PostgreSQL only: a SQLite store
//! belongs to one gateway and has no fleet.
//!
//! Each "gateway" here is a store opened on the same database, as each gateway process
//! opens its own, named as its heartbeats, leases and slots name it.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use gateway::store::{
    fleet::{Buried, Fingerprint, Heartbeat, SmtpSlot},
    Fleet, Status, Store,
};

use crate::backend::Backend;
use crate::fixtures::{lease_sms, sent, settle, sms};

/// Long enough never to run out during a test.
const LONG: Duration = Duration::from_secs(600);

/// A short `storage.dead_after`, for tests that let a gateway fall silent.
const DEAD_AFTER: Duration = Duration::from_millis(500);

/// Gateway `gateway`'s heartbeat, advertising `connections` SMTP connections.
fn beat(gateway: &str, connections: u32) -> Heartbeat {
    Heartbeat {
        gateway: gateway.to_owned(),
        smtp_connections: connections,
        fingerprint: Fingerprint::of("salt", [("email.smtp_threads", connections.to_string())]),
    }
}

fn fleet(store: &Arc<dyn Store>) -> &dyn Fleet {
    store.fleet().expect("a PostgreSQL store is shared by a fleet")
}

/// Takes a slot for `gateway` with its own limit `connections`, held for a long time,
/// peers counted live for as long.
async fn take(store: &Arc<dyn Store>, gateway: &str, connections: u32) -> Option<SmtpSlot> {
    fleet(store)
        .take_smtp_slot(gateway, connections, LONG, LONG)
        .await
        .unwrap()
}

async fn held(store: &Arc<dyn Store>) -> u64 {
    fleet(store).smtp_slots_held().await.unwrap()
}

/// The peers' names and limits, as a heartbeat of `beat` with `dead_after` answers.
async fn peers(store: &Arc<dyn Store>, beat: &Heartbeat, dead_after: Duration) -> Vec<(String, u32)> {
    fleet(store)
        .heartbeat(beat, dead_after)
        .await
        .unwrap()
        .into_iter()
        .map(|peer| (peer.gateway, peer.smtp_connections))
        .collect()
}

fn named(peers: &[(&str, u32)]) -> Vec<(String, u32)> {
    peers.iter().map(|(name, n)| (name.to_string(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_list_the_live_peers_with_their_limits_and_fingerprints() {
    let backend = Backend::postgres();
    let (a, b) = (backend.open().await, backend.open().await);

    assert_eq!(
        peers(&a, &beat("a", 5), LONG).await,
        [],
        "the first gateway is alone"
    );
    let seen_by_b = fleet(&b).heartbeat(&beat("b", 3), LONG).await.unwrap();
    assert_eq!(seen_by_b.len(), 1, "{seen_by_b:?}");
    assert_eq!(
        (seen_by_b[0].gateway.as_str(), seen_by_b[0].smtp_connections),
        ("a", 5)
    );
    assert_eq!(seen_by_b[0].fingerprint, beat("a", 5).fingerprint);
    assert!(seen_by_b[0].silent_for < Duration::from_secs(5), "{seen_by_b:?}");
    assert_eq!(peers(&a, &beat("a", 5), LONG).await, named(&[("b", 3)]));

    // b falls silent for longer than dead_after: no longer a live peer...
    tokio::time::sleep(DEAD_AFTER + Duration::from_millis(200)).await;
    assert_eq!(peers(&a, &beat("a", 5), DEAD_AFTER).await, []);
    // ...until it beats again, with a limit of its new settings.
    assert_eq!(peers(&b, &beat("b", 2), DEAD_AFTER).await, named(&[("a", 5)]));
    assert_eq!(peers(&a, &beat("a", 5), DEAD_AFTER).await, named(&[("b", 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burying_a_dead_gateway_ends_its_leases_keeping_the_attempts_and_frees_its_slots() {
    let backend = Backend::postgres();
    let (live, dead) = (backend.open().await, backend.open().await);
    for n in 0..4 {
        live.enqueue(sms(&n.to_string()), None).await.unwrap();
    }
    fleet(&dead)
        .heartbeat(&beat("dead", 5), DEAD_AFTER)
        .await
        .unwrap();
    fleet(&live)
        .heartbeat(&beat("live", 5), DEAD_AFTER)
        .await
        .unwrap();
    let theirs = lease_sms(&*dead, 3, "dead").await;
    let mine = lease_sms(&*live, 1, "live").await;
    take(&dead, "dead", 5).await.expect("a free slot");
    take(&dead, "dead", 5).await.expect("a free slot");
    take(&live, "live", 5).await.expect("a free slot");
    assert_eq!(
        fleet(&live).bury_dead(DEAD_AFTER).await.unwrap(),
        Buried::default(),
        "nobody is dead yet"
    );

    tokio::time::sleep(DEAD_AFTER + Duration::from_millis(200)).await;
    fleet(&live)
        .heartbeat(&beat("live", 5), DEAD_AFTER)
        .await
        .unwrap();
    let buried = fleet(&live).bury_dead(DEAD_AFTER).await.unwrap();

    assert_eq!(
        buried,
        Buried {
            gateways: vec!["dead".into()],
            leases: 3,
            smtp_slots: 2
        }
    );
    assert_eq!(held(&live).await, 1, "the live gateway keeps its own slot");
    let record = live.get(&mine[0].id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.lease_owner.as_deref()),
        (Status::Sending, Some("live")),
        "and its own lease"
    );
    let retaken = lease_sms(&*live, 10, "live").await;
    let mut ids: Vec<&str> = retaken.iter().map(|l| l.id.as_str()).collect();
    let mut expected: Vec<&str> = theirs.iter().map(|l| l.id.as_str()).collect();
    ids.sort_unstable();
    expected.sort_unstable();
    assert_eq!(ids, expected, "the dead one's messages are due at once");
    assert!(
        retaken.iter().all(|l| l.attempts == 2),
        "the dead one may have sent them: its attempts still count"
    );
    assert!(
        !settle(&*dead, &theirs[0], sent(Some("late"))).await,
        "the dead one's late outcome changes nothing"
    );
    assert_eq!(peers(&live, &beat("live", 5), LONG).await, [], "it is forgotten");
    assert_eq!(
        fleet(&live).bury_dead(DEAD_AFTER).await.unwrap(),
        Buried::default()
    );
}

/// Six connections' worth of takers in each of three gateways, all wanting one of five
/// slots at once: no slot is ever held twice, so the fleet never holds more than five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takers_of_several_gateways_never_hold_more_slots_than_the_limit() {
    const LIMIT: u32 = 5;
    const TAKES: usize = 8;
    let backend = Backend::postgres();
    let holding = Arc::new(Mutex::new(HashSet::<i32>::new()));
    let most = Arc::new(AtomicUsize::new(0));
    let mut takers = Vec::new();
    for gateway in ["a", "b", "c"] {
        let store = backend.open().await;
        fleet(&store)
            .heartbeat(&beat(gateway, LIMIT), LONG)
            .await
            .unwrap();
        for _ in 0..6 {
            let (store, holding, most) = (store.clone(), holding.clone(), most.clone());
            takers.push(tokio::spawn(async move {
                let mut taken = 0;
                while taken < TAKES {
                    let Some(slot) = take(&store, gateway, LIMIT).await else {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    };
                    {
                        let mut holding = holding.lock().unwrap();
                        assert!(slot.number >= 0 && slot.number < LIMIT as i32, "{slot:?}");
                        assert!(
                            holding.insert(slot.number),
                            "slot {} held twice at once",
                            slot.number
                        );
                        most.fetch_max(holding.len(), Ordering::Relaxed);
                    }
                    // Held long enough that, with eighteen takers waiting, every slot
                    // is taken at once on a loaded machine too (CI saw 4 of 5 at 5 ms).
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    holding.lock().unwrap().remove(&slot.number);
                    fleet(&store).give_back_smtp_slot(&slot).await.unwrap();
                    taken += 1;
                }
            }));
        }
    }
    for taker in takers {
        taker.await.unwrap();
    }
    assert_eq!(
        most.load(Ordering::Relaxed),
        LIMIT as usize,
        "the takers used every slot"
    );
    assert_eq!(held(&backend.open().await).await, 0, "every slot was given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smallest_limit_a_live_gateway_advertises_holds_for_the_fleet() {
    let backend = Backend::postgres();
    let (a, b) = (backend.open().await, backend.open().await);
    fleet(&a).heartbeat(&beat("a", 5), DEAD_AFTER).await.unwrap();
    // b has reloaded with smtp_threads = 2; a has not yet.
    fleet(&b).heartbeat(&beat("b", 2), DEAD_AFTER).await.unwrap();

    let limited = |store: Arc<dyn Store>| async move {
        let mut slots = Vec::new();
        while let Some(slot) = fleet(&store)
            .take_smtp_slot("a", 5, LONG, DEAD_AFTER)
            .await
            .unwrap()
        {
            slots.push(slot.number);
        }
        slots
    };
    assert_eq!(limited(a.clone()).await, [0, 1], "a keeps to b's smaller limit");

    // A silent gateway's limit no longer counts: b is dead, or stopped without leaving.
    tokio::time::sleep(DEAD_AFTER + Duration::from_millis(200)).await;
    fleet(&a).heartbeat(&beat("a", 5), DEAD_AFTER).await.unwrap();
    assert_eq!(limited(a.clone()).await, [2, 3, 4], "a alone has its own limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_given_back_with_a_stale_token_changes_nothing() {
    let store = Backend::postgres().open().await;
    fleet(&store).heartbeat(&beat("a", 1), LONG).await.unwrap();
    let first = fleet(&store)
        .take_smtp_slot("a", 1, Duration::from_millis(200), LONG)
        .await
        .unwrap()
        .expect("the one slot is free");

    // The hold ran out (a hung connection); another gateway takes the slot.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = take(&store, "b", 1)
        .await
        .expect("a slot whose hold ran out is free");
    assert_eq!(second.number, first.number);
    assert_ne!(second.token, first.token);

    fleet(&store).give_back_smtp_slot(&first).await.unwrap();
    assert_eq!(held(&store).await, 1, "the late give-back freed nothing");
    assert!(take(&store, "c", 1).await.is_none(), "the slot is still b's");

    fleet(&store).give_back_smtp_slot(&second).await.unwrap();
    assert_eq!(held(&store).await, 0);
    assert!(take(&store, "c", 1).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_frees_the_gateways_slots_and_its_place_among_the_peers() {
    let backend = Backend::postgres();
    let (a, b) = (backend.open().await, backend.open().await);
    fleet(&a).heartbeat(&beat("a", 5), LONG).await.unwrap();
    fleet(&b).heartbeat(&beat("b", 5), LONG).await.unwrap();
    for _ in 0..4 {
        take(&a, "a", 5).await.expect("a free slot");
    }
    take(&b, "b", 5).await.expect("a free slot");
    assert!(take(&b, "b", 5).await.is_none(), "all five are held");

    fleet(&a).leave("a").await.unwrap();

    assert_eq!(held(&b).await, 1, "only b's slot is still held");
    assert_eq!(peers(&b, &beat("b", 5), LONG).await, [], "a is gone");
    for _ in 0..4 {
        take(&b, "b", 5).await.expect("a's slots are free");
    }
    assert!(take(&b, "b", 5).await.is_none());
}

/// An admin lowers the limit from 5 to 2 while five connections are open: the fleet
/// opens no new one until fewer than two are held, whatever their slot numbers, so
/// connections under the old limit and the new never add up to more than either allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_limit_is_lowered_no_slot_is_taken_until_fewer_than_the_new_limit_are_held() {
    let backend = Backend::postgres();
    let (a, b) = (backend.open().await, backend.open().await);
    fleet(&a).heartbeat(&beat("a", 5), LONG).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(take(&a, "a", 5).await.expect("a free slot"));
    }
    // b has reloaded with smtp_threads = 2; a's five connections are still open.
    fleet(&b).heartbeat(&beat("b", 2), LONG).await.unwrap();

    // Slots 0, 1, 2, then 3 close, the ones below the new limit first: two and more
    // are still held each time.
    while open.len() > 1 {
        assert!(
            take(&b, "b", 2).await.is_none(),
            "a slot was taken while {} were held, with a limit of 2",
            open.len()
        );
        let closed = open.remove(0);
        fleet(&a).give_back_smtp_slot(&closed).await.unwrap();
    }
    let slot = take(&b, "b", 2).await.expect("one held, below the limit of 2");
    assert_eq!(slot.number, 0);
    assert!(
        take(&a, "a", 5).await.is_none(),
        "a too keeps to the smallest limit"
    );
}
