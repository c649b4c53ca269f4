//! The requests the module asks the gateway to make: create a Message, and fetch the
//! Account for the self-check.

use plugin_api::{HttpRequest, ModuleError, OutboundSms};

use crate::config::Config;

/// The query parameter that carries the gateway's message id on status callbacks,
/// since Twilio has no client reference of its own.
pub const MESSAGE_ID_PARAMETER: &str = "message_id";

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with `To`, `From` (or
/// `MessagingServiceSid`), `Body` and `StatusCallback`.
pub fn create_message(config: &Config, sms: &OutboundSms) -> Result<HttpRequest, ModuleError> {
    let mut form = vec![("To", sms.to.to_string())];
    match &config.messaging_service_sid {
        Some(service) => form.push(("MessagingServiceSid", service.clone())),
        None if sms.sender.is_empty() => {
            return Err(ModuleError::configuration(
                "the SMS has no sender: set `sms.sender`, or the module's `messaging_service_sid`",
            ))
        }
        None => form.push(("From", sms.sender.to_string())),
    }
    form.push(("Body", sms.text.to_string()));
    if let Some(url) = &config.status_callback {
        let separator = if url.contains('?') { '&' } else { '?' };
        let id: String = form_urlencoded::byte_serialize(sms.id.as_bytes()).collect();
        form.push((
            "StatusCallback",
            format!("{url}{separator}{MESSAGE_ID_PARAMETER}={id}"),
        ));
    }
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        config.base_url, config.account_sid
    );
    Ok(HttpRequest::post(url)
        .header("Authorization", config.authorization.expose())
        .header("Accept", "application/json")
        .form(&form))
}

/// `GET /2010-04-01/Accounts/{AccountSid}.json`: costs nothing, and proves the
/// credentials and the account's state.
pub fn fetch_account(config: &Config) -> HttpRequest {
    HttpRequest::get(format!(
        "{}/2010-04-01/Accounts/{}.json",
        config.base_url, config.account_sid
    ))
    .header("Authorization", config.authorization.expose())
    .header("Accept", "application/json")
}
