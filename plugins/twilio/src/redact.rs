//! Credentials blanked out of Twilio's answers before an error quotes them (Twilio may
//! echo a request's parameters). The credentials themselves are
//! [`plugin_api::Secret`]s.

use plugin_api::Secret;

/// `text` with every one of `secrets` replaced by `[redacted]`.
pub fn redact<'a>(text: &str, secrets: impl IntoIterator<Item = &'a Secret>) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        if !secret.is_empty() && text.contains(secret.expose()) {
            text = text.replace(secret.expose(), "[redacted]");
        }
    }
    text
}
