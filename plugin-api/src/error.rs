//! The error a module returns, and whether a retry can help.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What kind of failure a [`ModuleError`] is; decides what the gateway does next.
///
/// An integer with named values rather than a Rust enum, so that later minor versions
/// can add kinds. A gateway that meets a kind it does not know treats it as
/// [`ErrorKind::PERMANENT`]: it never retries blindly.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// The provider may accept the same SMS later (timeout, 5xx, throttling):
    /// the gateway retries with backoff.
    pub const TRANSIENT: Self = ErrorKind(0);
    /// This SMS will never be accepted as it is (invalid number, rejected content):
    /// the gateway fails the message with this error's text.
    pub const PERMANENT: Self = ErrorKind(1);
    /// The module's configuration is wrong (bad blob, bad credentials): nothing will
    /// work until an admin changes it.
    pub const CONFIGURATION: Self = ErrorKind(2);
    /// The module panicked; set by [`export_sms_module!`](crate::export_sms_module)'s
    /// guard, not by module code. Retried like a transient error, up to the limit.
    pub const PANICKED: Self = ErrorKind(3);
    /// The module does not implement the operation (for example callbacks).
    pub const UNSUPPORTED: Self = ErrorKind(4);

    /// Whether trying the same message again later can succeed.
    pub fn is_transient(self) -> bool {
        self == Self::TRANSIENT || self == Self::PANICKED
    }

    /// What a provider's HTTP status means for the SMS, as most providers use them:
    /// 401 and 403 are the credentials' fault ([`CONFIGURATION`](Self::CONFIGURATION));
    /// 408, 429 and every 5xx may pass ([`TRANSIENT`](Self::TRANSIENT)); anything else
    /// (400, 404, 422, …, and a 3xx the gateway did not follow) will not
    /// ([`PERMANENT`](Self::PERMANENT)). For an answer the module did not accept: a
    /// 2xx it cannot read is permanent too (the provider may have taken the SMS, and a
    /// retry could send it twice).
    ///
    /// ```
    /// use plugin_api::ErrorKind;
    ///
    /// assert_eq!(ErrorKind::from_http_status(403), ErrorKind::CONFIGURATION);
    /// assert_eq!(ErrorKind::from_http_status(429), ErrorKind::TRANSIENT);
    /// assert_eq!(ErrorKind::from_http_status(503), ErrorKind::TRANSIENT);
    /// assert_eq!(ErrorKind::from_http_status(422), ErrorKind::PERMANENT);
    /// ```
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            401 | 403 => Self::CONFIGURATION,
            408 | 429 | 500..=599 => Self::TRANSIENT,
            _ => Self::PERMANENT,
        }
    }

    /// The lowercase name of a known kind, `unknown(N)` otherwise.
    pub fn name(self) -> String {
        match self {
            Self::TRANSIENT => "transient".into(),
            Self::PERMANENT => "permanent".into(),
            Self::CONFIGURATION => "configuration".into(),
            Self::PANICKED => "panicked".into(),
            Self::UNSUPPORTED => "unsupported".into(),
            ErrorKind(other) => format!("unknown({other})"),
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// An error that crosses the module boundary: a kind and a message for an admin.
///
/// The message should say what went wrong in the provider's or the admin's terms
/// ("provider answered 401: invalid API key"), and must never contain a secret.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct ModuleError {
    pub kind: ErrorKind,
    pub message: RString,
}

impl ModuleError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ModuleError {
            kind,
            message: RString::from(message.into()),
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TRANSIENT, message)
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PERMANENT, message)
    }
    pub fn configuration(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CONFIGURATION, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UNSUPPORTED, message)
    }
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// The error for a provider's answer that the module does not accept: its kind
    /// from [`ErrorKind::from_http_status`], and the message `provider answered HTTP
    /// {status}: {body}` with the body as [`excerpt`] quotes it.
    ///
    /// `body` is quoted to the admin: when a provider may echo the request (credentials
    /// included) in its answer, blank them out first, or pass the parts of the answer
    /// that say why (an error code and its text).
    ///
    /// ```
    /// use plugin_api::{ErrorKind, ModuleError};
    ///
    /// let error = ModuleError::from_http_status(429, "Too many\n  requests");
    /// assert_eq!(error.kind, ErrorKind::TRANSIENT);
    /// assert_eq!(error.message, "provider answered HTTP 429: Too many requests");
    /// assert_eq!(ModuleError::from_http_status(401, b"").message, "provider answered HTTP 401: (empty body)");
    /// ```
    pub fn from_http_status(status: u16, body: impl AsRef<[u8]>) -> ModuleError {
        ModuleError::new(
            ErrorKind::from_http_status(status),
            format!("provider answered HTTP {status}: {}", excerpt(body)),
        )
    }
}

/// The most of a provider's answer that [`excerpt`] keeps, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// A provider's answer as an error quotes it: on one line (white space collapsed), at
/// most [`EXCERPT_CHARS`] characters (cut with `…`), invalid UTF-8 replaced, and
/// `(empty body)` for nothing. Blank out credentials first if the provider may echo
/// them.
///
/// ```
/// assert_eq!(plugin_api::excerpt("<html>\n  <p>Bad Gateway</p>\n</html>"), "<html> <p>Bad Gateway</p> </html>");
/// assert_eq!(plugin_api::excerpt(" \n"), "(empty body)");
/// ```
pub fn excerpt(body: impl AsRef<[u8]>) -> String {
    let text = String::from_utf8_lossy(body.as_ref());
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        "(empty body)".to_string()
    } else if collapsed.chars().count() <= EXCERPT_CHARS {
        collapsed
    } else {
        let mut cut: String = collapsed.chars().take(EXCERPT_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

impl fmt::Debug for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleError({:?}: {})", self.kind, self.message)
    }
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for ModuleError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds_as_most_providers_mean_them() {
        let kind = ErrorKind::from_http_status;
        for status in [401, 403] {
            assert_eq!(kind(status), ErrorKind::CONFIGURATION, "{status}");
        }
        for status in [408, 429, 500, 502, 503, 599] {
            assert_eq!(kind(status), ErrorKind::TRANSIENT, "{status}");
        }
        for status in [200, 302, 400, 404, 409, 410, 413, 422, 600] {
            assert_eq!(kind(status), ErrorKind::PERMANENT, "{status}");
        }
    }

    #[test]
    fn the_quoted_body_is_one_short_line() {
        let long = format!("error:\n\t{}", "x".repeat(500));
        let message = ModuleError::from_http_status(500, long).message;
        let quoted = message.strip_prefix("provider answered HTTP 500: ").unwrap();
        assert_eq!(quoted.chars().count(), EXCERPT_CHARS);
        assert!(
            quoted.starts_with("error: xxx") && quoted.ends_with('…'),
            "{quoted}"
        );
        let message = ModuleError::from_http_status(400, [0xff, b'o', b'k']).message;
        assert_eq!(message, "provider answered HTTP 400: \u{fffd}ok");
    }
}
