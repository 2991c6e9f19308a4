//! Parsing of caller-supplied identifiers and contacts ("parse, don't
//! validate"): each constructor refuses a bad value with a 422 naming the
//! field, so later code only ever holds valid ones.
//!
//! Two kinds of text about a customer come from outside:
//! - **identifiers** (`customer_ref`, a proven customer's `id`, an assertion's
//!   `sub`, `expected_customer`): whom lockouts, bans and logouts apply to.
//!   They are trimmed, normalised (Unicode NFKC, every dash `-`) and
//!   case-folded (Unicode default case folding, then NFKC again), and refuse control, format
//!   (zero-width, bidi overrides) and separator characters and letters of
//!   mixed scripts (UTS #39: a Cyrillic `с` among Latin letters), so two
//!   spellings that look alike are one subject and cannot dodge a lockout
//!   or the send limit. The folded form is the identifier from then on: it
//!   is what is stored, compared and shown back (`Cust-42` is answered as
//!   `cust-42`);
//! - **display values** (a name, an e-mail, a scope): kept as given, but
//!   refusing control characters, line separators and bidi overrides, which
//!   would otherwise reach agents' screens and log lines.
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::MixedScript;

use super::destination_policy::Reach;
use super::interaction::Customer;
use crate::error::Error;

/// The longest identity value (customer id, name, e-mail) accepted.
pub const MAX_IDENTITY_CHARS: usize = 1024;

fn length(field: &str, s: &str, max: usize) -> Result<(), Error> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(Error::invalid(
            field,
            &format!("must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// Explicit bidirectional formatting characters (Trojan Source, CVE-2021-42574):
/// refused in identifiers and in configured texts, where they can reorder
/// what a customer reads (docs/configuration.md#languages).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first character a configured text may not hold, in any language
/// at any level (docs/configuration.md#languages): a bidirectional control,
/// or any other invisible format character (general category Cf: U+200B,
/// U+2060–U+206F, U+FEFF, U+00AD, the tags U+E0000–U+E007F, …), except a
/// zero-width joiner between two symbols of an emoji sequence (`👩‍💻`; a
/// variation selector or skin tone may follow the first). With `true`
/// when it is a bidirectional control.
pub fn refused_in_text(text: &str) -> Option<(char, bool)> {
    // No ASCII character is a bidirectional control or of category Cf:
    // most configured texts are looked up no further (a gateway checks
    // every team's texts at each start and reload).
    if text.is_ascii() {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let symbol = |c: char| c.general_category() == GeneralCategory::OtherSymbol;
    let decoration = |c: char| matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}');
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii() {
            continue;
        }
        if is_bidi_control(c) {
            return Some((c, true));
        }
        if c.general_category() != GeneralCategory::Format {
            continue;
        }
        if c == '\u{200D}' {
            let before = chars[..i].iter().rev().find(|b| !decoration(**b));
            let after = chars.get(i + 1);
            if before.is_some_and(|b| symbol(*b)) && after.is_some_and(|a| symbol(*a)) {
                continue;
            }
        }
        return Some((c, false));
    }
    None
}

/// What [`refused_in_text`] found, as a configuration problem.
pub fn text_problem(c: char, bidi: bool) -> String {
    let what = if bidi {
        "the bidirectional control character"
    } else {
        "the invisible format character"
    };
    format!("holds {what} U+{:04X}", c as u32)
}

use super::characters::is_line_separator;
pub use super::characters::refused_in_identifier;

/// A character no conversation id may hold: control, line or paragraph
/// separator, or format character (bidi controls, zero-width characters),
/// which would reorder or hide what an agent reads in the console and the
/// logs. The OpenAPI document's pattern is generated from this function.
pub fn refused_in_conversation_id(c: char) -> bool {
    c.is_control() || is_line_separator(c) || c.general_category() == GeneralCategory::Format
}

/// An identifier of a customer: trimmed, NFKC-normalised and every dash
/// a hyphen-minus, 1..=`max`
/// characters, no control, format or separator characters, letters of one
/// script (UTS #39 single-script: Japanese kana with Han is one), then
/// case-folded. The length counts the characters before folding (what the
/// caller wrote, as the OpenAPI document says); folding may lengthen (`ß` is `ss`).
pub fn identifier(field: &str, s: &str, max: usize) -> Result<String, Error> {
    if let Some(plain) = printable_ascii_identifier(field, s, max) {
        return plain;
    }
    let normalised = normalise(s);
    let v = normalised.trim();
    length(field, v, max)?;
    if v.chars().any(refused_in_identifier) {
        return Err(Error::invalid(
            field,
            "must not contain control, invisible or bidi characters",
        ));
    }
    if !v.is_single_script() {
        return Err(Error::invalid(
            field,
            "must not mix letters of several scripts (such as Latin with Cyrillic or Greek)",
        ));
    }
    Ok(fold(v))
}

/// [`identifier`] of printable ASCII (most identifiers), without the
/// Unicode tables: NFKC leaves such text as it is, its one dash is the
/// hyphen-minus, it holds no character refused and only Latin and common
/// characters (one script), and folding it is lowercasing it. The same
/// answer as the general rules (`identifier_of_ascii_is_the_general_rules`);
/// `None` for any other text.
fn printable_ascii_identifier(field: &str, s: &str, max: usize) -> Option<Result<String, Error>> {
    if !s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return None;
    }
    let v = s.trim_matches(' ');
    Some(length(field, v, max).map(|()| v.to_ascii_lowercase()))
}

/// Trimmed, NFKC, and every dash a hyphen-minus ([`is_dash`]); one
/// character for one, so the length is the caller's.
fn normalise(s: &str) -> String {
    s.trim()
        .nfkc()
        .map(|c| if is_dash(c) { '-' } else { c })
        .collect()
}

/// A dash that an identifier reads as `-` (docs/api.md#identifiers):
/// Unicode's dash punctuation (hyphen, non-breaking hyphen, figure, en and
/// em dashes, their small and fullwidth forms, …) and the minus sign, which
/// look like it. NFKC has already made the superscript, subscript and
/// fullwidth forms one of these.
fn is_dash(c: char) -> bool {
    c.general_category() == GeneralCategory::DashPunctuation || c == '\u{2212}'
}

/// Unicode default case folding, then NFKC again so that folding a folded
/// identifier changes nothing (NFKC_Casefold-like, as UTS #39 skeletons and
/// RFC 8264 do).
fn fold(v: &str) -> String {
    caseless::default_case_fold_str(v).nfkc().collect()
}

/// Two identifiers name one customer: equal once folded. Identifiers are
/// kept folded ([`identifier`]); this holds also for a spelling that was not.
pub fn same_identifier(a: &str, b: &str) -> bool {
    let folded = |v: &str| fold(&normalise(v));
    a == b || folded(a) == folded(b)
}

/// A customer id (callback `customer.id`, assertion `sub`,
/// `expected_customer`, back-channel logout `customer_id`).
pub fn customer_id(field: &str, s: &str) -> Result<String, Error> {
    identifier(field, s, MAX_IDENTITY_CHARS)
}

/// The most `acr_values` a login link may ask for, and the longest one.
pub const MAX_ACR_VALUES: usize = 5;
pub const MAX_ACR_CHARS: usize = 128;

/// `acr` values asked for (`field`): a login link's own `acr_values`
/// (docs/api.md#hosted-login-openid-connect), an assurance's `acr`
/// (docs/api.md#assurance-for-one-action): 1 to [`MAX_ACR_VALUES`], each 1
/// to [`MAX_ACR_CHARS`] visible ASCII characters (no space: a request
/// sends them space-separated). The values themselves are never echoed.
pub fn acr_values(field: &str, given: &[String]) -> Result<Vec<String>, Error> {
    if given.is_empty() || given.len() > MAX_ACR_VALUES {
        return Err(Error::invalid(field, "must hold 1 to 5 values"));
    }
    for (i, value) in given.iter().enumerate() {
        let visible = value.bytes().all(|b| b.is_ascii_graphic());
        if value.is_empty() || value.len() > MAX_ACR_CHARS || !visible {
            return Err(Error::invalid(
                &format!("{field}[{i}]"),
                "must be 1 to 128 visible ASCII characters, no space",
            ));
        }
    }
    Ok(given.to_vec())
}

/// A value shown to people (a name, an e-mail, a scope): 1..=`max`
/// characters, no control characters, line separators or bidi overrides.
pub fn display(field: &str, s: &str, max: usize) -> Result<String, Error> {
    length(field, s, max)?;
    if s.chars()
        .any(|c| c.is_control() || is_line_separator(c) || is_bidi_control(c))
    {
        return Err(Error::invalid(
            field,
            "must not contain control, line-separator or bidi characters",
        ));
    }
    Ok(s.to_string())
}

/// A member name of a customer object: 1..64 of `[A-Za-z0-9_.-]`. The name
/// itself is never echoed: it may be anything.
pub fn member_name(object: &str, name: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            object,
            "member names must be 1 to 64 of A-Z a-z 0-9 _ . -",
        ))
    }
}

/// One member of a proven customer (`object` names it in errors, e.g.
/// `customer`): `id` is an identifier, every other member a display value.
pub fn customer_member(object: &str, name: &str, value: &str) -> Result<(String, String), Error> {
    member_name(object, name)?;
    let field = format!("{object}.{name}");
    let value = if name == "id" {
        customer_id(&field, value)?
    } else {
        display(&field, value, MAX_IDENTITY_CHARS)?
    };
    Ok((name.to_string(), value))
}

/// A whole proven customer, member by member (see [`customer_member`]).
pub fn customer<'a>(
    object: &str,
    members: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Customer, Error> {
    members
        .into_iter()
        .map(|(k, v)| customer_member(object, k, v))
        .collect()
}

/// The chat's own id of the conversation (1..256 printable characters:
/// [`refused_in_conversation_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationId(String);

impl ConversationId {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let field = "conversation_id";
        length(field, s, 256)?;
        if s.chars().any(refused_in_conversation_id) {
            return Err(Error::invalid(
                field,
                "must be printable characters: no control, bidi or other format character",
            ));
        }
        Ok(ConversationId(s.to_string()))
    }
    /// The id of a conversation on a channel of `reach`, a WhatsApp chat
    /// when `whatsapp` (a `whatsapp` channel, a `twilio` channel sending
    /// WhatsApp): there it is a business-scoped user id, kept exactly as
    /// given (docs/channels.md#business-scoped-user-ids), or the customer's
    /// phone number, read as one, a missing leading `+` implied, and kept
    /// in E.164 (docs/api.md#phone-numbers); anything else is 422.
    pub fn on(reach: Reach, whatsapp: bool, s: &str) -> Result<Self, Error> {
        // An id's grammar is narrower than any conversation id's (ASCII
        // letters and digits), its length its own: up to 256 after its
        // country code and `ENT.`.
        if whatsapp && super::bsuid::is_bsuid(s) {
            return Ok(ConversationId(s.to_string()));
        }
        let id = Self::parse(s)?;
        match reach {
            _ if whatsapp => phone("conversation_id", s)
                .map(ConversationId)
                .map_err(|_| {
                    Error::invalid(
                        "conversation_id",
                        "must be a WhatsApp number with its country code, like +15551230000, \
                         or a business-scoped user id, like US.13491208655302741918",
                    )
                }),
            Reach::PhoneChat => phone("conversation_id", s).map(ConversationId),
            _ => Ok(id),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bot's reference to the customer (phone, CRM id, e-mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef(String);

impl CustomerRef {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let v = identifier("customer_ref", s, 256)?;
        if v.starts_with("interaction:") {
            return Err(Error::invalid(
                "customer_ref",
                "must not start with \"interaction:\"",
            ));
        }
        Ok(CustomerRef(v))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A phone number with its country code, read with libphonenumber and
/// kept in E.164 (docs/api.md#phone-numbers): `+44 07400 123456` is
/// `+447400123456`. 422 for one that cannot be read as a number at all.
pub fn phone(field: &str, s: &str) -> Result<String, Error> {
    super::phone::e164(s).ok_or_else(|| {
        Error::invalid(
            field,
            "must be a phone number with its country code, like +15551230000",
        )
    })
}

/// An e-mail address: one `@`, a dot in the domain, no spaces, and one the
/// SMTP channel can send to (RFC 5321 lengths: at most 64 before the `@`,
/// domain labels of at most 63), so a valid `to` never fails as 502.
pub fn email(field: &str, s: &str) -> Result<String, Error> {
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@'))
        && s.parse::<lettre::Address>().is_ok();
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(field, "must be an e-mail address"))
    }
}

/// A subject as named in a URL: `interaction:{uuid}`, or a customer ref
/// (normalised like one, so it names the same record).
pub fn subject(s: &str) -> Result<String, Error> {
    match s.strip_prefix("interaction:") {
        // The canonical (lower-case) form names the record.
        Some(id) => match uuid::Uuid::parse_str(id) {
            Ok(uuid) => Ok(super::interaction::own_subject(uuid)),
            Err(_) => Err(Error::invalid("subject", "interaction:{id} needs a UUID")),
        },
        None => CustomerRef::parse(s)
            .map(CustomerRef::into_string)
            .map_err(|_| Error::invalid("subject", "must be a customer_ref or interaction:{id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_values_are_one_to_five_visible_ascii_values_of_at_most_128() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            acr_values("acr_values", &v(&["phrh"])).unwrap(),
            v(&["phrh"])
        );
        let five = v(&["phr", "phrh", "urn:x:passkey", "a\\\"b", "c"]);
        assert_eq!(acr_values("acr", &five).unwrap(), five);
        assert_eq!(acr_values("acr", &v(&[&"a".repeat(128)])).unwrap().len(), 1);
        let named = |xs: Vec<String>| acr_values("acr_values", &xs).unwrap_err().to_string();
        assert!(named(v(&[])).contains("acr_values"));
        assert!(named(v(&["a", "b", "c", "d", "e", "f"])).contains("acr_values"));
        for bad in [
            "",
            "two words",
            "caf\u{e9}",
            "tab\t",
            "a".repeat(129).as_str(),
        ] {
            let e = named(v(&["ok", bad]));
            assert!(e.contains("acr_values[1]"), "{bad:?}: {e}");
            assert!(bad.is_empty() || !e.contains(bad), "never echoed: {e}");
        }
    }

    /// The general rules of [`identifier`], without its ASCII shortcut.
    fn by_the_general_rules(s: &str, max: usize) -> Result<String, Error> {
        let normalised = normalise(s);
        let v = normalised.trim();
        length("id", v, max)?;
        assert!(!v.chars().any(refused_in_identifier), "{s:?}");
        assert!(v.is_single_script(), "{s:?}");
        Ok(fold(v))
    }

    #[test]
    fn identifier_of_ascii_is_the_general_rules() {
        let printable: String = (b' '..=b'~').map(char::from).collect();
        let mut texts = vec![
            printable.clone(),
            " Cust-42 ".into(),
            "   ".into(),
            String::new(),
            "A".repeat(8),
            "A".repeat(9),
            " a b ".into(),
        ];
        // Every printable character alone, and beside letters and spaces.
        for c in printable.chars() {
            texts.push(c.to_string());
            texts.push(format!(" Ab{c}Z9 "));
        }
        for text in &texts {
            let shortcut = printable_ascii_identifier("id", text, 8).expect("printable ASCII");
            match (shortcut, by_the_general_rules(text, 8)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{text:?}: {a:?} against {b:?}"),
            }
        }
        assert!(printable_ascii_identifier("id", "caf\u{e9}", 8).is_none());
        assert!(printable_ascii_identifier("id", "a\tb", 8).is_none());
    }

    #[test]
    fn texts_refuse_bidi_and_format_characters_but_an_emoji_s_joiner() {
        assert_eq!(refused_in_text("Your code is #PIN#."), None);
        assert_eq!(refused_in_text("\u{202E}x"), Some(('\u{202E}', true)));
        for c in [
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
            '\u{200D}',
        ] {
            assert_eq!(
                refused_in_text(&format!("co{c}de")),
                Some((c, false)),
                "{c:?}"
            );
        }
        // 👩‍💻 and ❤️‍🔥 (a variation selector before the joiner) are emoji sequences.
        assert_eq!(refused_in_text("Hi \u{1F469}\u{200D}\u{1F4BB}"), None);
        assert_eq!(refused_in_text("\u{2764}\u{FE0F}\u{200D}\u{1F525}"), None);
        assert_eq!(
            refused_in_text("\u{1F469}\u{200D}x"),
            Some(('\u{200D}', false))
        );
        assert_eq!(
            text_problem('\u{200B}', false),
            "holds the invisible format character U+200B"
        );
    }

    #[test]
    fn whatsapp_conversations_are_numbers_or_business_scoped_user_ids() {
        let on = |whatsapp, reach, s: &str| ConversationId::on(reach, whatsapp, s);
        for reach in [Reach::PhoneChat, Reach::Phone] {
            for id in [
                "US.13491208655302741918".to_string(),
                "US.ENT.11815799212886844830".to_string(),
                format!("DE.ENT.{}", "a".repeat(256)),
            ] {
                // Kept exactly as given.
                assert_eq!(on(true, reach, &id).unwrap().as_str(), id);
            }
            assert_eq!(
                on(true, reach, "15552223333").unwrap().as_str(),
                "+15552223333"
            );
            for bad in ["us.1349", "US.", "US.ENT.", "US.13-49", "abc", "USA.1"] {
                let e = on(true, reach, bad).unwrap_err().to_string();
                assert!(e.starts_with("conversation_id: "), "{bad}: {e}");
                assert!(e.contains("business-scoped user id"), "{bad}: {e}");
            }
        }
        // Elsewhere an id is any conversation id, and a long one too long.
        assert!(on(false, Reach::Conversation, "us.1349").is_ok());
        assert!(on(false, Reach::Phone, &format!("DE.{}", "a".repeat(256))).is_err());
    }

    #[test]
    fn conversation_ids() {
        assert!(ConversationId::parse("abc-123").is_ok());
        assert!(ConversationId::parse("").is_err());
        assert!(ConversationId::parse(&"x".repeat(256)).is_ok());
        assert!(ConversationId::parse(&"x".repeat(257)).is_err());
        assert!(ConversationId::parse("a\nb").is_err());
        assert!(ConversationId::parse("ünïcödé ok").is_ok());
        // Bidi controls, zero-width and other format characters, separators.
        for c in [
            '\u{202E}', '\u{2066}', '\u{200B}', '\u{2060}', '\u{FEFF}', '\u{00AD}', '\u{2028}',
        ] {
            let e = ConversationId::parse(&format!("abc{c}123")).unwrap_err();
            assert!(e.to_string().starts_with("conversation_id: "), "{c:?}: {e}");
        }
    }

    #[test]
    fn contacts() {
        assert_eq!(phone("p", "+4407400123456").unwrap(), "+447400123456");
        assert!(phone("p", "+1 555 123 0000").is_err());
        assert!(phone("p", "555").is_err());
        assert!(phone("p", "+1555abc0000").is_err());
        assert!(email("e", "ada@example.com").is_ok());
        assert!(email("e", "ada@@example.com").is_err());
        assert!(email("e", "ada example.com").is_err());
        // Longer than the SMTP channel accepts: a label over 63, a local part over 64.
        assert!(email("e", &format!("a@{}.com", "b".repeat(64))).is_err());
        assert!(email("e", &format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(email("e", "first.last+tag@mail.example.co.uk").is_ok());
        assert!(CustomerRef::parse("interaction:x").is_err());
    }

    #[test]
    fn identifiers_are_normalised_so_lookalikes_are_one_subject() {
        let plain = CustomerRef::parse("cust-42").unwrap();
        // Fullwidth letters and digits fold to ASCII under NFKC; ends are trimmed.
        assert_eq!(CustomerRef::parse(" ｃｕｓｔ－４２ ").unwrap(), plain);
        assert_eq!(CustomerRef::parse("cust-42\u{3000}").unwrap(), plain);
        // Invisible and direction-changing characters are refused, not dropped.
        for bad in [
            "cust\u{200B}-42",
            "cust-42\u{202E}",
            "\u{2066}cust-42",
            "cust\u{FEFF}-42",
            "a\u{2028}b",
            "a\u{0}b",
            "   ",
            "cust-42\u{FE0F}",
            "cust\u{034F}-42",
            "\u{3164}cust-42",
            "cust-42\u{E0100}",
        ] {
            assert!(CustomerRef::parse(bad).is_err(), "{bad:?}");
            assert!(customer_id("customer.id", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            customer_id("customer.id", "Ünïcødé 42").unwrap(),
            "ünïcødé 42"
        );
        assert!(customer_id("customer.id", &"x".repeat(1024)).is_ok());
        assert!(customer_id("customer.id", &"x".repeat(1025)).is_err());
    }

    #[test]
    fn every_dash_is_a_hyphen_minus_so_lookalikes_are_one_subject() {
        let plain = CustomerRef::parse("cust-42").unwrap();
        // Hyphen, non-breaking hyphen, figure dash, en dash, em dash,
        // minus sign, small and fullwidth hyphen-minus, and the
        // superscript minus NFKC makes a minus sign.
        for dash in [
            '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
            '\u{FE58}', '\u{FE63}', '\u{FF0D}', '\u{207B}', '\u{2E3A}',
        ] {
            let spelling = format!("Cust{dash}42");
            assert_eq!(CustomerRef::parse(&spelling).unwrap(), plain, "{dash:?}");
            assert_eq!(
                customer_id("sub", &spelling).unwrap(),
                "cust-42",
                "{dash:?}"
            );
            assert_eq!(subject(&spelling).unwrap(), "cust-42", "{dash:?}");
            assert!(same_identifier(&spelling, "cust-42"), "{dash:?}");
        }
        // Other punctuation stays itself.
        assert_eq!(customer_id("sub", "cust_42").unwrap(), "cust_42");
        assert_eq!(customer_id("sub", "cust~42").unwrap(), "cust~42");
    }

    #[test]
    fn identifiers_are_case_folded_so_spellings_are_one_subject() {
        let plain = CustomerRef::parse("cust-42").unwrap();
        for spelling in ["Cust-42", "CUST-42", " ＣＵＳＴ-42 ", "cUsT-42"] {
            assert_eq!(CustomerRef::parse(spelling).unwrap(), plain, "{spelling}");
            assert_eq!(customer_id("customer.id", spelling).unwrap(), "cust-42");
            assert_eq!(subject(spelling).unwrap(), "cust-42");
        }
        // Full folding, not lower-casing: ß and ẞ are ss, final sigma is sigma.
        assert_eq!(customer_id("sub", "Straße").unwrap(), "strasse");
        assert_eq!(customer_id("sub", "STRASSE").unwrap(), "strasse");
        assert_eq!(
            customer_id("sub", "ΟΔΟΣ").unwrap(),
            customer_id("sub", "οδος").unwrap()
        );
        assert_eq!(
            customer_id("sub", "Ada@Example.COM").unwrap(),
            "ada@example.com"
        );
        // Folding is stable: the folded form parses to itself.
        for s in ["Ǆemal", "ﬀ-1", "İstanbul", "Ω-7", "ǅ"] {
            let once = customer_id("sub", s).unwrap();
            assert_eq!(customer_id("sub", &once).unwrap(), once, "{s}");
        }
    }

    #[test]
    fn identifiers_mixing_scripts_are_refused() {
        // A Cyrillic `с` (U+0441) and a Greek omicron among Latin letters.
        for bad in ["\u{0441}ust-42", "cust-42-\u{03BF}k", "Pаypal"] {
            let e = CustomerRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("scripts"), "{bad:?}: {e}");
            assert!(customer_id("customer.id", bad).is_err(), "{bad:?}");
            assert!(subject(bad).is_err(), "{bad:?}");
        }
        // One script each, digits and punctuation being common to all.
        for good in [
            "иван-42",
            "Ωμέγα 7",
            "山田たろう",
            "+15551230000",
            "müller_ü",
        ] {
            assert!(CustomerRef::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn display_values_keep_their_text_but_refuse_control_and_bidi() {
        assert_eq!(
            display("name", "Ada Lovelace", 1024).unwrap(),
            "Ada Lovelace"
        );
        assert_eq!(display("name", "محمد", 1024).unwrap(), "محمد");
        for bad in [
            "",
            "Ada\u{1b}[31m",
            "Ada\nEve",
            "Ada\u{202E}evE",
            "a\u{2029}b",
        ] {
            assert!(display("name", bad, 1024).is_err(), "{bad:?}");
        }
        assert!(display("name", &"x".repeat(2000), 1024).is_err());
    }

    #[test]
    fn customer_members() {
        let c = customer("customer", [("id", " cust-42 "), ("name", "Ada")]).unwrap();
        assert_eq!(c.get("id").map(String::as_str), Some("cust-42"));
        for name in ["", "na me", "n\u{0}", "ünï", &"x".repeat(65)] {
            let err = customer("customer", [(name, "v")]).unwrap_err();
            assert!(!err.to_string().contains('\u{0}'));
        }
        assert!(customer("customer", [("first.name_2-x", "v")]).is_ok());
    }

    #[test]
    fn subjects_in_urls() {
        assert_eq!(subject("ｃｕｓｔ-42").unwrap(), "cust-42");
        let id = uuid::Uuid::now_v7();
        assert!(subject(&format!("interaction:{id}")).is_ok());
        // Upper case names the same record as lower case.
        let upper = format!("interaction:{}", id.to_string().to_uppercase());
        assert_eq!(subject(&upper).unwrap(), format!("interaction:{id}"));
        assert!(subject("interaction:nope").is_err());
        assert!(subject("a\u{200B}").is_err());
    }
}
