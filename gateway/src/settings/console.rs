//! The admin console's layer of settings: between the file and the environment
//! (defaults < file < console < environment).
//!
//! The console sets only the keys of the *Settings for mailings* screen (its E-mail
//! and SMS tabs): [`CONSOLE_KEYS`]. What the listener, the store and the tokens are
//! stays with whoever runs the machine (the file, the environment), so a console
//! session cannot lock everyone out or move the queue. A key the environment sets wins
//! whatever the console saved, and the console is told it is read-only here.

use figment::{
    providers::Serialized,
    value::{Dict, Map},
    Figment, Metadata, Profile, Provider,
};

use super::{env, Loaded, SettingsError, ENV_PREFIX};

/// The keys the console may set.
pub const CONSOLE_KEYS: &[&str] = &[
    "email.max_per_connection",
    "email.smtp_threads",
    "email.default_from",
    "email.host",
    "email.port",
    "email.username",
    "email.password",
    "email.tls",
    "email.ca_file",
    "email.check_address",
    "email.dkim.domain",
    "email.dkim.selector",
    "email.dkim.private_key_file",
    "email.dkim.private_key",
    "email.dkim.public_key",
    "sms.module",
    "sms.default_country_code",
    "sms.sender",
    "sms.plugin_config",
    "sms.number_check",
    "sms.inbound_webhook",
];

/// The console's values of one saved version, as merged over the file.
#[derive(Clone, PartialEq)]
pub struct ConsoleLayer {
    /// The saved version these values are (0: none saved).
    pub version: u64,
    /// Values by dotted key (`email.smtp_threads`), secrets in the clear.
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// Without the values, which hold secrets.
impl std::fmt::Debug for ConsoleLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLayer")
            .field("version", &self.version)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConsoleLayer {
    /// How `gateway config` and `GET /v1/admin/settings` name this layer as a source.
    pub fn source(&self) -> String {
        format!("console (version {})", self.version)
    }
}

/// Why the console may not set `key`, if it may not: a key outside [`CONSOLE_KEYS`].
pub fn refuse_key(key: &str) -> Option<String> {
    if CONSOLE_KEYS.contains(&key) {
        return None;
    }
    let section = key.split('.').next().unwrap_or_default();
    Some(match section {
        "server" | "storage" | "auth" | "log" => format!(
            "{section}.* is not set from the console: it belongs to the settings file or the \
             environment of each gateway"
        ),
        _ => format!("not a key the console sets; it sets {}", CONSOLE_KEYS.join(", ")),
    })
}

/// Figment's view of a [`ConsoleLayer`], named so that shown settings can say where a
/// value came from.
struct ConsoleProvider<'a>(&'a ConsoleLayer);

impl Provider for ConsoleProvider<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.0.source())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut nested = serde_json::Map::new();
        for (key, value) in &self.0.values {
            // `email.dkim.domain` is `domain` in the table `dkim` of the section `email`.
            insert_nested(&mut nested, key, value.clone());
        }
        Serialized::defaults(serde_json::Value::Object(nested)).data()
    }
}

/// Puts `value` at the dotted `key` of `table`, making the tables on the way.
fn insert_nested(
    table: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: serde_json::Value,
) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = table
                .entry(head.to_string())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(inner) = inner {
                insert_nested(inner, rest, value);
            }
        }
    }
}

/// Stacks the layers over `base` (the defaults and the file): the console's, then the
/// environment's when `reads_env`.
pub(super) fn stack(base: &Figment, console: Option<&ConsoleLayer>, reads_env: bool) -> Figment {
    let mut figment = base.clone();
    if let Some(console) = console {
        figment = figment.merge(ConsoleProvider(console));
    }
    if reads_env {
        figment = figment.merge(env::provider());
        if let Ok(blob) = std::env::var(env::PLUGIN_CONFIG) {
            figment = figment.merge(Serialized::default("sms.plugin_config", blob));
        }
    }
    figment
}

impl Loaded {
    /// These settings with the console's layer `console` instead of the one they had
    /// (`None`: no console layer), the file as it was read.
    pub fn with_console(&self, console: Option<ConsoleLayer>) -> Result<Loaded, SettingsError> {
        let figment = stack(&self.base, console.as_ref(), self.reads_env);
        let mut loaded = Loaded::checked(figment, self.base.clone(), self.reads_env)?;
        loaded.console = console;
        loaded.source = self.source.clone();
        loaded.ignored_env = self.ignored_env.clone();
        Ok(loaded)
    }

    /// The environment variable that sets `key` for this gateway, if one does: the
    /// console cannot change such a key here.
    pub fn environment_variable(&self, key: &str) -> Option<String> {
        if !self.reads_env {
            return None;
        }
        let var = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase());
        std::env::var_os(&var).map(|_| var)
    }

    /// The console's layer in these settings, if any.
    pub fn console(&self) -> Option<&ConsoleLayer> {
        self.console.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn layer(version: u64, values: serde_json::Value) -> ConsoleLayer {
        let serde_json::Value::Object(values) = values else {
            unreachable!()
        };
        ConsoleLayer { version, values }
    }

    #[test]
    fn the_console_overrides_the_file_and_is_named_as_the_source() {
        let file = Loaded::from_toml("[email]\nsmtp_threads = 3\nmax_per_connection = 30").unwrap();
        let loaded = file
            .with_console(Some(layer(4, json!({"email.smtp_threads": 6}))))
            .unwrap();
        assert_eq!(loaded.settings.email.limits.connections(), 6);
        let shown = loaded.describe();
        assert_eq!(shown["email.smtp_threads"].source, "console (version 4)");
        assert_eq!(shown["email.smtp_threads"].value, 6);
        assert_eq!(shown["email.max_per_connection"].value, 30);
        assert_eq!(loaded.changed_since(&file), ["email.smtp_threads"]);
        // Without the layer, the file's value is back.
        let back = loaded.with_console(None).unwrap();
        assert_eq!(back.settings.email.limits.connections(), 3);
    }

    #[test]
    fn a_bad_console_value_is_refused_naming_its_key_without_its_value() {
        let file = Loaded::from_toml("").unwrap();
        let e = file
            .with_console(Some(layer(1, json!({"email.smtp_threads": 0}))))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("email.smtp_threads:"), "{e}");
        let e = file
            .with_console(Some(layer(1, json!({"email.password": 12345}))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("email.password") && !e.contains("12345"), "{e}");
    }

    #[test]
    fn a_secret_from_the_console_stays_redacted() {
        let loaded = Loaded::from_toml("")
            .unwrap()
            .with_console(Some(layer(
                2,
                json!({"email.username": "u", "email.password": "marker-pw", "sms.plugin_config": {"path": "marker"}}),
            )))
            .unwrap();
        let text = serde_json::to_string(&loaded.describe()).unwrap();
        assert!(!text.contains("marker"), "{text}");
        assert!(!format!("{loaded:?}").contains("marker"));
        let blob: serde_json::Value =
            serde_json::from_str(loaded.settings.sms.plugin_config.expose()).unwrap();
        assert_eq!(
            blob,
            json!({"path": "marker"}),
            "a table reaches the module as JSON"
        );
    }

    #[test]
    fn only_the_screens_keys_may_be_set() {
        assert_eq!(refuse_key("email.smtp_threads"), None);
        assert_eq!(refuse_key("sms.plugin_config"), None);
        for key in ["server.listen", "storage.url", "auth.tokens", "auth.max_failures"] {
            let reason = refuse_key(key).unwrap();
            assert!(reason.contains("not set from the console"), "{key}: {reason}");
        }
        assert!(refuse_key("email.smtp_thread")
            .unwrap()
            .contains("email.smtp_threads"));
        assert!(
            refuse_key("sms.modules_dir").is_some(),
            "a library path is the operator's"
        );
    }
}
