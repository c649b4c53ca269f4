//! The settings endpoints: what is in force and where each value came from, and the
//! admin console's saved versions (save, history, rollback).
//!
//! Secrets are write-only here: a save may set them, but no answer shows their value,
//! only whether they are set (and, for the plugin blob, its size and when it changed).

use std::{collections::BTreeMap, sync::Arc};

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    auth::{role, Caller},
    body::{BodyLimit, JsonBody},
    problem::Problem,
};
use crate::{
    app::App,
    console_settings::{Change, SaveError, Saved},
    modules::ModuleInfo,
    settings::{is_secret, Shown, CONSOLE_KEYS},
    store::{SettingsVersion, StoreError},
    time::rfc3339,
};

/// How many versions the history shows.
const HISTORY_LIMIT: usize = 100;

/// The answer of `GET /v1/admin/settings`.
#[derive(Debug, Serialize)]
pub(super) struct SettingsView {
    /// Every setting by key, secrets redacted, with where it came from.
    settings: BTreeMap<String, Shown>,
    sms_module: ModuleInfo,
    /// What the console may change, and its version in force.
    console: ConsoleView,
    /// The fleet, on a shared store.
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<crate::fleet::FleetStatus>,
}

#[derive(Debug, Serialize)]
struct ConsoleView {
    /// The console's version in force (0: none saved): the `base_version` of a save.
    version: u64,
    /// Each key the console sets: whether it may here, and the secrets' state.
    keys: BTreeMap<&'static str, ConsoleKey>,
}

#[derive(Debug, Serialize)]
struct ConsoleKey {
    /// False when this gateway's environment sets the key, which wins over the console.
    editable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment_variable: Option<String>,
    /// For a secret: whether it has a value (never the value itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    set: Option<bool>,
    /// For the plugin blob: its size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<usize>,
    /// For a secret the console changed: when, and in which version.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_in_version: Option<u64>,
}

/// `GET /v1/admin/settings`: every setting in force, secrets redacted, with where
/// each came from, and what the console may change.
pub(super) async fn settings(State(app): State<Arc<App>>) -> Result<Json<SettingsView>, Problem> {
    let live = app.live();
    let (version, environment) = app.console_state().await;
    let history = app
        .store
        .settings_history(HISTORY_LIMIT)
        .await
        .map_err(store_failed)?;
    let keys = CONSOLE_KEYS
        .iter()
        .map(|&key| {
            let variable = environment.get(key).cloned();
            let mut shown = ConsoleKey {
                editable: variable.is_none(),
                environment_variable: variable,
                set: None,
                bytes: None,
                changed_at: None,
                changed_in_version: None,
            };
            if is_secret(key) {
                let value = match key {
                    "sms.plugin_config" => live.settings.sms.plugin_config.expose().to_string(),
                    // Kept only as the signer it became: the shown settings say whether
                    // a value is in force (redacted), and that is all this tells.
                    "email.dkim.private_key" => match live.shown.get(key) {
                        Some(shown) if !shown.value.is_null() => "set".into(),
                        _ => String::new(),
                    },
                    _ => live
                        .settings
                        .email
                        .password
                        .as_ref()
                        .map(|p| p.expose().to_string())
                        .unwrap_or_default(),
                };
                shown.set = Some(!value.is_empty());
                if key == "sms.plugin_config" {
                    shown.bytes = Some(value.len());
                }
                if let Some(changed) = history.iter().find(|v| v.changed.iter().any(|k| k == key)) {
                    shown.changed_at = Some(rfc3339(changed.saved_at));
                    shown.changed_in_version = Some(changed.version);
                }
            }
            (key, shown)
        })
        .collect();
    Ok(Json(SettingsView {
        settings: live.shown.clone(),
        sms_module: live.module.info().clone(),
        console: ConsoleView { version, keys },
        fleet: app.fleet.get(),
    }))
}

/// The body of `PUT /v1/admin/settings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SaveRequest {
    /// The console version the change was made on (`console.version` of the settings).
    base_version: u64,
    /// New values by key (`email.smtp_threads`).
    #[serde(default)]
    set: serde_json::Map<String, serde_json::Value>,
    /// Keys whose console value is removed (the file's or the default applies again).
    #[serde(default)]
    unset: Vec<String>,
}

impl BodyLimit for SaveRequest {}

/// `PUT /v1/admin/settings`: checks the change as a reload is checked, saves it as
/// the console's next version, and puts it in force.
pub(super) async fn save(
    State(app): State<Arc<App>>,
    caller: Caller<role::Admin>,
    JsonBody(request): JsonBody<SaveRequest>,
) -> Result<Json<Saved>, Problem> {
    let change = Change {
        base_version: request.base_version,
        set: request.set,
        unset: request.unset,
    };
    let who = who(&app, &caller);
    app.save_settings(change, &who).await.map(Json).map_err(refused)
}

/// The body of `POST /v1/admin/settings/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackRequest {
    /// The version whose values to put back.
    version: u64,
    /// The console version the rollback was asked on; the latest if left out.
    base_version: Option<u64>,
}

impl BodyLimit for RollbackRequest {}

/// `POST /v1/admin/settings/rollback`: saves an earlier version's values as the
/// next version (recorded as its rollback), and puts them in force.
pub(super) async fn rollback(
    State(app): State<Arc<App>>,
    caller: Caller<role::Admin>,
    JsonBody(request): JsonBody<RollbackRequest>,
) -> Result<Json<Saved>, Problem> {
    let base = match request.base_version {
        Some(base) => base,
        None => app.store.latest_settings_version().await.map_err(store_failed)?,
    };
    let who = who(&app, &caller);
    app.rollback_settings(base, request.version, &who)
        .await
        .map(Json)
        .map_err(refused)
}

/// The answer of `GET /v1/admin/settings/history`.
#[derive(Debug, Serialize)]
pub(super) struct History {
    /// Newest first.
    versions: Vec<VersionView>,
}

#[derive(Debug, Serialize)]
struct VersionView {
    version: u64,
    saved_at: String,
    saved_by: String,
    /// The keys it changed; secrets by name only.
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_of: Option<u64>,
}

impl From<SettingsVersion> for VersionView {
    fn from(version: SettingsVersion) -> Self {
        VersionView {
            version: version.version,
            saved_at: rfc3339(version.saved_at),
            saved_by: version.saved_by,
            keys: version.changed,
            rollback_of: version.rollback_of,
        }
    }
}

/// `GET /v1/admin/settings/history`: the console's saved versions, newest first,
/// with when, who and which keys; never a value.
pub(super) async fn history(State(app): State<Arc<App>>) -> Result<Json<History>, Problem> {
    let versions = app
        .store
        .settings_history(HISTORY_LIMIT)
        .await
        .map_err(store_failed)?;
    Ok(Json(History {
        versions: versions.into_iter().map(VersionView::from).collect(),
    }))
}

/// How the history names a caller: its token's role and position in `auth.tokens`,
/// and a short digest of the token that tells tokens apart without revealing one;
/// through a console session, the session's token, said so.
fn who<R>(app: &App, caller: &Caller<R>) -> String {
    let live = app.live();
    let Some(token) = live.settings.auth.get(caller.token_index) else {
        return format!("token #{}", caller.token_index + 1);
    };
    let digest = Sha256::digest(token.token.expose().as_bytes());
    let digest: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let role = serde_json::to_value(token.role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let via = if caller.console { " in the console" } else { "" };
    format!("{role} token #{} (sha256 {digest}…){via}", caller.token_index + 1)
}

fn refused(error: SaveError) -> Problem {
    match error {
        SaveError::Key { key, reason } => Problem::invalid(key, reason),
        SaveError::Refused { key, error } => {
            tracing::warn!(%key, %error, "console settings refused; the settings in force stay as they were");
            Problem::invalid(key, format!("{error}; nothing was saved"))
        }
        SaveError::NoSuchVersion(version) => {
            Problem::not_found(format!("there is no settings version {version}"))
        }
        SaveError::Store(error @ StoreError::StaleSettingsVersion { .. }) => {
            Problem::conflict(error.to_string())
        }
        SaveError::Store(error) => store_failed(error),
    }
}

fn store_failed(error: StoreError) -> Problem {
    tracing::error!(%error, "cannot read or save the console's settings");
    Problem::unavailable("the store cannot read or save the console's settings now")
}
