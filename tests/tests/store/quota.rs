//! The sending quota: a window never holds more sends than its maximum, the answer
//! says when room comes back, and the count survives a restart.

use std::time::{Duration, SystemTime};

use gateway::store::QuotaWindow;

pub async fn a_full_window_refuses_until_its_oldest_send_ages_out_across_a_restart(
    backend: &crate::backend::Backend,
) {
    let windows = [
        QuotaWindow {
            length: Duration::from_millis(1500),
            max: 3,
        },
        QuotaWindow {
            length: Duration::from_secs(3600),
            max: 5,
        },
    ];
    let store = backend.open().await;
    assert_eq!(store.next_send(&windows).await.unwrap(), None, "room at first");
    let started = SystemTime::now();
    for _ in 0..3 {
        assert_eq!(store.take_send(&windows).await.unwrap(), None);
    }
    let next = store
        .take_send(&windows)
        .await
        .unwrap()
        .expect("the short window is full");
    let wait = next.duration_since(started).unwrap_or_default();
    assert!(
        wait <= Duration::from_millis(1600),
        "room within the window: {wait:?}"
    );
    assert_eq!(
        store.next_send(&windows).await.unwrap(),
        Some(next),
        "checking takes nothing"
    );
    drop(store);

    let store = backend.open().await;
    assert!(
        store.take_send(&windows).await.unwrap().is_some(),
        "still full after a restart"
    );
    tokio::time::sleep(
        next.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(50),
    )
    .await;
    assert_eq!(store.take_send(&windows).await.unwrap(), None, "room again");
    assert_eq!(store.take_send(&windows).await.unwrap(), None);
    let hour = store
        .take_send(&windows)
        .await
        .unwrap()
        .expect("the hour's 5 are used");
    assert!(
        hour.duration_since(SystemTime::now()).unwrap_or_default() > Duration::from_secs(3500),
        "the hour's room comes back in about an hour"
    );
    assert_eq!(store.take_send(&[]).await.unwrap(), None, "no quota, no limit");
}
