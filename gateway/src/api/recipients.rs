//! Recipients as the e-mail endpoints take them (a plain mailbox, or
//! `{email, name?, fields?}` for merge fields), checked once, duplicates dropped; and
//! the templates' compile check, as 422s naming the field.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::problem::Problem;
use crate::email::{
    message::{check_header_text, delivery_key, parse_mailbox, MailingRecipient},
    template::{OnMissing, TemplateError, Templates},
};

/// A recipient: `"Ann <ann@example.org>"`, or an object with a name and merge fields.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(super) enum Recipient {
    Address(String),
    Object(RecipientObject),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecipientObject {
    email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// By hand rather than `untagged`, so that a wrong object says what is wrong with it
/// (serde's untagged enums say only that no variant matched).
impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(address) => Ok(Recipient::Address(address)),
            object @ serde_json::Value::Object(_) => serde_json::from_value(object)
                .map(Recipient::Object)
                .map_err(|e| D::Error::custom(format!("a recipient object: {e}"))),
            _ => Err(D::Error::custom(
                "a recipient is an address string or an object {email, name?, fields?}",
            )),
        }
    }
}

/// `to` may be one recipient or a list.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(Recipient),
    Many(Vec<Recipient>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<Recipient> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// Checked recipients, each address once.
#[derive(Debug, Default)]
pub(super) struct Recipients {
    pub(super) list: Vec<MailingRecipient>,
    /// Delivery keys seen (local part, domain in lower case), shared across the lists of
    /// one e-mail (to, cc, bcc) so an address in two of them gets one copy.
    seen: HashSet<String>,
    /// How many were dropped as duplicates.
    pub(super) duplicates: u64,
    /// Each recipient's delivery key, in the order of `list`: what the suppression list
    /// is checked with.
    pub(super) keys: Vec<String>,
}

impl Recipients {
    /// Checks and adds every recipient of `field`, naming `field[i]` (or
    /// `field[i].name`) when one is wrong; an address already added is skipped.
    pub(super) fn add(&mut self, field: &str, list: Vec<Recipient>) -> Result<(), Problem> {
        for (i, recipient) in list.into_iter().enumerate() {
            let checked = check(recipient)
                .map_err(|(sub, reason)| Problem::invalid(format!("{field}[{i}]{sub}"), reason))?;
            let mailbox = parse_mailbox(&checked.to).expect("checked above");
            let key = delivery_key(&mailbox.email);
            if self.seen.insert(key.clone()) {
                self.list.push(checked);
                self.keys.push(key);
            } else {
                self.duplicates += 1;
            }
        }
        Ok(())
    }
}

/// One recipient checked: its mailbox parsed (with its name, if given), its name free of
/// line breaks. The error names the part of the recipient at fault.
fn check(recipient: Recipient) -> Result<MailingRecipient, (&'static str, String)> {
    match recipient {
        Recipient::Address(address) => {
            let mailbox = parse_mailbox(&address).map_err(|reason| ("", reason))?;
            Ok(MailingRecipient {
                to: mailbox.to_string(),
                name: None,
                fields: Default::default(),
            })
        }
        Recipient::Object(object) => {
            let mut mailbox = parse_mailbox(&object.email).map_err(|reason| (".email", reason))?;
            if let Some(name) = &object.name {
                check_header_text(name).map_err(|reason| (".name", reason))?;
                mailbox.name = Some(name.clone());
            }
            // Parsed again as written, so that a name no header line could hold is refused.
            let to = parse_mailbox(&mailbox.to_string()).map_err(|reason| (".name", reason))?;
            Ok(MailingRecipient {
                to: to.to_string(),
                name: object.name,
                fields: object.fields.unwrap_or_default(),
            })
        }
    }
}

/// Compiles an e-mail's templates, or the 422 naming the part and line that do not.
pub(super) fn compile(
    subject: &str,
    text: Option<&str>,
    html: Option<&str>,
    on_missing: OnMissing,
) -> Result<Templates, Problem> {
    Templates::compile(subject, text, html, on_missing).map_err(template_problem)
}

/// A template error as a 422 naming its part.
pub(super) fn template_problem(error: TemplateError) -> Problem {
    let line = error.line.map(|l| format!("line {l}: ")).unwrap_or_default();
    Problem::invalid(error.part.as_str(), format!("{line}{}", error.reason))
}
