//! Settling: the outcome that ends a lease, applied only under the token of the lease
//! in force.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway::store::{Channel, LeaseToken, Leased, Outcome, Status, Store};

use crate::fixtures::{failed, lease_sms, millis, sent, settle, sms};

/// Several settlements in one call answer one by one, in order.
pub async fn settle_answers_each_settlement_in_order(store: Arc<dyn Store>) {
    for n in 0..3 {
        store.enqueue(sms(&n.to_string()), None).await.unwrap();
    }
    let leased = lease_sms(&*store, 3, "w").await;
    let stale = Leased {
        token: LeaseToken::new(),
        ..leased[1].clone()
    };
    let applied = store
        .settle(vec![
            leased[0].settle(sent(Some("a"))),
            stale.settle(sent(Some("b"))),
            leased[2].settle(failed("c")),
        ])
        .await
        .unwrap();
    assert_eq!(applied, [true, false, true]);
}

/// Issue 9, defect 1: one gateway re-leases a message whose lease it let run out (a slow
/// SMTP server, a stalled module). Both leases have the same owner; only the token tells
/// them apart, and the first holder's late outcome must change nothing.
pub async fn a_late_outcome_of_an_expired_lease_retaken_by_the_same_gateway_is_refused(
    store: Arc<dyn Store>,
) {
    let id = store.enqueue(sms("hi"), None).await.unwrap().id;
    let gateway = "gateway-1";

    let first = store
        .lease(Channel::Sms, 1, gateway, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let second = lease_sms(&*store, 1, gateway).await;
    assert_eq!((second.len(), second[0].id.as_str()), (1, id.as_str()));
    assert_ne!(first[0].token, second[0].token, "every lease has its own token");

    for late in [
        sent(Some("late")),
        failed("late"),
        Outcome::Retry {
            due_at: SystemTime::now(),
            error: "late".into(),
        },
        Outcome::GiveBack {
            due_at: SystemTime::now(),
        },
    ] {
        assert!(
            !settle(&*store, &first[0], late.clone()).await,
            "{late:?} applied"
        );
    }
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Sending, 2));
    assert_eq!(record.provider_id, None);

    let forged = Leased {
        token: LeaseToken::new(),
        ..second[0].clone()
    };
    assert!(!settle(&*store, &forged, sent(Some("forged"))).await);
    assert!(settle(&*store, &second[0], sent(Some("provider-2"))).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.provider_id.as_deref()),
        (Status::Sent, Some("provider-2"))
    );
}

pub async fn retry_waits_for_its_due_time_and_failure_is_final(store: Arc<dyn Store>) {
    let id = store.enqueue(sms("later"), None).await.unwrap().id;
    let leased = lease_sms(&*store, 1, "w").await;

    let later = SystemTime::now() + Duration::from_secs(3600);
    let retry = Outcome::Retry {
        due_at: later,
        error: "provider busy".into(),
    };
    assert!(settle(&*store, &leased[0], retry).await);

    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error.as_deref()),
        (Status::Queued, Some("provider busy"))
    );
    assert_eq!(millis(record.due_at), millis(later));
    assert!(lease_sms(&*store, 10, "w").await.is_empty());

    let doomed = store.enqueue(sms("doomed"), None).await.unwrap().id;
    let leased = lease_sms(&*store, 1, "w").await;
    assert!(settle(&*store, &leased[0], failed("number unreachable")).await);
    let record = store.get(&doomed).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error.as_deref()),
        (Status::Failed, Some("number unreachable"))
    );
    assert!(lease_sms(&*store, 10, "w").await.is_empty());
}
