//! Retention: what is finished and old enough is deleted in small batches; what is still
//! to be done is kept however old it is.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway::store::{Channel, DeliveryStatus, NewMailing, PurgeKind, Purged, Status, Store};
use serde_json::json;

use crate::fixtures::{failed, inbound, key, lease_sms, report, sent, settle, sms};

/// Defect 6: nothing was ever purged.
pub async fn finished_rows_older_than_the_retention_are_purged_in_batches_and_the_rest_kept(
    store: Arc<dyn Store>,
) {
    let mut finished = Vec::new();
    for n in 0..5 {
        finished.push(
            store
                .enqueue(sms(&format!("{n}")), key(&format!("k{n}"), "x"))
                .await
                .unwrap()
                .id,
        );
    }
    let leased = lease_sms(&*store, 5, "w").await;
    for (n, lease) in leased.iter().enumerate() {
        let outcome = if n == 0 {
            failed("refused")
        } else {
            sent(Some(&format!("p-{n}")))
        };
        assert!(settle(&*store, lease, outcome).await);
    }
    let sending = store.enqueue(sms("sending"), None).await.unwrap().id;
    lease_sms(&*store, 1, "w").await;
    let queued = store.enqueue(sms("queued"), None).await.unwrap().id;
    let mailing = |n: usize| NewMailing {
        shared: json!({ "subject": "news" }),
        recipients: (0..n)
            .map(|i| json!({ "to": format!("r{i}@example.com") }).to_string())
            .collect(),
        addresses: Default::default(),
    };
    let done_mailing = store.create_mailing(mailing(3), None).await.unwrap().id;
    let emails = store
        .lease(Channel::Email, 3, "w", Duration::from_secs(60))
        .await
        .unwrap();
    for lease in &emails {
        assert!(settle(&*store, lease, sent(None)).await);
    }
    let open_mailing = store.create_mailing(mailing(2), None).await.unwrap().id;
    store.store_inbound(inbound(1, None)).await.unwrap();
    let pending = store
        .store_inbound(inbound(2, Some("http://127.0.0.1:9/")))
        .await
        .unwrap()
        .id;
    store
        .record_delivery_report(report(Some("p-unknown"), None, DeliveryStatus::Delivered))
        .await
        .unwrap();

    // Nothing is older than an hour ago.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for kind in PurgeKind::ALL {
        assert_eq!(
            store.purge(kind, an_hour_ago, 2).await.unwrap(),
            Purged::default(),
            "{kind}"
        );
    }

    // Everything is older than a second from now: batches of 2 until none is left.
    let later = SystemTime::now() + Duration::from_secs(1);
    let mut purged = HashMap::new();
    let mut writes = 0;
    for kind in PurgeKind::ALL {
        loop {
            let batch = store.purge(kind, later, 2).await.unwrap();
            writes += 1;
            assert!(batch.rows + batch.mailing_messages <= 2, "{kind}: {batch:?}");
            *purged.entry(kind).or_insert(0) += batch.rows;
            *purged.entry(PurgeKind::Messages).or_insert(0) += batch.mailing_messages;
            if !batch.more {
                break;
            }
        }
    }
    assert!(writes > PurgeKind::ALL.len(), "more than one batch");
    assert_eq!(
        purged[&PurgeKind::Messages],
        5 + 3,
        "five SMS and the finished mailing's three e-mails"
    );
    assert_eq!(purged[&PurgeKind::Mailings], 1);
    assert_eq!(purged[&PurgeKind::Inbound], 1);
    assert_eq!(purged[&PurgeKind::HeldReports], 1);
    assert_eq!(purged[&PurgeKind::IdempotencyKeys], 5);
    for kind in PurgeKind::ALL {
        assert_eq!(
            store.purge(kind, later, 2).await.unwrap(),
            Purged::default(),
            "{kind}: nothing more to purge"
        );
    }

    for id in &finished {
        assert_eq!(store.get(id).await.unwrap(), None);
    }
    assert_eq!(store.mailing_counts(&done_mailing).await.unwrap(), None);
    assert_eq!(
        store.get(&sending).await.unwrap().unwrap().status,
        Status::Sending
    );
    assert_eq!(store.get(&queued).await.unwrap().unwrap().status, Status::Queued);
    assert_eq!(
        store.mailing_counts(&open_mailing).await.unwrap().unwrap().queued,
        2
    );
    let left: Vec<_> = store.list_inbound(10, None).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [pending.as_str()]
    );
    // A purged key is free again.
    assert!(store.enqueue(sms("0"), key("k0", "other")).await.unwrap().created);
}
