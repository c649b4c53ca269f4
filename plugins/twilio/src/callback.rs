//! Twilio's callbacks: status callbacks for the messages the gateway sent, and the
//! webhook of an inbound SMS. Both are form posts; both are signed.

use plugin_api::{CallbackEvent, CallbackReply, CallbackRequest, DeliveryStatus, ModuleError};

use crate::{config::Config, request::MESSAGE_ID_PARAMETER, signature};

/// What an inbound webhook answers: TwiML that tells Twilio to do nothing (no reply SMS).
pub const EMPTY_TWIML: &str = "<Response></Response>";

pub fn parse(config: &Config, request: &CallbackRequest) -> Result<CallbackReply, ModuleError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(&request.body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    if let Some((auth_token, public_url)) = config.signature_check() {
        let url = if request.query.is_empty() {
            public_url.to_string()
        } else {
            format!("{public_url}?{}", request.query)
        };
        match request.header("X-Twilio-Signature") {
            None => return Err(refused("it has no X-Twilio-Signature")),
            Some(given) if !signature::is_valid(auth_token.expose(), &url, &params, given) => {
                return Err(refused(
                    "its X-Twilio-Signature does not match (is `public_url` exactly the URL Twilio calls?)",
                ))
            }
            Some(_) => {}
        }
    }
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if let Some(account) = get("AccountSid") {
        if account != config.account_sid {
            return Err(refused("it is for another Twilio account"));
        }
    }

    if let Some(status) = get("MessageStatus") {
        let provider_id =
            get("MessageSid").ok_or_else(|| refused("a status callback without `MessageSid`"))?;
        let message_id = form_urlencoded::parse(request.query.as_bytes())
            .find(|(name, _)| name == MESSAGE_ID_PARAMETER)
            .map(|(_, id)| id.into_owned());
        let detail = match get("ErrorCode").filter(|code| !code.is_empty()) {
            Some(code) => format!("{status} (error {code})"),
            None => status.to_string(),
        };
        let event = CallbackEvent::delivery_report(
            provider_id,
            message_id.as_deref(),
            delivery_status(status),
            detail,
        );
        return Ok(CallbackReply::ok(vec![event]));
    }

    if let Some(text) = get("Body") {
        let required =
            |name: &str| get(name).ok_or_else(|| refused(&format!("an inbound SMS without `{name}`")));
        let event = CallbackEvent::Inbound {
            from: required("From")?.into(),
            to: required("To")?.into(),
            text: text.into(),
            provider_id: required("MessageSid")?.into(),
        };
        return Ok(CallbackReply::ok(vec![event]).with_body("text/xml", EMPTY_TWIML));
    }

    Err(refused(
        "it is neither a status callback (`MessageStatus`) nor an inbound SMS (`Body`)",
    ))
}

fn refused(reason: &str) -> ModuleError {
    ModuleError::permanent(format!("Twilio callback refused: {reason}"))
}

/// Twilio's `MessageStatus`, as the gateway records it. Unknown values are intermediate:
/// a later callback will say how it ended.
pub fn delivery_status(status: &str) -> DeliveryStatus {
    match status {
        // `read` is WhatsApp's "delivered and read".
        "delivered" | "read" => DeliveryStatus::DELIVERED,
        "undelivered" | "failed" | "canceled" => DeliveryStatus::UNDELIVERED,
        _ => DeliveryStatus::IN_PROGRESS,
    }
}
