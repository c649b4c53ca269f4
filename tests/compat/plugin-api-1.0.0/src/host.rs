//! What the gateway offers a module: a way to log into the gateway's own log.

use std::fmt;

use abi_stable::{
    sabi_trait,
    std_types::{RArc, RStr},
    StableAbi,
};

/// Severity of a module's log line. Unknown levels are logged as `INFO`.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogLevel(pub u8);

impl LogLevel {
    pub const ERROR: Self = LogLevel(1);
    pub const WARN: Self = LogLevel(2);
    pub const INFO: Self = LogLevel(3);
    pub const DEBUG: Self = LogLevel(4);
    pub const TRACE: Self = LogLevel(5);
}

/// The gateway's side of logging, implemented by the gateway.
#[sabi_trait]
pub trait HostLog: Send + Sync + Clone {
    /// Write one line to the gateway's log, tagged with the module's name.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// A module's handle on the gateway, given to [`SmsModule::new`](crate::SmsModule::new).
/// Cheap to clone.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct Host {
    log: HostLog_TO<'static, RArc<()>>,
}

impl Host {
    /// Wraps the gateway's logger. Called by the gateway, and by tests of a module.
    pub fn new(log: HostLog_TO<'static, RArc<()>>) -> Self {
        Host { log }
    }

    /// A host that drops every line: for unit tests of a module.
    pub fn discard() -> Self {
        #[derive(Clone)]
        struct Discard;
        impl HostLog for Discard {
            fn log(&self, _: LogLevel, _: RStr<'_>) {}
        }
        Host::new(HostLog_TO::from_ptr(RArc::new(Discard), sabi_trait::TD_Opaque))
    }

    pub fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        let line = args.to_string();
        self.log.log(level, RStr::from_str(&line));
    }
    pub fn error(&self, message: impl fmt::Display) {
        self.log(LogLevel::ERROR, format_args!("{message}"));
    }
    pub fn warn(&self, message: impl fmt::Display) {
        self.log(LogLevel::WARN, format_args!("{message}"));
    }
    pub fn info(&self, message: impl fmt::Display) {
        self.log(LogLevel::INFO, format_args!("{message}"));
    }
    pub fn debug(&self, message: impl fmt::Display) {
        self.log(LogLevel::DEBUG, format_args!("{message}"));
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Host")
    }
}
