//! Delivery reports: found by message id or provider id, and held when they overtake
//! the send's outcome.

use std::sync::Arc;
use std::time::Duration;

use gateway::store::{Channel, DeliveryStatus, ReportOutcome, Status, Store, StoreError};

use crate::fixtures::{applied, email, lease_sms, purge_held_reports, report, sent, settle, sms};

pub async fn delivery_report_moves_sent_to_delivered(store: Arc<dyn Store>) {
    let first = store.enqueue(sms("1"), None).await.unwrap().id;
    let second = store.enqueue(sms("2"), None).await.unwrap().id;
    let leased = lease_sms(&*store, 2, "w").await;
    assert_eq!([&leased[0].id, &leased[1].id], [&first, &second]);
    assert!(settle(&*store, &leased[0], sent(Some("p-1"))).await);
    assert!(settle(&*store, &leased[1], sent(Some("p-2"))).await);

    let delivered = store
        .record_delivery_report(report(Some("p-1"), None, DeliveryStatus::Delivered))
        .await;
    let undelivered = store.record_delivery_report(report(Some("p-2"), None, DeliveryStatus::Undelivered));

    assert_eq!(delivered.unwrap(), applied(&first));
    assert_eq!(undelivered.await.unwrap(), applied(&second));
    let record = store.get(&first).await.unwrap().unwrap();
    assert_eq!((record.status, record.error), (Status::Delivered, None));
    let record = store.get(&second).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error.as_deref()),
        (Status::Undelivered, Some("absent subscriber"))
    );
    assert_eq!(purge_held_reports(&*store).await, 0, "nothing was held");
}

/// Defect 4: a report that arrived before its send's outcome was recorded was dropped,
/// and the SMS stayed `sent` for ever.
pub async fn a_report_before_the_send_is_recorded_is_held_and_applied_with_the_outcome(
    store: Arc<dyn Store>,
) {
    let id = store.enqueue(sms("1"), None).await.unwrap().id;
    let other = store.enqueue(sms("2"), None).await.unwrap().id;
    let leased = lease_sms(&*store, 2, "w").await;

    // By provider id (not stored yet), then by message id (still `sending`): both held.
    let by_provider = store
        .record_delivery_report(report(Some("p-1"), None, DeliveryStatus::Undelivered))
        .await
        .unwrap();
    let by_id = store
        .record_delivery_report(report(None, Some(&id), DeliveryStatus::Delivered))
        .await
        .unwrap();
    assert_eq!((by_provider, by_id), (ReportOutcome::Held, ReportOutcome::Held));
    assert_eq!(store.get(&id).await.unwrap().unwrap().status, Status::Sending);

    assert!(settle(&*store, &leased[0], sent(Some("p-1"))).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error, record.provider_id.as_deref()),
        (Status::Delivered, None, Some("p-1")),
        "the newest held report applies with the outcome"
    );

    // The other SMS takes none of them.
    assert!(settle(&*store, &leased[1], sent(Some("p-2"))).await);
    assert_eq!(store.get(&other).await.unwrap().unwrap().status, Status::Sent);
    assert_eq!(
        purge_held_reports(&*store).await,
        0,
        "both held reports went with the outcome that took them"
    );
}

/// Defect 4: a report naming the gateway's own message id was matched only by provider id.
pub async fn a_report_naming_the_message_id_is_matched_whatever_its_provider_id(store: Arc<dyn Store>) {
    let id = store.enqueue(sms("1"), None).await.unwrap().id;
    let leased = lease_sms(&*store, 1, "w").await;
    assert!(settle(&*store, &leased[0], sent(Some("p-1"))).await);

    // A multipart SMS is reported part by part, under ids the send's answer never gave.
    let outcome = store
        .record_delivery_report(report(Some("p-1-part-2"), Some(&id), DeliveryStatus::Undelivered))
        .await
        .unwrap();
    assert_eq!(outcome, applied(&id));
    assert_eq!(store.get(&id).await.unwrap().unwrap().status, Status::Undelivered);

    // An e-mail's id names no SMS, and without a provider id nothing could ever claim
    // the report: refused, and the e-mail unchanged.
    let mail = store.enqueue(email("hello"), None).await.unwrap().id;
    let outcome = store
        .record_delivery_report(report(None, Some(&mail), DeliveryStatus::Delivered))
        .await;
    assert!(matches!(outcome, Err(StoreError::Invalid(_))), "{outcome:?}");
    assert_eq!(store.get(&mail).await.unwrap().unwrap().status, Status::Queued);
}

pub async fn a_stale_outcome_takes_no_held_report(store: Arc<dyn Store>) {
    let id = store.enqueue(sms("1"), None).await.unwrap().id;
    let first = store
        .lease(Channel::Sms, 1, "w", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = lease_sms(&*store, 1, "w").await;
    store
        .record_delivery_report(report(None, Some(&id), DeliveryStatus::Delivered))
        .await
        .unwrap();

    assert!(!settle(&*store, &first[0], sent(Some("p-old"))).await);
    assert_eq!(store.get(&id).await.unwrap().unwrap().status, Status::Sending);
    // The report is still held: the outcome in force takes it.
    assert!(settle(&*store, &second[0], sent(Some("p-new"))).await);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.provider_id.as_deref()),
        (Status::Delivered, Some("p-new"))
    );
    assert_eq!(purge_held_reports(&*store).await, 0);
}
