//! An e-mail as queued, checked at the API, and turned into bytes for SMTP.

use std::sync::Mutex;

use lettre::{
    address::Envelope,
    message::{Body, Mailbox, MultiPart, SinglePart},
    Address, Message,
};
use serde::{Deserialize, Serialize};

use super::dkim::Dkim;
use super::header::{self, check_mailbox_fits};
use super::template::{Merge, OnMissing, Part, Rendered, TemplateError, Templates};
use super::unsubscribe::{UnsubscribeKey, Unsubscriber};

/// An e-mail as stored (the payload of an `email` message, or a mailing's shared part
/// merged with one recipient). Every address has been parsed at the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailPayload {
    /// `Name <addr>` or `addr`.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<String>,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The unsubscribe link of a mailing's e-mail, sent as `List-Unsubscribe` with
    /// one-click `List-Unsubscribe-Post` (RFC 8058). Never on a single e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe: Option<String>,
}

/// The shared part of a mailing: everything but the recipient. Subject, text and HTML
/// are templates ([`template`](super::template)), rendered per recipient at send time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailingShared {
    pub from: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// What a merge field the recipient lacks renders as. Mailings stored before merge
    /// fields have none, and render empty.
    #[serde(default, skip_serializing_if = "OnMissing::is_empty")]
    pub on_missing: OnMissing,
}

impl MailingShared {
    /// Compiles the mailing's templates.
    pub fn compile(&self) -> Result<Templates, TemplateError> {
        Templates::compile(
            &self.subject,
            self.text.as_deref(),
            self.html.as_deref(),
            self.on_missing,
        )
    }
}

/// A mailing as the SMTP engine sends it: its shared part read once, its sender parsed
/// and its templates compiled.
#[derive(Debug)]
pub struct Mailing {
    pub shared: MailingShared,
    pub from: Mailbox,
    pub templates: Templates,
    /// Its bodies as last encoded, for the next recipient whose bodies render the same.
    pub bodies: EncodedBodies,
}

impl Mailing {
    /// Reads a mailing's shared part as stored.
    pub fn prepare(stored: &str) -> Result<Mailing, String> {
        let shared: MailingShared =
            serde_json::from_str(stored).map_err(|e| format!("the stored mailing cannot be read: {e}"))?;
        let from = parse_mailbox(&shared.from).map_err(|e| format!("the mailing's sender: {e}"))?;
        let templates = shared
            .compile()
            .map_err(|e| format!("the mailing's template does not compile: {e}"))?;
        Ok(Mailing {
            shared,
            from,
            templates,
            bodies: EncodedBodies::default(),
        })
    }
}

/// One mailing recipient's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailingRecipient {
    /// The mailbox of the To header: `Name <addr>` or `addr`.
    pub to: String,
    /// `{{ name }}` in the templates, when the recipient was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `{{ fields.KEY }}` in the templates.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl MailingRecipient {
    /// The subject and bodies of `templates` rendered for this recipient: `{{ email }}`
    /// is the bare address, `{{ name }}` the name given, else the mailbox's display name.
    pub fn render_with(
        &self,
        templates: &Templates,
        unsubscribe_url: Option<&str>,
    ) -> Result<Rendered, TemplateError> {
        let mailbox = self.mailbox().map_err(|reason| TemplateError {
            part: Part::Subject,
            line: None,
            reason,
        })?;
        self.render_for(&mailbox, templates, unsubscribe_url)
    }

    fn render_for(
        &self,
        mailbox: &Mailbox,
        templates: &Templates,
        unsubscribe_url: Option<&str>,
    ) -> Result<Rendered, TemplateError> {
        let email = mailbox.email.to_string();
        templates.render(&Merge {
            email: &email,
            name: self.name.as_deref().or(mailbox.name.as_deref()),
            fields: &self.fields,
            unsubscribe_url,
        })
    }

    fn mailbox(&self) -> Result<Mailbox, String> {
        parse_mailbox(&self.to).map_err(|reason| format!("the recipient's address is unreadable: {reason}"))
    }

    /// The recipient's e-mail rendered from `mailing`, with its own unsubscribe link
    /// (`{{ unsubscribe_url }}` and `List-Unsubscribe`) when the gateway has a public
    /// URL; and the recipient's mailbox.
    pub fn render(
        &self,
        mailing: &Mailing,
        links: Option<&UnsubscribeLinks<'_>>,
    ) -> Result<(EmailPayload, Mailbox), String> {
        let mailbox = self.mailbox()?;
        let link = links.map(|links| links.link(&delivery_key(&mailbox.email)));
        let rendered = self
            .render_for(&mailbox, &mailing.templates, link.as_deref())
            .map_err(|e| format!("the template did not render for this recipient: {e}"))?;
        let payload = EmailPayload {
            from: mailing.shared.from.clone(),
            to: vec![self.to.clone()],
            cc: Vec::new(),
            bcc: Vec::new(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            list_unsubscribe: link,
        };
        Ok((payload, mailbox))
    }
}

/// What a mailing's unsubscribe links are made of.
#[derive(Debug)]
pub struct UnsubscribeLinks<'a> {
    /// `email.public_url`.
    pub base: &'a str,
    pub key: &'a UnsubscribeKey,
    pub mailing_id: &'a str,
}

impl UnsubscribeLinks<'_> {
    /// The link for `address` (as the suppression list keeps it).
    pub fn link(&self, address: &str) -> String {
        let token = self.key.seal(&Unsubscriber {
            address: address.to_string(),
            mailing_id: self.mailing_id.to_string(),
        });
        format!("{}/u/{token}", self.base)
    }
}

/// The address mail servers would deliver to, for finding duplicates: the local part
/// as it is (servers may tell its case apart), the domain in lower case.
/// The suppression list keeps addresses in this form too.
pub fn delivery_key(address: &Address) -> String {
    format!("{}@{}", address.user(), address.domain().to_ascii_lowercase())
}

/// Parses a mailbox (`Name <addr>` or `addr`), refusing CR and LF anywhere (they would
/// start a new header) and a name no header line could hold. A domain in Unicode
/// becomes its punycode form (`bücher.example` is `xn--bcher-kva.example`), which every
/// server takes; only a local part in Unicode still needs SMTPUTF8.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    if text.contains(['\r', '\n']) {
        return Err("contains a line break (CR or LF), which would start a new header".into());
    }
    let mut mailbox = text
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("`{text}` is not an e-mail address: {e}"))?;
    let domain = mailbox.email.domain();
    if !domain.is_ascii() {
        let ascii = idna::domain_to_ascii(domain)
            .map_err(|e| format!("the domain of `{text}` has no punycode form: {e}"))?;
        mailbox.email = Address::new(mailbox.email.user(), ascii)
            .map_err(|e| format!("the domain of `{text}` in punycode is not valid: {e}"))?;
    }
    check_mailbox_fits(&mailbox)?;
    Ok(mailbox)
}

/// A value for a header: no CR or LF.
pub fn check_header_text(text: &str) -> Result<(), String> {
    if text.contains(['\r', '\n']) {
        Err("contains a line break (CR or LF), which would start a new header".into())
    } else {
        Ok(())
    }
}

/// Why an e-mail could not be turned into SMTP bytes (a permanent failure: the stored
/// payload is wrong, retrying will not change it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the stored e-mail cannot be built: {0}")]
pub struct BuildError(String);

/// A mailing's text and HTML bodies as last encoded. lettre picks each body's transfer
/// encoding and encodes it (quoted-printable for long lines), a cost that grows with
/// the body: a mailing whose bodies render the same for every recipient (no merge
/// field in them) has them encoded once, not once per e-mail.
#[derive(Debug, Default)]
pub struct EncodedBodies {
    text: LastEncoded,
    html: LastEncoded,
}

/// A body's rendered text and its encoding, the last one made.
type LastEncoded = Mutex<Option<(String, Body)>>;

impl EncodedBodies {
    /// `rendered` encoded: the last encoding if it was of the same text.
    fn encode(slot: &LastEncoded, rendered: &str) -> Body {
        let mut last = slot.lock().expect("the body cache is not poisoned");
        match &*last {
            Some((text, body)) if text == rendered => body.clone(),
            _ => {
                let body = Body::new(rendered.to_string());
                *last = Some((rendered.to_string(), body.clone()));
                body
            }
        }
    }
}

/// The envelope and the RFC 5322 bytes of `payload`, with `X-Gateway-Id` and a
/// Message-ID made from the gateway's id, so the receiving side can match them.
///
/// No line passes 998 bytes: the subject and the address lists are folded (see
/// [`header`]), and lettre gives a body with long lines a quoted-printable or base64
/// transfer encoding. With `dkim`, the finished e-mail is signed.
pub fn build(
    payload: &EmailPayload,
    id: &str,
    dkim: Option<&Dkim>,
) -> Result<(Envelope, Vec<u8>), BuildError> {
    let bad = |e: String| BuildError(e);
    let parse_all = |list: &[String]| -> Result<Vec<Mailbox>, BuildError> {
        list.iter().map(|a| parse_mailbox(a).map_err(bad)).collect()
    };
    let addresses = Addresses {
        from: parse_mailbox(&payload.from).map_err(bad)?,
        to: parse_all(&payload.to)?,
        cc: parse_all(&payload.cc)?,
        bcc: parse_all(&payload.bcc)?,
    };
    build_parsed(payload, addresses, id, dkim, None)
}

/// The mailboxes of an e-mail, parsed from its payload's.
pub struct Addresses {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
}

/// [`build`] with the payload's addresses already parsed, and a mailing's bodies
/// encoded once where they render the same (`bodies`).
pub fn build_parsed(
    payload: &EmailPayload,
    addresses: Addresses,
    id: &str,
    dkim: Option<&Dkim>,
    bodies: Option<&EncodedBodies>,
) -> Result<(Envelope, Vec<u8>), BuildError> {
    let bad = |e: String| BuildError(e);
    let Addresses { from, to, cc, bcc } = addresses;
    let mut builder = Message::builder()
        .from(from)
        .subject(payload.subject.clone())
        .message_id(Some(format!("<{id}@gateway>")));
    for mailbox in &to {
        builder = builder.to(mailbox.clone());
    }
    for mailbox in &cc {
        builder = builder.cc(mailbox.clone());
    }
    for bcc in bcc {
        builder = builder.bcc(bcc);
    }
    builder = builder.header(GatewayId(id.to_string()));
    if let Some(link) = &payload.list_unsubscribe {
        check_header_text(link).map_err(bad)?;
        builder = builder
            .header(ListUnsubscribe(format!("<{link}>")))
            .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()));
    }
    let encode = |text: &str, slot: fn(&EncodedBodies) -> &LastEncoded| match bodies {
        Some(bodies) => EncodedBodies::encode(slot(bodies), text),
        None => Body::new(text.to_string()),
    };
    let text = payload.text.as_deref().map(|text| encode(text, |b| &b.text));
    let html = payload.html.as_deref().map(|html| encode(html, |b| &b.html));
    let mut message = match (text, html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text)),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html)),
        (None, None) => builder.singlepart(SinglePart::plain(String::new())),
    }
    .map_err(|e| BuildError(e.to_string()))?;
    // lettre's own headers gave the envelope; these replace them where it writes a
    // line that may pass 998 bytes.
    let headers = message.headers_mut();
    headers.insert_raw(header::subject(&payload.subject));
    headers.insert_raw(header::address_list("To", &to));
    if !cc.is_empty() {
        headers.insert_raw(header::address_list("Cc", &cc));
    }
    // Last: a header changed after this would break the signature.
    if let Some(dkim) = dkim {
        dkim.sign(&mut message);
    }
    let envelope = message.envelope().clone();
    Ok((envelope, message.formatted()))
}

/// A header of ASCII text that lettre has no type for.
macro_rules! text_header {
    ($(#[$doc:meta])* $type:ident, $name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        struct $type(String);

        impl lettre::message::header::Header for $type {
            fn name() -> lettre::message::header::HeaderName {
                lettre::message::header::HeaderName::new_from_ascii_str($name)
            }
            fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($type(text.to_string()))
            }
            fn display(&self) -> lettre::message::header::HeaderValue {
                lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(
    /// `X-Gateway-Id`: the gateway's message id, on every e-mail it sends.
    GatewayId,
    "X-Gateway-Id"
);
text_header!(
    /// `List-Unsubscribe: <URL>` (RFC 2369).
    ListUnsubscribe,
    "List-Unsubscribe"
);
text_header!(
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
    ListUnsubscribePost,
    "List-Unsubscribe-Post"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> EmailPayload {
        EmailPayload {
            from: "Shop <shop@example.com>".into(),
            to: vec!["ann@example.org".into()],
            cc: vec!["Bob <bob@example.org>".into()],
            bcc: vec!["audit@example.com".into()],
            subject: "Your order".into(),
            text: Some("Thanks!".into()),
            html: Some("<p>Thanks!</p>".into()),
            list_unsubscribe: None,
        }
    }

    #[test]
    fn the_envelope_has_every_recipient_and_the_headers_hide_bcc() {
        let (envelope, bytes) = build(&payload(), "0197-abc", None).unwrap();
        let to: Vec<String> = envelope.to().iter().map(|a| a.to_string()).collect();
        assert_eq!(to, ["ann@example.org", "bob@example.org", "audit@example.com"]);
        assert_eq!(envelope.from().unwrap().to_string(), "shop@example.com");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("X-Gateway-Id: 0197-abc\r\n"), "{text}");
        assert!(text.contains("Message-ID: <0197-abc@gateway>\r\n"), "{text}");
        assert!(
            !text.contains("audit@example.com"),
            "Bcc must not be in the headers: {text}"
        );
        assert!(text.contains("multipart/alternative"));
    }

    /// Every line of `bytes`, without its CRLF.
    fn lines(bytes: &[u8]) -> Vec<String> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .split("\r\n")
            .map(str::to_string)
            .collect()
    }

    /// The lines of the header `name`, folded lines included.
    fn header_lines(bytes: &[u8], name: &str) -> Vec<String> {
        let all = lines(bytes);
        let start = all
            .iter()
            .position(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} header"));
        let mut field = vec![all[start].clone()];
        field.extend(
            all[start + 1..]
                .iter()
                .take_while(|l| l.starts_with(' '))
                .cloned(),
        );
        field
    }

    #[test]
    fn a_10000_character_subject_is_folded_into_encoded_words() {
        let subject = "x".repeat(10_000);
        let (_, bytes) = build(
            &EmailPayload {
                subject: subject.clone(),
                ..payload()
            },
            "0197-abc",
            None,
        )
        .unwrap();
        let longest = lines(&bytes).iter().map(String::len).max().unwrap();
        assert!(longest <= 998, "a line of {longest} bytes");
        let field = header_lines(&bytes, "Subject");
        assert!(field.len() > 100, "{} lines", field.len());
        assert!(field.iter().all(|l| l.len() <= 78), "{:?}", &field[..3]);
        let words = field.concat()["Subject:".len()..].to_string();
        assert!(
            words
                .split(' ')
                .skip(1)
                .all(|w| w.starts_with("=?utf-8?b?") && w.ends_with("?=")),
            "encoded words only: {:?}",
            &field[..3]
        );
    }

    #[test]
    fn an_ordinary_subject_is_written_as_it_was() {
        let (_, bytes) = build(&payload(), "0197-abc", None).unwrap();
        assert_eq!(header_lines(&bytes, "Subject"), ["Subject: Your order"]);
    }

    #[test]
    fn a_hundred_recipients_are_folded_between_addresses() {
        let to: Vec<String> = (0..100).map(|i| format!("recipient{i}@example.org")).collect();
        let (envelope, bytes) = build(
            &EmailPayload {
                to: to.clone(),
                cc: vec![
                    "Bob <bob@example.org>".into(),
                    "Seán Ó Rudaí <sean@example.org>".into(),
                ],
                ..payload()
            },
            "0197-abc",
            None,
        )
        .unwrap();
        let field = header_lines(&bytes, "To");
        assert!(field.iter().all(|l| l.len() <= 78), "{field:?}");
        let unfolded: String = field.concat();
        let listed: Vec<&str> = unfolded["To: ".len()..].split(", ").collect();
        assert_eq!(listed, to, "every address once, in order");
        assert_eq!(
            header_lines(&bytes, "Cc").concat(),
            "Cc: Bob <bob@example.org>, =?utf-8?b?U2XDoW4gw5MgUnVkYcOt?= <sean@example.org>"
        );
        assert_eq!(envelope.to().len(), 103, "to, cc and bcc");
    }

    #[test]
    fn a_mailing_body_encoded_once_gives_the_bytes_of_one_encoded_each_time() {
        let bodies = EncodedBodies::default();
        // Long lines and non-ASCII text: lettre encodes it (quoted-printable).
        let long = "Grüße aus Köln ".repeat(2_000);
        let sends = [
            ("ann@example.org", long.as_str()),
            ("bob@example.org", long.as_str()),
            ("cy@example.org", "A body of its own."),
            ("di@example.org", long.as_str()),
        ];
        for (to, text) in sends {
            let one = EmailPayload {
                to: vec![to.into()],
                cc: Vec::new(),
                bcc: Vec::new(),
                text: Some(text.into()),
                html: None,
                ..payload()
            };
            let addresses = Addresses {
                from: parse_mailbox(&one.from).unwrap(),
                to: vec![parse_mailbox(to).unwrap()],
                cc: Vec::new(),
                bcc: Vec::new(),
            };
            let (_, cached) = build_parsed(&one, addresses, "0197-abc", None, Some(&bodies)).unwrap();
            let (_, fresh) = build(&one, "0197-abc", None).unwrap();
            let undated = |bytes: &[u8]| {
                lines(bytes)
                    .into_iter()
                    .filter(|line| !line.starts_with("Date:"))
                    .collect::<Vec<_>>()
            };
            assert_eq!(undated(&cached), undated(&fresh), "to {to}");
            assert!(undated(&cached)
                .iter()
                .any(|line| line.contains(&format!("To: {to}"))));
        }
    }

    #[test]
    fn a_body_line_longer_than_998_bytes_is_encoded() {
        let long = format!("{}\n{}", "a".repeat(5_000), "é".repeat(2_000));
        for (text, html) in [
            (Some(long.clone()), None),
            (None, Some(long.clone())),
            (Some(long.clone()), Some(long)),
        ] {
            let (_, bytes) = build(
                &EmailPayload {
                    text,
                    html,
                    ..payload()
                },
                "0197-abc",
                None,
            )
            .unwrap();
            let longest = lines(&bytes).iter().map(String::len).max().unwrap();
            assert!(longest <= 78, "a line of {longest} bytes");
        }
    }

    #[test]
    fn an_idn_domain_becomes_punycode_and_a_unicode_local_part_stays() {
        let mailbox = parse_mailbox("Ann <ann@bücher.example>").unwrap();
        assert_eq!(mailbox.email.to_string(), "ann@xn--bcher-kva.example");
        assert_eq!(mailbox.name.as_deref(), Some("Ann"));
        let mailbox = parse_mailbox("jürgen@example.org").unwrap();
        assert_eq!(mailbox.email.to_string(), "jürgen@example.org");
    }

    #[test]
    fn a_name_with_a_word_too_long_for_a_line_is_refused() {
        let error = parse_mailbox(&format!("{} <a@example.org>", "n".repeat(1_000))).unwrap_err();
        assert!(error.contains("998"), "{error}");
        assert!(parse_mailbox(&format!("{} <a@example.org>", "name ".repeat(400))).is_ok());
    }

    #[test]
    fn line_breaks_in_headers_are_refused() {
        assert!(parse_mailbox("a@example.com\r\nBcc: x@evil.com").is_err());
        assert!(parse_mailbox("Evil\n <a@example.com>").is_err());
        assert!(check_header_text("Hello\r\nBcc: x@evil.com").is_err());
        assert!(check_header_text("Hello").is_ok());
        assert!(parse_mailbox("not an address").is_err());
        assert!(parse_mailbox("Ann <ann@example.org>").is_ok());
    }
}
