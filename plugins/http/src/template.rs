//! Strings with placeholders (`{{to}}`, `{{text}}`, `{{secrets.NAME}}`, ...), parsed
//! once when the blob is read and filled in for each SMS.
//!
//! Filling in never re-reads what it inserted: an SMS whose text is `{{sender}}` is
//! sent as those ten characters. How an inserted value is escaped depends on where it
//! goes, and is the caller's choice ([`Template::render`]).

use plugin_api::OutboundSms;
use serde_json::Value;

use plugin_api::Secret;

/// The placeholders a template may use, for error messages.
const KNOWN: &str =
    "{{to}}, {{to_digits}}, {{sender}}, {{sender_digits}}, {{text}}, {{id}} and {{secrets.NAME}}";

/// The blob's `secrets`: named credentials that templates refer to as `{{secrets.NAME}}`.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<(String, Secret)>);

impl Secrets {
    pub fn new(entries: Vec<(String, Secret)>) -> Secrets {
        Secrets(entries)
    }

    fn get(&self, name: &str) -> Option<&Secret> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// One value a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// The recipient, E.164 with its `+`.
    To,
    /// The recipient without the `+`, for providers that want digits only.
    ToDigits,
    Sender,
    /// The sender without a leading `+` (an alphanumeric sender is unchanged).
    SenderDigits,
    Text,
    /// The gateway's message id, to give providers that echo a client reference.
    Id,
    /// An entry of `secrets`, by name.
    Secret(String),
}

impl Field {
    fn parse(name: &str, secrets: &Secrets, secret_template: bool) -> Result<Field, String> {
        Ok(match name {
            "to" => Field::To,
            "to_digits" => Field::ToDigits,
            "sender" => Field::Sender,
            "sender_digits" => Field::SenderDigits,
            "text" => Field::Text,
            "id" => Field::Id,
            _ => match name.strip_prefix("secrets.") {
                Some(secret) if secrets.get(secret).is_some() => Field::Secret(secret.to_string()),
                Some(secret) => return Err(format!("`{{{{secrets.{secret}}}}}` names no entry of `secrets`")),
                // A header value may hold a key that merely looks like a placeholder.
                None if secret_template => {
                    return Err(format!(
                        "holds an unknown placeholder (not shown: the value may be secret); the known ones are {KNOWN}"
                    ))
                }
                None => {
                    return Err(format!(
                        "unknown placeholder `{{{{{name}}}}}`; the known ones are {KNOWN}"
                    ))
                }
            },
        })
    }
}

/// What the placeholders of one SMS stand for.
pub struct Values<'a> {
    pub sms: &'a OutboundSms,
    pub secrets: &'a Secrets,
}

impl Values<'_> {
    fn get(&self, field: &Field) -> &str {
        match field {
            Field::To => &self.sms.to,
            Field::ToDigits => self.sms.to.trim_start_matches('+'),
            Field::Sender => &self.sms.sender,
            Field::SenderDigits => self.sms.sender.trim_start_matches('+'),
            Field::Text => &self.sms.text,
            Field::Id => &self.sms.id,
            Field::Secret(name) => self.secrets.get(name).map(Secret::expose).unwrap_or(""),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

/// A string with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`. The error is the reason only: the caller names the key. When
    /// `secret_template` is set the error never quotes any part of `text`.
    pub fn parse(text: &str, secrets: &Secrets, secret_template: bool) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "a `{{` is not closed by `}}`".to_string())?;
            parts.push(Part::Field(Field::parse(
                after[..end].trim(),
                secrets,
                secret_template,
            )?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// A template without placeholders.
    pub fn literal(text: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Literal(text.into())],
        }
    }

    /// Whether filling in can change the text.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// Fills in the placeholders with their values as they are.
    pub fn render(&self, values: &Values<'_>) -> String {
        self.render_escaped(values, |value, out| out.push_str(value))
    }

    /// Fills in the placeholders, letting `escape` write each inserted value; the
    /// template's own text is kept as written.
    pub fn render_escaped(&self, values: &Values<'_>, escape: impl Fn(&str, &mut String)) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(field) => escape(values.get(field), &mut out),
            }
        }
        out
    }
}

/// A JSON body whose strings are templates. Values are inserted into JSON strings,
/// so the serialiser does the escaping: a quote or a line break in the text cannot
/// break out of its string.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// `null`, a boolean or a number, sent as written.
    Plain(Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Parses `value`; an error names the path of the bad string below `key`.
    pub fn parse(value: &Value, key: &str, secrets: &Secrets) -> Result<JsonTemplate, (String, String)> {
        Ok(match value {
            Value::String(text) => {
                JsonTemplate::String(Template::parse(text, secrets, false).map_err(|e| (key.to_string(), e))?)
            }
            Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| JsonTemplate::parse(item, &format!("{key}[{i}]"), secrets))
                    .collect::<Result<_, (String, String)>>()?,
            ),
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(name, item)| {
                        let item = JsonTemplate::parse(item, &format!("{key}.{name}"), secrets)?;
                        Ok((name.clone(), item))
                    })
                    .collect::<Result<_, (String, String)>>()?,
            ),
            plain => JsonTemplate::Plain(plain.clone()),
        })
    }

    pub fn render(&self, values: &Values<'_>) -> Value {
        match self {
            JsonTemplate::Plain(value) => value.clone(),
            JsonTemplate::String(template) => Value::String(template.render(values)),
            JsonTemplate::Array(items) => Value::Array(items.iter().map(|i| i.render(values)).collect()),
            JsonTemplate::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(name, item)| (name.clone(), item.render(values)))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(text: &str) -> OutboundSms {
        OutboundSms {
            id: "msg-1".into(),
            to: "+447700900123".into(),
            sender: "+447700900999".into(),
            text: text.into(),
            attempt: 1,
        }
    }

    fn secrets() -> Secrets {
        Secrets::new(vec![("key".into(), Secret::new("k3y"))])
    }

    #[test]
    fn placeholders_are_filled_in_and_inserted_text_is_not_reread() {
        let secrets = secrets();
        let sms = sms("{{sender}} & co");
        let values = Values {
            sms: &sms,
            secrets: &secrets,
        };
        let template = Template::parse(
            "{{ to }}|{{to_digits}}|{{sender_digits}}|{{text}}|{{id}}|{{secrets.key}}",
            &secrets,
            false,
        )
        .unwrap();
        assert_eq!(
            template.render(&values),
            "+447700900123|447700900123|447700900999|{{sender}} & co|msg-1|k3y"
        );
    }

    #[test]
    fn bad_placeholders_are_explained() {
        let secrets = secrets();
        let err = Template::parse("hi {{txt}}", &secrets, false).unwrap_err();
        assert!(err.contains("unknown placeholder `{{txt}}`"), "{err}");
        let err = Template::parse("{{secrets.nope}}", &secrets, false).unwrap_err();
        assert!(
            err.contains("`{{secrets.nope}}` names no entry of `secrets`"),
            "{err}"
        );
        let err = Template::parse("{{to", &secrets, false).unwrap_err();
        assert!(err.contains("not closed"), "{err}");
        let err = Template::parse("Bearer {{sk_live_123}}", &secrets, true).unwrap_err();
        assert!(!err.contains("sk_live_123"), "{err}");
    }

    #[test]
    fn json_strings_are_escaped_by_the_serialiser() {
        let secrets = secrets();
        let sms = sms("say \"hi\"\n\\ {{id}} é");
        let values = Values {
            sms: &sms,
            secrets: &secrets,
        };
        let template: Value = serde_json::json!({"m": [{"t": "{{text}}!", "n": 1, "b": true, "z": null}]});
        let parsed = JsonTemplate::parse(&template, "body.template", &secrets).unwrap();
        assert_eq!(
            parsed.render(&values),
            serde_json::json!({"m": [{"t": "say \"hi\"\n\\ {{id}} é!", "n": 1, "b": true, "z": null}]})
        );
        let bad = serde_json::json!({"m": [{"t": "{{nope}}"}]});
        let (key, _) = JsonTemplate::parse(&bad, "body.template", &secrets).unwrap_err();
        assert_eq!(key, "body.template.m[0].t");
    }
}
