//! Step 1 — the configuration blob, read once into checked values.
//!
//! FILL IN: your provider's settings. Keep `deny_unknown_fields` (a typo is an error,
//! not a silently ignored key), name the key in every error, and keep credentials in
//! [`Secret`] so that they cannot end up in a message or a log line.

use std::fmt;

use serde::Deserialize;

use plugin_api::{ModuleError, Secret};

/// The example API's address; a test points it at a local server.
pub const DEFAULT_BASE_URL: &str = "https://api.example-sms.invalid";

/// Everything the module needs, checked. Not `Debug`: it holds credentials.
#[derive(Clone)]
pub struct Config {
    pub api_key: Secret,
    /// Without a trailing `/`.
    pub base_url: String,
    /// When set, callbacks must carry it in [`crate::callback::TOKEN_HEADER`].
    pub callback_token: Option<Secret>,
}

/// The blob as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    api_key: Secret,
    base_url: Option<String>,
    callback_token: Option<Secret>,
}

impl Config {
    pub fn parse(blob: &str) -> Result<Config, ModuleError> {
        if !blob.trim_start().starts_with('{') {
            return Err(ModuleError::configuration(
                "the blob is not valid: it must be a JSON object with at least `api_key`",
            ));
        }
        // serde_path_to_error names the key of a value of the wrong type.
        let raw: RawConfig = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(blob))
            .map_err(|e| match e.path().to_string().as_str() {
                "." => ModuleError::configuration(format!("the blob is not valid: {}", e.inner())),
                path => bad(path, e.inner()),
            })?;

        // FILL IN: every check that serde cannot make.
        if raw.api_key.expose().trim().is_empty() {
            return Err(bad("api_key", "is empty"));
        }
        let base_url = raw.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(bad("base_url", "must start with `https://` or `http://`"));
        }
        if raw.callback_token.as_ref().is_some_and(|t| t.expose().is_empty()) {
            return Err(bad("callback_token", "is empty"));
        }
        Ok(Config {
            api_key: raw.api_key,
            base_url: base_url.trim_end_matches('/').to_string(),
            callback_token: raw.callback_token,
        })
    }
}

fn bad(key: &str, reason: impl fmt::Display) -> ModuleError {
    ModuleError::configuration(format!("`{key}`: {reason}"))
}
