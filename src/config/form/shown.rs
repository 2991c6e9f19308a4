//! A file's table shown as its form: tables as objects, every secret
//! member's string as `{"hmac": …}` (or, for the print a digest is made
//! of, as what a read shows of it).
use super::pointer::escape;
use super::secret::is_secret_member;

/// What a read shows of the secret `value` at `pointer`.
pub type ReadBack<'a> = &'a dyn Fn(&str, &str) -> String;

/// `table` as JSON, each string of a secret member replaced by
/// `{"hmac": read_back(pointer, value)}`.
pub fn json_form(table: &toml::Table, read_back: ReadBack<'_>) -> serde_json::Value {
    json_table(table, "", read_back)
}

fn json_table(table: &toml::Table, at: &str, read_back: ReadBack<'_>) -> serde_json::Value {
    let object = table
        .iter()
        .map(|(k, v)| {
            let pointer = format!("{at}/{}", escape(k));
            (k.clone(), json_value(k, v, &pointer, read_back))
        })
        .collect();
    serde_json::Value::Object(object)
}

fn json_value(
    name: &str,
    value: &toml::Value,
    pointer: &str,
    read_back: ReadBack<'_>,
) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) if is_secret_member(name) => {
            serde_json::json!({ "hmac": read_back(pointer, s) })
        }
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        // An array's members are named by their array's name: the strings
        // of a `secret = [..]` are secrets too.
        toml::Value::Array(a) => J::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| json_value(name, v, &format!("{pointer}/{i}"), read_back))
                .collect(),
        ),
        toml::Value::Table(t) => json_table(t, pointer, read_back),
    }
}

/// `table` with each string of a secret member replaced by
/// `read_back(pointer, value)`: what the digest of a team or channel is
/// made of, so that it holds no bare hash of a secret and moves when a
/// secret is written anew (docs/decisions/0435-a-secret-reads-back-where-it-stands.md).
pub fn secrets_read_back(table: &toml::Table, read_back: ReadBack<'_>) -> toml::Table {
    secrets_table(table, "", read_back)
}

fn secrets_table(table: &toml::Table, at: &str, read_back: ReadBack<'_>) -> toml::Table {
    let read = |(k, v): (&String, &toml::Value)| {
        let pointer = format!("{at}/{}", escape(k));
        (k.clone(), secret_value(k, v, &pointer, read_back))
    };
    table.iter().map(read).collect()
}

fn secret_value(
    name: &str,
    value: &toml::Value,
    pointer: &str,
    read_back: ReadBack<'_>,
) -> toml::Value {
    match value {
        toml::Value::String(s) if is_secret_member(name) => {
            toml::Value::String(read_back(pointer, s))
        }
        toml::Value::Array(a) => toml::Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| secret_value(name, v, &format!("{pointer}/{i}"), read_back))
                .collect(),
        ),
        toml::Value::Table(t) => toml::Value::Table(secrets_table(t, pointer, read_back)),
        other => other.clone(),
    }
}
