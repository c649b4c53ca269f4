//! Storing a message and reading it back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway::store::{Channel, Status, Store};

use crate::fixtures::sms;

pub async fn enqueued_message_reads_back_queued(store: Arc<dyn Store>) {
    let before = SystemTime::now() - Duration::from_millis(1);

    let enqueued = store.enqueue(sms("hello"), None).await.unwrap();

    assert!(enqueued.created);
    let uuid = uuid::Uuid::parse_str(&enqueued.id).expect("the id is a UUID");
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(
        enqueued.id,
        uuid.hyphenated().to_string(),
        "printed plain, lowercase, no braces"
    );
    let record = store.get(&enqueued.id).await.unwrap().expect("stored");
    assert_eq!(record.id, enqueued.id);
    assert_eq!(record.channel, Channel::Sms);
    assert_eq!(record.status, Status::Queued);
    assert_eq!(record.attempts, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&record.payload).unwrap(),
        sms("hello").payload
    );
    assert_eq!(
        (
            record.lease_owner,
            record.provider_id,
            record.error,
            record.mailing_id
        ),
        (None, None, None, None)
    );
    assert!(record.updated_at >= before && record.updated_at <= SystemTime::now());
    // Any text may reach `get` from the API's path: an id that is no UUID is just unknown.
    assert_eq!(store.get("no-such-id").await.unwrap(), None);
}

pub async fn ids_sort_by_creation(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(store.enqueue(sms(&n.to_string()), None).await.unwrap().id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

/// The API's callers all write at once; every one of them is stored, under its own id.
pub async fn five_hundred_concurrent_enqueues_are_all_stored(store: Arc<dyn Store>) {
    let requests = 500;
    let tasks: Vec<_> = (0..requests)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(sms(&format!("message {n}")), None).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let enqueued = task.await.unwrap().expect("every enqueue succeeds");
        assert!(enqueued.created);
        ids.insert(enqueued.id);
    }

    assert_eq!(ids.len(), requests);
    assert_eq!(
        store.queue_depth(Channel::Sms).await.unwrap().due,
        requests as u64
    );
    for id in &ids {
        assert_eq!(store.get(id).await.unwrap().unwrap().status, Status::Queued);
    }
}
