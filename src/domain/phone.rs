//! Phone numbers the gateway sends to (docs/api.md#phone-numbers): read
//! with libphonenumber's metadata (the `phonenumber` crate) and kept in
//! E.164, so one number however written (`+44 07400 123456`,
//! `447400123456`, `+447400123456`) is one number wherever it is stored,
//! compared or counted.
//!
//! Reading is not validating: a number libphonenumber can read (a country
//! code it knows, digits) is kept even when it is not a valid number of
//! that country; validity matters only to the SMS rules
//! (`destination_policy`).
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, PhoneNumber};

/// `s` read as a phone number with its country code: a leading `+`
/// (implied when missing) and digits only, as E.164 writes them. `None`
/// for anything else (letters: libphonenumber would read `1-800-FLOWERS`
/// as digits), a country code libphonenumber does not know, or too few
/// (the country code and at least two) or too many (over 15) digits.
pub fn read(s: &str) -> Option<PhoneNumber> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if !(3..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = phonenumber::parse(None, format!("+{digits}")).ok()?;
    let known = DATABASE.by_code(&n.code().value()).is_some();
    known.then_some(n)
}

/// A regular expression every string of which [`read`] reads (for the
/// OpenAPI document): an optional `+`, a country code libphonenumber
/// knows, then 4 to 12 digits other than 0, 15 digits at most. (Zeros
/// are left out of the promise, not refused: a national prefix followed by
/// zeros alone, such as `+780000`, does not read.)
pub fn pattern() -> String {
    let mut codes: Vec<u16> = DATABASE.iter().map(|m| m.country_code()).collect();
    codes.sort_unstable();
    codes.dedup();
    let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
    format!("^\\+?(?:{})[1-9]{{4,12}}$", codes.join("|"))
}

/// The E.164 form of `s` (`+` and digits), when it reads as a number.
pub fn e164(s: &str) -> Option<String> {
    read(s).map(|n| format(&n))
}

/// A number read, in E.164.
pub fn format(n: &PhoneNumber) -> String {
    n.format().mode(Mode::E164).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_number_however_written() {
        for s in ["+447400123456", "+4407400123456", "447400123456"] {
            assert_eq!(e164(s).as_deref(), Some("+447400123456"), "{s}");
        }
        assert_eq!(e164("15551230000").as_deref(), Some("+15551230000"));
    }

    /// Valid or not is not the question: a number that reads is kept.
    #[test]
    fn a_number_need_not_be_valid_to_be_read() {
        assert_eq!(e164("+4412345").as_deref(), Some("+4412345"));
        assert_eq!(e164("+15551230000").as_deref(), Some("+15551230000"));
    }

    #[test]
    fn what_is_not_a_number() {
        for s in [
            "",
            "+",
            "+44",
            "+1 800 FLOWERS",
            "+1555abc0000",
            "+999123456789",
            "07400123456",
            "+15551230000;ext=12",
            "+15551230000 ext. 12",
            "+44 7400 123456",
            "0000000",
            "tel:+15551230000",
            "+4474001234567890123",
            "ada@example.com",
            "++447400123456",
        ] {
            assert_eq!(e164(s), None, "{s}");
        }
    }

    /// Every string of the documented pattern reads as a number: each
    /// country code with short and long tails, national prefixes first.
    #[test]
    fn the_pattern_promises_only_numbers_that_read() {
        let p = pattern();
        let codes = p
            .split_once("(?:")
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(c, _)| c)
            .unwrap();
        for code in codes.split('|') {
            for tail in [
                "1111",
                "9999",
                "1234",
                "8111",
                "9911",
                "2222",
                "5555",
                "81111111",
                "99111111",
                "123456789123",
                "987654321987",
                "111111111111",
                "888888888888",
            ] {
                let digits = format!("{code}{tail}");
                if digits.len() > 15 {
                    continue;
                }
                for s in [format!("+{digits}"), digits.clone()] {
                    assert!(read(&s).is_some(), "{s}");
                }
            }
        }
    }
}
