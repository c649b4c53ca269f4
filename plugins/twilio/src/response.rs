//! Reading Twilio's answers. Twilio reports an error as JSON with `code` (its own error
//! number, documented at `more_info`), `message` and `status`; the module quotes them.

use plugin_api::{HttpResponse, ModuleError, Step};
use serde::Deserialize;

use crate::{config::Config, secret::redact};

/// The most of an answer an error quotes, in characters.
const EXCERPT_CHARS: usize = 200;

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
        Ok(Created { sid: Some(sid) }) if !sid.is_empty() => Ok(Step::Done { result: sid.into() }),
        // Twilio took the SMS: sending it again could deliver it twice.
        _ => Err(ModuleError::permanent(format!(
            "Twilio answered HTTP {} without the message's `sid`: {}",
            response.status,
            excerpt(config, &response.body)
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
            excerpt(config, &response.body)
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
    Ok(Step::Done {
        result: format!(
            "Twilio accepted the credentials; account {} is active{kind}",
            config.account_sid
        )
        .into(),
    })
}

/// The error for a non-2xx answer: 401 is the configuration's fault, 429 and 5xx are
/// worth a retry, any other status is permanent (21211: invalid `To`, 21610: the
/// recipient replied STOP, ...).
fn error(config: &Config, response: &HttpResponse, what: &str) -> ModuleError {
    let status = response.status;
    let reason = match serde_json::from_slice::<TwilioError>(&response.body) {
        Ok(error) if error.code.is_some() || error.message.is_some() => error.describe(config),
        _ => excerpt(config, &response.body),
    };
    let message = format!("{what} (HTTP {status}): {reason}");
    match status {
        401 => ModuleError::configuration(message),
        429 | 500..=599 => ModuleError::transient(message),
        _ => ModuleError::permanent(message),
    }
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
        text.push_str(&shorten(&redact(
            self.message.as_deref().unwrap_or(""),
            &config.secrets,
        )));
        if let Some(more) = &self.more_info {
            text.push_str(&format!(" ({})", shorten(more)));
        }
        text.trim().to_string()
    }
}

fn excerpt(config: &Config, body: &[u8]) -> String {
    let text = shorten(&redact(&String::from_utf8_lossy(body), &config.secrets));
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text
    }
}

/// White space collapsed, at most [`EXCERPT_CHARS`] characters.
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
