//! The JSON form of a team or channel file (docs/operator-api.md#the-representation):
//! the same keys, tables as objects, durations as strings. A file's table
//! becomes its JSON form with every secret member shown as
//! `{"hmac": "<64 hex>"}`; a JSON body becomes a table for the one loader
//! that checks files at start-up, its problems named by RFC 6901 pointers.
pub use crate::error::Pointed as FormProblem;

/// The members that hold a secret wherever they are (a webhook's or an
/// audit webhook's `secret`, a provider's `client_secret`, a channel's
/// `auth_token`, `token`, `app_secret`, `verify_token`, `password`, a
/// network-verification provider's `private_key`, a wallet's `signing_key`).
pub const SECRET_MEMBERS: [&str; 9] = [
    "secret",
    "client_secret",
    "auth_token",
    "token",
    "app_secret",
    "verify_token",
    "password",
    "private_key",
    "signing_key",
];

/// Whether a member named `name` holds a secret.
pub fn is_secret_member(name: &str) -> bool {
    SECRET_MEMBERS.contains(&name)
}

/// A problem at `pointer`.
fn problem(pointer: &str, detail: impl Into<String>) -> FormProblem {
    FormProblem {
        pointer: pointer.to_string(),
        detail: detail.into(),
    }
}

/// The place a channel's secrets are bound to, sealed and read back: no
/// team id has a `~`, so no channel and team share one.
pub fn channel_place(name: &str) -> String {
    format!("~channel:{name}")
}

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

/// One reference token of an RFC 6901 pointer: `~` as `~0`, `/` as `~1`.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The pointer of a configuration error's key (`settings.otp.ttl`,
/// `api_keys[0].id`): `/settings/otp/ttl`, `/api_keys/0/id`; a key of no
/// member (`(file)`) is the body as a whole, `""`.
pub fn pointer_of_key(key: &str) -> String {
    if key.is_empty() || key.starts_with('(') {
        return String::new();
    }
    let mut pointer = String::new();
    for part in key.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        pointer.push('/');
        pointer.push_str(&escape(name));
        for index in indexes.split(['[', ']']).filter(|i| !i.is_empty()) {
            pointer.push('/');
            pointer.push_str(index);
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(p: &str, v: &str) -> String {
        format!("h({p},{})", v.len())
    }

    #[test]
    fn a_file_reads_back_with_its_secrets_as_hmacs_and_its_tables_as_objects() {
        let table: toml::Table = toml::from_str(
            "id = \"acme\"\n[[security_keys]]\nkid = \"k\"\nsecret = \"whsec_abc\"\nprimary = true\n\
             [settings.otp]\nttl = \"3m\"\nlength = 6\n[webhook]\nurl = \"https://x\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let form = json_form(&table, &shown);
        assert_eq!(
            form,
            json!({
                "id": "acme",
                "security_keys": [{"kid": "k", "secret": {"hmac": "h(/security_keys/0/secret,9)"}, "primary": true}],
                "settings": {"otp": {"ttl": "3m", "length": 6}},
                "webhook": {"url": "https://x", "secret": {"hmac": "h(/webhook/secret,1)"}},
            })
        );
    }

    #[test]
    fn every_shape_problem_of_a_body_is_named_by_its_pointer() {
        let body = json!({
            "id": "acme",
            "a/b": null,
            "m~n": {"x": null},
            "webhook": {"secret": "${HOOK}"},
            "oidc": {"client_secret": {"hmac": "00"}},
            "list": [1, null],
            "big": 18446744073709551615u64,
        });
        let problems = table_of_json(&body).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/a~1b",
                "/big",
                "/list/1",
                "/m~0n/x",
                "/oidc/client_secret",
                "/webhook/secret"
            ]
        );
        assert!(problems.iter().all(|p| !p.detail.contains("HOOK")));
        assert_eq!(table_of_json(&json!([1])).unwrap_err()[0].pointer, "");
    }

    #[test]
    fn a_body_becomes_the_table_a_file_would_write() {
        let body = json!({"id": "acme", "n": 3, "f": 1.5, "b": true, "t": {"s": ["a"]}});
        let table = table_of_json(&body).unwrap();
        let file: toml::Table =
            toml::from_str("id = \"acme\"\nn = 3\nf = 1.5\nb = true\n[t]\ns = [\"a\"]\n").unwrap();
        assert_eq!(table, file);
    }

    #[test]
    fn keys_become_rfc_6901_pointers() {
        assert_eq!(pointer_of_key("settings.otp.ttl"), "/settings/otp/ttl");
        assert_eq!(pointer_of_key("api_keys[0].id"), "/api_keys/0/id");
        assert_eq!(
            pointer_of_key("settings.otp.ladder[2]"),
            "/settings/otp/ladder/2"
        );
        assert_eq!(pointer_of_key("(file)"), "");
        assert_eq!(pointer_of_key("a~b"), "/a~0b");
        assert_eq!(escape("a/b~c"), "a~1b~0c");
    }
}
