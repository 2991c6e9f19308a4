//! Property tests over the domain parsers that take outside input:
//! login tokens and assertions (JWT), Standard Webhooks signatures, codes and
//! PINs, configured secrets, identity fields. Each property says "never
//! panics" and "refuses with the documented error"; round trips are checked
//! where there is one. Case counts are kept small: the whole set runs in a
//! few seconds on a two-core machine.
mod assertions;
mod codes;
mod identity;
mod locales;
mod secrets;
mod signatures;
mod tokens;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// `n` cases, or as many as `PROPTEST_CASES` says when it is set (for a
/// deeper run: `PROPTEST_CASES=20000 cargo test proptests`).
pub(crate) fn cases(n: u32) -> Config {
    let config = Config::default();
    match std::env::var_os("PROPTEST_CASES") {
        Some(_) => config,
        None => Config { cases: n, ..config },
    }
}

/// Text a hostile client might send: any Unicode, control and format
/// characters (NUL, zero-width, bidi overrides), bytes made into text, and
/// very long runs of one character.
pub(super) fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        3 => "[\\x00-\\x1f\\x7f\u{200b}\u{200d}\u{202e}\u{2066}\u{feff}\u{ff10}-\u{ff19}a-zA-Z0-9 .=_+/:$%{}-]{0,64}",
        2 => prop::collection::vec(any::<u8>(), 0..128)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => (any::<char>(), 1..70_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// One edit of one byte: replaced, removed, or a byte inserted before it.
#[derive(Debug, Clone)]
pub(super) enum Edit {
    Replace(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Insert(prop::sample::Index, u8),
}

/// Edits of ASCII text that keep it ASCII (tokens and signatures are ASCII).
pub(super) fn ascii_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..0x80).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Remove),
        (any::<prop::sample::Index>(), 0u8..0x80).prop_map(|(i, b)| Edit::Insert(i, b)),
    ]
}

/// Edits of arbitrary bytes (bodies).
pub(super) fn byte_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Remove),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
    ]
}

impl Edit {
    /// `bytes` with the edit applied, or `None` when it changes nothing
    /// (a byte replaced by itself, or a removal from nothing).
    pub(super) fn apply(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out = bytes.to_vec();
        match self {
            Edit::Replace(i, b) => {
                if out.is_empty() {
                    return None;
                }
                let at = i.index(out.len());
                if out[at] == *b {
                    return None;
                }
                out[at] = *b;
            }
            Edit::Remove(i) => {
                if out.is_empty() {
                    return None;
                }
                out.remove(i.index(out.len()));
            }
            Edit::Insert(i, b) => out.insert(i.index(out.len() + 1), *b),
        }
        Some(out)
    }

    /// The edit applied to ASCII text (see [`ascii_edit`]).
    pub(super) fn apply_str(&self, text: &str) -> Option<String> {
        self.apply(text.as_bytes())
            .map(|b| String::from_utf8(b).expect("ASCII edits of ASCII text stay UTF-8"))
    }
}

/// Any JSON value, a few levels deep, with hostile strings.
pub(super) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        hostile().prop_map(|s| Value::String(s.chars().take(200).collect())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// HMAC pads a key of up to 64 bytes with zeros (RFC 2104): keys that differ
/// only by trailing zero bytes are one key, and must not count as "another".
pub(super) fn same_hmac_key(a: &[u8], b: &[u8]) -> bool {
    fn padded(k: &[u8]) -> &[u8] {
        if k.len() > 64 {
            return k;
        }
        let end = k.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1);
        &k[..end]
    }
    padded(a) == padded(b)
}
