//! The contract between the gateway and its SMS provider modules.
//!
//! A module is a dynamic library (`libNAME.so`) built against this crate. It exports
//! one root module, [`ModuleRoot`], that says the module's name, version and
//! description, checks a configuration blob, and creates a [`Provider`] from it. The
//! gateway loads the library by name from its modules directory, checks that it was
//! built against a compatible version of this crate (abi_stable compares the layout of
//! every type reachable from the root module), and calls it.
//!
//! This crate is what a provider author depends on and nothing else: it holds the ABI
//! types and a safe way to export a module. It is not the loader (that lives in the
//! gateway) and it does no I/O.
//!
//! # Writing a module
//!
//! Implement [`SmsModule`] for a type and export it with [`export_sms_module!`]:
//!
//! ```
//! use plugin_api::{ModuleError, OutboundSms, Host, SmsModule, Step};
//!
//! pub struct Echo;
//!
//! impl SmsModule for Echo {
//!     const NAME: &'static str = "echo";
//!     const VERSION: &'static str = "0.1.0";
//!     const DESCRIPTION: &'static str = "answers every SMS with its own id";
//!
//!     fn check_config(_config: &str) -> Result<(), ModuleError> {
//!         Ok(())
//!     }
//!     fn new(_config: &str, _host: Host) -> Result<Self, ModuleError> {
//!         Ok(Echo)
//!     }
//!     fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
//!         Ok(Step::Done { result: format!("echo-{}", sms.id).into() })
//!     }
//! }
//!
//! plugin_api::export_sms_module!(Echo);
//! # fn main() {}
//! ```
//!
//! and build the crate as `crate-type = ["cdylib", "rlib"]` with `[lib] name = "echo"`,
//! so the library file is `libecho.so` and the gateway finds it as `sms.module = "echo"`.
//!
//! # Who does the I/O
//!
//! A module never opens a network connection itself. To talk to a provider's HTTP API,
//! [`Provider::send`] returns [`Step::Http`] with the request to make; the gateway
//! performs it with its own client (connection pool, TLS roots, time limits) and hands
//! the answer to [`Provider::send_response`], which returns the provider's message id
//! ([`Step::Done`]), another request, or an error. This is the shape proxy-wasm uses,
//! and it is chosen for the same reasons:
//!
//! - a module cannot block the gateway's async runtime on a slow provider: every call
//!   into a module is short, CPU-bound work, run on a blocking thread with a deadline
//!   the gateway enforces;
//! - time limits, retries, TLS verification, proxies and metrics are the gateway's,
//!   the same for every provider, instead of each module bringing its own HTTP stack;
//! - a module is a small, pure translator between the gateway's SMS and one provider's
//!   wire format, easy to test without a network.
//!
//! A module whose "provider" is local (the `file` module appends to a file) does that
//! small, bounded work inside `send` and returns [`Step::Done`] at once.
//!
//! # Panics
//!
//! abi_stable aborts the whole process when a panic unwinds across the FFI boundary.
//! [`export_sms_module!`] therefore wraps every call into the module in
//! `catch_unwind`: a panic becomes a [`ModuleError`] of kind [`ErrorKind::PANICKED`]
//! that names the module and where it panicked, and the gateway goes on. Modules must
//! be built with `panic = "unwind"` (Cargo's default).
//!
//! # Logging
//!
//! The gateway hands each provider a [`Host`]; [`Host::info`] and its siblings send a
//! line to the gateway's own log, tagged with the module's name. A module should not
//! print to stdout or stderr.
//!
//! # Versioning
//!
//! The version of this crate is the ABI version. The gateway loads a module when the
//! module's `plugin-api` has the same major version as the gateway's (abi_stable's
//! rule for versions from 1.0), and its types have compatible layouts.
//!
//! A **minor** version (1.x) may only:
//! - add methods to [`Provider`] after the last one, and fields to [`ModuleRoot`]
//!   after the last one (both are prefix types: a gateway reading a module built for an
//!   older minor version sees the new entries as absent, and must check before use);
//! - add constants to the integer-backed enums ([`ErrorKind`], [`LogLevel`],
//!   [`DeliveryStatus`]) and variants to the `NonExhaustive` enums ([`Step`],
//!   [`CallbackEvent`]); a receiver treats a value it does not know as documented on
//!   each type;
//! - add new types, and new default methods to [`SmsModule`].
//!
//! Anything else is a **major** version: removing or renaming anything, changing a
//! method's signature, adding a field to a plain data struct (such as
//! [`OutboundSms`]), or changing the size of a `NonExhaustive` enum's storage.

// abi_stable's derives and #[sabi_trait] expand to impls inside constants.
#![allow(non_local_definitions)]

mod callback;
mod error;
mod export;
mod host;
mod message;
mod root;

pub use callback::{CallbackEvent, CallbackEvent_NE, CallbackReply, CallbackRequest, DeliveryStatus};
pub use error::{ErrorKind, ModuleError};
#[doc(hidden)]
pub use export::__export_root;
pub use export::SmsModule;
pub use host::{Host, HostLog, HostLog_TO, LogLevel};
pub use message::{Header, HttpRequest, HttpResponse, OutboundSms, Step, Step_NE};
pub use root::{ModuleRoot, ModuleRootRef, Provider, Provider_TO};

/// Re-exported so that [`export_sms_module!`] works without a direct dependency.
pub use abi_stable;

/// The version of this crate, as a module built against it reports it.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");
