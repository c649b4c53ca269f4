//! Credentials from the blob: never shown, and blanked out of Twilio's answers
//! before an error quotes them.

use std::fmt;

use serde::{de::Error as _, Deserialize, Deserializer};

/// A credential. Its `Debug` hides it, and a value of the wrong type is refused
/// without being quoted (serde's own message would quote a number).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value itself, for the request or a signature; never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(value) => Ok(Secret(value)),
            _ => Err(D::Error::custom(
                "expected a string (the value is not shown: it is secret)",
            )),
        }
    }
}

/// `text` with every one of `secrets` replaced by `[redacted]`.
pub fn redact<'a>(text: &str, secrets: impl IntoIterator<Item = &'a Secret>) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        if !secret.0.is_empty() && text.contains(&secret.0) {
            text = text.replace(&secret.0, "[redacted]");
        }
    }
    text
}
