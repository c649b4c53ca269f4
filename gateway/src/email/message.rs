//! An e-mail as queued, checked at the API, and turned into bytes for SMTP.

use lettre::{
    address::Envelope,
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    Message,
};
use serde::{Deserialize, Serialize};

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
}

/// The shared part of a mailing: everything but the recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailingShared {
    pub from: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// One mailing recipient's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailingRecipient {
    pub to: String,
}

impl EmailPayload {
    /// The e-mail of one mailing recipient.
    pub fn for_recipient(shared: MailingShared, recipient: MailingRecipient) -> EmailPayload {
        EmailPayload {
            from: shared.from,
            to: vec![recipient.to],
            cc: Vec::new(),
            bcc: Vec::new(),
            subject: shared.subject,
            text: shared.text,
            html: shared.html,
        }
    }
}

/// Parses a mailbox (`Name <addr>` or `addr`), refusing CR and LF anywhere: they would
/// start a new header.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    if text.contains(['\r', '\n']) {
        return Err("contains a line break (CR or LF), which would start a new header".into());
    }
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("`{text}` is not an e-mail address: {e}"))
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

/// The envelope and the RFC 5322 bytes of `payload`, with `X-Gateway-Id` and a
/// Message-ID made from the gateway's id, so the receiving side can match them.
pub fn build(payload: &EmailPayload, id: &str) -> Result<(Envelope, Vec<u8>), BuildError> {
    let bad = |e: String| BuildError(e);
    let mut builder = Message::builder()
        .from(parse_mailbox(&payload.from).map_err(bad)?)
        .subject(payload.subject.clone())
        .message_id(Some(format!("<{id}@gateway>")));
    for to in &payload.to {
        builder = builder.to(parse_mailbox(to).map_err(bad)?);
    }
    for cc in &payload.cc {
        builder = builder.cc(parse_mailbox(cc).map_err(bad)?);
    }
    for bcc in &payload.bcc {
        builder = builder.bcc(parse_mailbox(bcc).map_err(bad)?);
    }
    builder = builder.header(GatewayId(id.to_string()));
    let message = match (&payload.text, &payload.html) {
        (Some(text), Some(html)) => {
            builder.multipart(MultiPart::alternative_plain_html(text.clone(), html.clone()))
        }
        (Some(text), None) => builder.singlepart(SinglePart::plain(text.clone())),
        (None, Some(html)) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.clone()),
        ),
        (None, None) => builder.singlepart(SinglePart::plain(String::new())),
    }
    .map_err(|e| BuildError(e.to_string()))?;
    let envelope = message.envelope().clone();
    Ok((envelope, message.formatted()))
}

/// `X-Gateway-Id`: the gateway's message id, on every e-mail it sends.
#[derive(Debug, Clone)]
struct GatewayId(String);

impl lettre::message::header::Header for GatewayId {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Gateway-Id")
    }
    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(GatewayId(text.to_string()))
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

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
        }
    }

    #[test]
    fn the_envelope_has_every_recipient_and_the_headers_hide_bcc() {
        let (envelope, bytes) = build(&payload(), "0197-abc").unwrap();
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
