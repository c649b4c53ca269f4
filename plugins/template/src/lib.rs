//! The `template` SMS module: a starting point for a provider module. Copy this
//! folder to `plugins/NAME`, rename the package and `[lib] name` in `Cargo.toml`, and
//! replace each `FILL IN` with your provider's way of doing it.
//!
//! It works as it is, against a made-up "example SMS API", so that its tests show
//! what a module's tests should pin; it is not a provider anyone can buy.
//!
//! # The shape of a module
//!
//! | file | step | what it does |
//! | --- | --- | --- |
//! | `config.rs` | 1 | parses the blob once into checked values; errors name the key |
//! | `request.rs` | 2 | builds the HTTP request for an SMS (the gateway performs it) |
//! | `response.rs` | 3 | reads the answer: the provider's id, or an error that is transient (retry) or permanent |
//! | `callback.rs` | 4 | authenticates and parses the provider's callbacks: inbound SMS, delivery reports |
//! | `lib.rs` | | ties the steps to [`SmsModule`] and exports the module |
//! | `tests.rs` | | the exact request, every kind of answer, callbacks, bad blobs, secrets kept out of errors |
//!
//! A module never opens a connection: `send` returns [`Step::http`], the gateway makes
//! the request (with its own TLS, time limits and retries) and calls `send_response`
//! with the answer. See `plugin-api`, "Who does the I/O".
//!
//! # The example API
//!
//! Blob: `{"api_key": "…", "base_url": "https://api.example-sms.invalid", "callback_token": "…"}`
//! (`base_url` and `callback_token` optional).
//!
//! - Send: `POST {base_url}/v1/messages`, `Authorization: Bearer {api_key}`, JSON
//!   `{"to", "from", "text", "reference"}`; answer `201 {"id": "msg_…"}`; errors
//!   `{"error": {"code", "message"}}`; 401/403 are configuration errors, 408, 429 and
//!   5xx transient, anything else permanent.
//! - Callbacks, JSON with header `X-Example-Token`: `{"event": "message.status", "id",
//!   "reference", "status", "reason"}` (`delivered`; `failed`, `expired`, `rejected`;
//!   anything else in progress) and `{"event": "message.received", "id", "from", "to",
//!   "text"}`.
//! - Self-check: `GET {base_url}/v1/account`.

mod callback;
mod config;
mod request;
mod response;

use plugin_api::{
    export_sms_module, CallbackReply, CallbackRequest, Host, HttpResponse, ModuleError, OutboundSms,
    SmsModule, Step,
};

use crate::config::Config;

/// FILL IN: rename after your provider. It holds the checked blob, nothing mutable:
/// the gateway calls it from several threads at once.
pub struct TemplateModule {
    config: Config,
}

impl SmsModule for TemplateModule {
    // FILL IN: the same name as `[lib] name` in Cargo.toml.
    const NAME: &'static str = "template";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    // FILL IN: one line for admins: the provider and the API it uses.
    const DESCRIPTION: &'static str = "a starting point for provider modules (a made-up example API)";

    /// Called when an admin loads or reloads settings: refuse a bad blob here, once,
    /// rather than fail every SMS later.
    fn check_config(config: &str) -> Result<(), ModuleError> {
        Config::parse(config).map(drop)
    }

    fn new(config: &str, host: Host) -> Result<Self, ModuleError> {
        let config = Config::parse(config)?;
        // The host logs into the gateway's log; never log a credential.
        host.info(format_args!("sending SMS through {}", config.base_url));
        if config.callback_token.is_none() {
            host.warn("callbacks are not authenticated: set `callback_token`");
        }
        Ok(TemplateModule { config })
    }

    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
        Ok(Step::http(request::send(&self.config, sms)))
    }

    fn send_response(&self, _sms: &OutboundSms, response: &HttpResponse) -> Result<Step, ModuleError> {
        // FILL IN: a provider that needs a second request (a token, then the send)
        // returns another `Step::http` here, and is called again with its answer.
        response::sent(&self.config, response)
    }

    fn parse_callback(&self, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
        callback::parse(&self.config, request)
    }

    fn self_check(&self) -> Result<Step, ModuleError> {
        Ok(Step::http(request::account(&self.config)))
    }

    fn self_check_response(&self, response: &HttpResponse) -> Result<Step, ModuleError> {
        response::account(&self.config, response)
    }
}

// The library's one export: the gateway finds the module through it, and every call
// into the module is guarded so that a panic becomes an error instead of a crash.
export_sms_module!(TemplateModule);

#[cfg(test)]
mod tests;
