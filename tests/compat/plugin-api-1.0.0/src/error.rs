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
