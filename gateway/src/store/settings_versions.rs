//! Settings saved from the admin console, kept as numbered versions.
//!
//! The console never rewrites `gateway.toml` (configuration management may own it):
//! what an admin saves is a new row here, holding the whole set of console-set values,
//! so that every gateway sharing the store applies the same thing and any earlier
//! version can be put back. Versions count up from 1; version 0 stands for "nothing
//! saved yet".
//!
//! - **Optimistic concurrency.** A save names the version it was based on; if another
//!   admin saved since, it is refused ([`StoreError::StaleSettingsVersion`]) instead of
//!   silently undoing their change.
//! - **Secrets.** The values include secrets (the SMTP password, the plugin blob): the
//!   store is trusted as the file is. [`SettingsVersion`]'s `Debug` never prints them,
//!   and the API shows them only as set or not set. `changed` names keys, never values.
//! - **Who.** `saved_by` is the name the caller is known by (a token's fingerprint, or
//!   later a console session's user), never a token.

use std::fmt;
use std::time::SystemTime;

use super::StoreError;

/// A version to save.
#[derive(Clone, PartialEq)]
pub struct NewSettingsVersion {
    /// The version the change was made on: the latest when the admin loaded it (0 for
    /// none). Refused unless it is still the latest.
    pub base_version: u64,
    /// Who saved it (see the module doc).
    pub saved_by: String,
    /// The keys whose values this version changes, sorted; secrets by name only.
    pub changed: Vec<String>,
    /// Every console-set value, by dotted key (`email.smtp_threads`).
    pub values: serde_json::Map<String, serde_json::Value>,
    /// The version this one restores, when it is a rollback.
    pub rollback_of: Option<u64>,
}

/// A saved version.
#[derive(Clone, PartialEq)]
pub struct SettingsVersion {
    pub version: u64,
    pub saved_at: SystemTime,
    pub saved_by: String,
    pub changed: Vec<String>,
    /// Every console-set value in force with this version, secrets in the clear.
    pub values: serde_json::Map<String, serde_json::Value>,
    pub rollback_of: Option<u64>,
}

/// Without the values, which hold secrets.
impl fmt::Debug for SettingsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingsVersion")
            .field("version", &self.version)
            .field("saved_at", &self.saved_at)
            .field("saved_by", &self.saved_by)
            .field("changed", &self.changed)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("rollback_of", &self.rollback_of)
            .finish()
    }
}

/// Without the values, which hold secrets.
impl fmt::Debug for NewSettingsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSettingsVersion")
            .field("base_version", &self.base_version)
            .field("saved_by", &self.saved_by)
            .field("changed", &self.changed)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("rollback_of", &self.rollback_of)
            .finish()
    }
}

/// The console's saved settings: a side of the store of its own.
#[async_trait::async_trait]
pub trait SettingsVersions: Send + Sync {
    /// Saves `new` as version `base_version + 1`, atomically, provided `base_version` is
    /// the latest version (0 when none is saved); otherwise
    /// [`StoreError::StaleSettingsVersion`] and nothing is saved.
    async fn save_settings(&self, new: NewSettingsVersion) -> Result<SettingsVersion, StoreError>;

    /// The latest version, if any was saved.
    async fn latest_settings(&self) -> Result<Option<SettingsVersion>, StoreError>;

    /// The number of the latest version (0 when none): a cheap check for a newer save.
    async fn latest_settings_version(&self) -> Result<u64, StoreError>;

    /// Versions newest first, at most `limit`.
    async fn settings_history(&self, limit: usize) -> Result<Vec<SettingsVersion>, StoreError>;

    /// One version, if it exists.
    async fn settings_version(&self, version: u64) -> Result<Option<SettingsVersion>, StoreError>;
}

/// The JSON columns of a stored version, read back.
pub(crate) fn parse_values(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("settings version values: {e}")))
}

pub(crate) fn parse_keys(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("settings version keys: {e}")))
}

/// A stored version number (a positive 64-bit integer in both databases).
pub(crate) fn version_number(stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| StoreError::Corrupt(format!("settings version {stored}")))
}
