//! The console's sign-in sessions: kept by digest, read back with their times,
//! ended by a sign-out, and swept when a new one is kept.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use gateway::store::{NewConsoleSession, Store};

fn session(id_digest: &str, expires_in: Duration) -> NewConsoleSession {
    NewConsoleSession {
        id_digest: id_digest.into(),
        token_digest: "ab".repeat(32),
        expires_at: SystemTime::now() + expires_in,
    }
}

pub async fn a_console_session_is_kept_touched_and_ended(store: Arc<dyn Store>) {
    let hour = Duration::from_secs(3600);
    store
        .create_console_session(session("one", 12 * hour), hour)
        .await
        .unwrap();
    let kept = store.console_session("one").await.unwrap().expect("kept");
    assert_eq!(kept.token_digest, "ab".repeat(32));
    assert!(kept.expires_at > SystemTime::now() + 11 * hour);
    assert_eq!(kept.created_at, kept.last_seen_at);
    assert_eq!(store.console_session("other").await.unwrap(), None);

    tokio::time::sleep(Duration::from_millis(20)).await;
    store.touch_console_session("one").await.unwrap();
    let touched = store.console_session("one").await.unwrap().unwrap();
    assert!(touched.last_seen_at > kept.last_seen_at, "{touched:?}");
    assert_eq!(touched.created_at, kept.created_at);

    assert!(store.end_console_session("one").await.unwrap());
    assert!(!store.end_console_session("one").await.unwrap(), "ended once");
    assert_eq!(store.console_session("one").await.unwrap(), None);
}

pub async fn keeping_a_session_sweeps_those_that_ended(store: Arc<dyn Store>) {
    let hour = Duration::from_secs(3600);
    store
        .create_console_session(session("expired", Duration::from_millis(1)), hour)
        .await
        .unwrap();
    store
        .create_console_session(session("idle", 12 * hour), hour)
        .await
        .unwrap();
    store
        .create_console_session(session("live", 12 * hour), hour)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;

    // An idle timeout of 300 ms: "idle" and "live" were last used longer ago than that,
    // but "live" is used just before the sweep.
    store.touch_console_session("live").await.unwrap();
    store
        .create_console_session(session("new", 12 * hour), Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(store.console_session("expired").await.unwrap(), None);
    assert_eq!(store.console_session("idle").await.unwrap(), None);
    assert!(store.console_session("live").await.unwrap().is_some());
    assert!(store.console_session("new").await.unwrap().is_some());
}
