//! Merge fields: an e-mail's subject, text and HTML are Jinja templates (minijinja),
//! rendered per recipient with `{{ email }}`, `{{ name }}`, `{{ fields.KEY }}` and, on a
//! mailing when the gateway has a public URL, `{{ unsubscribe_url }}`.
//!
//! - **Escaping.** Values put into the HTML body are HTML-escaped (a field holding
//!   `<b>` shows as `&lt;b&gt;`); the subject and the text body take them as they are.
//! - **Compiled once.** [`Templates::compile`] parses the three parts once; a mailing's
//!   templates are compiled at the API (to refuse one that does not compile with a 422
//!   naming the part and line) and again once per mailing at send time ([`Compiled`]).
//! - **Missing values.** A value the recipient does not have renders empty, or fails
//!   that recipient, as the e-mail's [`OnMissing`] says. Testing one for truth
//!   (`{% if name %}`) never fails.
//! - **Bounded.** No template may include another, and each render has a fuel budget,
//!   so a loop in a template cannot hold a delivery worker.
//! - **What this is not.** Templates see only the recipient: no settings, no
//!   environment, no files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

/// The fuel one part's render may burn: far above any real greeting or newsletter
/// (a 2 KB body with a few fields burns a few hundred), far below a runaway loop.
const FUEL: u64 = 200_000;

/// What a value a recipient does not have renders as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// An empty string.
    #[default]
    Empty,
    /// Nothing: that recipient's e-mail fails, naming the part and line.
    Fail,
}

impl OnMissing {
    /// Whether this is the default, for `skip_serializing_if`.
    pub fn is_empty(&self) -> bool {
        *self == OnMissing::Empty
    }
}

/// Which template of an e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    /// The request field the part comes from.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }
}

/// A template that does not compile, or a render that failed: which part, which line
/// and why, in words an app developer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {reason}", part.as_str(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct TemplateError {
    pub part: Part,
    pub line: Option<usize>,
    pub reason: String,
}

impl TemplateError {
    fn new(part: Part, error: &minijinja::Error) -> TemplateError {
        let reason = match error.kind() {
            minijinja::ErrorKind::UndefinedError => {
                "a value the recipient does not have (a missing name or field; on_missing is `fail`)"
                    .to_string()
            }
            minijinja::ErrorKind::OutOfFuel => "the template runs too long (a loop too large)".into(),
            _ => match error.detail() {
                Some(detail) => format!("{}: {detail}", error.kind()),
                None => error.kind().to_string(),
            },
        };
        TemplateError {
            part,
            line: error.line(),
            reason,
        }
    }
}

/// What one recipient's e-mail is rendered with.
#[derive(Debug, Clone, Serialize)]
pub struct Merge<'a> {
    /// The bare address.
    pub email: &'a str,
    /// The display name, when the recipient has one (else it is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// The recipient's own values; an empty map when it has none.
    pub fields: &'a serde_json::Map<String, serde_json::Value>,
    /// The recipient's unsubscribe link, on a mailing when `email.public_url` is set
    /// (else it is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe_url: Option<&'a str>,
}

/// One recipient's subject and bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// An e-mail's parts, compiled.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    text: bool,
    html: bool,
}

impl Templates {
    /// Compiles the subject and whichever bodies there are.
    pub fn compile(
        subject: &str,
        text: Option<&str>,
        html: Option<&str>,
        on_missing: OnMissing,
    ) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        // A body is sent as it was written, down to its last newline.
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(|name| match name {
            "html" => AutoEscape::Html,
            _ => AutoEscape::None,
        });
        env.set_undefined_behavior(match on_missing {
            // Chainable: `{{ fields.a.b }}` is empty too when `a` is missing.
            OnMissing::Empty => UndefinedBehavior::Chainable,
            // SemiStrict: printing a missing value fails, testing it does not.
            OnMissing::Fail => UndefinedBehavior::SemiStrict,
        });
        env.set_fuel(Some(FUEL));
        let parts = [
            (Part::Subject, Some(subject)),
            (Part::Text, text),
            (Part::Html, html),
        ];
        for (part, source) in parts {
            if let Some(source) = source {
                env.add_template_owned(part.as_str(), source.to_string())
                    .map_err(|e| TemplateError::new(part, &e))?;
            }
        }
        Ok(Templates {
            env,
            text: text.is_some(),
            html: html.is_some(),
        })
    }

    /// Renders every part for one recipient. A subject that renders with a line break
    /// (from a field) is refused: it would start a new header.
    pub fn render(&self, merge: &Merge<'_>) -> Result<Rendered, TemplateError> {
        let subject = self.render_part(Part::Subject, merge)?;
        if subject.contains(['\r', '\n']) {
            return Err(TemplateError {
                part: Part::Subject,
                line: None,
                reason: "renders with a line break (CR or LF) from a merge field, which would \
                         start a new header"
                    .into(),
            });
        }
        Ok(Rendered {
            subject,
            text: self
                .text
                .then(|| self.render_part(Part::Text, merge))
                .transpose()?,
            html: self
                .html
                .then(|| self.render_part(Part::Html, merge))
                .transpose()?,
        })
    }

    fn render_part(&self, part: Part, merge: &Merge<'_>) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(part.as_str())
            .expect("every part rendered was compiled");
        template.render(merge).map_err(|e| TemplateError::new(part, &e))
    }
}

/// Mailings as prepared at send time (their templates compiled), kept so that a mailing
/// is prepared once, not once per e-mail. Bounded: past `CAPACITY` mailings the cache
/// starts over, which costs one preparation per mailing in flight.
#[derive(Debug)]
pub struct Compiled<T> {
    by_mailing: Mutex<HashMap<String, Arc<T>>>,
}

impl<T> Default for Compiled<T> {
    fn default() -> Self {
        Compiled {
            by_mailing: Mutex::default(),
        }
    }
}

impl<T> Compiled<T> {
    const CAPACITY: usize = 256;

    /// Mailing `id` as `compile` prepares it the first time.
    pub fn get_or_compile(&self, id: &str, compile: impl FnOnce() -> T) -> Arc<T> {
        let mut cache = self
            .by_mailing
            .lock()
            .expect("the template cache is not poisoned");
        if let Some(compiled) = cache.get(id) {
            return compiled.clone();
        }
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        let compiled = Arc::new(compile());
        cache.insert(id.to_string(), compiled.clone());
        compiled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let templates = Templates::compile(
            "Hello {{ name }}",
            Some("Dear {{ name }}, your city: {{ fields.city }}\n"),
            Some("<p>Dear {{ name }}</p>"),
            OnMissing::Empty,
        )
        .unwrap();
        let map = fields(json!({ "city": "Köln & <Bonn>" }));
        let rendered = templates
            .render(&Merge {
                email: "ann@example.org",
                name: Some("Ann <3 & Co"),
                fields: &map,
                unsubscribe_url: None,
            })
            .unwrap();
        assert_eq!(rendered.subject, "Hello Ann <3 & Co");
        assert_eq!(
            rendered.text.as_deref(),
            Some("Dear Ann <3 & Co, your city: Köln & <Bonn>\n")
        );
        assert_eq!(rendered.html.as_deref(), Some("<p>Dear Ann &lt;3 &amp; Co</p>"));
    }

    #[test]
    fn a_missing_value_renders_empty_or_fails_as_asked() {
        let empty = fields(json!({}));
        let merge = Merge {
            email: "ann@example.org",
            name: None,
            fields: &empty,
            unsubscribe_url: None,
        };
        let lenient =
            Templates::compile("Hi {{ name }}{{ fields.a.b }}!", None, None, OnMissing::Empty).unwrap();
        assert_eq!(lenient.render(&merge).unwrap().subject, "Hi !");
        let strict = Templates::compile(
            "Hi",
            Some("{% if name %}Dear {{ name }}{% else %}Hello{% endif %}\n\n{{ fields.city }}"),
            None,
            OnMissing::Fail,
        )
        .unwrap();
        let error = strict.render(&merge).unwrap_err();
        assert_eq!((error.part, error.line), (Part::Text, Some(3)), "{error}");
        assert!(error.to_string().starts_with("text, line 3: "), "{error}");
    }

    #[test]
    fn a_template_that_does_not_compile_names_its_part_and_line() {
        let error = Templates::compile("Hi", Some("one\ntwo {{ name\n"), None, OnMissing::Empty).unwrap_err();
        assert_eq!((error.part, error.line), (Part::Text, Some(2)), "{error}");
        let error = Templates::compile("Hi {% if %}", None, Some("<p>"), OnMissing::Empty).unwrap_err();
        assert_eq!(error.part, Part::Subject, "{error}");
    }

    #[test]
    fn a_field_cannot_break_the_subject_into_a_second_header() {
        let map = fields(json!({ "x": "a\r\nBcc: victim@example.com" }));
        let templates = Templates::compile("Hi {{ fields.x }}", None, None, OnMissing::Empty).unwrap();
        let error = templates
            .render(&Merge {
                email: "a@example.org",
                name: None,
                fields: &map,
                unsubscribe_url: None,
            })
            .unwrap_err();
        assert_eq!(error.part, Part::Subject);
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let empty = fields(json!({}));
        let templates = Templates::compile(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            None,
            None,
            OnMissing::Empty,
        )
        .unwrap();
        let error = templates
            .render(&Merge {
                email: "a@example.org",
                name: None,
                fields: &empty,
                unsubscribe_url: None,
            })
            .unwrap_err();
        assert!(error.reason.contains("too long"), "{error}");
    }
}
