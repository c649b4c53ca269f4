//! Credentials inside a module: a string that never prints, and a comparison whose
//! time does not tell an attacker how much of a guess was right.
//!
//! Both live in the module (they never cross the boundary): every module holds API
//! keys from its blob and checks callbacks against a shared secret, and each used to
//! write its own copy of these.

use std::fmt;

use serde::{de::Error as _, Deserialize, Deserializer};

/// A credential from the blob (an API key, a password, a callback token).
///
/// It has no `Display`, so it cannot be formatted into an error or a log line by
/// mistake, and its `Debug` says `Secret(..)`. Deserialised from a blob, a value of
/// the wrong type is refused without being quoted (serde's own message would quote a
/// number, and a password may be one).
///
/// ```
/// use plugin_api::Secret;
///
/// #[derive(serde::Deserialize)]
/// struct Config {
///     api_key: Secret,
/// }
///
/// let config: Config = serde_json::from_str(r#"{"api_key": "k-123"}"#).unwrap();
/// assert_eq!(config.api_key.expose(), "k-123");
/// assert_eq!(format!("{:?}", config.api_key), "Secret(..)");
/// assert!(config.api_key.matches("k-123"));
///
/// let refused = serde_json::from_str::<Config>(r#"{"api_key": 4711}"#).err().unwrap();
/// assert!(!refused.to_string().contains("4711"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for a request header or a signature; never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` (a token a callback carries) is this secret, compared with
    /// [`constant_time_eq`].
    pub fn matches(&self, given: impl AsRef<[u8]>) -> bool {
        constant_time_eq(given.as_ref(), self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
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

/// Whether `a` and `b` are equal, in a time that depends on their length only, not on
/// where they first differ: compare a token a caller sent with the secret this way, so
/// that timing does not let anyone guess it byte by byte.
///
/// ```
/// use plugin_api::constant_time_eq;
///
/// assert!(constant_time_eq(b"cb-token", b"cb-token"));
/// assert!(!constant_time_eq(b"cb-token", b"cb-tokem"));
/// assert!(!constant_time_eq(b"cb-token", b"cb-token-2"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold back into an early exit.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_of_any_other_type_is_refused_without_being_quoted() {
        for value in [
            "12345678",
            "true",
            "[\"abcdefgh\"]",
            "{\"k\": \"abcdefgh\"}",
            "null",
        ] {
            let err = serde_json::from_str::<Secret>(value).unwrap_err().to_string();
            assert!(err.contains("expected a string"), "{value}: {err}");
            assert!(!err.contains("12345678") && !err.contains("abcdefgh"), "{err}");
        }
    }

    #[test]
    fn matching_compares_whole_values() {
        let secret = Secret::new("token");
        assert!(secret.matches("token"));
        assert!(secret.matches(b"token"));
        for wrong in ["", "tok", "tokem", "token2", "TOKEN"] {
            assert!(!secret.matches(wrong), "{wrong}");
        }
        assert!(!Secret::new("x").is_empty() && Secret::default().is_empty());
    }
}
