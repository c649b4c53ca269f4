//! Reading Twilio's answers. Twilio reports an error as JSON with `code` (its own error
//! number, documented at `more_info`), `message` and `status`; the module quotes them.

use plugin_api::{excerpt, ErrorKind, HttpResponse, ModuleError, Step};
use serde::Deserialize;

use crate::{config::Config, redact::redact};

/// The answer to creating a Message: its SID, or why not.
pub fn message_created(config: &Config, response: &HttpResponse) -> Result<Step, ModuleError> {
    if !(200..300).contains(&response.status) {
        return Err(error(config, response, "Twilio refused the SMS"));
    }
    #[derive(Deserialize)]
    struct Created {
        sid: Option<String>,
    }
    match serde_json::from_slice::<Created>(&response.body) {
        Ok(Created { sid: Some(sid) }) if !sid.is_empty() => Ok(Step::done(sid)),
        // Twilio took the SMS: sending it again could deliver it twice.
        _ => Err(ModuleError::permanent(format!(
            "Twilio answered HTTP {} without the message's `sid`: {}",
            response.status,
            quote(config, &response.body)
        ))),
    }
}

/// The answer to fetching the Account, for the self-check.
pub fn account_fetched(config: &Config, response: &HttpResponse) -> Result<Step, ModuleError> {
    if !(200..300).contains(&response.status) {
        return Err(error(config, response, "Twilio refused the self-check"));
    }
    #[derive(Deserialize)]
    struct Account {
        status: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let account: Account = serde_json::from_slice(&response.body).map_err(|_| {
        ModuleError::permanent(format!(
            "Twilio answered HTTP {} with a body that is not an account: {}",
            response.status,
            quote(config, &response.body)
        ))
    })?;
    let status = account.status.unwrap_or_else(|| "unknown".into());
    let kind = account.kind.map(|k| format!(" ({k})")).unwrap_or_default();
    if status != "active" {
        return Err(ModuleError::configuration(format!(
            "Twilio account {} is {status}{kind}: it cannot send",
            config.account_sid
        )));
    }
    Ok(Step::done(format!(
        "Twilio accepted the credentials; account {} is active{kind}",
        config.account_sid
    )))
}

/// The error for a non-2xx answer, classified as most providers' are (Twilio's own
/// documentation agrees): 401 and 403 are the credentials' or the account's fault, 408,
/// 429 and 5xx are worth a retry, any other status is permanent (21211: invalid `To`,
/// 21610: the recipient replied STOP, ...).
fn error(config: &Config, response: &HttpResponse, what: &str) -> ModuleError {
    let status = response.status;
    let reason = match serde_json::from_slice::<TwilioError>(&response.body) {
        Ok(error) if error.code.is_some() || error.message.is_some() => error.describe(config),
        _ => quote(config, &response.body),
    };
    ModuleError::new(
        ErrorKind::from_http_status(status),
        format!("{what} (HTTP {status}): {reason}"),
    )
}

/// Twilio's error body.
#[derive(Deserialize)]
struct TwilioError {
    code: Option<serde_json::Value>,
    message: Option<String>,
    more_info: Option<String>,
}

impl TwilioError {
    fn describe(&self, config: &Config) -> String {
        let mut text = String::new();
        if let Some(code) = &self.code {
            let code = code.as_str().map_or_else(|| code.to_string(), str::to_string);
            text.push_str(&format!("error {code}: "));
        }
        let message = redact(self.message.as_deref().unwrap_or(""), &config.secrets);
        if !message.trim().is_empty() {
            text.push_str(&excerpt(message));
        }
        if let Some(more) = &self.more_info {
            text.push_str(&format!(" ({})", excerpt(more)));
        }
        text.trim().to_string()
    }
}

/// An answer as an error quotes it: credentials blanked out, one short line.
fn quote(config: &Config, body: &[u8]) -> String {
    excerpt(redact(&String::from_utf8_lossy(body), &config.secrets))
}
