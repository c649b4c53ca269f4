//! Step 4 — the provider's callbacks: check that they come from the provider, then
//! turn them into inbound SMS and delivery reports.
//!
//! FILL IN: your provider's authentication (a shared token, an HMAC signature) and
//! formats. The example API posts JSON with an `event` of `message.status` or
//! `message.received`, and a shared token in `X-Example-Token`.

use plugin_api::{CallbackEvent, CallbackReply, CallbackRequest, DeliveryStatus, ModuleError};
use serde::Deserialize;

use crate::config::Config;

/// The header that carries the blob's `callback_token`.
pub const TOKEN_HEADER: &str = "X-Example-Token";

/// The example API's callback bodies, told apart by `event`.
#[derive(Deserialize)]
#[serde(tag = "event")]
enum Callback {
    #[serde(rename = "message.status")]
    Status {
        id: String,
        reference: Option<String>,
        status: String,
        reason: Option<String>,
    },
    #[serde(rename = "message.received")]
    Received {
        id: String,
        from: String,
        to: String,
        text: String,
    },
}

pub fn parse(config: &Config, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
    if let Some(token) = &config.callback_token {
        // `matches` compares in constant time: timing tells a guesser nothing.
        if !request
            .header(TOKEN_HEADER)
            .is_some_and(|given| token.matches(given))
        {
            // An error refuses the callback: the gateway answers it with an error status.
            return Err(refused(&format!("missing or wrong {TOKEN_HEADER}")));
        }
    }
    let callback: Callback = serde_json::from_slice(&request.body)
        .map_err(|e| refused(&format!("not an example-API event: {e}")))?;
    let event = match callback {
        Callback::Status {
            id,
            reference,
            status,
            reason,
        } => CallbackEvent::delivery_report(
            id,
            reference.as_deref(),
            delivery_status(&status),
            match reason {
                Some(reason) => format!("{status}: {reason}"),
                None => status,
            },
        ),
        Callback::Received { id, from, to, text } => CallbackEvent::Inbound {
            from: from.into(),
            to: to.into(),
            text: text.into(),
            provider_id: id.into(),
        },
    };
    // FILL IN: some providers expect a particular answer body (Twilio wants TwiML).
    Ok(CallbackReply::ok(vec![event]))
}

/// The provider's status words, as the gateway records them. A status the module does
/// not know is intermediate: a later report will say how it ended.
fn delivery_status(status: &str) -> DeliveryStatus {
    match status {
        "delivered" => DeliveryStatus::DELIVERED,
        "failed" | "expired" | "rejected" => DeliveryStatus::UNDELIVERED,
        _ => DeliveryStatus::IN_PROGRESS,
    }
}

fn refused(reason: &str) -> ModuleError {
    ModuleError::permanent(format!("callback refused: {reason}"))
}
