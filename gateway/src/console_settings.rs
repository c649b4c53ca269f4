//! Settings saved from the admin console, put in force without a restart.
//!
//! A save is checked exactly as a reload is (the settings are valid, a new module loads
//! and accepts its blob, the SMTP target can be prepared) before anything is stored;
//! only then is it saved as the next version ([`crate::store::settings_versions`]) and
//! put in force. A rollback saves an earlier version's values as a new version. Every
//! gateway sharing the store notices a newer version ([`App::follow_console`]: at each
//! fleet heartbeat, and at once when a peer's save is announced) and applies it.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value};

use crate::{
    app::{App, ReloadError, ReloadReport},
    settings::{refuse_key, ConsoleLayer, SettingsError},
    store::{NewSettingsVersion, SettingsVersion, Store, StoreError},
};

/// A change an admin asks for.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The version the admin's screen showed (0: none saved yet).
    pub base_version: u64,
    /// New values by dotted key.
    pub set: Map<String, Value>,
    /// Keys whose console value is removed: the file's (or the default) applies again.
    pub unset: Vec<String>,
}

/// What a save or a rollback did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Saved {
    /// The new version, now in force.
    pub version: u64,
    /// The keys this version changed in the console's values (secrets by name only).
    pub keys: Vec<String>,
    /// What applying it did, as a reload reports it.
    pub applied: ReloadReport,
}

/// Why a save was refused; nothing was saved and the settings in force are unchanged.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// A key the console may not set, or one this gateway's environment sets.
    #[error("{key}: {reason}")]
    Key { key: String, reason: String },
    /// The change makes settings that cannot be put in force; `key` is the one at
    /// fault, as near as it is known.
    #[error("{key}: {error}")]
    Refused { key: String, error: Box<ReloadError> },
    /// No such version to roll back to.
    #[error("there is no settings version {0}")]
    NoSuchVersion(u64),
    /// The base version is not the latest, or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The console's latest saved version as a settings layer, if any was saved.
pub async fn latest_layer(store: &dyn Store) -> Result<Option<ConsoleLayer>, StoreError> {
    Ok(store.latest_settings().await?.map(layer))
}

fn layer(version: SettingsVersion) -> ConsoleLayer {
    ConsoleLayer {
        version: version.version,
        values: version.values,
    }
}

impl App {
    /// Saves `change` by `saved_by` as a new version and puts it in force.
    pub async fn save_settings(&self, change: Change, saved_by: &str) -> Result<Saved, SaveError> {
        let keys: Vec<String> = change.set.keys().chain(&change.unset).cloned().collect();
        let Change {
            base_version,
            set,
            unset,
        } = change;
        let apply = move |mut values: Map<String, Value>| {
            for key in &unset {
                values.remove(key);
            }
            values.extend(set);
            values
        };
        self.save_values(base_version, &keys, apply, None, saved_by).await
    }

    /// Saves the values of `version` again as a new version, recorded as its rollback,
    /// and puts it in force.
    pub async fn rollback_settings(
        &self,
        base_version: u64,
        version: u64,
        saved_by: &str,
    ) -> Result<Saved, SaveError> {
        let target = self
            .store
            .settings_version(version)
            .await?
            .ok_or(SaveError::NoSuchVersion(version))?;
        let apply = move |_latest| target.values;
        self.save_values(base_version, &[], apply, Some(version), saved_by)
            .await
    }

    /// Refuses a key the console may not set here.
    fn check_key(current: &crate::settings::Loaded, key: &str) -> Result<(), SaveError> {
        if let Some(reason) = refuse_key(key) {
            return Err(SaveError::Key {
                key: key.to_string(),
                reason,
            });
        }
        if let Some(var) = current.environment_variable(key) {
            return Err(SaveError::Key {
                key: key.to_string(),
                reason: format!(
                    "read-only here: the environment variable {var} sets it on this gateway, \
                     and the environment wins over the console"
                ),
            });
        }
        Ok(())
    }

    /// Saves the latest version's values as `apply` changes them, provided
    /// `base_version` is the latest, once they are checked as a reload checks; then puts
    /// them in force. `keys` are the keys the admin named, each checked first.
    async fn save_values(
        &self,
        base_version: u64,
        keys: &[String],
        apply: impl FnOnce(Map<String, Value>) -> Map<String, Value>,
        rollback_of: Option<u64>,
        saved_by: &str,
    ) -> Result<Saved, SaveError> {
        let mut current = self.loaded.lock().await;
        for key in keys {
            App::check_key(&current, key)?;
        }
        let latest = self.store.latest_settings().await?;
        let latest_version = latest.as_ref().map_or(0, |v| v.version);
        if latest_version != base_version {
            return Err(StoreError::StaleSettingsVersion {
                base: base_version,
                latest: latest_version,
            }
            .into());
        }
        let before = latest.map(|v| v.values).unwrap_or_default();
        let values = apply(before.clone());
        let mut keys: Vec<String> = values
            .keys()
            .chain(before.keys())
            .filter(|key| values.get(*key) != before.get(*key))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        let Some(first_key) = keys.first().cloned() else {
            return Err(SaveError::Key {
                key: "set".into(),
                reason: format!(
                    "changes nothing: the console's values are already those of version {latest_version}"
                ),
            });
        };

        let layer = ConsoleLayer {
            version: base_version + 1,
            values: values.clone(),
        };
        let loaded = current.with_console(Some(layer)).map_err(|error| {
            let key = match &error {
                SettingsError::Invalid { key, .. } => (*key).to_string(),
                SettingsError::Read(text) => keys
                    .iter()
                    .find(|key| text.contains(key.as_str()))
                    .cloned()
                    .unwrap_or_else(|| first_key.clone()),
            };
            SaveError::Refused {
                key,
                error: Box::new(ReloadError::Settings(error)),
            }
        })?;
        let (live, applied) = self.prepare(&current, &loaded).await.map_err(|error| {
            let key = match &error {
                ReloadError::NewModule(crate::modules::LoadError::BadConfig { .. })
                | ReloadError::NewModule(crate::modules::LoadError::StartFailed { .. }) => {
                    "sms.plugin_config".to_string()
                }
                ReloadError::NewModule(_) => "sms.module".to_string(),
                ReloadError::Smtp(_) => "email.ca_file".to_string(),
                _ => first_key.clone(),
            };
            SaveError::Refused {
                key,
                error: Box::new(error),
            }
        })?;
        let saved = self
            .store
            .save_settings(NewSettingsVersion {
                base_version,
                saved_by: saved_by.to_string(),
                changed: keys.clone(),
                values,
                rollback_of,
            })
            .await?;
        tracing::info!(
            version = saved.version,
            saved_by,
            keys = ?keys,
            rollback_of,
            "console settings saved"
        );
        self.put_in_force(&mut current, loaded, live, &applied);
        Ok(Saved {
            version: saved.version,
            keys,
            applied,
        })
    }

    /// The console's version in force (0: none), and the console's keys that this
    /// gateway's environment sets, with their variables.
    pub async fn console_state(&self) -> (u64, std::collections::BTreeMap<&'static str, String>) {
        let current = self.loaded.lock().await;
        let version = current.console().map_or(0, |c| c.version);
        let environment = crate::settings::CONSOLE_KEYS
            .iter()
            .filter_map(|&key| current.environment_variable(key).map(|var| (key, var)))
            .collect();
        (version, environment)
    }

    /// Applies the console's latest version if it is newer than the one in force: what
    /// a gateway does when a peer of its fleet saved. A version this gateway cannot put
    /// in force (a module it does not have) is logged once and skipped; the settings in
    /// force stay.
    pub async fn follow_console(&self) {
        let latest = match self.store.latest_settings_version().await {
            Ok(latest) => latest,
            Err(error) => {
                tracing::warn!(%error, "cannot check for newer console settings");
                return;
            }
        };
        let mut current = self.loaded.lock().await;
        let in_force = current.console().map_or(0, |c| c.version);
        if latest <= in_force || latest == self.refused_console_version.load(Ordering::Relaxed) {
            return;
        }
        let result = async {
            let Some(layer) = latest_layer(self.store.as_ref())
                .await
                .map_err(ReloadError::Store)?
            else {
                return Ok(None);
            };
            let version = layer.version;
            let loaded = current.with_console(Some(layer))?;
            let (live, report) = self.prepare(&current, &loaded).await?;
            Ok::<_, ReloadError>(Some((version, loaded, live, report)))
        }
        .await;
        match result {
            Ok(Some((version, loaded, live, report))) => {
                tracing::info!(version, "applying console settings saved on another gateway");
                self.put_in_force(&mut current, loaded, live, &report);
            }
            Ok(None) => {}
            Err(error) => {
                self.refused_console_version.store(latest, Ordering::Relaxed);
                tracing::error!(
                    version = latest,
                    %error,
                    "console settings saved on another gateway cannot be put in force here; \
                     the settings in force stay as they were"
                );
            }
        }
    }
}
