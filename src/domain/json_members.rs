//! A member name twice in one JSON object (docs/api.md#errors). JSON
//! leaves such an object's meaning to each reader: serde keeps the last
//! member, another reader (a proxy, a firewall, the signer of a token)
//! may keep the first. So that no two readers of one body or token
//! disagree on what it says, the gateway takes it as not valid JSON.
//!
//! [`repeated_member`] reads the text once with serde_json's own parser
//! and keeps only the member names of the objects it is inside (compared
//! after unescaping: `"a"` and `"\u0061"` are one name). No value is
//! built, and the work is linear in the text.
//!
//! [`read_object`] makes the same check in the pass that reads a text's
//! members: a reader ([`Kept`]) takes the members it wants as it meets
//! them, borrowed from the text, and every other value is walked for the
//! check alone (docs/performance.md#an-mcp-tool-call).
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The first member name that one object of `json` names twice (as
/// unescaped), at any depth. `None` for JSON without one, and for text
/// that is not JSON at all: its own parse says what is wrong with it.
pub fn repeated_member(json: &[u8]) -> Option<String> {
    repeated_in(&mut serde_json::Deserializer::from_slice(json))
}

/// [`repeated_member`] of the value `de` reads.
fn repeated_in<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
) -> Option<String> {
    let found = RefCell::new(None);
    // Stopped at the repeated name (recorded in `found`), or at a syntax
    // error, left to the caller's parse.
    let _ = Walk { found: &found }.deserialize(de);
    found.into_inner()
}

/// A walk over one JSON value, recording the first repeated name.
#[derive(Clone, Copy)]
struct Walk<'f> {
    found: &'f RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = Names::default();
        while let Some(name) = map.next_key_seed(Name)? {
            if names.contains(&name) {
                *self.found.borrow_mut() = Some(name.into_owned());
                return Err(de::Error::custom("a member name twice in one object"));
            }
            names.insert(name);
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// What [`read_object`] finds wrong with a text.
#[derive(Debug, PartialEq, Eq)]
pub enum Unread {
    /// One object names this member twice (as unescaped), at any depth.
    Repeated(String),
    /// The text is not one JSON value.
    NotJson,
}

/// The members of one JSON object that a reader takes, read in the pass
/// that checks the text for a member named twice ([`read_object`]).
pub trait Kept<'de>: Default {
    /// Takes the value of member `name` from `map` with `check`'s seeds
    /// when it is one this reader keeps (`true`); `false`, and the value
    /// is walked for the check alone.
    fn keep<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
        check: Check<'_>,
    ) -> Result<bool, A::Error>;
}

/// The object `json` holds, as `T` keeps it, read in one pass that refuses
/// a member named twice in any object of the text, whether `T` keeps its
/// members or not (the first such name, as [`repeated_member`] finds it).
/// A repeat before a syntax error is still a repeat, but within a member
/// `T` keeps as text ([`Check::raw`]) the syntax error is met first: the
/// text is not JSON. A text that is
/// some other JSON value is `T`'s default.
pub fn read_object<'de, T: Kept<'de>>(json: &'de [u8]) -> Result<T, Unread> {
    match std::str::from_utf8(json) {
        // UTF-8 checked once, here, rather than string by string.
        Ok(text) => read_from(serde_json::Deserializer::from_str(text)),
        Err(_) => read_from(serde_json::Deserializer::from_slice(json)),
    }
}

/// [`read_object`] of what `de` reads.
fn read_from<'de, R, T>(mut de: serde_json::Deserializer<R>) -> Result<T, Unread>
where
    R: serde_json::de::Read<'de>,
    T: Kept<'de>,
{
    let found = RefCell::new(None);
    let check = Check { found: &found };
    let read = check
        .object::<T>()
        .deserialize(&mut de)
        .and_then(|kept| de.end().map(|()| kept));
    match found.into_inner() {
        Some(name) => Err(Unread::Repeated(name)),
        None => read.map_err(|_| Unread::NotJson),
    }
}

/// The check of one [`read_object`] pass: where it records the repeated
/// name that stops it, and the seeds a [`Kept`] reads its members with.
#[derive(Clone, Copy)]
pub struct Check<'f> {
    found: &'f RefCell<Option<String>>,
}

impl<'f> Check<'f> {
    /// A seed of a member that is an object of members `T` keeps (`T`'s
    /// default when it is another value, walked all the same).
    pub fn object<T>(self) -> Object<'f, T> {
        Object {
            check: self,
            kept: PhantomData,
        }
    }

    /// A seed of a member kept as its JSON text, borrowed: an array or an
    /// object is checked as it is taken.
    pub fn raw(self) -> Raw<'f> {
        Raw { check: self }
    }

    fn walk(self) -> Walk<'f> {
        Walk { found: self.found }
    }

    /// The error that stops the pass at `name`, recorded.
    fn repeated<E: de::Error>(self, name: String) -> E {
        *self.found.borrow_mut() = Some(name);
        E::custom("a member name twice in one object")
    }
}

/// [`Check::object`]'s seed.
pub struct Object<'f, T> {
    check: Check<'f>,
    kept: PhantomData<T>,
}

impl<'de, T: Kept<'de>> DeserializeSeed<'de> for Object<'_, T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Kept<'de>> Visitor<'de> for Object<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        self.check.walk().visit_seq(seq)?;
        Ok(T::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut kept = T::default();
        let mut names = Names::default();
        while let Some(name) = map.next_key_seed(Name)? {
            if names.contains(&name) {
                return Err(self.check.repeated(name.into_owned()));
            }
            if !kept.keep(&name, &mut map, self.check)? {
                map.next_value_seed(self.check.walk())?;
            }
            names.insert(name);
        }
        Ok(kept)
    }
}

/// [`Check::raw`]'s seed.
pub struct Raw<'f> {
    check: Check<'f>,
}

impl<'de> DeserializeSeed<'de> for Raw<'_> {
    type Value = &'de RawValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'de RawValue, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        if raw.get().starts_with(['{', '[']) {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            if let Some(name) = repeated_in(&mut de) {
                return Err(self.check.repeated(name));
            }
        }
        Ok(raw)
    }
}

/// How many names of one object are kept in place, compared one by one.
const IN_PLACE: usize = 8;

/// The names one object has named so far: its first [`IN_PLACE`] in
/// place (an object of a few members, as most are, allocates nothing and
/// hashes nothing), the others in a set, so that the work stays linear.
#[derive(Default)]
struct Names<'de> {
    first: [Cow<'de, str>; IN_PLACE],
    len: usize,
    rest: HashSet<Cow<'de, str>>,
}

impl<'de> Names<'de> {
    fn contains(&self, name: &str) -> bool {
        self.first[..self.len].iter().any(|n| n == name) || self.rest.contains(name)
    }

    fn insert(&mut self, name: Cow<'de, str>) {
        match self.first.get_mut(self.len) {
            Some(place) => {
                *place = name;
                self.len += 1;
            }
            None => {
                self.rest.insert(name);
            }
        }
    }
}

/// A member name, borrowed from the text unless it had an escape.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeated(text: &str) -> Option<String> {
        repeated_member(text.as_bytes())
    }

    #[test]
    fn distinct_names_pass_at_every_depth() {
        assert_eq!(repeated(r#"{}"#), None);
        assert_eq!(
            repeated(r#"{"a": 1, "b": {"a": 2, "b": [{"a": 3}, {"a": 4}]}}"#),
            None
        );
        assert_eq!(
            repeated(r#"[{"a": 1}, {"a": 1}]"#),
            None,
            "one name per object"
        );
        assert_eq!(
            repeated(r#"{"a": null, "A": true, "a ": -1.5e3, "b": "a"}"#),
            None
        );
    }

    #[test]
    fn a_name_twice_in_one_object_is_found_at_any_depth() {
        assert_eq!(repeated(r#"{"a": 1, "a": 1}"#).as_deref(), Some("a"));
        assert_eq!(
            repeated(r#"{"x": {"b": 1, "c": 2, "b": 3}}"#).as_deref(),
            Some("b")
        );
        assert_eq!(
            repeated(r#"{"x": [1, {"y": [{"z": 1, "z": 2}]}]}"#).as_deref(),
            Some("z")
        );
        assert_eq!(repeated(r#"[[{"k": {}, "k": []}]]"#).as_deref(), Some("k"));
    }

    #[test]
    fn names_equal_once_unescaped_are_one_name() {
        assert_eq!(repeated(r#"{"a": 1, "\u0061": 2}"#).as_deref(), Some("a"));
        assert_eq!(
            repeated(r#"{"\u0063hannel": 1, "channel": 2}"#).as_deref(),
            Some("channel")
        );
        assert_eq!(
            repeated(r#"{"a\"b": 1, "a\u0022b": 2}"#).as_deref(),
            Some("a\"b")
        );
        assert_eq!(
            repeated(r#"{"\ud83d\ude00": 1, "😀": 2}"#).as_deref(),
            Some("😀")
        );
        assert_eq!(repeated(r#"{"a": 1, "\u0041": 2}"#), None, "case differs");
    }

    #[test]
    fn text_that_is_not_json_is_left_to_its_parse() {
        assert_eq!(repeated(r#"{"a": 1, "b": "#), None);
        assert_eq!(repeated("not json"), None);
        assert_eq!(repeated(""), None);
        // A repeat before the syntax error is still a repeat.
        assert_eq!(repeated(r#"{"a": 1, "a": 2, oops"#).as_deref(), Some("a"));
    }

    #[test]
    fn deep_nesting_ends_in_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(repeated(&deep), None);
        let deep = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        assert_eq!(repeated(&deep), None);
    }

    #[test]
    fn a_name_is_found_twice_on_either_side_of_the_names_kept_in_place() {
        let names: Vec<String> = (0..IN_PLACE + 4)
            .map(|i| format!("\"m{i}\": {i}"))
            .collect();
        let object = |extra: &str| format!("{{{}, {extra}}}", names.join(","));
        assert_eq!(repeated(&object("\"z\": 0")), None);
        assert_eq!(repeated(&object("\"m0\": 0")).as_deref(), Some("m0"));
        let last = format!("m{}", IN_PLACE + 3);
        assert_eq!(
            repeated(&object(&format!("\"{last}\": 0"))).as_deref(),
            Some(last.as_str())
        );
    }

    #[test]
    fn a_small_object_is_read_without_an_allocation() {
        let body = br#"{"jsonrpc": "2.0", "id": 1, "params": {"a": [1, {"b": 2}], "c": "d"}}"#;
        let (found, made) = crate::counted_allocations::allocations(|| repeated_member(body));
        assert_eq!((found, made), (None, 0));
    }

    /// A reader that keeps `k` as text and `o`'s members as its own.
    #[derive(Default, Debug)]
    struct KeepK<'a> {
        k: Option<&'a RawValue>,
        o: Option<Box<KeepK<'a>>>,
    }

    impl<'a> Kept<'a> for KeepK<'a> {
        fn keep<A: MapAccess<'a>>(
            &mut self,
            name: &str,
            map: &mut A,
            check: Check<'_>,
        ) -> Result<bool, A::Error> {
            match name {
                "k" => self.k = Some(map.next_value_seed(check.raw())?),
                "o" => self.o = Some(Box::new(map.next_value_seed(check.object())?)),
                _ => return Ok(false),
            }
            Ok(true)
        }
    }

    /// Reading members as they are kept finds what [`repeated_member`]
    /// finds, in the members kept and in those read past alike.
    #[test]
    fn members_read_as_kept_are_checked_as_the_whole_text_is() {
        let kept =
            read_object::<KeepK>(br#"{"k": {"a": 1}, "o": {"k": [2]}, "z": [{"a": 1}]}"#).unwrap();
        assert_eq!(kept.k.map(RawValue::get), Some(r#"{"a": 1}"#));
        assert_eq!(kept.o.unwrap().k.map(RawValue::get), Some("[2]"));
        for text in [
            r#"{"k": 1, "\u006b": 2}"#,
            r#"{"k": {"a": 1, "a": 2}}"#,
            r#"{"o": {"x": [1, {"a": 1, "a": 1}]}}"#,
            r#"{"o": [{"a": 1, "a": 1}]}"#,
            r#"{"z": {"y": {"a": 1, "a": 1}}}"#,
            r#"{"k": 1, "a": 1, "a": 2, oops"#,
        ] {
            let found = read_object::<KeepK>(text.as_bytes()).unwrap_err();
            let expected = repeated(text).map(Unread::Repeated);
            assert_eq!(Some(found), expected, "{text}");
        }
        for text in [r#"{"k": 1, "b": "#, r#"{"k": 1} 2"#, ""] {
            let e = read_object::<KeepK>(text.as_bytes()).unwrap_err();
            assert_eq!(e, Unread::NotJson, "{text}");
        }
        let other = read_object::<KeepK>(br#"[{"k": 1}]"#).unwrap();
        assert!(other.k.is_none(), "a text that is no object keeps nothing");
    }

    #[test]
    fn a_large_object_is_read_in_linear_time() {
        let members: Vec<String> = (0..50_000).map(|i| format!("\"m{i}\": {i}")).collect();
        let text = format!("{{{}}}", members.join(","));
        let began = std::time::Instant::now();
        assert_eq!(repeated(&text), None);
        assert!(began.elapsed() < std::time::Duration::from_secs(2));
        let text = format!("{{{}, \"m49999\": 0}}", members.join(","));
        assert_eq!(repeated(&text).as_deref(), Some("m49999"));
    }
}
