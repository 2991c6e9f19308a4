//! Identity fields (docs/decisions/0019-identity-values.md) and device records. Identifiers
//! (`customer_ref`, customer ids, `sub`) are trimmed NFKC with no control,
//! format or separator characters and letters of one script, case-folded,
//! so lookalike spellings are one subject;
//! display values are kept as given without control, line-separator or bidi
//! characters; member names are `[A-Za-z0-9_.-]{1,64}`. Every refusal is a
//! 422 naming the field and never repeats the value.
use proptest::prelude::*;
use unicode_normalization::{is_nfkc, UnicodeNormalization};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::MixedScript;
use uuid::Uuid;

use super::{cases, hostile};
use crate::domain::devices::{CustomerDevices, StepUpReason, MAX_FINGERPRINTS};
use crate::domain::input::{
    customer_id, customer_member, display, email, identifier, member_name, phone, subject,
    ConversationId, CustomerRef, MAX_IDENTITY_CHARS,
};
use crate::domain::secrets::Pepper;
use crate::domain::settings::StepUpSettings;
use crate::error::Error;

/// Never echoed: a refused value carrying it must not come back.
const MARK: &str = "zq9x";

/// Accepted, or refused with a 422 that names `field` and not the value.
#[track_caller]
fn documented<T>(r: &Result<T, Error>, field: &str) {
    if let Err(e) = r {
        assert!(matches!(e, Error::Unprocessable(_)), "{e:?}");
        assert_eq!(e.code(), "invalid_request");
        let detail = e.to_string();
        assert!(detail.starts_with(&format!("{field}: ")), "{detail}");
        assert!(!detail.contains(MARK), "{detail}");
    }
}

/// Characters an identifier refuses once normalised.
fn refused_in_identifier(c: char) -> bool {
    c.is_control()
        || c.general_category() == GeneralCategory::Format
        || matches!(
            c.general_category(),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        )
        // Default-ignorable, yet not format characters: CGJ, Hangul and
        // Mongolian fillers and selectors, variation selectors, tags.
        || matches!(c, '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFA0}'
            | '\u{E0000}'..='\u{E0FFF}')
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Hostile text, sometimes carrying [`MARK`], plus near-valid shapes.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile(),
        (hostile(), hostile()).prop_map(|(a, b)| format!("{a}{MARK}{b}")),
        "[+0-9 ()-]{0,20}",
        "[a-z.+]{0,10}@[a-z.]{0,10}",
        "[\u{ff01}-\u{ff5e}\u{3000} a-z0-9-]{0,20}",
    ]
}

/// Invisible or direction-changing characters (general category Cf).
fn format_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '\u{00AD}', '\u{061C}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}',
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2060}', '\u{2066}',
        '\u{2067}', '\u{2068}', '\u{2069}', '\u{FEFF}',
    ])
}

/// ASCII `!`..`~` written in fullwidth forms (U+FF01..U+FF5E).
fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            _ => c,
        })
        .collect()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn every_identity_parser_accepts_or_names_its_field(s in field_value()) {
        documented(&ConversationId::parse(&s), "conversation_id");
        documented(&CustomerRef::parse(&s), "customer_ref");
        documented(&customer_id("customer.id", &s), "customer.id");
        documented(&display("name", &s, MAX_IDENTITY_CHARS), "name");
        documented(&phone("phone", &s), "phone");
        documented(&email("email", &s), "email");
        documented(&subject(&s), "subject");
        documented(&member_name("customer", &s), "customer");
        documented(&customer_member("customer", "id", &s), "customer.id");
    }

    /// The identifier rule as a model: trim, NFKC, every dash (Unicode's
    /// dash punctuation, any script's, and the minus sign) a hyphen-minus,
    /// trim; then 1..=max characters with none refused and letters of one
    /// script; kept case-folded (then NFKC again). What is kept is normal,
    /// trimmed, and parses to itself again.
    #[test]
    fn identifiers_are_trimmed_nfkc_without_invisible_characters(
        s in field_value(),
        max in prop_oneof![Just(256usize), Just(MAX_IDENTITY_CHARS), 1usize..8],
    ) {
        let dash = |c: char| {
            c.general_category() == GeneralCategory::DashPunctuation || c == '\u{2212}'
        };
        let normal: String = s
            .trim()
            .nfkc()
            .map(|c| if dash(c) { '-' } else { c })
            .collect();
        let normal = normal.trim();
        let n = normal.chars().count();
        let want = (1..=max).contains(&n)
            && !normal.chars().any(refused_in_identifier)
            && normal.is_single_script();
        let folded: String = caseless::default_case_fold_str(normal).nfkc().collect();
        match identifier("id", &s, max) {
            Ok(v) => {
                prop_assert!(want, "accepted {:?}", s);
                prop_assert_eq!(v.as_str(), folded.as_str());
                prop_assert!(is_nfkc(&v) && v.trim() == v);
                prop_assert_eq!(identifier("id", &v, max).unwrap(), v);
            }
            Err(_) => prop_assert!(!want, "refused {:?}", s),
        }
    }

    /// Fullwidth letters and digits, upper and lower case, and white space
    /// around, are the same customer; an invisible character anywhere
    /// inside is refused.
    #[test]
    fn lookalike_identifiers_are_one_subject(
        id in "[A-Za-z0-9][A-Za-z0-9._@+-]{0,30}",
        pad in prop::sample::select(vec!["", " ", "\t", "\u{3000}", "\u{00A0}", "\u{2003}"]),
        c in format_char(),
        at in any::<prop::sample::Index>(),
    ) {
        let plain = CustomerRef::parse(&id).unwrap();
        let lower = id.to_ascii_lowercase();
        prop_assert_eq!(plain.as_str(), lower.as_str());
        let wide = format!("{pad}{}{pad}", fullwidth(&id));
        prop_assert_eq!(CustomerRef::parse(&wide).unwrap(), plain.clone());
        prop_assert_eq!(CustomerRef::parse(&id.to_ascii_uppercase()).unwrap(), plain.clone());
        prop_assert_eq!(customer_id("customer.id", &wide).unwrap(), lower.clone());
        prop_assert_eq!(subject(&wide).unwrap(), lower);
        let mut hidden: Vec<char> = id.chars().collect();
        hidden.insert(at.index(hidden.len() + 1), c);
        let hidden: String = hidden.into_iter().collect();
        prop_assert!(CustomerRef::parse(&hidden).is_err(), "{:?}", hidden);
        prop_assert!(customer_id("customer.id", &hidden).is_err(), "{:?}", hidden);
    }

    /// No spelling of the reserved prefix passes as a customer ref.
    #[test]
    fn a_customer_ref_never_names_an_interaction(s in field_value(), wide in any::<bool>()) {
        let prefix = if wide { fullwidth("interaction:") } else { "interaction:".to_string() };
        let reserved = format!("{prefix}{s}");
        prop_assert!(CustomerRef::parse(&reserved).is_err());
        if let Ok(r) = CustomerRef::parse(&s) {
            prop_assert!(!r.as_str().starts_with("interaction:"));
        }
    }

    /// `interaction:{uuid}` names that interaction; anything else is a
    /// customer ref, normalised once (a subject parses to itself).
    #[test]
    fn subjects_are_interactions_or_normalised_refs(s in field_value(), u in any::<u128>()) {
        let i = format!("interaction:{}", Uuid::from_u128(u));
        prop_assert_eq!(subject(&i).unwrap(), i);
        if let Ok(v) = subject(&s) {
            prop_assert_eq!(subject(&v).unwrap(), v);
        }
    }

    /// Display values are kept exactly, refusing only control, line
    /// separator and bidi characters, and lengths outside 1..=max.
    #[test]
    fn display_values_are_kept_as_given(s in field_value()) {
        let n = s.chars().count();
        let want = (1..=MAX_IDENTITY_CHARS).contains(&n)
            && !s.chars().any(|c| {
                c.is_control()
                    || is_bidi_control(c)
                    || matches!(
                        c.general_category(),
                        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
                    )
            });
        match display("name", &s, MAX_IDENTITY_CHARS) {
            Ok(v) => prop_assert!(want && v == s),
            Err(_) => prop_assert!(!want),
        }
    }

    /// Member names are `[A-Za-z0-9_.-]{1,64}`; a refused name is never
    /// repeated (it may be anything).
    #[test]
    fn member_names_are_a_closed_alphabet(name in prop_oneof!["[A-Za-z0-9_.-]{0,70}", field_value()]) {
        let want = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        match member_name("customer", &name) {
            Ok(()) => prop_assert!(want),
            Err(e) => {
                prop_assert!(!want);
                prop_assert_eq!(e.to_string(), "customer: member names must be 1 to 64 of A-Z a-z 0-9 _ . -");
            }
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
