//! Languages (docs/api.md#languages): a well-formed BCP 47 tag, the RFC 4647
//! lookup of a requested tag in a supported list, the right-to-left
//! languages, and the tags of an `Accept-Language` header.

/// The longest tag a request may carry.
pub const MAX_TAG_LEN: usize = 35;

/// A well-formed BCP 47 language tag of at most [`MAX_TAG_LEN`]
/// characters, spelled as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocaleTag(String);

/// Why a requested tag is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagProblem {
    TooLong,
    NotBcp47,
}

impl TagProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            TagProblem::TooLong => "must be at most 35 characters",
            TagProblem::NotBcp47 => "must be a well-formed BCP 47 language tag",
        }
    }
}

impl LocaleTag {
    pub fn parse(s: &str) -> Result<LocaleTag, TagProblem> {
        if s.chars().count() > MAX_TAG_LEN {
            return Err(TagProblem::TooLong);
        }
        if !well_formed(s) {
            return Err(TagProblem::NotBcp47);
        }
        Ok(LocaleTag(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A request's `locale`, or 422 naming the member (never the value).
    pub fn requested(s: &str) -> Result<LocaleTag, crate::error::Error> {
        LocaleTag::parse(s).map_err(|p| crate::error::Error::invalid("locale", p.as_str()))
    }
}

/// Whether `s` is a well-formed BCP 47 tag (language, script, region,
/// variants, extensions, private use), by ICU4X's parser. Only `-`
/// separates subtags (ICU4X also reads `_`, which BCP 47 does not).
pub fn well_formed(s: &str) -> bool {
    !s.is_empty()
        && !s.contains('_')
        && s.is_ascii()
        && icu_locale_core::Locale::try_from_str(s).is_ok()
}

/// RFC 4647 lookup of `requested` in `supported`, case-insensitively: the
/// tag, then with its last subtag cut off, and so on (a single-character
/// subtag left last is cut with it). Answers the entry of `supported`, spelled
/// as there; `None` when nothing matches.
pub fn lookup<'a, S: AsRef<str>>(requested: &str, supported: &'a [S]) -> Option<&'a str> {
    let mut range = requested;
    while !range.is_empty() {
        if let Some(hit) = supported
            .iter()
            .map(AsRef::as_ref)
            .find(|s| s.eq_ignore_ascii_case(range))
        {
            return Some(hit);
        }
        range = cut(range);
    }
    None
}

/// `range` without its last subtag, and without a single-character subtag
/// that would then end it (`zh-Hant-x-a` → `zh-Hant`).
fn cut(range: &str) -> &str {
    let mut out = range.rfind('-').map_or("", |i| &range[..i]);
    while let Some(i) = out.rfind('-') {
        if out.len() - i - 1 > 1 {
            break;
        }
        out = &out[..i];
    }
    out
}

/// The language an interaction speaks: the lookup of `requested` in
/// `supported`, else `default` (also when nothing was asked).
pub fn matched<'a, S: AsRef<str>>(
    requested: Option<&str>,
    supported: &'a [S],
    default: &'a str,
) -> &'a str {
    requested
        .and_then(|r| lookup(r, supported))
        .unwrap_or(default)
}

/// The language of the first of `wanted` (in order of preference) that
/// `supported` has, else `default`.
pub fn negotiate<'a, S: AsRef<str>>(
    wanted: &[String],
    supported: &'a [S],
    default: &'a str,
) -> &'a str {
    wanted
        .iter()
        .find_map(|w| lookup(w, supported))
        .unwrap_or(default)
}

/// Whether `tag`'s language is written right to left: Arabic, Hebrew,
/// Persian, Urdu.
pub fn is_rtl(tag: &str) -> bool {
    let language = tag.split('-').next().unwrap_or("");
    ["ar", "he", "fa", "ur"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(language))
}

/// The tags of an `Accept-Language` header in order of `q` (highest
/// first; equal weights keep their order), leaving out `*`, `q=0` and
/// what is not well-formed.
pub fn accept_language(header: &str) -> Vec<String> {
    let mut weighted: Vec<(u32, String)> = header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .map_or(Some(1000), quality)?;
            (q > 0 && tag != "*" && well_formed(tag)).then(|| (q, tag.to_string()))
        })
        .collect();
    weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
    weighted.into_iter().map(|(_, t)| t).collect()
}

/// A weight `0`..`1` with up to three decimals, in thousandths.
fn quality(q: &str) -> Option<u32> {
    let q = q.trim();
    let (whole, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u32>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_tags() {
        for ok in [
            "en",
            "es-MX",
            "zh-Hant-TW",
            "pt-BR",
            "ar",
            "sr-Latn-RS",
            "de-CH-1996",
        ] {
            assert!(well_formed(ok), "{ok}");
            assert!(LocaleTag::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "e",
            "en_US",
            "english-language-x",
            "en--US",
            "-en",
            "en-",
            "é",
            "12",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
        assert_eq!(LocaleTag::parse(""), Err(TagProblem::NotBcp47));
        let long = format!("en-{}", ["abcdefgh"; 4].join("-"));
        assert_eq!(LocaleTag::parse(&long), Err(TagProblem::TooLong));
        assert_eq!(LocaleTag::parse("es-MX").unwrap().as_str(), "es-MX");
    }

    #[test]
    fn lookup_cuts_the_last_subtag_step_by_step() {
        let supported = ["en", "es", "zh", "pt-BR", "zh-Hant"];
        assert_eq!(lookup("es-MX", &supported), Some("es"));
        assert_eq!(lookup("zh-Hant-TW", &supported), Some("zh-Hant"));
        assert_eq!(lookup("zh-Hans-CN", &supported), Some("zh"));
        assert_eq!(lookup("pt", &supported), None);
        assert_eq!(lookup("fr", &supported), None);
        assert_eq!(lookup("zh-Hant-x-a", &["zh"]), Some("zh"));
    }

    #[test]
    fn lookup_ignores_case_and_answers_the_configured_spelling() {
        assert_eq!(lookup("PT-br", &["pt-BR"]), Some("pt-BR"));
        assert_eq!(lookup("ES-mx", &["Es"]), Some("Es"));
    }

    #[test]
    fn no_match_or_nothing_asked_is_the_default() {
        let supported = ["en", "es"];
        assert_eq!(matched(Some("fr-FR"), &supported, "en"), "en");
        assert_eq!(matched(None, &supported, "es"), "es");
        assert_eq!(matched(Some("es-419"), &supported, "en"), "es");
    }

    #[test]
    fn cut_drops_a_trailing_singleton() {
        assert_eq!(cut("zh-Hant-CN-x-private1"), "zh-Hant-CN");
        assert_eq!(cut("en-US"), "en");
        assert_eq!(cut("en"), "");
    }

    #[test]
    fn right_to_left_languages() {
        for rtl in ["ar", "ar-EG", "he", "fa-IR", "ur", "AR"] {
            assert!(is_rtl(rtl), "{rtl}");
        }
        for ltr in ["en", "es", "arn", "hi", "zh-Hant"] {
            assert!(!is_rtl(ltr), "{ltr}");
        }
    }

    #[test]
    fn accept_language_is_ordered_by_q() {
        assert_eq!(
            accept_language("fr;q=0.5, es-MX, en;q=0.8, *;q=0.1, de;q=0"),
            ["es-MX", "en", "fr"]
        );
        assert_eq!(accept_language("ar, he"), ["ar", "he"]);
        assert_eq!(accept_language(""), Vec::<String>::new());
        assert_eq!(
            accept_language("en;q=2, es;q=0.1234, x_y"),
            Vec::<String>::new()
        );
        assert_eq!(accept_language(" es ;q=1.0"), ["es"]);
    }

    #[test]
    fn negotiate_takes_the_first_wanted_language_supported() {
        let supported = ["en", "es", "ar"];
        let wanted = accept_language("fr, ar-EG;q=0.9, es;q=0.8");
        assert_eq!(negotiate(&wanted, &supported, "en"), "ar");
        assert_eq!(negotiate(&[], &supported, "en"), "en");
    }
}
