//! Step 3 — reading the provider's answers: the message id, or an error that says
//! whether a retry can help.
//!
//! FILL IN: your provider's success and error formats. The example API answers `201`
//! with `{"id": "msg_…"}`, and errors with `{"error": {"code", "message"}}`.

use plugin_api::{HttpResponse, ModuleError, Step};
use serde::Deserialize;

use crate::config::Config;

/// The most of an answer an error quotes, in characters.
const EXCERPT_CHARS: usize = 200;

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
        Ok(Created { id: Some(id) }) if !id.is_empty() => Ok(Step::Done { result: id.into() }),
        // The provider took the SMS: a retry could deliver it twice, so not transient.
        _ => Err(ModuleError::permanent(format!(
            "provider answered HTTP {} without a message id: {}",
            response.status,
            excerpt(config, &response.body)
        ))),
    }
}

/// The answer to [`crate::request::account`].
pub fn account(config: &Config, response: &HttpResponse) -> Result<Step, ModuleError> {
    if !(200..300).contains(&response.status) {
        return Err(error(config, response));
    }
    Ok(Step::Done {
        result: "the provider accepted the API key".into(),
    })
}

/// The error for an answer outside 2xx. Which statuses are worth a retry is the
/// decision that matters most: a wrong guess either loses messages (permanent) or
/// hammers the provider with requests it will never accept (transient).
fn error(config: &Config, response: &HttpResponse) -> ModuleError {
    let status = response.status;
    let reason = match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(ErrorBody { error }) => shorten(&format!("{}: {}", error.code, redact(config, &error.message))),
        Err(_) => excerpt(config, &response.body),
    };
    let message = format!("provider answered HTTP {status}: {reason}");
    match status {
        401 | 403 => ModuleError::configuration(message),
        408 | 429 | 500..=599 => ModuleError::transient(message),
        _ => ModuleError::permanent(message),
    }
}

/// An answer as an error may quote it: credentials blanked out, one line, short.
fn excerpt(config: &Config, body: &[u8]) -> String {
    let text = shorten(&redact(config, &String::from_utf8_lossy(body)));
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text
    }
}

/// Some providers echo the request, credentials included, when they refuse it.
fn redact(config: &Config, text: &str) -> String {
    let mut text = text.replace(config.api_key.expose(), "[redacted]");
    if let Some(token) = &config.callback_token {
        text = text.replace(token.expose(), "[redacted]");
    }
    text
}

fn shorten(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= EXCERPT_CHARS {
        collapsed
    } else {
        let mut cut: String = collapsed.chars().take(EXCERPT_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}
