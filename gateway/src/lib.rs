//! The gateway: an HTTP API that stores e-mails and SMS durably, an SMTP engine that
//! delivers e-mail within the admin's limits, and SMS provider modules loaded at run
//! time. The `gateway` binary (`main.rs`) is a thin command line over this library.

pub mod api;
pub mod app;
pub mod cli;
pub mod client;
pub mod console_settings;
pub mod delivery;
pub mod email;
pub mod fleet;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod modules;
pub mod purger;
pub mod retry;
pub mod secret;
pub mod server;
pub mod settings;
pub mod sms;
pub mod store;
pub mod suppressions_cli;
pub mod time;
pub mod token;
