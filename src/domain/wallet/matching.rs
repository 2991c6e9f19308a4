//! What the bank expects compared with what the credential disclosed
//! (docs/wallet.md#matching): each asked claim must be disclosed and
//! equal. Texts compare after NFC, trimming and full Unicode case folding
//! (`ß` matches `SS`); dates (`YYYY-MM-DD`) and numbers compare exactly,
//! after NFC and trimming. A disclosed claim that was not asked for is
//! ignored.
use std::collections::BTreeMap;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::jose::Object;

/// The comparison of asked claims with disclosed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// The asked claims that were disclosed and equal, by name.
    pub matched: Vec<String>,
    /// Whether every asked claim matched.
    pub all: bool,
}

/// Compares `asked` (claim name → expected value) with `disclosed` (a
/// credential's top-level claims).
pub fn compare(asked: &BTreeMap<String, String>, disclosed: &Object) -> Compared {
    let matched: Vec<String> = asked
        .iter()
        .filter(|(name, want)| disclosed.get(*name).is_some_and(|got| matches(want, got)))
        .map(|(name, _)| name.clone())
        .collect();
    Compared {
        all: matched.len() == asked.len(),
        matched,
    }
}

/// Whether the disclosed `got` is what `want` says. A string compares as
/// a date when both are dates, else as text; a number compares as a
/// number; a boolean with `true` or `false`; an object or array never
/// matches.
pub fn matches(want: &str, got: &Value) -> bool {
    let want_nfc: String = want.nfc().collect();
    let want = want_nfc.trim();
    match got {
        Value::String(s) => {
            let got_nfc: String = s.nfc().collect();
            let got = got_nfc.trim();
            if is_date(want) && is_date(got) {
                return want == got;
            }
            !want.is_empty() && caseless::canonical_caseless_match_str(want, got)
        }
        Value::Number(n) => same_number(want, n),
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        _ => false,
    }
}

/// A full date, `YYYY-MM-DD` (RFC 3339), of a real day.
fn is_date(text: &str) -> bool {
    text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// Whether `want` writes the number `n`: integers exactly, others as the
/// same double.
fn same_number(want: &str, n: &serde_json::Number) -> bool {
    if let Some(i) = n.as_i64() {
        return want.parse::<i64>() == Ok(i);
    }
    if let Some(u) = n.as_u64() {
        return want.parse::<u64>() == Ok(u);
    }
    match (n.as_f64(), want.parse::<f64>()) {
        (Some(a), Ok(b)) => a.is_finite() && a == b,
        _ => false,
    }
}
