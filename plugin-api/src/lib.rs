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
//! types, a safe way to export a module, and the small helpers every module needs
//! (building requests, reading callbacks, secrets, errors from HTTP statuses). It is
//! not the loader (that lives in the gateway) and it does no I/O. The walk-through
//! from `cargo new` to a loaded module is `docs/modules.md` in the gateway's
//! repository.
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
//!         Ok(Step::done(format!("echo-{}", sms.id)))
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
//! ```
//! use plugin_api::{HttpRequest, HttpResponse, ModuleError, Step};
//!
//! fn send(api_key: &str, to: &str, text: &str) -> Step {
//!     Step::http(
//!         HttpRequest::post("https://api.example.com/v2/messages")
//!             .header("Authorization", format!("Bearer {api_key}"))
//!             .json(&serde_json::json!({ "to": to, "text": text })),
//!     )
//! }
//!
//! fn send_response(answer: &HttpResponse) -> Result<Step, ModuleError> {
//!     if answer.status != 201 {
//!         return Err(ModuleError::from_http_status(answer.status, &answer.body));
//!     }
//!     let id = answer.header("Location").unwrap_or_default().rsplit('/').next().unwrap_or_default();
//!     Ok(Step::done(id))
//! }
//!
//! assert!(send("k", "+447700900123", "hi").as_http().is_some());
//! let created = HttpResponse::new(201, "").with_header("location", "/v2/messages/m-1");
//! assert_eq!(send_response(&created).unwrap().as_done(), Some("m-1"));
//! assert!(send_response(&HttpResponse::new(503, "busy")).unwrap_err().is_transient());
//! ```
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
//! # Helpers
//!
//! Since 1.1, so that a module never has to name an abi_stable type (`RBox`,
//! `RString`, `ROption`):
//!
//! | for | use |
//! | --- | --- |
//! | a request | [`HttpRequest::post`] / [`get`](HttpRequest::get) / [`new`](HttpRequest::new), then [`header`](HttpRequest::header), [`json`](HttpRequest::json), [`form`](HttpRequest::form) or [`body`](HttpRequest::body) |
//! | a step | [`Step::http`], [`Step::done`] |
//! | an answer it does not accept | [`ModuleError::from_http_status`] (401/403 configuration; 408, 429, 5xx transient; other statuses permanent), [`ErrorKind::from_http_status`], and [`excerpt`] to quote an answer in a message of its own |
//! | a callback's header | [`CallbackRequest::header`], compared without regard to case like [`HttpResponse::header`] |
//! | a delivery report | [`CallbackEvent::delivery_report`] |
//! | credentials | [`Secret`] (never prints, refused unquoted from a blob), [`constant_time_eq`] |
//! | tests | [`HttpResponse::new`], [`CallbackRequest::post`], [`Step::as_http`], [`Step::as_done`], [`CallbackReply::into_events`] |
//!
//! The helpers are compiled into the module and never cross the boundary: they add no
//! type and change no layout that the gateway checks, so a module that uses them loads
//! in any gateway of the same major version.
//!
//! # Sessions (since 1.2)
//!
//! A provider whose interface is a long-lived connection (SMPP, where submits are
//! windowed, answers come out of order and reports arrive at any moment) cannot be
//! served one HTTP request at a time. Such a module returns a [`SessionPlan`] from
//! [`SmsModule::session_plan`]; the gateway then holds the connections, feeds the
//! module [`SessionEvent`]s, and does what its [`SessionAction`]s say. A send over a
//! session ([`SmsModule::session_send`]) is pending until the module reports its
//! outcome; inbound SMS and delivery reports found on a session take the path of a
//! provider callback. The sequence, and who owns what, are drawn in the [`session`]
//! module's documentation.
//!
//! # Versioning
//!
//! The version of this crate is the ABI version. What the gateway loads, as tested in
//! the gateway's `tests/tests/compat.rs` against real libraries:
//!
//! - a module built against the **same major and the same or an older minor** version
//!   than the gateway's: yes. abi_stable itself compares major versions only, but it
//!   refuses a library whose prefix types (the root module, a `#[sabi_trait]` vtable)
//!   have *fewer* entries than the loader's ("too many fields"). So a gateway keeps the
//!   layouts of the older minor versions ([`before_1_2`] for 1.0 and 1.1) and reads
//!   an older module with the layout it was built with; the methods that module lacks
//!   answer as their defaults say (no sessions).
//! - a module built against a **newer minor** version: no. abi_stable would accept it
//!   (a reader ignores the entries a newer writer added), but the module may count on
//!   what the gateway does not do, so a gateway from 1.2 on refuses it with both
//!   versions named, and a module from 1.2 on refuses to start in a gateway older than
//!   itself ([`Host::plugin_api_version`] tells it the gateway's version; a gateway
//!   before 1.2 does not say, and is refused as "1.0 or 1.1").
//! - another **major** version: no (abi_stable's version check).
//!
//! A **minor** version (1.x) may only:
//! - add methods with a default body to [`Provider`] and [`HostLog`] after the last
//!   one, and fields to [`ModuleRoot`] after the last one; the gateway then keeps a
//!   copy of the previous layouts, as [`before_1_2`] does;
//! - add constants to the integer-backed enums ([`ErrorKind`], [`LogLevel`],
//!   [`DeliveryStatus`]) and variants to the `NonExhaustive` enums ([`Step`],
//!   [`CallbackEvent`], [`SessionEvent`], [`SessionAction`]); a receiver treats a value
//!   it does not know as documented on each type;
//! - add new types, and new default methods to [`SmsModule`].
//!
//! Anything else is a **major** version: removing or renaming anything, changing a
//! method's signature, adding a field to a plain data struct (such as
//! [`OutboundSms`] or [`SessionPlan`]), or changing the size of a `NonExhaustive`
//! enum's storage.

// abi_stable's derives and #[sabi_trait] expand to impls inside constants.
#![allow(non_local_definitions)]

#[doc(hidden)]
pub mod before_1_2;
mod callback;
mod error;
mod export;
mod host;
mod message;
mod request;
mod root;
mod secret;
pub mod session;

pub use callback::{CallbackEvent, CallbackEvent_NE, CallbackReply, CallbackRequest, DeliveryStatus};
pub use error::{excerpt, ErrorKind, ModuleError, EXCERPT_CHARS};
#[doc(hidden)]
pub use export::__export_root;
pub use export::SmsModule;
pub use host::{Host, HostLog, HostLog_TO, LogLevel};
pub use message::{Header, HttpRequest, HttpResponse, OutboundSms, Step, Step_NE};
pub use root::{ModuleRoot, ModuleRootRef, Provider, Provider_TO};
pub use secret::{constant_time_eq, Secret};
pub use session::{SessionAction, SessionAction_NE, SessionEvent, SessionEvent_NE, SessionId, SessionPlan};

/// Re-exported so that [`export_sms_module!`] works without a direct dependency.
pub use abi_stable;

/// The version of this crate, as a module built against it reports it.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The examples of this crate's README compile (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeExamples;

/// So do the gateway's README's. Its file is outside this package, so it is read for
/// doc tests only (`cargo package` never sees it).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct GatewayReadmeExamples;
