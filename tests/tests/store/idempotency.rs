//! Idempotency keys: one key, one request, one message.

use std::collections::HashSet;
use std::sync::Arc;

use gateway::store::{Channel, Enqueued, Idempotency, NewMailing, Store, StoreError};
use serde_json::json;

use crate::fixtures::{email, key, sms};

pub async fn same_idempotency_key_twice_stores_one_message(store: Arc<dyn Store>) {
    let first = store.enqueue(sms("once"), key("key-1", "once")).await.unwrap();
    let second = store.enqueue(sms("once"), key("key-1", "once")).await.unwrap();
    let other = store.enqueue(sms("once"), key("key-2", "once")).await.unwrap();

    assert!(first.created);
    assert_eq!(
        second,
        Enqueued {
            id: first.id.clone(),
            created: false
        }
    );
    assert!(other.created);
    assert_ne!(other.id, first.id);
    assert_eq!(store.queue_depth(Channel::Sms).await.unwrap().due, 2);
}

/// A client retrying before its first request was answered: the retries race the
/// first request, and on PostgreSQL they may come through different gateways.
pub async fn same_idempotency_key_concurrently_stores_one_message(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(sms("once"), key("same", "once")).await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let ids: HashSet<_> = answers.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), 1, "every caller got the same id");
    assert_eq!(
        answers.iter().filter(|a| a.created).count(),
        1,
        "exactly one caller created it"
    );
    assert_eq!(store.queue_depth(Channel::Sms).await.unwrap().due, 1);
}

/// Defect 5: a key reused with another body, or on another endpoint, silently answered
/// with what the first request created.
pub async fn an_idempotency_key_reused_for_another_request_is_refused(store: Arc<dyn Store>) {
    let first = store.enqueue(sms("once"), key("k", "once")).await.unwrap();

    let other_body = store.enqueue(sms("twice"), key("k", "twice")).await;
    assert_eq!(
        other_body,
        Err(StoreError::IdempotencyKeyReused {
            endpoint: "POST /v1/sms".into(),
            same_endpoint: true
        })
    );
    let as_email = Some(Idempotency::new(
        "k".into(),
        "POST /v1/email",
        &json!({ "text": "once" }),
    ));
    let other_endpoint = store.enqueue(email("once"), as_email).await;
    assert_eq!(
        other_endpoint,
        Err(StoreError::IdempotencyKeyReused {
            endpoint: "POST /v1/sms".into(),
            same_endpoint: false
        })
    );
    let mailing = NewMailing {
        shared: json!({ "subject": "news" }),
        recipients: [json!({ "to": "a@example.com" }).to_string()]
            .into_iter()
            .collect(),
        addresses: Default::default(),
    };
    let as_mailing = Some(Idempotency::new(
        "k".into(),
        "POST /v1/mailings",
        &json!({ "text": "once" }),
    ));
    assert!(matches!(
        store.create_mailing(mailing, as_mailing).await,
        Err(StoreError::IdempotencyKeyReused { .. })
    ));

    let again = store.enqueue(sms("once"), key("k", "once")).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
    assert_eq!(store.queue_depth(Channel::Sms).await.unwrap().due, 1);
    assert_eq!(
        store.queue_depth(Channel::Email).await.unwrap().due,
        0,
        "neither the e-mail nor the mailing was stored"
    );
}
