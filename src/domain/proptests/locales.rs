//! Languages (docs/api.md#languages): whatever tag is asked, the lookup
//! answers an entry of the supported list or the default, never panics, and
//! asking again for what it answered answers the same.
use proptest::prelude::*;

use super::{cases, hostile};
use crate::domain::locale::{accept_language, lookup, matched, LocaleTag};

/// Tags that look like BCP 47: a language, then a few subtags.
fn tag() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z]{2,3}",
        prop::collection::vec("[a-zA-Z0-9]{1,8}", 0..4),
    )
        .prop_map(|(l, rest)| std::iter::once(l).chain(rest).collect::<Vec<_>>().join("-"))
}

fn supported() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof!["en", "es", "es-MX", "pt-BR", "zh", "zh-Hant", "ar", "DE"],
        1..5,
    )
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_tag_gives_a_supported_tag_or_the_default(
        asked in prop_oneof![tag(), hostile()],
        supported in supported(),
    ) {
        let default = supported[0].clone();
        let got = matched(Some(&asked), &supported, &default);
        prop_assert!(supported.iter().any(|s| s == got));
        if let Some(hit) = lookup(&asked, &supported) {
            prop_assert_eq!(hit, got);
        }
        let _ = LocaleTag::parse(&asked);
        let _ = accept_language(&asked);
    }

    #[test]
    fn matching_is_idempotent(asked in tag(), supported in supported()) {
        let default = supported[0].clone();
        let once = matched(Some(&asked), &supported, &default);
        prop_assert_eq!(matched(Some(once), &supported, &default), once);
    }
}
