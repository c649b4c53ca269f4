//! What a store holds across a restart of its gateway, and what becomes of the leases of
//! a gateway that crashed: the one place where the backends differ by design.

use std::time::Duration;

use gateway::store::{Channel, Enqueued, NewMailing, Status};
use serde_json::json;

use crate::backend::Backend;
use crate::fixtures::{key, lease_sms, sent, settle, sms};

/// A gateway dies holding a lease (no graceful release), and a gateway opens the store.
///
/// - **SQLite**: one gateway per file, so the one opening it is the dead one restarted:
///   every lease left in the file is a dead process's, void at once, its attempt still
///   counted.
/// - **PostgreSQL**: the one opening it may be a second gateway while the first still
///   works, so opening must not touch anyone's leases: the dead one's lease holds until
///   it runs out or its holder's heartbeat is found stopped, never because a store opened.
pub async fn after_a_crash_the_dead_gateways_lease_is_void_on_sqlite_and_held_on_postgres(backend: &Backend) {
    let (in_flight, waiting) = {
        let store = backend.open().await;
        let in_flight = store.enqueue(sms("in flight"), None).await.unwrap().id;
        let waiting = store.enqueue(sms("waiting"), None).await.unwrap().id;
        let leased = store
            .lease(Channel::Sms, 1, "dead", Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(leased[0].id, in_flight);
        (in_flight, waiting)
    };

    let store = backend.open().await;
    let leased = lease_sms(&*store, 10, "next").await;

    match backend {
        Backend::Sqlite(_) => {
            assert_eq!(leased.len(), 2, "the dead process's message is due at once");
            let retried = leased.iter().find(|l| l.id == in_flight).unwrap();
            assert_eq!(retried.attempts, 2, "the interrupted attempt still counts");
        }
        Backend::Postgres(_) => {
            assert_eq!(
                leased.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
                [waiting.as_str()],
                "only the waiting message: the other gateway's lease still holds"
            );
            let record = store.get(&in_flight).await.unwrap().unwrap();
            assert_eq!(
                (record.status, record.lease_owner.as_deref(), record.attempts),
                (Status::Sending, Some("dead"), 1)
            );
        }
    }
}

/// Sent, queued and mailing messages, and idempotency keys, are all there after the
/// gateway stops and starts again (SQLite: the same file; PostgreSQL: the same database).
pub async fn everything_survives_a_restart(backend: &Backend) {
    let (sent, queued, mailing) = {
        let store = backend.open().await;
        let sent = store
            .enqueue(sms("sent"), key("key-sent", "sent"))
            .await
            .unwrap()
            .id;
        let leased = lease_sms(&*store, 1, "w").await;
        assert_eq!(leased[0].id, sent);
        assert!(settle(&*store, &leased[0], self::sent(Some("provider-9"))).await);
        let queued = store.enqueue(sms("queued"), None).await.unwrap().id;
        let recipients = [
            json!({ "to": "a@example.com" }).to_string(),
            json!({ "to": "b@example.com" }).to_string(),
        ]
        .into_iter()
        .collect();
        let mailing = store
            .create_mailing(
                NewMailing {
                    shared: json!({}),
                    recipients,
                    addresses: Default::default(),
                },
                None,
            )
            .await
            .unwrap()
            .id;
        (sent, queued, mailing)
    };

    let store = backend.open().await;

    let record = store
        .get(&sent)
        .await
        .unwrap()
        .expect("the sent message is still there");
    assert_eq!(
        (record.status, record.provider_id.as_deref()),
        (Status::Sent, Some("provider-9"))
    );
    assert_eq!(store.get(&queued).await.unwrap().unwrap().status, Status::Queued);
    let counts = store.mailing_counts(&mailing).await.unwrap().unwrap();
    assert_eq!((counts.total, counts.queued), (2, 2));
    let again = store.enqueue(sms("sent"), key("key-sent", "sent")).await.unwrap();
    assert_eq!(
        again,
        Enqueued {
            id: sent,
            created: false
        },
        "idempotency keys outlive a restart"
    );
    let leased = lease_sms(&*store, 10, "w2").await;
    assert_eq!(leased.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), [queued]);
}
