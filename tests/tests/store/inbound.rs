//! Inbound SMS: kept once, listed newest first, forwarded to their webhook until done.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway::store::Store;

use crate::fixtures::inbound;

pub async fn inbound_sms_are_kept_once_listed_newest_first_and_forwarded_until_done(store: Arc<dyn Store>) {
    let first = store.store_inbound(inbound(1, None)).await.unwrap();
    let again = store.store_inbound(inbound(1, None)).await.unwrap();
    assert_eq!((again.id.as_str(), again.created), (first.id.as_str(), false));
    let second = store
        .store_inbound(inbound(2, Some("http://127.0.0.1:9/hook")))
        .await
        .unwrap();

    let page = store.list_inbound(10, None).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["reply 2", "reply 1"]
    );
    let older = store.list_inbound(10, Some(second.id.clone())).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, first.id);

    let due = store.lease_forwards(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(due.len(), 1, "only the one with a webhook is forwarded");
    assert!(
        store
            .lease_forwards(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    store
        .forward_retry(&second.id, SystemTime::now(), "connection refused")
        .await
        .unwrap();
    let due = store.lease_forwards(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!((due.len(), due[0].forward_attempts), (1, 2));
    store.forward_done(&second.id).await.unwrap();
    assert!(store
        .lease_forwards(10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    let record = &store.list_inbound(1, None).await.unwrap()[0];
    assert_eq!(record.forward_status, "forwarded");
}
