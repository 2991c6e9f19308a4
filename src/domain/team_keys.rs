//! A team's keys changed one at a time, on the JSON form of its file
//! (docs/operator-api.md#keys): an API key added or removed, a security
//! key added (made primary or not) or removed. Plain functions over the
//! body as the store keeps it opened; the caller checks the team that
//! results as any write's, and seals it.
use serde_json::{json, Map, Value};

/// The roles a team's API key may have.
pub const ROLES: [&str; 4] = ["bot", "agent", "admin", "auditor"];

/// An API key to add: its id, role and the hex SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyEntry {
    pub id: String,
    pub role: String,
    pub sha256: String,
}

/// Why a key change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The id (or the key itself) is the team's already.
    Exists,
    /// The team has no key of that id.
    NotFound,
    /// The primary security key, or the team's last one.
    InUse,
}

/// What an addition does.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// The body with the key.
    To(Value),
    /// The very same key is there already: nothing changes.
    AlreadyThere,
}

/// The entries of array member `name` of `body` (none: empty).
fn entries<'a>(body: &'a Value, name: &str) -> &'a [Value] {
    body.get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The string member `name` of `entry`.
fn text<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry.get(name).and_then(Value::as_str)
}

/// `body` with array member `name` set to `list`.
fn with_list(body: &Value, name: &str, list: Vec<Value>) -> Value {
    let mut members = body.as_object().cloned().unwrap_or_else(Map::new);
    members.insert(name.to_string(), Value::Array(list));
    Value::Object(members)
}

/// `body` with API key `key` added: refused when its id, or its hash
/// under another id or role, is the team's already.
pub fn add_api_key(body: &Value, key: &ApiKeyEntry) -> Result<Added, KeyRefusal> {
    let list = entries(body, "api_keys");
    let same_hash =
        |e: &Value| text(e, "sha256").is_some_and(|h| h.eq_ignore_ascii_case(&key.sha256));
    if let Some(there) = list.iter().find(|e| text(e, "id") == Some(&key.id)) {
        let same = text(there, "role") == Some(&key.role) && same_hash(there);
        return match same {
            true => Ok(Added::AlreadyThere),
            false => Err(KeyRefusal::Exists),
        };
    }
    if list.iter().any(same_hash) {
        return Err(KeyRefusal::Exists);
    }
    let mut list = list.to_vec();
    list.push(json!({"id": key.id, "role": key.role, "sha256": key.sha256.to_ascii_lowercase()}));
    Ok(Added::To(with_list(body, "api_keys", list)))
}

/// `body` without API key `id`.
pub fn remove_api_key(body: &Value, id: &str) -> Result<Value, KeyRefusal> {
    let list = entries(body, "api_keys");
    let kept: Vec<Value> = (list.iter())
        .filter(|e| text(e, "id") != Some(id))
        .cloned()
        .collect();
    match kept.len() == list.len() {
        true => Err(KeyRefusal::NotFound),
        false => Ok(with_list(body, "api_keys", kept)),
    }
}

/// `body` with security key `kid` of `secret` added; `primary`: it signs
/// from now on, the others no longer do.
pub fn add_security_key(
    body: &Value,
    kid: &str,
    secret: &str,
    primary: bool,
) -> Result<Value, KeyRefusal> {
    let list = entries(body, "security_keys");
    if list.iter().any(|e| text(e, "kid") == Some(kid)) {
        return Err(KeyRefusal::Exists);
    }
    let mut list: Vec<Value> = list.to_vec();
    if primary {
        for entry in &mut list {
            if let Value::Object(members) = entry {
                members.insert("primary".into(), Value::Bool(false));
            }
        }
    }
    list.push(json!({"kid": kid, "secret": secret, "primary": primary}));
    Ok(with_list(body, "security_keys", list))
}

/// `body` without security key `kid`: refused for the primary key and
/// for the last one.
pub fn remove_security_key(body: &Value, kid: &str) -> Result<Value, KeyRefusal> {
    let list = entries(body, "security_keys");
    let at = (list.iter().position(|e| text(e, "kid") == Some(kid))).ok_or(KeyRefusal::NotFound)?;
    let primary = list[at].get("primary").and_then(Value::as_bool) == Some(true);
    if primary || list.len() == 1 {
        return Err(KeyRefusal::InUse);
    }
    let mut list = list.to_vec();
    list.remove(at);
    Ok(with_list(body, "security_keys", list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({
            "id": "newco",
            "api_keys": [{"id": "bot", "role": "bot", "sha256": "aa".repeat(32)}],
            "security_keys": [{"kid": "k1", "secret": "whsec_x", "primary": true}],
        })
    }

    fn key(id: &str, role: &str, sha: &str) -> ApiKeyEntry {
        ApiKeyEntry {
            id: id.into(),
            role: role.into(),
            sha256: sha.into(),
        }
    }

    #[test]
    fn an_api_key_is_added_once_and_the_same_key_again_changes_nothing() {
        let b = body();
        let added = add_api_key(&b, &key("agent", "agent", &"BB".repeat(32))).unwrap();
        let Added::To(after) = added else {
            panic!("not added")
        };
        assert_eq!(after["api_keys"][1]["sha256"], "bb".repeat(32));
        assert_eq!(after["id"], "newco", "the rest is kept");
        let again = key("agent", "agent", &"bb".repeat(32));
        assert_eq!(add_api_key(&after, &again), Ok(Added::AlreadyThere));
        let other_role = key("agent", "admin", &"bb".repeat(32));
        assert_eq!(add_api_key(&after, &other_role), Err(KeyRefusal::Exists));
        let other_hash = key("agent", "agent", &"cc".repeat(32));
        assert_eq!(add_api_key(&after, &other_hash), Err(KeyRefusal::Exists));
        let same_key_new_id = key("two", "agent", &"AA".repeat(32));
        assert_eq!(
            add_api_key(&after, &same_key_new_id),
            Err(KeyRefusal::Exists)
        );
    }

    #[test]
    fn an_api_key_is_removed_by_id() {
        let after = remove_api_key(&body(), "bot").unwrap();
        assert_eq!(after["api_keys"], json!([]));
        assert_eq!(remove_api_key(&after, "bot"), Err(KeyRefusal::NotFound));
        assert_eq!(remove_api_key(&json!({}), "bot"), Err(KeyRefusal::NotFound));
    }

    #[test]
    fn a_new_primary_security_key_takes_over_and_the_primary_stays() {
        let b = body();
        assert_eq!(
            add_security_key(&b, "k1", "whsec_y", false),
            Err(KeyRefusal::Exists)
        );
        let second = add_security_key(&b, "k2", "whsec_y", false).unwrap();
        assert_eq!(second["security_keys"][0]["primary"], true);
        assert_eq!(second["security_keys"][1]["primary"], false);
        let third = add_security_key(&second, "k3", "whsec_z", true).unwrap();
        let primaries: Vec<bool> = (third["security_keys"].as_array().unwrap().iter())
            .map(|k| k["primary"].as_bool().unwrap())
            .collect();
        assert_eq!(primaries, [false, false, true]);
        assert_eq!(
            remove_security_key(&third, "k3"),
            Err(KeyRefusal::InUse),
            "the primary"
        );
        let fewer = remove_security_key(&third, "k1").unwrap();
        assert_eq!(fewer["security_keys"].as_array().unwrap().len(), 2);
        assert_eq!(remove_security_key(&fewer, "k1"), Err(KeyRefusal::NotFound));
        let last = json!({"security_keys": [{"kid": "k", "secret": "s"}]});
        assert_eq!(
            remove_security_key(&last, "k"),
            Err(KeyRefusal::InUse),
            "the last key"
        );
    }
}
