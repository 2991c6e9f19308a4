//! Configured secrets: `whsec_` keys (also as the `sign` tool reads them)
//! and API key hashes parse exactly the documented forms, round-trip, and
//! never repeat a refused value.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use proptest::prelude::*;

use super::{cases, hostile};
use crate::domain::secrets::{decode_whsec, parse_whsec, ApiKeyHash, Pepper, MIN_KEY_BYTES};

fn whsec_like() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| format!("whsec_{}", B64.encode(b))),
        "(whsec_)?[A-Za-z0-9+/=_ -]{0,80}",
        hostile().prop_map(|s| format!("whsec_{s}")),
        hostile(),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn whsec_is_prefix_then_base64_of_at_least_32_bytes(s in whsec_like()) {
        let want = s
            .strip_prefix("whsec_")
            .and_then(|b| B64.decode(b.trim()).ok())
            .filter(|b| b.len() >= MIN_KEY_BYTES);
        match (parse_whsec(&s), want) {
            (Ok(key), Some(bytes)) => prop_assert_eq!(key.expose(), bytes.as_slice()),
            (Err(e), None) => {
                // The message never repeats the value (past its prefix).
                let tail = s.strip_prefix("whsec_").unwrap_or(&s);
                prop_assert!(tail.len() < 6 || !e.contains(tail), "{}", e);
            }
            (got, want) => prop_assert!(false, "{:?} vs {:?}", got.map(|_| ()), want.map(|b| b.len())),
        }
    }

    #[test]
    fn whsec_round_trips_and_names_a_short_length(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let r = parse_whsec(&format!("whsec_{}", B64.encode(&bytes)));
        if bytes.len() >= MIN_KEY_BYTES {
            let key = r.unwrap();
            prop_assert_eq!(key.expose(), bytes.as_slice());
        } else {
            let e = r.unwrap_err();
            prop_assert!(e.contains(&format!("{} bytes", bytes.len())), "{}", e);
        }
    }

    /// The signing tool's reader: any non-empty key, same prefix rule.
    #[test]
    fn the_cli_reads_whsec_of_any_non_empty_length(s in whsec_like()) {
        let want = s
            .trim()
            .strip_prefix("whsec_")
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| !b.is_empty());
        match (decode_whsec(&s), want) {
            (Ok(key), Some(bytes)) => prop_assert_eq!(key, bytes),
            (Err(e), None) => {
                let tail = s.trim().strip_prefix("whsec_").unwrap_or(&s);
                prop_assert!(tail.len() < 6 || !e.contains(tail), "{}", e);
            }
            (got, want) => prop_assert!(false, "{:?} vs {:?}", got.map(|k| k.len()), want.map(|b| b.len())),
        }
    }

    #[test]
    fn api_key_hashes_round_trip_and_compare(a in hostile(), b in hostile()) {
        let (ha, hb) = (ApiKeyHash::of_key(&a), ApiKeyHash::of_key(&b));
        let hex = ha.to_hex();
        prop_assert!(ApiKeyHash::from_hex(&hex).unwrap().matches(&ha));
        prop_assert!(ApiKeyHash::from_hex(&hex.to_uppercase()).unwrap().matches(&ha));
        prop_assert_eq!(ha.matches(&hb), a == b);
    }

    #[test]
    fn api_key_hash_is_64_hex_digits(s in prop_oneof!["[0-9a-fA-F]{60,68}", "[ 0-9a-fg]{62,68}", hostile()]) {
        let t = s.trim();
        let want = t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit());
        prop_assert_eq!(ApiKeyHash::from_hex(&s).is_ok(), want);
    }

    #[test]
    fn a_keyed_hash_verifies_only_its_input_and_purpose(
        input in prop::collection::vec(any::<u8>(), 0..64),
        other in prop::collection::vec(any::<u8>(), 0..64),
        stored in hostile(),
    ) {
        let p = Pepper::new("test-pepper");
        let h = p.keyed_hash("otp", &input);
        prop_assert!(p.verify("otp", &input, &h));
        prop_assert_eq!(p.verify("otp", &other, &h), other == input);
        prop_assert!(!p.verify("pin", &input, &h));
        prop_assert!(!p.verify("otp", &input, &stored) || stored.eq_ignore_ascii_case(&h));
    }
}
