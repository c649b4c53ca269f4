//! Header fields that can always be sent: no line passes 998 bytes (RFC 5322 section
//! 2.1.1; a server answers `500 Line too long` otherwise), and none passes 78 where
//! the text allows it.
//!
//! lettre folds a header at its spaces and writes non-ASCII words as RFC 2047 encoded
//! words, which is right for most headers. Two cases it leaves on one line, and this
//! file handles: an ASCII word longer than a line (a subject of 10,000 letters), which
//! only encoded words can split, since folding only ever happens at a space; and a
//! list of addresses, which lettre never folds between its mailboxes.

use email_encoding::headers::writer::EmailWriter;
use lettre::message::{
    header::{self, HeaderName, HeaderValue, Headers},
    Mailbox, Mailboxes,
};

/// The longest line RFC 5322 allows, without its CRLF.
pub const MAX_LINE: usize = 998;

/// The line length RFC 5322 asks for where the text allows it, without its CRLF.
const SHORT_LINE: usize = 78;

/// Room kept on a line for the longest field name in front of an address (`From: `)
/// and the space that starts a folded line.
const NAME_ROOM: usize = "From: ".len() + 1;

/// `Subject`: as lettre writes it, unless a word cannot fit on a folded line; then the
/// whole subject goes as RFC 2047 encoded words, split over as many lines as it needs
/// (a reader's client joins them back into the original text).
pub fn subject(text: &str) -> HeaderValue {
    let name = HeaderName::new_from_ascii_str("Subject");
    // A folded line starts with one space, and lettre folds before 76.
    let fits = text.split(' ').all(|word| word.len() < SHORT_LINE - 2);
    if fits {
        return HeaderValue::new(name, text.to_string());
    }
    let mut encoded = String::new();
    {
        let mut writer = EmailWriter::new(&mut encoded, "Subject: ".len(), 0, false);
        email_encoding::headers::rfc2047::encode(text, &mut writer).expect("writing to a String cannot fail");
    }
    HeaderValue::dangerous_new_pre_encoded(name, text.to_string(), encoded)
}

/// `To` or `Cc`: each mailbox as lettre encodes it, folded between mailboxes so that a
/// line stays under 78 characters, or holds one mailbox alone.
pub fn address_list(name: &'static str, mailboxes: &[Mailbox]) -> HeaderValue {
    let mut folded = String::new();
    let mut line = name.len() + ": ".len();
    for (i, mailbox) in mailboxes.iter().enumerate() {
        let encoded = encoded_mailbox(mailbox);
        let first = encoded.split("\r\n").next().unwrap_or_default();
        if i > 0 {
            folded.push(',');
            line += 1;
            if line + 1 + first.len() > SHORT_LINE {
                folded.push_str("\r\n ");
                line = 1;
            } else {
                folded.push(' ');
                line += 1;
            }
        }
        folded.push_str(&encoded);
        line = match encoded.rsplit_once("\r\n") {
            Some((_, last)) => last.len(),
            None => line + encoded.len(),
        };
    }
    let raw = Mailboxes::from_iter(mailboxes.iter().cloned()).to_string();
    HeaderValue::dangerous_new_pre_encoded(HeaderName::new_from_ascii_str(name), raw, folded)
}

/// Refuses a mailbox that no header could carry: one whose name holds a word too long
/// for a line, which lettre writes unbroken.
pub fn check_mailbox_fits(mailbox: &Mailbox) -> Result<(), String> {
    let encoded = encoded_mailbox(mailbox);
    let longest = encoded.split("\r\n").map(str::len).max().unwrap_or(0);
    if longest + NAME_ROOM > MAX_LINE {
        return Err(format!(
            "is too long for a line of an e-mail header ({MAX_LINE} bytes): shorten its name or put spaces in it"
        ));
    }
    Ok(())
}

/// A mailbox as lettre writes it in a header: the name quoted or encoded as needed,
/// possibly over several lines.
fn encoded_mailbox(mailbox: &Mailbox) -> String {
    let mut headers = Headers::new();
    headers.set(header::To::from(Mailboxes::from(mailbox.clone())));
    let text = headers.to_string();
    text.strip_prefix("To: ")
        .and_then(|t| t.strip_suffix("\r\n"))
        .unwrap_or(&text)
        .to_string()
}
