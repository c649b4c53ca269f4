//! What the module blanks out of a provider's answer before quoting it in an error:
//! the blob's credentials, which some providers echo back when they refuse a request.
//! The credentials themselves are [`plugin_api::Secret`]s.

use plugin_api::Secret;

/// Replaces every known secret in a text by `[redacted]`.
///
/// Used on the provider's answers before they are quoted in an error: some providers
/// echo the request's parameters, credentials included, when they refuse it.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is blanked out whole.
    secrets: Vec<Secret>,
}

impl Redactor {
    /// Shorter values are not redacted: they would match all over an answer, and a
    /// credential that short protects nothing anyway.
    const MIN_LEN: usize = 4;

    pub fn add(&mut self, secret: &str) {
        if secret.len() >= Self::MIN_LEN && !self.secrets.iter().any(|s| s.expose() == secret) {
            self.secrets.push(Secret::new(secret));
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.expose()) {
                text = text.replace(secret.expose(), "[redacted]");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_blanks_the_longest_secret_first_and_skips_tiny_ones() {
        let mut redactor = Redactor::default();
        redactor.add("abcd");
        redactor.add("abcdefgh");
        redactor.add("ab");
        assert_eq!(
            redactor.redact("key=abcdefgh k2=abcd x=ab"),
            "key=[redacted] k2=[redacted] x=ab"
        );
    }
}
