//! The requests the module asks the gateway to make: create a Message, and fetch the
//! Account for the self-check.

use plugin_api::{Header, HttpRequest, ModuleError, OutboundSms};

use crate::config::Config;

/// The query parameter that carries the gateway's message id on status callbacks,
/// since Twilio has no client reference of its own.
pub const MESSAGE_ID_PARAMETER: &str = "message_id";

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with `To`, `From` (or
/// `MessagingServiceSid`), `Body` and `StatusCallback`.
pub fn create_message(config: &Config, sms: &OutboundSms) -> Result<HttpRequest, ModuleError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", &sms.to);
    match &config.messaging_service_sid {
        Some(service) => {
            form.append_pair("MessagingServiceSid", service);
        }
        None if sms.sender.is_empty() => {
            return Err(ModuleError::configuration(
                "the SMS has no sender: set `sms.sender`, or the module's `messaging_service_sid`",
            ))
        }
        None => {
            form.append_pair("From", &sms.sender);
        }
    }
    form.append_pair("Body", &sms.text);
    if let Some(url) = &config.status_callback {
        let separator = if url.contains('?') { '&' } else { '?' };
        let id: String = form_urlencoded::byte_serialize(sms.id.as_bytes()).collect();
        form.append_pair(
            "StatusCallback",
            &format!("{url}{separator}{MESSAGE_ID_PARAMETER}={id}"),
        );
    }
    Ok(HttpRequest {
        method: "POST".into(),
        url: format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            config.base_url, config.account_sid
        )
        .into(),
        headers: vec![
            Header::new("Authorization", config.authorization.expose()),
            Header::new("Content-Type", "application/x-www-form-urlencoded"),
            Header::new("Accept", "application/json"),
        ]
        .into(),
        body: form.finish().into_bytes().into(),
    })
}

/// `GET /2010-04-01/Accounts/{AccountSid}.json`: costs nothing, and proves the
/// credentials and the account's state.
pub fn fetch_account(config: &Config) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: format!(
            "{}/2010-04-01/Accounts/{}.json",
            config.base_url, config.account_sid
        )
        .into(),
        headers: vec![
            Header::new("Authorization", config.authorization.expose()),
            Header::new("Accept", "application/json"),
        ]
        .into(),
        body: Vec::new().into(),
    }
}
