//! The settings as an admin sees them (`gateway config`, `GET /v1/admin/settings`):
//! every key with its value and where it came from, secrets redacted; and which keys
//! a reload changed.

use std::collections::BTreeMap;

use figment::{
    value::{Dict, Value},
    Source,
};
use serde::Serialize;

use super::{Loaded, Settings, ENV_PREFIX};
use crate::api::Role;

/// Keys whose values are secrets: redacted wherever settings are shown, and never
/// echoed in an error. `*` stands for any position in a list.
const SECRET_KEYS: &[&str] = &[
    "email.password",
    "sms.plugin_config",
    "auth.tokens.*.token",
    "storage.url",
];

/// Whether the value at `key` (a dotted path, as figment names it: `auth.tokens.0`)
/// is a secret, lies within one, or is a list entry that holds one (the whole of
/// `auth.tokens` is shown redacted, but a token's `role` may be named in an error).
pub(super) fn is_secret(key: &str) -> bool {
    let key: Vec<&str> = key.split('.').collect();
    SECRET_KEYS.iter().any(|secret| {
        let secret: Vec<&str> = secret.split('.').collect();
        // A key above the list itself (`auth`) is a section, not a secret.
        let depth = secret.iter().position(|s| *s == "*").unwrap_or(secret.len());
        key.len() >= depth && key.iter().zip(&secret).all(|(k, s)| *s == "*" || k == s)
    })
}

/// One setting as `gateway config` and `GET /v1/admin/settings` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Shown {
    /// The value, or `"[redacted]"` for a secret.
    pub value: serde_json::Value,
    /// Where it came from: `default`, the file's path, or the environment variable.
    pub source: String,
}

impl Loaded {
    /// The keys whose values differ from `earlier`'s, secrets included: a secret is
    /// compared, never shown.
    pub fn changed_since(&self, earlier: &Loaded) -> Vec<String> {
        let (now, before) = (self.describe(), earlier.describe());
        let mut keys: Vec<String> = now
            .keys()
            .chain(before.keys())
            .filter(|key| !is_secret(key))
            .filter(|key| now.get(*key).map(|s| &s.value) != before.get(*key).map(|s| &s.value))
            .cloned()
            .collect();
        let (a, b) = (&self.settings, &earlier.settings);
        let tokens = |s: &Settings| -> Vec<(String, Role)> {
            s.auth
                .iter()
                .map(|t| (t.token.expose().to_string(), t.role))
                .collect()
        };
        for (key, differs) in [
            ("email.password", a.email.password != b.email.password),
            ("sms.plugin_config", a.sms.plugin_config != b.sms.plugin_config),
            ("auth.tokens", tokens(a) != tokens(b)),
            ("storage.url", a.storage.url != b.storage.url),
        ] {
            if differs {
                keys.push(key.to_string());
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every setting with a value, secrets redacted, with where each came from.
    pub fn describe(&self) -> BTreeMap<String, Shown> {
        let mut out = BTreeMap::new();
        if let Ok(dict) = self.figment.extract::<Dict>() {
            self.walk("", &dict, &mut out);
        }
        // The effective modules directory, even when it is the default.
        let modules_dir = out.entry("sms.modules_dir".to_string()).or_insert_with(|| Shown {
            value: serde_json::Value::Null,
            source: "default".into(),
        });
        if modules_dir.value.is_null() {
            modules_dir.value = self.settings.sms.modules_dir.display().to_string().into();
            modules_dir.source = "default (the gateway's own directory)".into();
        }
        out
    }

    fn walk(&self, prefix: &str, dict: &Dict, out: &mut BTreeMap<String, Shown>) {
        for (name, value) in dict {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                Value::Dict(_, inner) if key != "sms.plugin_config" => self.walk(&key, inner, out),
                _ => {
                    let secret = is_secret(&key);
                    let shown = if secret {
                        serde_json::Value::String("[redacted]".into())
                    } else {
                        serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
                    };
                    let source = match self.figment.find_metadata(&key) {
                        Some(md) => match &md.source {
                            Some(Source::File(path)) => format!("file {}", path.display()),
                            // Serialized providers: the defaults, or the blob taken
                            // verbatim from its environment variable.
                            Some(Source::Code(_)) | None => {
                                env_source(&key).unwrap_or_else(|| "default".into())
                            }
                            Some(other) => other.to_string(),
                        },
                        None => "default".into(),
                    };
                    out.insert(key, Shown { value: shown, source });
                }
            }
        }
    }
}

/// The environment variable that set `key`, if one did.
fn env_source(key: &str) -> Option<String> {
    let var = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase());
    std::env::var_os(&var).map(|_| format!("environment variable {var}"))
}
