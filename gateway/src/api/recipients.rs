//! Recipients as the e-mail endpoints take them (a plain mailbox, or
//! `{email, name?, fields?}` for merge fields), checked once, duplicates dropped; and
//! the templates' compile check, as 422s naming the field.

use lettre::message::Mailbox;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use super::problem::Problem;
use crate::email::{
    message::{check_header_text, delivery_key, parse_mailbox, MailingRecipient},
    template::{OnMissing, TemplateError, Templates},
};
use crate::store::Texts;

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
/// (serde's untagged enums say only that no variant matched), and read straight from
/// the request (an untagged enum, or a `serde_json::Value` first, would copy every
/// recipient of a big mailing once more).
impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RecipientVisitor)
    }
}

struct RecipientVisitor;

impl<'de> serde::de::Visitor<'de> for RecipientVisitor {
    type Value = Recipient;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a recipient: an address string or an object {email, name?, fields?}")
    }

    fn visit_str<E: serde::de::Error>(self, address: &str) -> Result<Recipient, E> {
        Ok(Recipient::Address(address.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, address: String) -> Result<Recipient, E> {
        Ok(Recipient::Address(address))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Recipient, A::Error> {
        use serde::de::Error;
        RecipientObject::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            .map(Recipient::Object)
            .map_err(|e| A::Error::custom(format!("a recipient object: {e}")))
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
#[derive(Default)]
pub(super) struct Recipients {
    pub(super) list: Vec<MailingRecipient>,
    /// Each recipient's delivery key (local part, domain in lower case), in the order
    /// they were added: what the suppression list is checked with.
    pub(super) keys: Texts,
    /// The keys seen, as indices into `keys` (each key is kept once), shared across the
    /// lists of one e-mail (to, cc, bcc) so an address in two of them gets one copy.
    seen: hashbrown::HashTable<usize>,
    hasher: hashbrown::DefaultHashBuilder,
    /// How many were dropped as duplicates.
    pub(super) duplicates: u64,
}

impl Recipients {
    /// Checks and adds every recipient of `field` to `list`, naming `field[i]` (or
    /// `field[i].name`) when one is wrong; an address already added is skipped.
    pub(super) fn add(&mut self, field: &str, list: Vec<Recipient>) -> Result<(), Problem> {
        let mut kept = std::mem::take(&mut self.list);
        let added = list
            .into_iter()
            .enumerate()
            .try_for_each(|(i, recipient)| self.add_one(field, i, recipient, &mut |r| kept.push(r)));
        self.list = kept;
        added
    }

    /// Checks and adds `recipient`, the `i`th of `field`, handing it to `keep` if its
    /// address is new (a mailing stores it as text at once rather than in `list`).
    pub(super) fn add_one(
        &mut self,
        field: &str,
        i: usize,
        recipient: Recipient,
        keep: &mut impl FnMut(MailingRecipient),
    ) -> Result<(), Problem> {
        let (checked, mailbox) = check(recipient)
            .map_err(|(sub, reason)| Problem::invalid(format!("{field}[{i}]{sub}"), reason))?;
        if self.insert(&delivery_key(&mailbox.email)) {
            keep(checked);
        } else {
            self.duplicates += 1;
        }
        Ok(())
    }

    /// Adds `key` unless it was seen; true if it was new.
    fn insert(&mut self, key: &str) -> bool {
        let Recipients {
            keys, seen, hasher, ..
        } = self;
        let hash = hasher.hash_one(key);
        let found = seen.find(hash, |&i| keys.get(i) == Some(key)).is_some();
        if !found {
            seen.insert_unique(hash, keys.len(), |&i| {
                hasher.hash_one(keys.get(i).expect("a key seen is kept"))
            });
            keys.push(key);
        }
        !found
    }
}

/// One recipient checked: its mailbox parsed (with its name, if given), its name free of
/// line breaks; and the mailbox. The error names the part of the recipient at fault.
fn check(recipient: Recipient) -> Result<(MailingRecipient, Mailbox), (&'static str, String)> {
    match recipient {
        Recipient::Address(address) => {
            let mailbox = parse_mailbox(&address).map_err(|reason| ("", reason))?;
            let checked = MailingRecipient {
                to: mailbox.to_string(),
                name: None,
                fields: Default::default(),
            };
            Ok((checked, mailbox))
        }
        Recipient::Object(object) => {
            let mut mailbox = parse_mailbox(&object.email).map_err(|reason| (".email", reason))?;
            if let Some(name) = &object.name {
                check_header_text(name).map_err(|reason| (".name", reason))?;
                mailbox.name = Some(name.clone());
            }
            // Parsed again as written, so that a name no header line could hold is refused.
            let to = parse_mailbox(&mailbox.to_string()).map_err(|reason| (".name", reason))?;
            let checked = MailingRecipient {
                to: to.to_string(),
                name: object.name,
                fields: object.fields.unwrap_or_default(),
            };
            Ok((checked, to))
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

#[cfg(test)]
mod tests {
    use super::{Recipient, Recipients};

    #[test]
    fn an_address_listed_again_after_thousands_of_others_is_dropped() {
        // Enough addresses for the table of keys seen to grow (and rehash) many times.
        let mut recipients = Recipients::default();
        let mut kept = 0;
        let addresses = (0..5_000).map(|n| format!("user{n}@example.org")).chain([
            "user0@EXAMPLE.org".into(),
            "User 4999 <user4999@example.ORG>".into(),
        ]);
        for (i, address) in addresses.enumerate() {
            recipients
                .add_one("recipients", i, Recipient::Address(address), &mut |_| kept += 1)
                .unwrap();
        }
        assert_eq!((kept, recipients.duplicates), (5_000, 2));
        assert_eq!(recipients.keys.len(), 5_000);
    }
}
