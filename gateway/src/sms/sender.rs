//! Who an SMS says it is from: `sms.sender`, or a request's `sender`.

/// A sender: an alphanumeric sender ID (1 to 11 letters and digits, at least one
/// letter) or a phone number in international form (`+` and 6 to 15 digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderId(String);

impl SenderId {
    pub fn parse(text: &str) -> Result<SenderId, String> {
        let is_number = text.strip_prefix('+').is_some_and(|d| {
            (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
        });
        let is_alphanumeric = (1..=11).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric())
            && text.bytes().any(|b| b.is_ascii_alphabetic());
        if is_number || is_alphanumeric {
            Ok(SenderId(text.to_string()))
        } else {
            Err(format!(
                "`{text}` is not a sender: use up to 11 letters and digits (with at least one letter), \
                 or a phone number such as +447700900123"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_short_alphanumeric_ids_or_international_numbers() {
        assert!(SenderId::parse("ACME").is_ok());
        assert!(SenderId::parse("+447700900123").is_ok());
        assert!(SenderId::parse("TWELVECHARSX").is_err());
        assert!(SenderId::parse("AC ME").is_err());
        assert!(SenderId::parse("12345").is_err());
    }
}
