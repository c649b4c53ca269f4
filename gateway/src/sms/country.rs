//! The country calling code a national number is completed with
//! (`sms.default_country_code`).

use std::fmt;

/// A country calling code such as `+44`, kept as its digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryCode(u16);

impl CountryCode {
    pub fn parse(text: &str) -> Result<CountryCode, String> {
        let digits = text.trim().trim_start_matches('+');
        if digits.is_empty()
            || digits.len() > 3
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(format!(
                "`{text}` is not a country calling code such as +44 or +1"
            ));
        }
        Ok(CountryCode(digits.parse().expect("1 to 3 digits")))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_one_to_three_digits_without_a_leading_zero() {
        assert_eq!(CountryCode::parse("+44").unwrap().get(), 44);
        assert_eq!(CountryCode::parse("1").unwrap().to_string(), "+1");
        assert!(CountryCode::parse("+0").is_err());
        assert!(CountryCode::parse("+4444").is_err());
    }
}
