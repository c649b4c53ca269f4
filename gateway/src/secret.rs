//! A value that must never be printed: a password, a token, a provider's credentials.
//! Its `Debug` and `Display` say `[redacted]`, so that a settings dump, a log line or a
//! panic message cannot leak it; the one place that needs the value asks for it.

use std::fmt;

/// A secret text: its `Debug` and `Display` say `[redacted]`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
