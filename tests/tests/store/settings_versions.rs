//! The console's saved settings: numbered versions, saved only on the latest, read
//! back whole, listed newest first.

use std::sync::Arc;

use gateway::store::{NewSettingsVersion, Store, StoreError};
use serde_json::{json, Map, Value};

fn values(value: Value) -> Map<String, Value> {
    let Value::Object(values) = value else {
        panic!("an object")
    };
    values
}

fn change(base_version: u64, changed: &[&str], all: Value) -> NewSettingsVersion {
    NewSettingsVersion {
        base_version,
        saved_by: "admin token #2 (sha256 0a1b2c3d…)".into(),
        changed: changed.iter().map(|k| k.to_string()).collect(),
        values: values(all),
        rollback_of: None,
    }
}

pub async fn settings_versions_count_up_and_read_back_whole(store: Arc<dyn Store>) {
    assert_eq!(store.latest_settings().await.unwrap(), None);
    assert_eq!(store.latest_settings_version().await.unwrap(), 0);
    assert!(store.settings_history(10).await.unwrap().is_empty());

    let first = store
        .save_settings(change(
            0,
            &["email.smtp_threads", "sms.plugin_config"],
            json!({"email.smtp_threads": 2, "sms.plugin_config": "secret-blob"}),
        ))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let second = store
        .save_settings(change(
            1,
            &["email.smtp_threads"],
            json!({"email.smtp_threads": 7, "sms.plugin_config": "secret-blob"}),
        ))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let mut rollback = change(
        2,
        &["email.smtp_threads"],
        json!({"email.smtp_threads": 2, "sms.plugin_config": "secret-blob"}),
    );
    rollback.rollback_of = Some(1);
    let third = store.save_settings(rollback).await.unwrap();
    assert_eq!((third.version, third.rollback_of), (3, Some(1)));

    let latest = store.latest_settings().await.unwrap().expect("a version");
    assert_eq!(latest, third);
    assert_eq!(latest.values["email.smtp_threads"], 2);
    assert_eq!(latest.saved_by, "admin token #2 (sha256 0a1b2c3d…)");
    assert_eq!(store.latest_settings_version().await.unwrap(), 3);
    assert_eq!(store.settings_version(2).await.unwrap(), Some(second.clone()));
    assert_eq!(store.settings_version(9).await.unwrap(), None);
    let history = store.settings_history(10).await.unwrap();
    let numbers: Vec<u64> = history.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(history[2].changed, ["email.smtp_threads", "sms.plugin_config"]);
    assert_eq!(store.settings_history(2).await.unwrap().len(), 2);
    // Saved times are the store's clock, in order.
    assert!(history[0].saved_at >= history[2].saved_at);
    // The values hold the blob, but a version's Debug (what a log would print) does not.
    let debug = format!("{latest:?}");
    assert!(
        !debug.contains("secret-blob") && debug.contains("sms.plugin_config"),
        "{debug}"
    );
}

pub async fn a_save_on_a_stale_version_is_refused_and_saves_nothing(store: Arc<dyn Store>) {
    store
        .save_settings(change(
            0,
            &["email.smtp_threads"],
            json!({"email.smtp_threads": 2}),
        ))
        .await
        .unwrap();
    store
        .save_settings(change(
            1,
            &["email.smtp_threads"],
            json!({"email.smtp_threads": 3}),
        ))
        .await
        .unwrap();
    // An admin who loaded version 1 saves after another saved version 2; and one whose
    // base is ahead of the store.
    for base in [1, 0, 5] {
        let error = store
            .save_settings(change(base, &["email.host"], json!({"email.host": "mx"})))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            StoreError::StaleSettingsVersion { base, latest: 2 },
            "base {base}"
        );
    }
    assert_eq!(store.latest_settings_version().await.unwrap(), 2);
    assert_eq!(
        store.latest_settings().await.unwrap().unwrap().values["email.smtp_threads"],
        3
    );
}

pub async fn concurrent_saves_on_one_version_save_exactly_one(store: Arc<dyn Store>) {
    let saves: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .save_settings(change(
                        0,
                        &["email.smtp_threads"],
                        json!({"email.smtp_threads": n + 1}),
                    ))
                    .await
            })
        })
        .collect();
    let mut saved = 0;
    for save in saves {
        match save.await.unwrap() {
            Ok(version) => {
                assert_eq!(version.version, 1);
                saved += 1;
            }
            Err(StoreError::StaleSettingsVersion { base: 0, latest: 1 }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(
        saved, 1,
        "two admins on one version: one saves, the other is told"
    );
    assert_eq!(store.settings_history(10).await.unwrap().len(), 1);
}
