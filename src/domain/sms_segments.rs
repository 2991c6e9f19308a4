//! How many SMS segments a text takes (docs/configuration.md#sms-length):
//! GSM 03.38 when every character is in its basic set or its extension
//! table, otherwise UCS-2.

/// The alphabet an SMS is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38, 7 bits a character: 160 in one segment, else 153 a segment.
    Gsm7,
    /// UTF-16 code units: 70 in one segment, else 67 a segment.
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    /// Units that fit in a message of one segment, and in each segment of a
    /// longer one (its user data header takes the rest).
    fn capacity(self) -> (usize, usize) {
        match self {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        }
    }
}

/// A text's size as an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// At least 1: an empty text is still one message.
    pub count: usize,
}

/// The basic set of GSM 03.38 (the escape to the extension table left out).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                     ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: each is an escape and a character, two septets.
const EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets `c` takes in GSM 03.38, or `None` when it has no place there.
fn septets(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The segments `text` takes as one SMS.
pub fn count(text: &str) -> Segments {
    let gsm: Option<usize> = text.chars().map(septets).sum();
    let (encoding, units) = match gsm {
        Some(n) => (Encoding::Gsm7, n),
        None => (Encoding::Ucs2, text.encode_utf16().count()),
    };
    let (single, each) = encoding.capacity();
    let count = if units <= single {
        1
    } else {
        units.div_ceil(each)
    };
    Segments {
        encoding,
        units,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(text: &str) -> (Encoding, usize, usize) {
        let s = count(text);
        (s.encoding, s.units, s.count)
    }

    #[test]
    fn the_basic_set_has_its_128_characters_less_the_escape() {
        assert_eq!(BASIC.chars().count(), 127);
        assert_eq!(EXTENSION.chars().count(), 10);
    }

    #[test]
    fn gsm_extension_characters_take_two_septets() {
        // "Pay 5€ {now}": P a y ␠ 5 (5) + € (2) + ␠ (1) + { (2) + n o w (3) + } (2) = 15.
        assert_eq!(seg("Pay 5€ {now}"), (Encoding::Gsm7, 15, 1));
        assert_eq!(seg("\u{c}"), (Encoding::Gsm7, 2, 1));
        assert_eq!(seg("Ünïcode? no: ï is not GSM"), (Encoding::Ucs2, 25, 1));
        assert_eq!(seg("ÄÖÑÜäöñüà §¿¡"), (Encoding::Gsm7, 13, 1));
    }

    #[test]
    fn gsm_boundaries() {
        assert_eq!(seg(&"a".repeat(160)), (Encoding::Gsm7, 160, 1));
        assert_eq!(seg(&"a".repeat(161)), (Encoding::Gsm7, 161, 2));
        assert_eq!(seg(&"a".repeat(306)), (Encoding::Gsm7, 306, 2));
        assert_eq!(seg(&"a".repeat(307)), (Encoding::Gsm7, 307, 3));
        // 159 + one extension character = 161 septets: two segments.
        assert_eq!(
            seg(&format!("{}€", "a".repeat(159))),
            (Encoding::Gsm7, 161, 2)
        );
        assert_eq!(
            seg(&format!("{}{{", "a".repeat(158))),
            (Encoding::Gsm7, 160, 1)
        );
        assert_eq!(seg(""), (Encoding::Gsm7, 0, 1));
    }

    #[test]
    fn ucs2_counts_utf16_units() {
        // "Kod ć": 5 units; one character outside GSM makes the whole text UCS-2.
        assert_eq!(seg("Kod ć"), (Encoding::Ucs2, 5, 1));
        // An emoji outside the BMP is a surrogate pair: two units.
        assert_eq!(seg("ok 👍"), (Encoding::Ucs2, 5, 1));
        assert_eq!(
            seg(&format!("{}👍", "a".repeat(68))),
            (Encoding::Ucs2, 70, 1)
        );
        assert_eq!(
            seg(&format!("{}👍", "a".repeat(69))),
            (Encoding::Ucs2, 71, 2)
        );
    }

    #[test]
    fn ucs2_boundaries() {
        assert_eq!(seg(&"ć".repeat(70)), (Encoding::Ucs2, 70, 1));
        assert_eq!(seg(&"ć".repeat(71)), (Encoding::Ucs2, 71, 2));
        assert_eq!(seg(&"ć".repeat(134)), (Encoding::Ucs2, 134, 2));
        assert_eq!(seg(&"ć".repeat(135)), (Encoding::Ucs2, 135, 3));
        // An extension character in a UCS-2 text is one unit, not two.
        assert_eq!(seg("ć€{"), (Encoding::Ucs2, 3, 1));
    }

    mod props {
        use super::super::count;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn appending_a_character_never_lowers_the_count(
                text in "[a-z€{ć👍 ]{0,200}",
                c in prop::char::any(),
            ) {
                let before = count(&text).count;
                let after = count(&format!("{text}{c}")).count;
                prop_assert!(after >= before, "{text:?} + {c:?}: {before} then {after}");
            }
        }
    }
}
