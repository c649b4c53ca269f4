//! Step 2 — the requests the module asks the gateway to make. Nothing here does I/O:
//! it describes a request, and the gateway performs it.
//!
//! FILL IN: your provider's endpoint, authentication and body. The example API takes
//! `POST /v1/messages` with a bearer key and a JSON body.

use plugin_api::{HttpRequest, OutboundSms};
use serde::Serialize;

use crate::config::Config;

/// The example API's body for one SMS.
#[derive(Serialize)]
struct NewMessage<'a> {
    /// E.164, as the gateway always gives it.
    to: &'a str,
    from: &'a str,
    text: &'a str,
    /// The gateway's id: a provider that echoes a client reference in its reports lets
    /// the gateway match them even without the provider's id.
    reference: &'a str,
}

pub fn send(config: &Config, sms: &OutboundSms) -> HttpRequest {
    let body = NewMessage {
        to: &sms.to,
        from: &sms.sender,
        text: &sms.text,
        reference: &sms.id,
    };
    HttpRequest::post(format!("{}/v1/messages", config.base_url))
        .header("Authorization", format!("Bearer {}", config.api_key.expose()))
        .header("Accept", "application/json")
        // Serialising, never formatting strings by hand: the text may hold any character.
        .json(&body)
}

/// A request that costs nothing and proves the credentials, for the self-check.
/// FILL IN: your provider's cheapest authenticated read (an account or balance query).
pub fn account(config: &Config) -> HttpRequest {
    HttpRequest::get(format!("{}/v1/account", config.base_url))
        .header("Authorization", format!("Bearer {}", config.api_key.expose()))
        .header("Accept", "application/json")
}
