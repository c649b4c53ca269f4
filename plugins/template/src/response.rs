//! Step 3 — reading the provider's answers: the message id, or an error that says
//! whether a retry can help.
//!
//! FILL IN: your provider's success and error formats. The example API answers `201`
//! with `{"id": "msg_…"}`, and errors with `{"error": {"code", "message"}}`.

use plugin_api::{excerpt, HttpResponse, ModuleError, Step};
use serde::Deserialize;

use crate::config::Config;

#[derive(Deserialize)]
struct Created {
    id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// The answer to [`crate::request::send`].
pub fn sent(config: &Config, response: &HttpResponse) -> Result<Step, ModuleError> {
    if !(200..300).contains(&response.status) {
        return Err(error(config, response));
    }
    match serde_json::from_slice::<Created>(&response.body) {
        Ok(Created { id: Some(id) }) if !id.is_empty() => Ok(Step::done(id)),
        // The provider took the SMS: a retry could deliver it twice, so not transient.
        _ => Err(ModuleError::permanent(format!(
            "provider answered HTTP {} without a message id: {}",
            response.status,
            excerpt(redact(config, &String::from_utf8_lossy(&response.body)))
        ))),
    }
}

/// The answer to [`crate::request::account`].
pub fn account(config: &Config, response: &HttpResponse) -> Result<Step, ModuleError> {
    if !(200..300).contains(&response.status) {
        return Err(error(config, response));
    }
    Ok(Step::done("the provider accepted the API key"))
}

/// The error for an answer outside 2xx. Which statuses are worth a retry is the
/// decision that matters most: a wrong guess either loses messages (permanent) or
/// hammers the provider with requests it will never accept (transient).
/// `from_http_status` makes the usual one (401/403 configuration; 408, 429 and 5xx
/// transient; the rest permanent). FILL IN: your provider's exceptions, if it has any.
fn error(config: &Config, response: &HttpResponse) -> ModuleError {
    let reason = match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(ErrorBody { error }) => format!("{}: {}", error.code, error.message),
        Err(_) => String::from_utf8_lossy(&response.body).into_owned(),
    };
    ModuleError::from_http_status(response.status, redact(config, &reason))
}

/// Some providers echo the request, credentials included, when they refuse it.
fn redact(config: &Config, text: &str) -> String {
    let mut text = text.replace(config.api_key.expose(), "[redacted]");
    if let Some(token) = &config.callback_token {
        text = text.replace(token.expose(), "[redacted]");
    }
    text
}
