//! One-time codes and session PINs (docs/api.md#post-v1interactions, docs/api.md#challenges-otp-and-session-pin): generated codes
//! have exactly the configured length and only digits; a submitted code is
//! 1 to 20 ASCII digits or a 422 that names no value; a PIN is the team's
//! length of digits; hashes verify exactly the code of their own challenge
//! or interaction.
use proptest::prelude::*;
use uuid::Uuid;

use super::{cases, hostile};
use crate::domain::otp::{self, OtpCode, MAX_LENGTH, MIN_LENGTH};
use crate::domain::pin::{self, parse_code, SessionPin, MAX_CODE_LEN};
use crate::domain::secrets::Pepper;
use crate::domain::settings::PinSettings;
use crate::error::Error;

fn digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Strings near the rules: digit runs of lengths around the limits, some
/// with one foreign character, and anything at all.
fn code_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,24}",
        ("[0-9]{0,12}", "[^0-9]", "[0-9]{0,12}").prop_map(|(a, x, b)| format!("{a}{x}{b}")),
        "[0-9\u{ff10}-\u{ff19}\u{660}-\u{669} +-]{0,22}",
        hostile(),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn generated_codes_have_the_length_and_only_digits(length in prop_oneof![MIN_LENGTH..=MAX_LENGTH, any::<u32>()]) {
        let code = otp::generate(length);
        let want = length.clamp(MIN_LENGTH, MAX_LENGTH) as usize;
        prop_assert_eq!(code.len(), want);
        prop_assert_eq!(code.expose().len(), want);
        prop_assert!(digits(code.expose()));
        let shown = format!("{code:?}");
        prop_assert!(!shown.contains(code.expose()));
    }

    #[test]
    fn a_sealed_code_opens_only_as_4_to_10_digits(s in code_like()) {
        let want = (4..=10).contains(&s.len()) && digits(&s);
        prop_assert_eq!(OtpCode::from_digits(&s).is_some(), want);
    }

    #[test]
    fn submitted_codes_are_1_to_20_ascii_digits(s in code_like()) {
        match parse_code(&s) {
            Ok(c) => prop_assert!(c == s && (1..=MAX_CODE_LEN).contains(&s.len()) && digits(&s)),
            Err(e) => {
                prop_assert!(s.is_empty() || s.len() > MAX_CODE_LEN || !digits(&s));
                prop_assert!(matches!(e, Error::Unprocessable(_)), "{:?}", e);
                prop_assert_eq!(e.code(), "invalid_request");
                prop_assert_eq!(e.to_string(), "code: must be 1 to 20 digits");
            }
        }
    }

    #[test]
    fn session_pins_are_digits_of_the_team_length(
        s in code_like(),
        min in 1u32..=20,
        span in 0u32..=20,
    ) {
        let settings = PinSettings { min_length: min, max_length: (min + span).min(20), ..PinSettings::default() };
        let (lo, hi) = (settings.min_length as usize, settings.max_length as usize);
        match SessionPin::parse(&s, &settings) {
            Ok(_) => prop_assert!(digits(&s) && (lo..=hi).contains(&s.len())),
            Err(e) => {
                prop_assert!(!digits(&s) || !(lo..=hi).contains(&s.len()));
                prop_assert!(matches!(e, Error::Unprocessable(_)), "{:?}", e);
                prop_assert_eq!(e.to_string(), format!("session_pin: must be {lo} to {hi} digits"));
            }
        }
    }

    #[test]
    fn an_otp_hash_verifies_only_its_code_in_its_challenge(
        length in MIN_LENGTH..=MAX_LENGTH,
        challenge in any::<u128>(),
        other_challenge in any::<u128>(),
        guess in code_like(),
        stored in prop_oneof![hostile(), "[0-9a-fA-F]{0,80}"],
    ) {
        let p = Pepper::new("test-pepper");
        let (id, other) = (Uuid::from_u128(challenge), Uuid::from_u128(other_challenge));
        let code = otp::generate(length);
        let h = otp::hash(&p, id, &code);
        prop_assert!(otp::verify(&p, id, code.expose(), &h));
        prop_assert_eq!(otp::verify(&p, id, &guess, &h), guess == code.expose());
        prop_assert_eq!(otp::verify(&p, other, code.expose(), &h), other == id);
        // Whatever the store holds, a check is a yes or a no.
        let _ = otp::verify(&p, id, &guess, &stored);
    }

    #[test]
    fn a_pin_hash_verifies_only_its_pin_in_its_interaction(
        pin in "[0-9]{4,20}",
        interaction in any::<u128>(),
        other_interaction in any::<u128>(),
        guess in code_like(),
    ) {
        let p = Pepper::new("test-pepper");
        let (id, other) = (Uuid::from_u128(interaction), Uuid::from_u128(other_interaction));
        let h = SessionPin::parse(&pin, &PinSettings::default()).unwrap().keyed_hash(id, &p);
        prop_assert!(pin::verify(&p, id, &pin, &h));
        prop_assert_eq!(pin::verify(&p, id, &guess, &h), guess == pin);
        prop_assert_eq!(pin::verify(&p, other, &pin, &h), other == id);
        prop_assert!(!otp::verify(&p, id, &pin, &h), "a PIN hash is never an OTP hash");
    }
}
