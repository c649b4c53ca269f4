//! `sms.plugin_config`, the module's configuration blob, as the gateway holds it.
//!
//! A blob written as a string reaches the module verbatim. One written as a TOML table
//! reaches it as JSON text that the gateway made, which the admin never saw: a module
//! that refuses it "at line 1 column 57" (serde_json's way) would point into nothing
//! the admin can open. So the gateway writes that JSON one value a line, remembers
//! which key of the table each line holds, and turns a position in the module's
//! message into the key: `at sms.plugin_config.callbacks.format`.

use std::fmt;

use serde_json::Value;

use super::LoadError;
use crate::secret::Secret;

/// The settings key of the blob, which the keys of a table blob start with.
const KEY: &str = "sms.plugin_config";

/// The blob, and for a table the key each of its lines holds. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PluginConfig {
    text: Secret,
    /// For a table: the settings key of each line of `text` (line 1 first); `None`
    /// for a string, whose lines are the admin's own.
    keys: Option<Vec<String>>,
}

impl PluginConfig {
    /// A blob written as a string: handed over as it is.
    pub fn verbatim(text: impl Into<String>) -> PluginConfig {
        PluginConfig {
            text: Secret::new(text),
            keys: None,
        }
    }

    /// A blob written as a TOML table (read into JSON values): handed over as JSON.
    pub fn from_table(table: &Value) -> PluginConfig {
        let mut writer = Writer::default();
        writer.value(KEY, table, 0, "", "");
        PluginConfig {
            text: Secret::new(writer.text),
            keys: Some(writer.keys),
        }
    }

    /// The text the module is given.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// `error` with every `line L column C` of a table blob in the module's message
    /// replaced by the key on that line. Other errors, and string blobs, are left as
    /// they are.
    pub fn locate(&self, error: LoadError) -> LoadError {
        match error {
            LoadError::BadConfig {
                path,
                module,
                mut error,
            } => {
                error.message = self.explain(&error.message).into();
                LoadError::BadConfig { path, module, error }
            }
            LoadError::StartFailed {
                path,
                module,
                mut error,
            } => {
                error.message = self.explain(&error.message).into();
                LoadError::StartFailed { path, module, error }
            }
            other => other,
        }
    }

    /// `message` with ` at line L column C` turned into ` at KEY` where line `L` of a
    /// table blob holds `KEY`.
    fn explain(&self, message: &str) -> String {
        let Some(keys) = &self.keys else {
            return message.to_string();
        };
        const AT: &str = " at line ";
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(start) = rest.find(AT) {
            out.push_str(&rest[..start]);
            let after = &rest[start + AT.len()..];
            match position(after).and_then(|(line, len)| Some((keys.get(line.checked_sub(1)?)?, len))) {
                Some((key, len)) => {
                    out.push_str(" at ");
                    out.push_str(key);
                    rest = &after[len..];
                }
                None => {
                    out.push_str(AT);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// `L column C` at the start of `text`: the line, and how long the whole is.
fn position(text: &str) -> Option<(usize, usize)> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let line_len = digits(text);
    let line = text[..line_len].parse().ok()?;
    let rest = text[line_len..].strip_prefix(" column ")?;
    let column_len = digits(rest);
    (column_len > 0).then_some((line, line_len + " column ".len() + column_len))
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Pretty JSON, one value or bracket a line, with the key each line holds.
#[derive(Default)]
struct Writer {
    text: String,
    keys: Vec<String>,
}

impl Writer {
    /// Writes `value` (whose settings key is `key`) after `member` (`"name": ` inside
    /// an object, nothing otherwise), followed by `comma`.
    fn value(&mut self, key: &str, value: &Value, depth: usize, member: &str, comma: &str) {
        let indent = "  ".repeat(depth);
        let (open, close, children): (&str, &str, Vec<(String, String, &Value)>) = match value {
            Value::Object(map) if !map.is_empty() => (
                "{",
                "}",
                map.iter()
                    .map(|(name, child)| {
                        let member = format!("{}: ", Value::String(name.clone()));
                        (format!("{key}.{}", key_part(name)), member, child)
                    })
                    .collect(),
            ),
            Value::Array(items) if !items.is_empty() => (
                "[",
                "]",
                items
                    .iter()
                    .enumerate()
                    .map(|(i, child)| (format!("{key}.{i}"), String::new(), child))
                    .collect(),
            ),
            scalar => {
                self.line(key, format!("{indent}{member}{scalar}{comma}"));
                return;
            }
        };
        self.line(key, format!("{indent}{member}{open}"));
        let last = children.len() - 1;
        for (i, (child_key, child_member, child)) in children.into_iter().enumerate() {
            let comma = if i == last { "" } else { "," };
            self.value(&child_key, child, depth + 1, &child_member, comma);
        }
        self.line(key, format!("{indent}{close}{comma}"));
    }

    fn line(&mut self, key: &str, text: String) {
        self.text.push_str(&text);
        self.text.push('\n');
        self.keys.push(key.to_string());
    }
}

/// A table key as TOML writes it in a dotted key: bare when it can be, else quoted.
fn key_part(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        Value::String(name.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn table() -> Value {
        json!({
            "url": "https://api.example/sms",
            "headers": {"X-Api-Key": "k", "a.b": "c"},
            "success_status": [200, "2xx"],
            "empty": {},
            "none": [],
        })
    }

    #[test]
    fn a_table_becomes_the_same_json_one_value_a_line() {
        let blob = PluginConfig::from_table(&table());
        let parsed: Value = serde_json::from_str(blob.expose()).unwrap();
        assert_eq!(parsed, table());
        let keys = blob.keys.as_ref().unwrap();
        assert_eq!(blob.expose().lines().count(), keys.len());
        let line = |key: &str| keys.iter().position(|k| k == key).map(|i| i + 1);
        for key in [
            "sms.plugin_config.url",
            "sms.plugin_config.headers.X-Api-Key",
            "sms.plugin_config.headers.\"a.b\"",
            "sms.plugin_config.success_status.1",
            "sms.plugin_config.empty",
        ] {
            assert!(line(key).is_some(), "{key} in {keys:?}");
        }
    }

    /// What serde_json says about a table blob, as modules pass it on.
    fn complaint<T: for<'de> Deserialize<'de>>(table: Value) -> (String, String) {
        let blob = PluginConfig::from_table(&table);
        let message = serde_json::from_str::<T>(blob.expose())
            .err()
            .expect("refused")
            .to_string();
        (message.clone(), blob.explain(&message))
    }

    #[test]
    fn a_modules_complaint_names_the_key_instead_of_a_line_of_made_up_json() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Config {
            url: String,
            #[serde(default)]
            callbacks: Option<Callbacks>,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Callbacks {
            format: String,
            retries: Option<u8>,
        }
        let (raw, explained) = complaint::<Config>(json!({"url": 7}));
        assert!(raw.ends_with("at line 2 column 10"), "{raw}");
        assert_eq!(
            explained,
            "invalid type: integer `7`, expected a string at sms.plugin_config.url"
        );
        let (_, explained) =
            complaint::<Config>(json!({"url": "u", "callbacks": {"format": "json", "retries": 300}}));
        assert_eq!(
            explained,
            "invalid value: integer `300`, expected u8 at sms.plugin_config.callbacks.retries"
        );
        let (_, explained) = complaint::<Config>(json!({"url": "u", "callbacks": {"retries": 3}}));
        assert_eq!(explained, "missing field `format` at sms.plugin_config.callbacks");
        let (_, explained) = complaint::<Config>(json!({"url": "u", "paht": "x"}));
        assert!(
            explained.starts_with("unknown field `paht`")
                && explained.ends_with(" at sms.plugin_config.paht"),
            "{explained}"
        );
    }

    #[test]
    fn string_blobs_and_other_texts_are_left_as_they_are() {
        let message = "`url`: invalid type at line 1 column 8";
        assert_eq!(PluginConfig::verbatim("{\"url\": 7}").explain(message), message);
        let blob = PluginConfig::from_table(&json!({"url": 7}));
        for message in [
            "past the end at line 99 column 1",
            "before the start at line 0 column 1",
            "said at line 2 and no column",
            "said at line 2 column x",
        ] {
            assert_eq!(blob.explain(message), message);
        }
        assert_eq!(
            blob.explain("a at line 2 column 9; b at line 1 column 1"),
            "a at sms.plugin_config.url; b at sms.plugin_config"
        );
    }

    #[test]
    fn the_blob_never_shows_in_debug() {
        let blob = PluginConfig::from_table(&json!({"api_key": "marker-secret"}));
        assert_eq!(format!("{blob:?}"), "[redacted]");
    }
}
