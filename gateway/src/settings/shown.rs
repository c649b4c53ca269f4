//! The settings as an admin sees them (`gateway config`, `GET /v1/admin/settings`):
//! every key with its value and where it came from, secrets redacted; and which keys
//! a reload changed.

use std::collections::BTreeMap;

use figment::{
    value::{Dict, Value},
    Source,
};
use serde::Serialize;

use super::{Loaded, ENV_PREFIX};

/// Keys whose values are secrets: the one list that the shown settings (`gateway
/// config`, `GET /v1/admin/settings`), a reload's report of changed keys and the
/// errors of a bad file all follow. `*` stands for any position in a list. A `Secret`
/// field of [`Settings`](super::Settings) must have its key here; a test below checks.
const SECRET_KEYS: &[&str] = &[
    "email.password",
    "email.dkim.private_key",
    "sms.plugin_config",
    "auth.tokens.*.token",
    "storage.url",
];

/// Whether the value at `key` (a dotted path, as figment names it: `auth.tokens.0`)
/// is a secret, lies within one, or is a list entry that holds one (the whole of
/// `auth.tokens` is shown redacted, but a token's `role` may be named in an error).
pub fn is_secret(key: &str) -> bool {
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
    /// Where it came from: `default`, the file's path, `console (version N)`, or the
    /// environment variable.
    pub source: String,
}

impl Loaded {
    /// The keys whose values differ from `earlier`'s, secrets included: a secret is
    /// compared, never shown (only its key is named).
    pub fn changed_since(&self, earlier: &Loaded) -> Vec<String> {
        let (now, before) = (self.values(Redact::No), earlier.values(Redact::No));
        let mut keys: Vec<String> = now
            .keys()
            .chain(before.keys())
            .filter(|key| now.get(*key).map(|s| &s.value) != before.get(*key).map(|s| &s.value))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every setting with a value, secrets redacted, with where each came from.
    pub fn describe(&self) -> BTreeMap<String, Shown> {
        self.values(Redact::Secrets)
    }

    /// Every setting with a value and its source; the values of [`SECRET_KEYS`]
    /// replaced by `[redacted]` unless `redact` says not to (for comparing only).
    fn values(&self, redact: Redact) -> BTreeMap<String, Shown> {
        let mut out = BTreeMap::new();
        if let Ok(dict) = self.figment.extract::<Dict>() {
            self.walk("", &dict, redact, &mut out);
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
        // Unset, it changes what mailings carry: say so where an admin looks.
        let public_url = out
            .entry("email.public_url".to_string())
            .or_insert_with(|| Shown {
                value: serde_json::Value::Null,
                source: "default".into(),
            });
        if public_url.value.is_null() {
            public_url.source = "not set: mailing e-mails go out without a List-Unsubscribe link".into();
        }
        out
    }

    fn walk(&self, prefix: &str, dict: &Dict, redact: Redact, out: &mut BTreeMap<String, Shown>) {
        for (name, value) in dict {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                Value::Dict(_, inner) if key != "sms.plugin_config" => self.walk(&key, inner, redact, out),
                _ => {
                    let shown = if redact == Redact::Secrets && is_secret(&key) {
                        serde_json::Value::String("[redacted]".into())
                    } else {
                        serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
                    };
                    let source = match self.figment.find_metadata(&key) {
                        Some(md) if md.name.starts_with("console (") => md.name.to_string(),
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

/// Whether [`Loaded::values`] hides the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redact {
    Secrets,
    /// For [`Loaded::changed_since`], which compares values and shows only keys.
    No,
}

/// The environment variable that set `key`, if one did.
fn env_source(key: &str) -> Option<String> {
    let var = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase());
    std::env::var_os(&var).map(|_| format!("environment variable {var}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every secret the settings have, each set to a value containing `marker` (the
    /// DKIM key, which must be a key, as the test key in PKCS#8).
    fn all_secrets() -> String {
        format!(
            "[storage]\nurl = \"postgres://marker-url@db/gateway\"\n\
             [email]\nusername = \"u\"\npassword = \"marker-password\"\n\
             [email.dkim]\ndomain = \"example.com\"\nselector = \"s\"\nprivate_key = '''{DKIM_KEY}'''\n\
             [sms]\nplugin_config = \"marker-blob\"\n\
             [[auth.tokens]]\ntoken = \"marker-token-0123456789\"\nrole = \"admin\"\n"
        )
    }
    const DKIM_KEY: &str = include_str!("../../../tests/dkim/rsa2048.pem");
    /// The same key in PKCS#1: another value of `email.dkim.private_key`.
    const DKIM_KEY_PKCS1: &str = include_str!("../../../tests/dkim/rsa2048-pkcs1.pem");

    #[test]
    fn every_secret_field_of_the_settings_is_redacted_where_settings_are_shown() {
        let loaded = Loaded::from_toml(&all_secrets()).unwrap();
        let shown = loaded.describe();
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains("marker"), "a secret is shown: {text}");
        // A `Secret` prints `[redacted]` in the checked settings' Debug, once per
        // field; each must be a redacted key of the shown view. A `Secret` field
        // added without its key in SECRET_KEYS is shown in the clear, and the counts
        // part.
        let secret_fields = format!("{:?}", loaded.settings).matches("[redacted]").count();
        let redacted: Vec<&String> = shown
            .iter()
            .filter(|(_, s)| s.value == "[redacted]")
            .map(|(key, _)| key)
            .collect();
        assert_eq!(secret_fields, redacted.len(), "redacted keys: {redacted:?}");
        assert_eq!(
            redacted,
            [
                "auth.tokens",
                "email.dkim.private_key",
                "email.password",
                "sms.plugin_config",
                "storage.url"
            ]
        );
    }

    #[test]
    fn a_reload_names_the_secret_keys_it_changes_but_never_their_values() {
        let earlier = Loaded::from_toml(&all_secrets()).unwrap();
        assert!(Loaded::from_toml(&all_secrets())
            .unwrap()
            .changed_since(&earlier)
            .is_empty());
        let now = Loaded::from_toml(
            &all_secrets()
                .replace("marker", "other")
                .replace("admin", "send")
                .replace(DKIM_KEY, DKIM_KEY_PKCS1),
        )
        .unwrap();
        let changed = now.changed_since(&earlier);
        assert_eq!(
            changed,
            [
                "auth.tokens",
                "email.dkim.private_key",
                "email.password",
                "sms.plugin_config",
                "storage.url"
            ]
        );
        let role_only = Loaded::from_toml(&all_secrets().replace("admin", "send")).unwrap();
        assert_eq!(role_only.changed_since(&earlier), ["auth.tokens"]);
    }

    #[test]
    fn a_token_is_secret_but_its_role_and_its_section_are_not() {
        for key in [
            "auth.tokens",
            "auth.tokens.0",
            "auth.tokens.3.token",
            "email.password",
            "email.dkim.private_key",
            "storage.url",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "",
            "auth",
            "auth.tokens.0.role",
            "auth.max_failures",
            "email",
            "email.username",
            "email.dkim",
            "email.dkim.private_key_file",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }
}
