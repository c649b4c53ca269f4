//! Mailings: many e-mails stored in one call, counted as one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::store::{Channel, Enqueued, MailingCounts, NewMailing, NewMessage, Store, StoreError, Texts};
use serde_json::json;

use crate::fixtures::{failed, mailing_key, sent, settle};

pub async fn mailing_of_100k_recipients_in_one_call(store: Arc<dyn Store>) {
    let shared = json!({ "from": "news@example.com", "subject": "Spring news", "text": "Hello" });
    let recipients: Texts = (0..100_000)
        .map(|n| json!({ "to": format!("reader{n}@example.com"), "name": format!("Reader {n}") }).to_string())
        .collect();
    let mailing = NewMailing {
        shared: shared.clone(),
        recipients,
        addresses: Default::default(),
    };

    let started = Instant::now();
    let created = store
        .create_mailing(mailing.clone(), mailing_key("spring"))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!("mailing of 100000 recipients: {elapsed:?}");

    assert!(created.created);
    let counts = store
        .mailing_counts(&created.id)
        .await
        .unwrap()
        .expect("the mailing exists");
    assert_eq!(
        counts,
        MailingCounts {
            total: 100_000,
            queued: 100_000,
            sending: 0,
            sent: 0,
            failed: 0,
            suppressed: 0,
        }
    );

    let again = store
        .create_mailing(mailing, mailing_key("spring"))
        .await
        .unwrap();
    assert_eq!(
        again,
        Enqueued {
            id: created.id.clone(),
            created: false
        }
    );
    assert_eq!(
        store.queue_depth(Channel::Email).await.unwrap().due,
        100_000,
        "the repeated request stored no e-mail"
    );

    let leased = store
        .lease(Channel::Email, 10, "w", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased.len(), 10);
    for message in &leased {
        assert_eq!(message.mailing_id.as_deref(), Some(created.id.as_str()));
        let payload: serde_json::Value =
            serde_json::from_str(message.mailing_payload.as_deref().expect("the shared payload")).unwrap();
        assert_eq!(payload, shared);
    }
    let first: serde_json::Value = serde_json::from_str(&leased[0].payload).unwrap();
    assert_eq!(
        first,
        json!({ "to": "reader0@example.com", "name": "Reader 0" }),
        "recipients are leased in their order"
    );
    assert!(settle(&*store, &leased[0], sent(None)).await);
    assert!(settle(&*store, &leased[1], failed("550 no such user")).await);
    let counts = store.mailing_counts(&created.id).await.unwrap().unwrap();
    assert_eq!(
        counts,
        MailingCounts {
            total: 100_000,
            queued: 99_990,
            sending: 8,
            sent: 1,
            failed: 1,
            suppressed: 0,
        }
    );
    assert_eq!(store.mailing_counts("no-such-mailing").await.unwrap(), None);
}

pub async fn a_mailing_without_recipients_is_refused(store: Arc<dyn Store>) {
    let empty = NewMailing {
        shared: json!({}),
        recipients: Default::default(),
        addresses: Default::default(),
    };
    assert!(matches!(
        store.create_mailing(empty, None).await,
        Err(StoreError::Invalid(_))
    ));
}

/// A message can only join a mailing that exists; the refusal names the one it named.
pub async fn a_message_of_an_unknown_mailing_is_refused_naming_it(store: Arc<dyn Store>) {
    let orphan = NewMessage {
        channel: Channel::Email,
        payload: json!({ "to": ["a@example.com"] }),
        mailing_id: Some("no-such-mailing".into()),
    };
    let refused = store.enqueue(orphan, None).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(why)) if why.contains("no-such-mailing")),
        "{refused:?}"
    );
    assert_eq!(store.queue_depth(Channel::Email).await.unwrap().due, 0);
}

/// The console's list: newest first, with each mailing's subject and counts.
pub async fn recent_mailings_are_listed_newest_first_with_their_counts(store: Arc<dyn Store>) {
    assert!(store.recent_mailings(10).await.unwrap().is_empty());
    let mut ids = Vec::new();
    for (subject, n) in [("First", 2), ("Second", 3), ("Third", 1)] {
        let mailing = NewMailing {
            shared: json!({ "subject": subject, "text": "hi" }),
            recipients: (0..n)
                .map(|i| json!({ "to": format!("r{i}@example.com") }).to_string())
                .collect(),
            addresses: Default::default(),
        };
        ids.push(store.create_mailing(mailing, None).await.unwrap().id);
    }
    let listed = store.recent_mailings(2).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, ids[2]);
    assert_eq!(listed[0].subject.as_deref(), Some("Third"));
    assert_eq!(
        listed[0].counts,
        MailingCounts {
            total: 1,
            queued: 1,
            sending: 0,
            sent: 0,
            failed: 0,
            suppressed: 0
        }
    );
    assert_eq!(listed[1].subject.as_deref(), Some("Second"));
    assert_eq!(listed[1].counts.total, 3);
}
