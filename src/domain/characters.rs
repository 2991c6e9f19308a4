//! Which characters a text from outside may hold: the invisible ones
//! that identifiers (`domain::input`) and a payment's payee
//! (`domain::transaction`) refuse, so that what a person reads is what was
//! sent.
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Default-ignorable code points that are not format characters (combining
/// grapheme joiner, variation selectors, Hangul fillers, …): invisible, so
/// refused in identifiers as format characters are.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFA0}'
        | '\u{E0000}'..='\u{E0FFF}')
}

pub(super) fn is_line_separator(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
    )
}

/// A character no identifier may hold: control, line or paragraph
/// separator, format (zero-width, bidi) or other invisible. The OpenAPI
/// document's identifier pattern is generated from this very function.
pub fn refused_in_identifier(c: char) -> bool {
    c.is_control()
        || is_line_separator(c)
        || c.general_category() == GeneralCategory::Format
        || is_invisible(c)
}
