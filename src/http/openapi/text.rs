//! The text rules of `domain::input` as named string schemas (one
//! component each, referenced by the DTOs with `value_type`), so the
//! document accepts exactly what the gateway accepts.
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// Character classes of the text rules in `domain::input`, as regular
/// expression ranges (BMP as `\uXXXX`, others as the characters themselves).
mod classes {
    /// `char::is_control`.
    pub const CONTROL: &str = "\\u0000-\\u001F\\u007F-\\u009F";
    /// Line and paragraph separators.
    pub const SEPARATOR: &str = "\\u2028\\u2029";
    /// Explicit bidirectional formatting characters.
    pub const BIDI: &str = "\\u061C\\u200E\\u200F\\u202A-\\u202E\\u2066-\\u2069";

    /// Every format character (general category Cf), computed from the same
    /// Unicode tables the gateway checks with.
    #[cfg(test)]
    pub fn format() -> String {
        use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
        ranges(|c| c.general_category() == GeneralCategory::Format)
    }

    /// Every white-space character `str::trim` removes (`char::is_whitespace`).
    pub fn whitespace() -> String {
        ranges(char::is_whitespace)
    }

    /// The characters for which `pick` holds, as character-class ranges.
    pub fn ranges(pick: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        let mut run: Option<(char, char)> = None;
        let flush = |run: Option<(char, char)>, out: &mut String| {
            if let Some((a, b)) = run {
                out.push_str(&escape(a));
                if b != a {
                    out.push('-');
                    out.push_str(&escape(b));
                }
            }
        };
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            if pick(c) {
                run = match run {
                    Some((a, b)) if u32::from(b) + 1 == u32::from(c) => Some((a, c)),
                    other => {
                        flush(other, &mut out);
                        Some((c, c))
                    }
                };
            }
        }
        flush(run, &mut out);
        out
    }

    fn escape(c: char) -> String {
        match u16::try_from(u32::from(c)) {
            Ok(u) => format!("\\u{u:04X}"),
            Err(_) => c.to_string(),
        }
    }
}

/// A text rule of `domain::input` as a string schema.
fn text(description: &str, max: usize, pattern: String) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .into()
}

/// `input::identifier`: trimmed, then 1 to `max` characters with no
/// control, separator or format character and no white space at either end.
/// The white space around it is free (trimmed away, also line breaks), so
/// the length is in the pattern, not a `maxLength`. (NFKC may still change
/// the length of a few rare compatibility characters.)
fn identifier(description: &str, max: usize) -> RefOr<Schema> {
    let (refused, ws) = identifier_classes();
    let inner = max.saturating_sub(2);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .pattern(Some(format!(
            "^[{ws}]*[^{ws}{refused}](?:[^{refused}]{{0,{inner}}}[^{ws}{refused}])?[{ws}]*$"
        )))
        .into()
}

/// The characters `input::identifier` refuses, and those it trims. Each
/// class is a walk over all 1.1 M code points (~0.3 s unoptimised), and
/// every document (every gateway, every test's) needs them: made once.
fn identifier_classes() -> &'static (String, String) {
    static CLASSES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    CLASSES.get_or_init(|| {
        (
            classes::ranges(crate::domain::input::refused_in_identifier),
            classes::whitespace(),
        )
    })
}

/// The characters `input::ConversationId` refuses, walked once (as
/// [`identifier_classes`]).
fn conversation_id_class() -> &'static str {
    static CLASS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLASS.get_or_init(|| classes::ranges(crate::domain::input::refused_in_conversation_id))
}

/// A subject in a URL (`input::subject`): `interaction:` and a UUID (in
/// any form `Uuid::parse_str` reads), or a `customer_ref`, which never
/// starts with `interaction:` in any case, white space before it or not.
pub struct SubjectText;

impl super::RawSchema for SubjectText {
    fn json() -> serde_json::Value {
        let (_, ws) = identifier_classes();
        let h = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
        let any_case: String = "interaction"
            .chars()
            .map(|c| format!("[{}{c}]", c.to_ascii_uppercase()))
            .collect();
        serde_json::json!({
            "description": "A subject: `interaction:{id}` for an interaction without a `customer_ref`, \
                else the `customer_ref` (its rules: a name whose letters mix scripts is 422); percent-encoded.",
            // Said outside the alternatives too: a path parameter is text
            // whatever its alternatives say, and a fuzzer that does not see
            // it here sends a list written out as text as if it were not.
            "type": "string",
            "oneOf": [
                {
                    "title": "an interaction's own subject",
                    "type": "string",
                    "pattern": format!("^interaction:(?:[0-9a-fA-F]{{32}}|{h}|\\{{{h}\\}}|urn:uuid:{h})$"),
                },
                {
                    "title": "a customer_ref",
                    "allOf": [
                        {"$ref": "#/components/schemas/CustomerRefText"},
                        {"not": {"pattern": format!("^[{ws}]*{any_case}:")}},
                    ],
                },
            ],
        })
    }
}
crate::http::openapi::raw_schema!(SubjectText);

/// Named text schemas, one per rule of `domain::input`.
macro_rules! text_schemas {
    ($($name:ident => $schema:expr;)*) => {$(
        pub struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl utoipa::ToSchema for $name {}
    )*};
}

text_schemas! {
    ConversationIdText => text(
        "The chat's own id of the conversation: 1 to 256 characters; no control, line-separator \
         or format (bidi, zero-width) characters. On a WhatsApp channel (`whatsapp`, or `twilio` \
         sending WhatsApp) the customer's number, kept in E.164, or a business-scoped user id \
         kept exactly as given: two capital letters, a dot, optionally `ENT.`, then 1 to 256 \
         letters and digits (the only conversation ids that may pass 256 characters).",
        256,
        format!("^[^{}]*$", conversation_id_class()),
    );
    CustomerRefText => identifier(
        "A customer reference: 1 to 256 characters once trimmed and NFKC-normalised; \
         no control, line-separator or format (invisible, bidi) characters; letters of one script \
         (Latin mixed with Cyrillic or Greek, or a character of no script such as a private-use one, is 422); not starting with `interaction:`. \
         Compared and answered case-folded, every dash (U+2010, U+2212, …) a `-`: `Cust‐42` is `cust-42`.",
        256,
    );
    CustomerIdText => identifier(
        "A customer id: 1 to 1024 characters once trimmed and NFKC-normalised; \
         no control, line-separator or format (invisible, bidi) characters; letters of one script \
         (Latin mixed with Cyrillic or Greek, or a character of no script such as a private-use one, is 422). Compared and answered case-folded, \
         every dash (U+2010, U+2212, …) a `-`: `Cust‐42` is `cust-42`.",
        1024,
    );
    DisplayText => text(
        "Text shown to people: 1 to 1024 characters; no control, line-separator or bidi characters.",
        1024,
        format!("^[^{}{}{}]*$", classes::CONTROL, classes::SEPARATOR, classes::BIDI),
    );
    PhoneText => text(
        "A phone number with its country code, E.164 digits (a missing leading `+` is implied), \
         read with libphonenumber and answered in E.164: `+4407400123456` is `+447400123456`. \
         One whose country code libphonenumber does not know is 422.",
        16,
        crate::domain::phone::pattern(),
    );
    LocaleText => text(
        "A well-formed BCP 47 language tag (RFC 5646: a langtag, a private-use tag such as \
         `x-klingon`, or a grandfathered tag such as `i-klingon`) of at most 35 characters, \
         e.g. `es-MX` (docs/api.md#languages): matched against the team's supported languages, \
         cutting the last subtag step by step.",
        35,
        crate::domain::locale::pattern(),
    );
    EmailText => text(
        "An e-mail address that the SMTP channel accepts, e.g. `ada@example.com`.",
        254,
        EMAIL_PATTERN.to_string(),
    );
}

/// The e-mail addresses the document promises to accept: dot-atoms of
/// ASCII `atext` (at most 64 before the `@`), and a domain of at least two
/// letter-digit-hyphen labels. `input::email` accepts every one of them
/// (and a few more that the SMTP channel can send to).
const EMAIL_PATTERN: &str = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30}(?:\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,16}){0,2}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){1,3}$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_characters_come_from_the_gateways_own_tables() {
        let cf = classes::format();
        // Soft hyphen, zero-width space to right-to-left mark, BOM, and an
        // astral one (language tag) written as itself.
        for part in ["\\u00AD", "\\u200B-\\u200F", "\\uFEFF", "\u{E0001}"] {
            assert!(cf.contains(part), "{part} missing from {cf}");
        }
        assert!(!cf.contains("\\u0041"), "A is not a format character");
    }

    #[test]
    fn identifiers_refuse_blank_ends_and_format_characters() {
        let RefOr::T(Schema::Object(o)) = identifier("id", 256) else {
            panic!("an object schema");
        };
        let pattern = o.pattern.unwrap_or_default();
        // Trimmed white space (line breaks too) around 1..=256 characters.
        assert!(pattern.starts_with("^[\\u0009-\\u000D\\u0020"), "{pattern}");
        assert!(pattern.contains("{0,254}"), "{pattern}");
        // Separators and bidi controls (one run), variation selectors: the
        // very characters `input::identifier` refuses.
        assert!(pattern.contains("\\u2028-\\u202E"), "{pattern}");
        assert!(pattern.contains("\\uFE00-\\uFE0F"), "{pattern}");
        assert_eq!(o.max_length, None);
    }
}
