//! Deserialising TOML tables into the raw file structs, with errors turned
//! into one [`ConfigError`] naming the key path and never quoting a value
//! (a wrong-typed value may be a secret).
use serde::de::DeserializeOwned;

use super::members::Member;
use super::ConfigError;

/// Deserialises `table`, which sits at `prefix` in `file`.
pub(super) fn from_table<T: DeserializeOwned>(
    table: toml::Table,
    file: &str,
    prefix: &str,
) -> Result<T, ConfigError> {
    T::deserialize(Member::table(table)).map_err(|e| member_error(&e, file, prefix))
}

/// A problem of reading a table through [`Member`] that sits at `prefix`
/// in `file`, its key named.
pub(super) fn member_error(
    e: &super::members::MemberError,
    file: &str,
    prefix: &str,
) -> ConfigError {
    keyed(&e.keys.join("."), &e.message, file, prefix)
}

/// `prefix.key`, or `key` at the top level.
pub(super) fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{key}"),
    }
}

/// The error `message` about the value at `path` (its members joined by
/// `.`) of the table at `prefix` in `file`.
fn keyed(path: &str, message: &str, file: &str, prefix: &str) -> ConfigError {
    let (field, problem) = describe(message);
    let key = join(&join(prefix, path), field.unwrap_or(""));
    let key = if key.is_empty() {
        "(file)".to_string()
    } else {
        key
    };
    ConfigError::new(file, key, problem)
}

/// Rewrites serde's message: the failing field (when the message names one)
/// and the problem, without any value.
pub(super) fn describe(message: &str) -> (Option<&str>, String) {
    let message = message.lines().next().unwrap_or("");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let problem = match tail.strip_prefix(", expected ") {
            Some(expected) => format!("unknown key (expected {expected})"),
            None => "unknown key".to_string(),
        };
        return (Some(field), problem);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return (Some(field), "is required but missing".to_string());
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, "?"));
        return (
            None,
            format!(
                "wrong type: expected {}, found {}",
                expected_kind(expected),
                found_kind(found)
            ),
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let expected = rest.rsplit_once(", expected ").map_or("?", |(_, e)| e);
        return (
            None,
            format!("invalid value: expected {}", expected_kind(expected)),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let expected = rest.split_once("`, expected ").map_or("?", |(_, e)| e);
        return (None, format!("unknown value (expected {expected})"));
    }
    if message.starts_with("data did not match any variant") {
        // Only ports are untagged (a number or a string of digits).
        return (None, "wrong type: expected a port number".to_string());
    }
    // Our own messages (durations) and anything else serde says about a value.
    (None, message.to_string())
}

/// "a string", "u32", "struct OtpSettings", ... in operator words.
fn expected_kind(expected: &str) -> String {
    let e = expected.trim();
    let word = match e {
        "a string" | "a borrowed string" => "a string",
        "a boolean" => "a boolean (true or false)",
        "a sequence" => "an array",
        "a map" => "a table",
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" => {
            return format!("a whole number ({e})")
        }
        _ if e.starts_with("struct ") || e.starts_with("a map") => "a table",
        _ => return e.to_string(),
    };
    word.to_string()
}

/// The kind of a found value, dropping the value itself.
fn found_kind(found: &str) -> &'static str {
    let f = found.trim();
    match () {
        _ if f.starts_with("string") => "a string",
        _ if f.starts_with("integer") => "an integer",
        _ if f.starts_with("floating point") => "a number with a fraction",
        _ if f.starts_with("boolean") => "a boolean",
        _ if f.starts_with("map") => "a table",
        _ if f.starts_with("sequence") => "an array",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
        #[serde(default)]
        n: u32,
    }

    fn err(text: &str) -> ConfigError {
        from_table::<Outer>(text.parse().unwrap(), "f.toml", "pre").unwrap_err()
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let e = err("name = \"a\"\n[inner]\nflag = true\nextra = 1");
        assert_eq!(e.key, "pre.inner.extra");
        assert!(e.problem.starts_with("unknown key (expected"), "{e}");
    }

    #[test]
    fn wrong_type_never_quotes_the_value() {
        let e = err("name = \"a\"\n[inner]\nflag = \"whsec_topsecretvalue\"");
        assert_eq!(e.key, "pre.inner.flag");
        assert_eq!(
            e.problem,
            "wrong type: expected a boolean (true or false), found a string"
        );
        assert!(!e.to_string().contains("topsecret"));
        let e = err("name = 5\n[inner]\nflag = true");
        assert_eq!(
            e.to_string(),
            "f.toml: pre.name: wrong type: expected a string, found an integer"
        );
    }

    #[test]
    fn missing_and_out_of_range_values() {
        let e = err("name = \"a\"\n[inner]\nn = 1");
        assert_eq!(e.key, "pre.inner.flag");
        assert_eq!(e.problem, "is required but missing");
        let e = err("name = \"a\"\n[inner]\nflag = true\nn = -1");
        assert_eq!(e.key, "pre.inner.n");
        assert!(e.problem.contains("whole number"), "{e}");
    }
}
