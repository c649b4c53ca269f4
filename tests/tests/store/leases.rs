//! Leasing: which due messages a worker gets, that no two workers hold one message at
//! once, and how a lease ends without an outcome (it runs out, it is released, or
//! every lease is ended).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use gateway::store::{Channel, Outcome, QueueDepth, Status, Store};

use crate::fixtures::{email, failed, lease_sms, sent, settle, sms};

pub async fn lease_takes_the_oldest_due_first_and_only_its_channel(store: Arc<dyn Store>) {
    let a = store.enqueue(sms("a"), None).await.unwrap().id;
    let b = store.enqueue(sms("b"), None).await.unwrap().id;
    let mail = store.enqueue(email("e"), None).await.unwrap().id;
    let c = store.enqueue(sms("c"), None).await.unwrap().id;
    let leased = lease_sms(&*store, 1, "w").await;
    assert_eq!(leased[0].id, a);
    // Due long ago: now the oldest due of all.
    let retry = Outcome::Retry {
        due_at: UNIX_EPOCH + Duration::from_secs(1),
        error: "busy".into(),
    };
    assert!(settle(&*store, &leased[0], retry).await);

    let leased = lease_sms(&*store, 10, "w").await;

    assert_eq!(leased.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [a, b, c]);
    let email = store
        .lease(Channel::Email, 10, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(email.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [mail]);
}

/// Workers of one gateway, or of several on PostgreSQL, lease at the same time.
pub async fn concurrent_leasers_never_share_a_message(store: Arc<dyn Store>) {
    for n in 0..200 {
        store.enqueue(sms(&n.to_string()), None).await.unwrap();
    }

    let leasers: Vec<_> = (0..4)
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(async move {
                let owner = format!("worker-{worker}");
                let mut mine = Vec::new();
                loop {
                    let leased = lease_sms(&*store, 7, &owner).await;
                    if leased.is_empty() {
                        return mine;
                    }
                    mine.extend(leased.into_iter().map(|l| l.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for leaser in leasers {
        all.extend(leaser.await.unwrap());
    }

    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200, "every message leased once");
    assert_eq!(distinct.len(), 200, "no message leased twice");
}

pub async fn expired_lease_is_taken_over_and_the_first_owner_loses(store: Arc<dyn Store>) {
    let id = store.enqueue(sms("hi"), None).await.unwrap().id;

    let first = store
        .lease(Channel::Sms, 10, "worker-a", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        first
            .iter()
            .map(|l| (l.id.as_str(), l.attempts))
            .collect::<Vec<_>>(),
        [(id.as_str(), 1)]
    );
    assert_eq!(first[0].payload, sms("hi").payload.to_string());
    assert!(lease_sms(&*store, 10, "worker-b").await.is_empty());

    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = lease_sms(&*store, 10, "worker-b").await;
    assert_eq!(
        second
            .iter()
            .map(|l| (l.id.as_str(), l.attempts))
            .collect::<Vec<_>>(),
        [(id.as_str(), 2)]
    );

    assert!(!settle(&*store, &first[0], sent(Some("late"))).await);
    assert!(!settle(&*store, &first[0], failed("late")).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.lease_owner.as_deref()),
        (Status::Sending, Some("worker-b"))
    );

    assert!(settle(&*store, &second[0], sent(Some("provider-1"))).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Sent);
    assert_eq!(record.provider_id.as_deref(), Some("provider-1"));
    assert_eq!((record.lease_owner, record.lease_expires_at), (None, None));
    assert!(
        !settle(&*store, &second[0], sent(None)).await,
        "an outcome applies once"
    );
}

pub async fn queue_depth_counts_what_a_lease_would_pick(store: Arc<dyn Store>) {
    assert_eq!(
        store.queue_depth(Channel::Sms).await.unwrap(),
        QueueDepth {
            due: 0,
            oldest_due_age: None
        }
    );
    store.enqueue(sms("1"), None).await.unwrap();
    store.enqueue(sms("2"), None).await.unwrap();
    store.enqueue(email("3"), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;

    let depth = store.queue_depth(Channel::Sms).await.unwrap();
    assert_eq!(depth.due, 2);
    assert!(
        depth.oldest_due_age.unwrap() >= Duration::from_millis(30),
        "{depth:?}"
    );
    assert_eq!(store.queue_depth(Channel::Email).await.unwrap().due, 1);

    store
        .lease(Channel::Sms, 10, "w", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        store.queue_depth(Channel::Sms).await.unwrap().due,
        2,
        "expired leases are due"
    );
    lease_sms(&*store, 10, "w").await;
    assert_eq!(
        store.queue_depth(Channel::Sms).await.unwrap(),
        QueueDepth {
            due: 0,
            oldest_due_age: None
        }
    );
}

/// A gateway stopping gracefully gives back what it holds, and only that.
pub async fn release_leases_requeues_and_uncounts_the_attempt(store: Arc<dyn Store>) {
    for n in 0..3 {
        store.enqueue(sms(&n.to_string()), None).await.unwrap();
    }
    let leased = lease_sms(&*store, 2, "leaving").await;
    let kept = lease_sms(&*store, 1, "staying").await;

    assert_eq!(store.release_leases("leaving").await.unwrap(), 2);

    for message in &leased {
        let record = store.get(&message.id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.attempts, record.lease_owner),
            (Status::Queued, 0, None)
        );
    }
    let record = store.get(&kept[0].id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.lease_owner.as_deref()),
        (Status::Sending, Some("staying"))
    );
    let again = lease_sms(&*store, 10, "next").await;
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|l| l.attempts == 1));
    assert_eq!(store.release_leases("nobody").await.unwrap(), 0);
}

/// `expire_all_leases` ends every lease at once, whoever holds it, and keeps the attempt
/// each counted: a message may have reached its provider before its holder died.
pub async fn expire_all_leases_ends_every_lease_and_keeps_its_attempt(store: Arc<dyn Store>) {
    let in_flight = store.enqueue(sms("in flight"), None).await.unwrap().id;
    store.enqueue(sms("waiting"), None).await.unwrap();
    let dead = store
        .lease(Channel::Sms, 1, "dead", Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(dead[0].id, in_flight);

    assert_eq!(store.expire_all_leases().await.unwrap(), 1);

    let leased = lease_sms(&*store, 10, "next").await;
    assert_eq!(leased.len(), 2, "the dead holder's message is due at once");
    let retried = leased.iter().find(|l| l.id == in_flight).unwrap();
    assert_eq!(retried.attempts, 2, "the interrupted attempt still counts");
    assert!(
        !settle(&*store, &dead[0], sent(Some("late"))).await,
        "the ended lease's outcome changes nothing"
    );
    assert_eq!(store.expire_all_leases().await.unwrap(), 2);
    assert_eq!(store.queue_depth(Channel::Sms).await.unwrap().due, 2);
}
