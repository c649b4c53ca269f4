//! The suppression list: addresses kept once, paged in order, and skipped by the next
//! mailing in the same transaction that stores it.

use std::sync::Arc;

use gateway::store::{Channel, NewMailing, NewSuppression, Store, SuppressionReason};
use serde_json::json;

fn entry(address: &str, reason: SuppressionReason) -> NewSuppression {
    NewSuppression {
        address: address.to_string(),
        reason,
        detail: Some(format!("{} of {address}", reason.as_str())),
    }
}

pub async fn an_address_is_listed_once_with_its_first_reason_and_removed(store: Arc<dyn Store>) {
    let added = store
        .suppress(vec![
            entry("ann@example.org", SuppressionReason::Bounce),
            entry("bob@example.org", SuppressionReason::Admin),
        ])
        .await
        .unwrap();
    assert_eq!(added, 2);
    let again = store
        .suppress(vec![entry("ann@example.org", SuppressionReason::Unsubscribe)])
        .await
        .unwrap();
    assert_eq!(again, 0, "already listed");
    let list = store.suppressions(10, None).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].address, "ann@example.org");
    assert_eq!(
        list[0].reason,
        SuppressionReason::Bounce,
        "the first reason stays"
    );
    assert_eq!(list[0].detail.as_deref(), Some("bounce of ann@example.org"));
    assert_eq!(
        store
            .suppressed(vec![
                "cy@example.org".into(),
                "bob@example.org".into(),
                "ann@example.org".into()
            ])
            .await
            .unwrap(),
        ["bob@example.org", "ann@example.org"],
        "listed ones, in the order asked"
    );
    assert!(store.unsuppress("ann@example.org").await.unwrap());
    assert!(
        !store.unsuppress("ann@example.org").await.unwrap(),
        "gone already"
    );
    assert_eq!(
        store.suppressed(vec!["ann@example.org".into()]).await.unwrap(),
        Vec::<String>::new()
    );
}

pub async fn the_list_pages_in_address_order(store: Arc<dyn Store>) {
    // Upper and lower case local parts sort bytewise on both backends.
    let addresses: Vec<String> = (0..25)
        .map(|i| format!("{}{i:02}@example.org", if i % 2 == 0 { "User" } else { "user" }))
        .collect();
    store
        .suppress(
            addresses
                .iter()
                .map(|a| entry(a, SuppressionReason::Admin))
                .collect(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.suppressions(10, after.clone()).await.unwrap();
        seen.extend(page.iter().map(|e| e.address.clone()));
        if page.len() < 10 {
            break;
        }
        after = page.last().map(|e| e.address.clone());
    }
    let mut sorted = addresses.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
}

pub async fn a_mailing_skips_suppressed_recipients_and_counts_them(store: Arc<dyn Store>) {
    store
        .suppress(vec![entry("gone@example.org", SuppressionReason::Unsubscribe)])
        .await
        .unwrap();
    let addresses: Vec<String> = (0..2500)
        .map(|i| {
            if i % 1000 == 7 {
                "gone@example.org".to_string()
            } else {
                format!("r{i}@example.org")
            }
        })
        .collect();
    let created = store
        .create_mailing(
            NewMailing {
                shared: json!({ "subject": "news" }),
                recipients: addresses.iter().map(|a| json!({ "to": a }).to_string()).collect(),
                addresses: addresses.iter().collect(),
            },
            None,
        )
        .await
        .unwrap();
    let counts = store.mailing_counts(&created.id).await.unwrap().unwrap();
    assert_eq!(
        (counts.total, counts.queued, counts.suppressed),
        (2500, 2497, 3),
        "{counts:?}"
    );
    let leased = store
        .lease(Channel::Email, 5000, "test", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased.len(), 2497);
    assert!(
        leased.iter().all(|l| !l.payload.contains("gone@example.org")),
        "no message for the suppressed address"
    );
}

pub async fn the_unsubscribe_secret_is_made_once_and_read_alike_after_a_restart(
    backend: &crate::backend::Backend,
) {
    let store = backend.open().await;
    let first = store.unsubscribe_secret("first-fresh".into()).await.unwrap();
    assert_eq!(first, "first-fresh", "none was stored: the fresh one is");
    let again = store.unsubscribe_secret("second-fresh".into()).await.unwrap();
    assert_eq!(again, "first-fresh", "the stored one stays");
    drop(store);
    let reopened = backend.open().await;
    assert_eq!(
        reopened.unsubscribe_secret("third-fresh".into()).await.unwrap(),
        "first-fresh",
        "links sent before a restart (or by another gateway) still open"
    );
}
