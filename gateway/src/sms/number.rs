//! Phone numbers: whatever an app or a provider sends, to E.164 or a clear refusal.
//!
//! Rules (contract, section 3): a number with a country code (`+44…` or `0044…`) is
//! used as it is; a national number (`07911 123456`) takes `sms.default_country_code`
//! with its trunk prefix dropped; a number that cannot exist is refused. Validation
//! uses libphonenumber's metadata (the `phonenumber` crate), so "cannot exist" means
//! what it means for Google's phone stack.

use std::fmt;

use phonenumber::{country, metadata::DATABASE, Mode};

use super::country::CountryCode;

/// A phone number in E.164 form (`+447911123456`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a number was refused, in words an app developer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("`{0}` is not a phone number")]
    NotANumber(String),
    #[error("`{0}` is a national number, and no sms.default_country_code is set to complete it; send it as +<country code><number>")]
    NoDefaultCountry(String),
    #[error("`{input}` cannot be a phone number in {region}")]
    Invalid { input: String, region: String },
}

/// Normalises `input` to E.164, completing national numbers with `default_country`.
pub fn normalize(input: &str, default_country: Option<CountryCode>) -> Result<E164, NumberError> {
    let trimmed = input.trim();
    let not_a_number = || NumberError::NotANumber(input.to_string());
    if trimmed.is_empty() || trimmed.len() > 40 {
        return Err(not_a_number());
    }
    // Only digits and the usual separators; letters ("vanity numbers") are refused.
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')' | '/'))
    {
        return Err(not_a_number());
    }
    let international = if let Some(rest) = trimmed.strip_prefix('+') {
        Some(format!("+{rest}"))
    } else {
        trimmed.strip_prefix("00").map(|rest| format!("+{rest}"))
    };
    let (number, region) = match international {
        Some(text) => (
            phonenumber::parse(None, &text).map_err(|_| not_a_number())?,
            "any country".to_string(),
        ),
        None => {
            let code = default_country.ok_or_else(|| NumberError::NoDefaultCountry(input.to_string()))?;
            let region = region_for(code).ok_or_else(not_a_number)?;
            let number = phonenumber::parse(Some(region), trimmed).map_err(|_| not_a_number())?;
            (number, format!("{region:?} ({code})"))
        }
    };
    if !number.is_valid() {
        return Err(NumberError::Invalid {
            input: input.to_string(),
            region,
        });
    }
    Ok(E164(number.format().mode(Mode::E164).to_string()))
}

/// The main region of a calling code (`+44` → GB, `+1` → US).
fn region_for(code: CountryCode) -> Option<country::Id> {
    let regions = DATABASE.by_code(&code.get())?;
    let main = regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or_else(|| regions.first())?;
    main.id().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uk() -> Option<CountryCode> {
        Some(CountryCode::parse("+44").unwrap())
    }

    #[test]
    fn international_and_national_forms_reach_the_same_e164() {
        for input in [
            "+44 7911 123456",
            "0044 7911 123456",
            "07911 123456",
            "+447911123456",
            "(07911) 123-456",
        ] {
            assert_eq!(
                normalize(input, uk()).unwrap().as_str(),
                "+447911123456",
                "{input}"
            );
        }
    }

    #[test]
    fn a_number_with_a_country_code_ignores_the_default() {
        assert_eq!(
            normalize("+1 415 555 2671", uk()).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            normalize("+33 6 12 34 56 78", None).unwrap().as_str(),
            "+33612345678"
        );
    }

    #[test]
    fn numbers_that_cannot_exist_are_refused() {
        assert!(matches!(
            normalize("12345", uk()),
            Err(NumberError::Invalid { .. })
        ));
        assert!(matches!(
            normalize("not-a-number", uk()),
            Err(NumberError::NotANumber(_))
        ));
        assert!(matches!(normalize("", uk()), Err(NumberError::NotANumber(_))));
        assert!(matches!(normalize("+", uk()), Err(NumberError::NotANumber(_))));
        assert!(normalize("+44 7911", uk()).is_err());
        assert!(normalize("+999 123456789", uk()).is_err());
        assert!(
            normalize("07911 123456\n", uk()).is_ok(),
            "surrounding whitespace is trimmed"
        );
        assert!(normalize("0791\r\n1123456", uk()).is_err());
    }

    #[test]
    fn a_national_number_needs_a_default_country() {
        assert!(matches!(
            normalize("07911 123456", None),
            Err(NumberError::NoDefaultCountry(_))
        ));
    }
}
