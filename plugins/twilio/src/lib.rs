//! The `twilio` SMS module: sends through Twilio's Programmable Messaging API (the
//! Messages resource, API version 2010-04-01) and reads Twilio's status callbacks and
//! inbound-SMS webhooks.
//!
//! Like every module it makes no connection itself: `send` returns the request, the
//! gateway performs it and hands back the answer (see `plugin-api`, "Who does the I/O").
//! It does not handle MMS media, WhatsApp templates or Twilio's Conversations API.
//!
//! # The blob
//!
//! ```json
//! {
//!   "account_sid": "AC0123456789abcdef0123456789abcdef",
//!   "auth_token": "your auth token",
//!   "status_callback": "https://sms.example.com/v1/providers/twilio/callback",
//!   "public_url": "https://sms.example.com/v1/providers/twilio/callback"
//! }
//! ```
//!
//! | key | required | meaning |
//! | --- | --- | --- |
//! | `account_sid` | yes | `AC…`, the account the messages are sent from |
//! | `auth_token` | one of | the account's auth token: HTTP Basic auth as `account_sid:auth_token`, and the key of callback signatures |
//! | `api_key_sid`, `api_key_secret` | one of | an API key (`SK…`) to authenticate with instead; `auth_token` is still needed to verify callbacks |
//! | `messaging_service_sid` | | `MG…`: sent as `MessagingServiceSid` instead of `From`, so Twilio picks the sender |
//! | `status_callback` | | URL Twilio posts status changes to (`StatusCallback`); the module adds `?message_id=` with the gateway's id |
//! | `public_url` | | the URL Twilio calls for callbacks, exactly as Twilio calls it, without a query; with `auth_token`, turns on the signature check |
//! | `base_url` | | default `https://api.twilio.com`; tests point it at a local server |
//!
//! Unknown keys are refused; every error names the key. The credentials never appear in
//! an error or a log line.
//!
//! # Sending
//!
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, form body `To`
//! (E.164), `From` (the SMS's sender) or `MessagingServiceSid`, `Body`, and
//! `StatusCallback` when configured. The message's `sid` in the JSON answer is the
//! provider id. Twilio's error (`code`, `message`, `more_info`) is quoted in the error:
//! 408, 429 and 5xx are transient (the gateway retries), 401 and 403 are configuration
//! errors (the credentials, or what the account may do), any other status permanent —
//! for example 400 with code 21211, an invalid `To` number. The self-check fetches `GET …/Accounts/{account_sid}.json`,
//! which proves the credentials and that the account is `active`, and costs nothing.
//!
//! # Callbacks
//!
//! Point the phone number's "A message comes in" webhook (HTTP POST) and
//! `status_callback` at `POST /v1/providers/twilio/callback`. A callback is
//!
//! - a **status callback** when it has `MessageStatus`: `MessageSid` is the provider
//!   id, `delivered` (and WhatsApp's `read`) is DELIVERED, `undelivered`, `failed` and
//!   `canceled` are UNDELIVERED, anything else (`queued`, `sending`, `sent`,
//!   `accepted`, …) IN_PROGRESS; the detail is the status and `ErrorCode`; the query's
//!   `message_id` gives the gateway's id back;
//! - otherwise an **inbound SMS** when it has `Body`: `From`, `To` and `MessageSid` are
//!   then required, and the answer is an empty TwiML `<Response></Response>`
//!   (`text/xml`), so Twilio sends no reply;
//! - otherwise refused.
//!
//! When `public_url` and `auth_token` are set, a callback without a valid
//! `X-Twilio-Signature` is refused (see [`signature`] for Twilio's algorithm); so is one
//! whose `AccountSid` is another account's. Without `public_url`, callbacks are not
//! authenticated, and the module says so in the gateway's log when it starts.

mod callback;
mod config;
mod redact;
mod request;
mod response;
pub mod signature;

use plugin_api::{
    export_sms_module, CallbackReply, CallbackRequest, Host, HttpResponse, ModuleError, OutboundSms,
    SmsModule, Step,
};

use crate::config::Config;

/// The module: nothing but the checked blob.
pub struct TwilioModule {
    config: Config,
}

impl SmsModule for TwilioModule {
    const NAME: &'static str = "twilio";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Twilio Programmable Messaging (Messages API 2010-04-01)";

    fn check_config(config: &str) -> Result<(), ModuleError> {
        Config::parse(config).map(drop)
    }

    fn new(config: &str, host: Host) -> Result<Self, ModuleError> {
        let config = Config::parse(config)?;
        host.info(format_args!(
            "sending SMS through Twilio account {}",
            config.account_sid
        ));
        if config.signature_check().is_none() {
            host.warn(
                "Twilio callbacks are not authenticated: set `public_url` and `auth_token` so that \
                 X-Twilio-Signature is checked",
            );
        }
        Ok(TwilioModule { config })
    }

    fn send(&self, sms: &OutboundSms) -> Result<Step, ModuleError> {
        Ok(Step::http(request::create_message(&self.config, sms)?))
    }

    fn send_response(&self, _sms: &OutboundSms, response: &HttpResponse) -> Result<Step, ModuleError> {
        response::message_created(&self.config, response)
    }

    fn parse_callback(&self, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
        callback::parse(&self.config, request)
    }

    fn self_check(&self) -> Result<Step, ModuleError> {
        Ok(Step::http(request::fetch_account(&self.config)))
    }

    fn self_check_response(&self, response: &HttpResponse) -> Result<Step, ModuleError> {
        response::account_fetched(&self.config, response)
    }
}

export_sms_module!(TwilioModule);

#[cfg(test)]
mod tests;
