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

/// Whether `s` is a well-formed BCP 47 tag: RFC 5646's `Language-Tag`
/// (a `langtag`, a private-use tag `x-…`, or one of the grandfathered tags,
/// irregular and regular), case-insensitively. Well-formed, not valid: the
/// subtags are not looked up in the IANA registry, so a tag of a language
/// no library knows (`x-klingon`, `i-klingon`) is taken as written
/// (docs/api.md#languages). Only `-` separates subtags.
pub fn well_formed(s: &str) -> bool {
    if !s.is_ascii() {
        return false;
    }
    if GRANDFATHERED.iter().any(|g| g.eq_ignore_ascii_case(s)) {
        return true;
    }
    let subtags: Vec<&str> = s.split('-').collect();
    match subtags.split_first() {
        Some((first, rest)) if first.eq_ignore_ascii_case("x") => private_use(rest),
        _ => langtag(&subtags),
    }
}

/// RFC 5646's `grandfathered` tags, irregular then regular.
const GRANDFATHERED: [&str; 26] = [
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

/// [`well_formed`] as an ECMAScript pattern, for the OpenAPI document:
/// a `langtag`, a private-use tag, or a grandfathered tag (spelled in
/// either case, letter by letter: the pattern has no flag for it).
pub fn pattern() -> String {
    const LANGTAG: &str = "(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})\
        (?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?\
        (?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*\
        (?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*\
        (?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?";
    const PRIVATE_USE: &str = "[Xx](?:-[A-Za-z0-9]{1,8})+";
    let either_case = |tag: &str| -> String {
        tag.chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' => {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                }
                _ => c.to_string(),
            })
            .collect()
    };
    let grandfathered: Vec<String> = GRANDFATHERED.iter().map(|g| either_case(g)).collect();
    format!("^(?:{LANGTAG}|{PRIVATE_USE}|{})$", grandfathered.join("|"))
}

fn alpha(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
}

fn alphanum(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// `langtag = language ["-" script] ["-" region] *("-" variant)
/// *("-" extension) ["-" privateuse]`, read subtag by subtag: at each
/// place the kinds of subtag that may come differ in length or characters,
/// so the first that fits is the only one.
fn langtag(subtags: &[&str]) -> bool {
    let mut rest = subtags;
    let next = |rest: &mut &[&str], fits: &dyn Fn(&str) -> bool| match rest.split_first() {
        Some((first, tail)) if fits(first) => {
            *rest = tail;
            true
        }
        _ => false,
    };
    // language = 2*3ALPHA ["-" extlang] / 4ALPHA / 5*8ALPHA
    let Some(language) = rest.first() else {
        return false;
    };
    if !alpha(language, 2, 8) {
        return false;
    }
    rest = &rest[1..];
    if language.len() <= 3 {
        // extlang = 3ALPHA *2("-" 3ALPHA)
        for _ in 0..3 {
            if !next(&mut rest, &|s| alpha(s, 3, 3)) {
                break;
            }
        }
    }
    next(&mut rest, &|s| alpha(s, 4, 4)); // script
    next(&mut rest, &|s| alpha(s, 2, 2) || digits(s, 3)); // region
                                                          // variant = 5*8alphanum / (DIGIT 3alphanum)
    let variant =
        |s: &str| alphanum(s, 5, 8) || (alphanum(s, 4, 4) && s.as_bytes()[0].is_ascii_digit());
    while next(&mut rest, &variant) {}
    // extension = singleton 1*("-" (2*8alphanum)), any singleton but x
    while let Some((singleton, tail)) = rest.split_first() {
        if !alphanum(singleton, 1, 1) || singleton.eq_ignore_ascii_case("x") {
            break;
        }
        let taken = tail.iter().take_while(|s| alphanum(s, 2, 8)).count();
        if taken == 0 {
            return false;
        }
        rest = &tail[taken..];
    }
    match rest.split_first() {
        None => true,
        Some((x, tail)) if x.eq_ignore_ascii_case("x") => private_use(tail),
        Some(_) => false,
    }
}

/// What follows the `x` of `privateuse = "x" 1*("-" (1*8alphanum))`.
fn private_use(subtags: &[&str]) -> bool {
    !subtags.is_empty() && subtags.iter().all(|s| alphanum(s, 1, 8))
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

    /// RFC 5646's examples (its appendix A), each well-formed or not.
    #[test]
    fn the_rfc_s_examples() {
        for ok in [
            // simple language subtag, and a grandfathered tag
            "de",
            "fr",
            "ja",
            "i-enochian",
            // language and script
            "zh-Hant",
            "zh-Hans",
            "sr-Cyrl",
            "sr-Latn",
            // extended language subtags
            "zh-cmn-Hans-CN",
            "cmn-Hans-CN",
            "zh-yue-HK",
            "yue-HK",
            // language, script and region
            "zh-Hans-CN",
            "sr-Latn-RS",
            // variants
            "sl-rozaj",
            "sl-rozaj-biske",
            "sl-nedis",
            "de-CH-1901",
            "sl-IT-nedis",
            "hy-Latn-IT-arevela",
            // language and region
            "de-DE",
            "en-US",
            "es-419",
            // private use
            "de-CH-x-phonebk",
            "az-Arab-x-AZE-derbend",
            "x-whatever",
            "qaa-Qaaa-QM-x-southern",
            "de-Qaaa",
            "sr-Latn-QM",
            "sr-Qaaa-RS",
            // extensions
            "en-US-u-islamcal",
            "zh-CN-a-myext-x-private",
            "en-a-myext-b-another",
            // well-formed, though not valid (a singleton twice): the
            // registry's rules are not checked
            "ar-a-aaa-b-bbb-a-ccc",
            // grandfathered, irregular and regular
            "en-GB-oed",
            "i-klingon",
            "sgn-BE-FR",
            "sgn-BE",
            "art-lojban",
            "zh-min-nan",
            "I-KLINGON",
            "EN-gb-OED",
            "x-klingon",
            "X-Klingon-1",
        ] {
            assert!(well_formed(ok), "{ok}");
        }
        for bad in [
            // two regions
            "de-419-DE",
            // a singleton first (only some grandfathered tags start i-)
            "a-DE",
            "i-whatever",
            // an extension without a subtag, private use without one
            "en-a",
            "en-a-x-foo",
            "x",
            "en-x",
            "x-abcdefghi",
            // subtags out of place or too long
            "en-Latn-Latn",
            "en-US-Latn",
            "abcdefghi",
            "en-abcdefghi",
            "en-GB-oed-x",
            "i-klingon-x",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    /// The OpenAPI document's pattern says what [`well_formed`] says.
    #[test]
    fn the_pattern_agrees_with_the_grammar() {
        let pattern = regex::Regex::new(&pattern()).unwrap();
        for tag in [
            "en",
            "es-MX",
            "zh-cmn-Hans-CN",
            "de-CH-1901",
            "en-a-myext-b-another",
            "de-CH-x-phonebk",
            "x-klingon",
            "i-klingon",
            "I-KLINGON",
            "en-GB-oed",
            "sgn-BE-FR",
            "zh-min-nan",
            "root",
            "",
            "e",
            "en_US",
            "de-419-DE",
            "a-DE",
            "i-whatever",
            "en-a",
            "x",
            "en-x",
            "en-GB-oed-x",
            "abcdefghi",
            "en-US-Latn",
            "zh-abc-def-ghi-jkl",
            "1234",
            "en-1234",
            "en-x-abcdefghi",
        ] {
            assert_eq!(pattern.is_match(tag), well_formed(tag), "{tag:?}");
        }
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
