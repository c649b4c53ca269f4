//! Phone numbers: whatever an app or a provider sends, to E.164 or a clear refusal.
//!
//! Rules (contract, section 3): a number with a country code (`+44…` or `0044…`) is
//! used as it is; a national number (`07911 123456`) takes `sms.default_country_code`
//! with its trunk prefix dropped; a number that cannot exist is refused. Validation
//! uses libphonenumber's metadata (the `phonenumber` crate), so "cannot exist" means
//! what it means for Google's phone stack.
//!
//! That metadata is frozen in the crate (9.0.33) while regulators keep allocating
//! ranges, so `sms.number_check = "possible"` ([`NumberCheck::Possible`]) lets an admin
//! accept any number whose length its country's numbers can have, as
//! libphonenumber's `isPossibleNumber` does.

use std::fmt;

use phonenumber::{country, metadata::DATABASE, Mode, PhoneNumber};

use super::country::CountryCode;

/// `sms.number_check`: how strictly a phone number is checked before it is accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberCheck {
    /// In a range that libphonenumber's metadata knows as allocated.
    #[default]
    Valid,
    /// Of a length its country's numbers can have, so that ranges allocated after the
    /// metadata bundled with the gateway are accepted too.
    Possible,
}

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
    #[error("`{input}` is not in a range allocated in {region} as far as the gateway's numbering data knows (libphonenumber 9.0.33); if the range is new, an admin can set sms.number_check = \"possible\"")]
    Unallocated { input: String, region: String },
}

/// Normalises `input` to E.164, completing national numbers with `default_country`
/// and checking it as `check` asks.
pub fn normalize(
    input: &str,
    default_country: Option<CountryCode>,
    check: NumberCheck,
) -> Result<E164, NumberError> {
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
    if number.is_valid() {
        return Ok(e164(&number));
    }
    let input = input.to_string();
    match (check, has_possible_length(&number)) {
        (NumberCheck::Possible, true) => Ok(e164(&number)),
        (NumberCheck::Valid, true) => Err(NumberError::Unallocated { input, region }),
        (_, false) => Err(NumberError::Invalid { input, region }),
    }
}

fn e164(number: &PhoneNumber) -> E164 {
    E164(number.format().mode(Mode::E164).to_string())
}

/// Whether the national significant number has a length that numbers of its calling
/// code can have, whatever their range: libphonenumber's `isPossibleNumber`, minus
/// the lengths that are only diallable locally (without an area code), since what
/// reaches a module must reach the phone from anywhere.
fn has_possible_length(number: &PhoneNumber) -> bool {
    let Some(regions) = DATABASE.by_code(&number.code().value()) else {
        return false;
    };
    // The calling code's main region holds the lengths for the whole code (NANP's
    // US for +1), as libphonenumber reads them.
    let Some(main) = regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or_else(|| regions.first())
    else {
        return false;
    };
    let Ok(length) = u16::try_from(number.national().to_string().len()) else {
        return false;
    };
    // The crate keeps the lengths as the XML states them, per number type, and leaves
    // the general description's empty; libphonenumber's build makes the general one
    // the union of these types, so take the union here.
    let kinds = main.descriptors();
    [
        Some(kinds.general()),
        kinds.fixed_line(),
        kinds.mobile(),
        kinds.toll_free(),
        kinds.premium_rate(),
        kinds.shared_cost(),
        kinds.personal_number(),
        kinds.voip(),
        kinds.pager(),
        kinds.uan(),
        kinds.voicemail(),
    ]
    .into_iter()
    .flatten()
    .any(|kind| kind.possible_length().contains(&length))
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
    use NumberCheck::{Possible, Valid};

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
                normalize(input, uk(), Valid).unwrap().as_str(),
                "+447911123456",
                "{input}"
            );
        }
    }

    #[test]
    fn a_number_with_a_country_code_ignores_the_default() {
        assert_eq!(
            normalize("+1 415 555 2671", uk(), Valid).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            normalize("+33 6 12 34 56 78", None, Valid).unwrap().as_str(),
            "+33612345678"
        );
    }

    #[test]
    fn numbers_that_cannot_exist_are_refused() {
        assert!(matches!(
            normalize("12345", uk(), Valid),
            Err(NumberError::Invalid { .. })
        ));
        assert!(matches!(
            normalize("not-a-number", uk(), Valid),
            Err(NumberError::NotANumber(_))
        ));
        assert!(matches!(
            normalize("", uk(), Valid),
            Err(NumberError::NotANumber(_))
        ));
        assert!(matches!(
            normalize("+", uk(), Valid),
            Err(NumberError::NotANumber(_))
        ));
        assert!(normalize("+44 7911", uk(), Valid).is_err());
        assert!(normalize("+999 123456789", uk(), Valid).is_err());
        assert!(
            normalize("07911 123456\n", uk(), Valid).is_ok(),
            "surrounding whitespace is trimmed"
        );
        assert!(normalize("0791\r\n1123456", uk(), Valid).is_err());
    }

    #[test]
    fn a_national_number_needs_a_default_country() {
        assert!(matches!(
            normalize("07911 123456", None, Valid),
            Err(NumberError::NoDefaultCountry(_))
        ));
    }

    /// 07610 is a UK 07 block that libphonenumber 9.0.33 knows in none of +44's regions
    /// (GB, GG, IM, JE), standing in for a range allocated after the metadata was cut.
    const NEWER_THAN_THE_METADATA: &str = "07610 123456";

    #[test]
    fn a_number_in_an_unallocated_range_is_refused_with_valid_and_says_how_to_accept_it() {
        let error = normalize(NEWER_THAN_THE_METADATA, uk(), Valid).unwrap_err();
        assert!(matches!(error, NumberError::Unallocated { .. }), "{error:?}");
        assert!(error.to_string().contains("sms.number_check"), "{error}");
    }

    #[test]
    fn a_number_in_an_unallocated_range_is_accepted_with_possible() {
        for input in [NEWER_THAN_THE_METADATA, "+44 7610 123456", "0044 7610 123456"] {
            assert_eq!(
                normalize(input, uk(), Possible).unwrap().as_str(),
                "+447610123456",
                "{input}"
            );
        }
    }

    #[test]
    fn possible_still_refuses_lengths_no_number_of_the_country_has() {
        for input in [
            "+44 7610 1234",
            "+44 7610 1234567",
            "076101",
            "12345",
            "+1 202 555",
        ] {
            assert!(
                matches!(normalize(input, uk(), Possible), Err(NumberError::Invalid { .. })),
                "{input}"
            );
        }
        assert!(normalize("+999 123456789", uk(), Possible).is_err());
        assert!(matches!(
            normalize("not-a-number", uk(), Possible),
            Err(NumberError::NotANumber(_))
        ));
    }

    #[test]
    fn possible_changes_nothing_for_allocated_numbers() {
        for (input, e164) in [
            ("07911 123456", "+447911123456"),
            ("+1 415 555 2671", "+14155552671"),
            ("+33 6 12 34 56 78", "+33612345678"),
        ] {
            assert_eq!(normalize(input, uk(), Possible).unwrap().as_str(), e164);
            assert_eq!(normalize(input, uk(), Valid).unwrap().as_str(), e164);
        }
    }
}
