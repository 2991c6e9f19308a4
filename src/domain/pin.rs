//! Session PINs and submitted codes (docs/api.md#post-v1interactions, docs/api.md#challenges-otp-and-session-pin): parsed once at the
//! edge, never echoed in an error, and hashed at rest bound to their
//! interaction.
use std::fmt;

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::secrets::Pepper;
use crate::domain::settings::PinSettings;
use crate::error::Error;

/// `Pepper` purpose of session-PIN hashes. The hashed input is the 16 raw
/// bytes of the interaction id followed by the ASCII digits: PINs are short,
/// so binding them to the interaction keeps two interactions with the same
/// PIN from showing equal hashes in the store, and a hash copied to another
/// interaction never verifies. "pin" and "otp" purposes never stand for each
/// other.
pub const HASH_PURPOSE: &str = "pin";

/// Longest code a verify request may carry (docs/api.md#challenges-otp-and-session-pin).
pub const MAX_CODE_LEN: usize = 20;

/// A session PIN as the agent defined it: ASCII digits, length within the
/// team's `pin.min_length..=pin.max_length`. `Debug` never shows it.
pub struct SessionPin(SecretString);

impl SessionPin {
    /// The error names the field and the rule, never the value.
    pub fn parse(s: &str, pin: &PinSettings) -> Result<SessionPin, Error> {
        let len = s.len();
        let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (min, max) = (pin.min_length as usize, pin.max_length as usize);
        if !digits || len < min || len > max {
            return Err(Error::invalid(
                "session_pin",
                &format!("must be {min} to {max} digits"),
            ));
        }
        Ok(SessionPin(SecretString::from(s)))
    }

    /// The keyed hash stored as the interaction's `session_pin_hash`
    /// (see [`HASH_PURPOSE`]).
    pub fn keyed_hash(&self, interaction_id: Uuid, pepper: &Pepper) -> String {
        pepper.keyed_hash(
            HASH_PURPOSE,
            &hash_input(interaction_id, self.0.expose_secret()),
        )
    }
}

impl fmt::Debug for SessionPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionPin(..)")
    }
}

fn hash_input(interaction_id: Uuid, digits: &str) -> Zeroizing<Vec<u8>> {
    let mut input = Zeroizing::new(Vec::with_capacity(16 + digits.len()));
    input.extend_from_slice(interaction_id.as_bytes());
    input.extend_from_slice(digits.as_bytes());
    input
}

/// Constant-time check of a submitted code against a session-PIN hash made by
/// [`SessionPin::keyed_hash`] for the same interaction.
pub fn verify(pepper: &Pepper, interaction_id: Uuid, code: &str, expected_hex: &str) -> bool {
    pepper.verify(
        HASH_PURPOSE,
        &hash_input(interaction_id, code),
        expected_hex,
    )
}

/// A code submitted to a verify request: 1 to 20 ASCII digits. Anything else
/// is 422 and counts as no attempt.
pub fn parse_code(s: &str) -> Result<&str, Error> {
    if (1..=MAX_CODE_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s)
    } else {
        Err(Error::Unprocessable(
            "code: must be 1 to 20 digits".to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PinSettings {
        PinSettings {
            min_length: 4,
            max_length: 8,
            ..PinSettings::default()
        }
    }

    #[test]
    fn session_pin_is_digits_within_the_team_length() {
        let s = settings();
        assert!(SessionPin::parse("4829", &s).is_ok());
        assert!(SessionPin::parse("48291375", &s).is_ok());
        for bad in [
            "",
            "482",
            "482913750",
            "48a9",
            "４８２９",
            " 4829",
            "48-29",
            "0x12",
        ] {
            let err = SessionPin::parse(bad, &s).unwrap_err();
            assert_eq!(err.code(), "invalid_request");
            assert!(matches!(err, Error::Unprocessable(_)), "{err:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("session_pin: "), "{msg}");
            assert_eq!(msg, "session_pin: must be 4 to 8 digits");
        }
    }

    #[test]
    fn errors_and_debug_never_echo_the_pin() {
        let s = settings();
        let err = SessionPin::parse("987654321", &s).unwrap_err();
        assert!(!err.to_string().contains("987654321"));
        let pin = SessionPin::parse("97531", &s).unwrap();
        assert!(!format!("{pin:?}").contains("97531"));
    }

    #[test]
    fn pin_hash_is_bound_to_the_interaction_and_separated_from_otp() {
        let p = Pepper::new("test-pepper");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let pin = SessionPin::parse("48291375", &settings()).unwrap();
        let h = pin.keyed_hash(a, &p);
        assert!(!h.contains("48291375"));
        assert!(verify(&p, a, "48291375", &h));
        assert!(!verify(&p, a, "48291376", &h));
        assert!(!verify(&p, b, "48291375", &h));
        assert_ne!(h, pin.keyed_hash(b, &p));
        assert!(!super::super::otp::verify(&p, a, "48291375", &h));
    }

    #[test]
    fn submitted_codes_are_1_to_20_ascii_digits() {
        assert_eq!(parse_code("0").unwrap(), "0");
        assert_eq!(parse_code("12345678901234567890").unwrap().len(), 20);
        for bad in [
            "",
            "123456789012345678901",
            "12 34",
            "１２３",
            "-1",
            "12\n",
            "abc",
        ] {
            let err = parse_code(bad).unwrap_err();
            assert!(matches!(err, Error::Unprocessable(_)), "{err:?}");
            assert_eq!(err.to_string(), "code: must be 1 to 20 digits");
        }
    }
}
