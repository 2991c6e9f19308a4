//! A JSON body read as the table a file would write, every problem of its
//! shape named by its pointer.
use super::pointer::{escape, problem, FormProblem};
use super::secret::is_secret_member;

/// The table a JSON body writes, or every problem of its shape: not an
/// object, a `null`, a number TOML cannot hold, and a secret member that
/// is not a plain value (`${…}` is not read in a body; an `{"hmac"}`
/// object names a stored value, and there is none to keep).
pub fn table_of_json(body: &serde_json::Value) -> Result<toml::Table, Vec<FormProblem>> {
    let mut problems = Vec::new();
    let serde_json::Value::Object(members) = body else {
        return Err(vec![problem("", "must be a JSON object")]);
    };
    let table = table_of(members, "", &mut problems);
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(problems)
    }
}

fn table_of(
    members: &serde_json::Map<String, serde_json::Value>,
    at: &str,
    problems: &mut Vec<FormProblem>,
) -> toml::Table {
    let mut table = toml::Table::new();
    for (name, value) in members {
        let pointer = format!("{at}/{}", escape(name));
        if let Some(v) = toml_value(name, value, &pointer, problems) {
            table.insert(name.clone(), v);
        }
    }
    table
}

fn toml_value(
    name: &str,
    value: &serde_json::Value,
    pointer: &str,
    problems: &mut Vec<FormProblem>,
) -> Option<toml::Value> {
    use serde_json::Value as J;
    let mut refuse = |detail: &str| {
        problems.push(problem(pointer, detail));
        None
    };
    match value {
        J::Null => refuse("null is not a value: leave the member out"),
        J::String(s) if is_secret_member(name) && s.starts_with("${") => {
            refuse("${…} is not read in a body: write the secret itself")
        }
        J::Object(o) if is_secret_member(name) && o.contains_key("hmac") => {
            refuse("names a stored secret, and there is none here to keep: write the secret itself")
        }
        J::String(s) => Some(toml::Value::String(s.clone())),
        J::Bool(b) => Some(toml::Value::Boolean(*b)),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(toml::Value::Integer(i)),
            (None, Some(f)) if n.is_f64() => Some(toml::Value::Float(f)),
            _ => refuse("is out of range"),
        },
        J::Array(a) => {
            let mut items = Vec::with_capacity(a.len());
            for (i, item) in a.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                if let Some(v) = toml_value(name, item, &at, problems) {
                    items.push(v);
                }
            }
            Some(toml::Value::Array(items))
        }
        J::Object(o) => Some(toml::Value::Table(table_of(o, pointer, problems))),
    }
}
