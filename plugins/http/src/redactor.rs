//! Values that must never be shown: credentials in the blob, and what the module
//! blanks out of a provider's answer before quoting it in an error.

use std::fmt;

use serde::{de::Error as _, Deserialize, Deserializer};

/// A string from the blob that may be a credential. Its `Debug` hides it, and a value
/// of the wrong type is refused without being quoted (serde's own message would quote
/// a number, and a password may be one).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the request or a comparison; never for a message.
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
                "expected a string (the value is not shown: it may be a secret)",
            )),
        }
    }
}

/// Replaces every known secret in a text by `[redacted]`.
///
/// Used on the provider's answers before they are quoted in an error: some providers
/// echo the request's parameters, credentials included, when they refuse it.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is blanked out whole.
    secrets: Vec<Secret>,
}

impl Redactor {
    /// Shorter values are not redacted: they would match all over an answer, and a
    /// credential that short protects nothing anyway.
    const MIN_LEN: usize = 4;

    pub fn add(&mut self, secret: &str) {
        if secret.len() >= Self::MIN_LEN && !self.secrets.iter().any(|s| s.expose() == secret) {
            self.secrets.push(Secret::new(secret));
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.expose()) {
                text = text.replace(secret.expose(), "[redacted]");
            }
        }
        text
    }
}

/// Compares two secrets in a time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_of_the_wrong_type_is_refused_without_being_quoted() {
        let err = serde_json::from_str::<Secret>("12345678")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("12345678"), "{err}");
        assert!(err.contains("expected a string"), "{err}");
        assert_eq!(format!("{:?}", Secret::new("hunter22")), "Secret(..)");
    }

    #[test]
    fn redaction_blanks_the_longest_secret_first_and_skips_tiny_ones() {
        let mut redactor = Redactor::default();
        redactor.add("abcd");
        redactor.add("abcdefgh");
        redactor.add("ab");
        assert_eq!(
            redactor.redact("key=abcdefgh k2=abcd x=ab"),
            "key=[redacted] k2=[redacted] x=ab"
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokem"));
        assert!(!constant_time_eq(b"token", b"token2"));
    }
}
