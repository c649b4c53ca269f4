//! Reading the provider's answer: accepted (and under which id), refused for now
//! (transient: the gateway retries), or refused for good (permanent).

use plugin_api::{HttpResponse, ModuleError, OutboundSms, Step};
use serde_json::Value;

use crate::{
    config::{value_text, AnswerStatus, Config, MessageIdSource},
    redactor::Redactor,
};

pub fn read(config: &Config, sms: &OutboundSms, response: &HttpResponse) -> Result<Step, ModuleError> {
    let status = response.status;
    let excerpt = || excerpt(&response.body, &config.redactor);
    if !config.success.contains(status) {
        let message = format!("provider answered HTTP {status}: {}", excerpt());
        return Err(if config.transient.contains(status) {
            ModuleError::transient(message)
        } else {
            ModuleError::permanent(message)
        });
    }

    // Parsed at most once, and only when the blob looks into the body.
    let json = || -> Result<Value, ModuleError> {
        serde_json::from_slice(&response.body).map_err(|_| {
            ModuleError::permanent(format!(
                "provider answered HTTP {status} with a body that is not JSON: {}",
                excerpt()
            ))
        })
    };
    let mut body = None;
    if let Some(check) = &config.answer_status {
        let answer = body.insert(json()?);
        check_answer_status(check, answer, status, &config.redactor)?;
    }

    let id = match &config.message_id {
        MessageIdSource::GatewayId => sms.id.to_string(),
        MessageIdSource::Header(name) => response
            .header(name)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ModuleError::permanent(format!(
                    "provider answered HTTP {status} but without a `{name}` header, so the message id is unknown: {}",
                    excerpt()
                ))
            })?
            .to_string(),
        MessageIdSource::Pointer(pointer) => {
            let answer = match body {
                Some(answer) => answer,
                None => json()?,
            };
            answer
                .pointer(pointer)
                .and_then(value_text)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    ModuleError::permanent(format!(
                        "provider answered HTTP {status} but its answer has no message id at `{pointer}`: {}",
                        excerpt()
                    ))
                })?
        }
    };
    Ok(Step::done(id))
}

/// For a provider that answers 2xx and says in the body whether it took the SMS.
fn check_answer_status(
    check: &AnswerStatus,
    answer: &Value,
    status: u16,
    redactor: &Redactor,
) -> Result<(), ModuleError> {
    let quoted = || excerpt(answer.to_string().as_bytes(), redactor);
    let Some(value) = answer.pointer(&check.pointer).and_then(value_text) else {
        return Err(ModuleError::permanent(format!(
            "provider answered HTTP {status} without a status at `{}`: {}",
            check.pointer,
            quoted()
        )));
    };
    if check.success.contains(&value) {
        return Ok(());
    }
    let detail = check
        .detail_pointer
        .as_deref()
        .and_then(|pointer| answer.pointer(pointer))
        .and_then(value_text)
        .map(|detail| excerpt(detail.as_bytes(), redactor))
        .unwrap_or_else(quoted);
    let message = format!("provider refused the SMS with status `{value}`: {detail}");
    Err(if check.transient.contains(&value) {
        ModuleError::transient(message)
    } else {
        ModuleError::permanent(message)
    })
}

/// A provider's answer as an error may quote it: credentials blanked out, then one
/// short line ([`plugin_api::excerpt`]).
pub fn excerpt(body: &[u8], redactor: &Redactor) -> String {
    plugin_api::excerpt(redactor.redact(&String::from_utf8_lossy(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_single_line_and_redacted() {
        let mut redactor = Redactor::default();
        redactor.add("s3cr3t-key");
        let long = format!("error:\n  bad key s3cr3t-key\t{}", "x".repeat(500));
        let text = excerpt(long.as_bytes(), &redactor);
        assert_eq!(text.chars().count(), plugin_api::EXCERPT_CHARS);
        assert!(text.starts_with("error: bad key [redacted] xxx"), "{text}");
        assert!(text.ends_with('…'));
        assert_eq!(excerpt(b"  \n", &redactor), "(empty body)");
        assert_eq!(excerpt("ok é".as_bytes(), &redactor), "ok é");
    }
}
