//! Identity fields and device records. The acceptance rules of customer
//! refs and identity fields are being tightened (issue 6, finding 6: NFKC,
//! no control or format characters), so here every parser is only held to
//! "a value or a 422 naming the field, never a panic, never an echo". The
//! step-up device record is held to its rules in full.
use proptest::prelude::*;

use super::{cases, hostile};
use crate::config::StepUpSettings;
use crate::domain::devices::{CustomerDevices, StepUpReason, MAX_FINGERPRINTS};
use crate::domain::input::{
    display, email, phone, ConversationId, CustomerRef, MAX_IDENTITY_CHARS,
};
use crate::domain::secrets::Pepper;
use crate::error::Error;

/// A value that is either accepted or refused with a 422 that names
/// `field` and does not repeat the value.
#[track_caller]
fn documented<T>(r: Result<T, Error>, field: &str, value: &str) {
    if let Err(e) = r {
        assert_eq!((e.status(), e.code()), (422, "invalid_request"), "{e:?}");
        let detail = e.to_string();
        assert!(detail.starts_with(&format!("{field}: ")), "{detail}");
        let marked = value.contains("zq9x");
        assert!(!marked || !detail.contains("zq9x"), "{detail}");
    }
}

/// Hostile text, sometimes carrying a marker that must never be echoed.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile(),
        (hostile(), hostile()).prop_map(|(a, b)| format!("{a}zq9x{b}")),
        "[+0-9 ()-]{0,20}",
        "[a-z.+]{0,10}@[a-z.]{0,10}",
        Just("interaction:zq9x".to_string()),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn identity_parsers_accept_or_name_the_field(s in field_value()) {
        documented(ConversationId::parse(&s), "conversation_id", &s);
        documented(CustomerRef::parse(&s), "customer_ref", &s);
        documented(phone("phone", &s), "phone", &s);
        documented(email("email", &s), "email", &s);
        documented(display("name", &s, MAX_IDENTITY_CHARS), "name", &s);
    }

    #[test]
    fn a_customer_ref_never_claims_an_interaction(s in field_value()) {
        if let Ok(r) = CustomerRef::parse(&format!("interaction:{s}")) {
            prop_assert!(false, "accepted {:?}", r);
        }
    }

    /// Any sequence of validated claims: at most [`MAX_FINGERPRINTS`] hashes,
    /// no fingerprint in plain text, and the last one validated is known.
    #[test]
    fn device_records_stay_bounded_and_remember_the_last(
        seen in prop::collection::vec((prop::option::of(hostile()), prop::option::of(hostile())), 1..40),
    ) {
        let p = Pepper::new("test-pepper");
        let mut d = CustomerDevices::default();
        for (fp, region) in &seen {
            d.record_validated(fp.as_deref(), region.as_deref(), &p);
            prop_assert!(d.fingerprints.len() <= MAX_FINGERPRINTS);
        }
        let json = serde_json::to_string(&d.fingerprints).unwrap();
        for fp in seen.iter().filter_map(|(f, _)| f.as_deref()).filter(|f| f.trim().len() >= 8) {
            prop_assert!(!json.contains(fp.trim()), "plain fingerprint stored");
        }
        let rules = |fp, region| StepUpSettings { always: false, on_new_fingerprint: fp, on_region_change: region };
        let last_fp = seen.iter().rev().filter_map(|(f, _)| f.as_deref()).find(|f| !f.trim().is_empty());
        if let Some(fp) = last_fp {
            // Recognised with or without surrounding white space.
            prop_assert_eq!(d.step_up_reason(&rules(true, false), Some(fp), None, &p), None);
            prop_assert_eq!(d.step_up_reason(&rules(true, false), Some(fp.trim()), None, &p), None);
            prop_assert_eq!(
                d.step_up_reason(&rules(true, false), Some(fp), None, &Pepper::new("other")),
                Some(StepUpReason::NewFingerprint)
            );
        }
        let last_region = seen.iter().rev().filter_map(|(_, r)| r.as_deref()).find(|r| !r.trim().is_empty());
        match last_region {
            Some(r) => prop_assert_eq!(d.step_up_reason(&rules(false, true), None, Some(r), &p), None),
            None => prop_assert_eq!(
                d.step_up_reason(&rules(false, true), None, None, &p),
                Some(StepUpReason::RegionChange)
            ),
        }
        let always = StepUpSettings { always: true, on_new_fingerprint: false, on_region_change: false };
        prop_assert_eq!(d.step_up_reason(&always, None, None, &p), Some(StepUpReason::Always));
    }
}
