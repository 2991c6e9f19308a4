//! The secrets of a team written through the operator API, in its JSON
//! form (docs/operator-api.md#secrets): sealed one by one where they stand,
//! each with its salt, before the store keeps the form, opened again when
//! it is read, and an `{"hmac"}` object a write sends back replaced by the
//! secret stored at that very pointer, when it is that secret's read-back
//! (docs/decisions/0435-a-secret-reads-back-where-it-stands.md). A secret
//! member is named by the caller's `is_secret` (the configuration's list);
//! an array under such a member holds secrets too.
use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::secrets_cipher::{OpenError, Salt, Salts, SecretsCipher};
use crate::error::Pointed;

/// Whether a member of that name holds a secret.
pub type IsSecret<'a> = &'a dyn Fn(&str) -> bool;

/// Where the secret at a pointer of a body of a place goes, as the body's
/// clear members say (`config::secret_goes_to`): what its sealed value is
/// bound to beside its place.
pub type GoesTo = fn(&str, &Value, &str) -> String;

/// Where one secret of a section goes: the members, beside it, that
/// decide where it is sent (a `token_endpoint`, a `base_url`, an smtp
/// `host` and `port`). Each channel kind and provider declares one per
/// secret it takes (docs/operator-api.md#secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goes {
    /// The secret member.
    pub secret: &'static str,
    /// The members that decide where it is sent; none for a secret that
    /// is never sent (one that checks what comes in).
    pub to: &'static [&'static str],
}

/// The place a sealed value is bound to: the team's id and the pointer.
fn place(team: &str, pointer: &str) -> String {
    format!("{team}{pointer}")
}

/// One RFC 6901 reference token.
fn token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// What a walk over a body's secrets makes of it: a copy with each
/// secret replaced (`Value`), or nothing (`()`) when the secrets are only
/// looked at, so that one walk finds them for both.
trait Walked: Sized {
    /// What it makes of a value that is no secret and holds none.
    fn other(value: &Value) -> Self;
    /// An object, before its members.
    fn object() -> Self;
    /// An array of `len` items, before them.
    fn array(len: usize) -> Self;
    /// The member `name` added to an object.
    fn member(&mut self, name: &str, made: Self);
    /// An item added to an array.
    fn item(&mut self, made: Self);
}

impl Walked for Value {
    fn other(value: &Value) -> Self {
        value.clone()
    }
    fn object() -> Self {
        Value::Object(serde_json::Map::new())
    }
    fn array(len: usize) -> Self {
        Value::Array(Vec::with_capacity(len))
    }
    fn member(&mut self, name: &str, made: Self) {
        if let Value::Object(o) = self {
            o.insert(name.to_string(), made);
        }
    }
    fn item(&mut self, made: Self) {
        if let Value::Array(a) = self {
            a.push(made);
        }
    }
}

impl Walked for () {
    fn other(_: &Value) -> Self {}
    fn object() -> Self {}
    fn array(_: usize) -> Self {}
    fn member(&mut self, _: &str, (): Self) {}
    fn item(&mut self, (): Self) {}
}

/// The walk over `value`'s secrets (a string, or an object holding
/// `hmac`, under a secret member; an array under one holds secrets too):
/// what `f` makes of each and its pointer, in a copy of the rest
/// ([`map_secrets`]) or in nothing ([`each_secret`]).
fn walk<T: Walked, E>(
    value: &Value,
    pointer: &str,
    secret: bool,
    is_secret: IsSecret<'_>,
    f: &mut dyn FnMut(&str, &Value) -> Result<T, E>,
) -> Result<T, E> {
    Ok(match value {
        Value::String(_) if secret => f(pointer, value)?,
        Value::Object(o) if secret && o.contains_key("hmac") => f(pointer, value)?,
        Value::Object(o) => {
            let mut out = T::object();
            for (name, v) in o {
                let at = format!("{pointer}/{}", token(name));
                out.member(name, walk(v, &at, is_secret(name), is_secret, f)?);
            }
            out
        }
        Value::Array(a) => {
            let mut out = T::array(a.len());
            for (i, v) in a.iter().enumerate() {
                out.item(walk(v, &format!("{pointer}/{i}"), secret, is_secret, f)?);
            }
            out
        }
        other => T::other(other),
    })
}

/// `value` with every secret replaced by what `f` makes of it and its
/// pointer.
fn map_secrets<E>(
    value: &Value,
    pointer: &str,
    secret: bool,
    is_secret: IsSecret<'_>,
    f: &mut dyn FnMut(&str, &Value) -> Result<Value, E>,
) -> Result<Value, E> {
    walk(value, pointer, secret, is_secret, f)
}

/// Calls `f` with every secret of `value` and its pointer, copying
/// nothing.
fn each_secret(
    value: &Value,
    pointer: &str,
    secret: bool,
    is_secret: IsSecret<'_>,
    f: &mut dyn FnMut(&str, &Value),
) {
    let mut look = |pointer: &str, v: &Value| -> Result<(), std::convert::Infallible> {
        f(pointer, v);
        Ok(())
    };
    let Ok(()) = walk(value, pointer, secret, is_secret, &mut look);
}

/// `body` (of team `team`) with each secret string sealed under the first
/// key, bound to its place and to where it goes (`to`), its salt the one
/// `salts` has at its pointer (a fresh one where it has none).
pub fn seal(
    body: &Value,
    team: &str,
    (is_secret, to): (IsSecret<'_>, GoesTo),
    cipher: &SecretsCipher,
    salts: &Salts,
) -> Value {
    let mut f = |pointer: &str, v: &Value| -> Result<Value, ()> {
        Ok(match v.as_str() {
            Some(s) => {
                let salt = salts.get(pointer).copied().unwrap_or_else(Salt::fresh);
                let goes = to(team, body, pointer);
                Value::String(cipher.seal(&place(team, pointer), &goes, s, salt))
            }
            None => v.clone(),
        })
    };
    map_secrets(body, "", false, is_secret, &mut f).unwrap_or_else(|()| body.clone())
}

/// The salts of a stored (sealed) form's secrets, by pointer: a secret
/// sealed before salts has none.
pub fn salts_of(stored: &Value, is_secret: IsSecret<'_>) -> Salts {
    let mut found = Salts::new();
    let mut f = |pointer: &str, v: &Value| {
        if let Some(salt) = v.as_str().and_then(SecretsCipher::salt_of) {
            found.insert(pointer.to_string(), salt);
        }
    };
    each_secret(stored, "", false, is_secret, &mut f);
    found
}

/// A stored form's secrets opened: the body as written, or the pointer
/// of the first secret that does not open and why.
pub fn open(
    stored: &Value,
    team: &str,
    (is_secret, to): (IsSecret<'_>, GoesTo),
    cipher: &SecretsCipher,
) -> Result<Value, (String, OpenError)> {
    let mut f = |pointer: &str, v: &Value| {
        let sealed = v
            .as_str()
            .ok_or((pointer.to_string(), OpenError::Malformed))?;
        let opened = cipher
            .open(&place(team, pointer), &to(team, stored, pointer), sealed)
            .map_err(|e| (pointer.to_string(), e))?;
        Ok(Value::String(opened.expose_secret().to_string()))
    };
    map_secrets(stored, "", false, is_secret, &mut f)
}

/// A stored form's secrets opened where they open, each that does not
/// (sealed for another place, under another key) `null`; with the
/// pointer of the first that does not and why.
pub fn open_each(
    stored: &Value,
    team: &str,
    (is_secret, to): (IsSecret<'_>, GoesTo),
    cipher: &SecretsCipher,
) -> (Value, Option<(String, OpenError)>) {
    let mut first = None;
    let mut f = |pointer: &str, v: &Value| -> Result<Value, ()> {
        let opened = match v.as_str() {
            Some(sealed) => cipher.open(&place(team, pointer), &to(team, stored, pointer), sealed),
            None => Err(OpenError::Malformed),
        };
        Ok(match opened {
            Ok(opened) => Value::String(opened.expose_secret().to_string()),
            Err(e) => {
                first.get_or_insert((pointer.to_string(), e));
                Value::Null
            }
        })
    };
    let opened = map_secrets(stored, "", false, is_secret, &mut f).unwrap_or(Value::Null);
    (opened, first)
}

/// The pointer of the first secret of a stored form sealed before secrets
/// were bound to where they go: an import refuses it
/// (docs/decisions/0550-a-sealed-secret-is-bound-to-its-destination.md).
pub fn first_unbound(stored: &Value, is_secret: IsSecret<'_>) -> Option<String> {
    let mut first = None;
    let mut f = |pointer: &str, v: &Value| {
        if !v.as_str().is_some_and(SecretsCipher::bound) {
            first.get_or_insert_with(|| pointer.to_string());
        }
    };
    each_secret(stored, "", false, is_secret, &mut f);
    first
}

/// A stored form (of `team`) with each secret sealed before secrets were
/// bound to where they go, with a salt, sealed again bound to where it
/// goes, its salt kept (so it reads back, and the `ETag` stays, as
/// before); one that does not open here, or has no salt, is left as it is
/// (an import refuses it: [`first_unbound`]).
pub fn rebind(
    stored: &Value,
    team: &str,
    (is_secret, to): (IsSecret<'_>, GoesTo),
    cipher: &SecretsCipher,
) -> Value {
    let mut f = |pointer: &str, v: &Value| -> Result<Value, ()> {
        let Some(sealed) = v.as_str().filter(|s| !SecretsCipher::bound(s)) else {
            return Ok(v.clone());
        };
        let at = place(team, pointer);
        let (Some(salt), Ok(plain)) =
            (SecretsCipher::salt_of(sealed), cipher.open(&at, "", sealed))
        else {
            return Ok(v.clone());
        };
        let goes = to(team, stored, pointer);
        Ok(Value::String(cipher.seal(
            &at,
            &goes,
            plain.expose_secret(),
            salt,
        )))
    };
    map_secrets(stored, "", false, is_secret, &mut f).unwrap_or_else(|()| stored.clone())
}

/// Every secret string of an opened body, by pointer.
pub fn secrets_at(body: &Value, is_secret: IsSecret<'_>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut f = |pointer: &str, v: &Value| {
        if let Some(s) = v.as_str() {
            found.insert(pointer.to_string(), s.to_string());
        }
    };
    each_secret(body, "", false, is_secret, &mut f);
    found
}

/// What a read shows of the secret `value` at a pointer, with the salt
/// kept beside it there.
pub type ReadBack<'a> = &'a dyn Fn(&str, Option<&Salt>, &str) -> String;

/// What a team (or channel) keeps: its opened secrets and their salts, by
/// pointer.
pub struct Kept<'a> {
    pub secrets: &'a BTreeMap<String, String>,
    pub salts: &'a Salts,
}

/// `body` with each `{"hmac": h}` under a secret member replaced by the
/// secret `kept` holds at that same pointer, when `h` is its read-back
/// there; a problem for any other (422: write the secret itself), so
/// that no write moves a stored secret. With the salts of the body's
/// secrets: a secret kept keeps its salt (one sealed before salts gets a
/// fresh one), a secret written gets a fresh one, so that what a write
/// answers of a value it names is never the read-back of a stored one.
pub fn keep(
    body: &Value,
    is_secret: IsSecret<'_>,
    kept: &Kept<'_>,
    read_back: ReadBack<'_>,
) -> Result<(Value, Salts), Vec<Pointed>> {
    let mut problems = Vec::new();
    let mut salts = Salts::new();
    let mut f = |pointer: &str, v: &Value| -> Result<Value, ()> {
        let Some(h) = v.get("hmac").and_then(Value::as_str) else {
            salts.insert(pointer.to_string(), Salt::fresh());
            return Ok(v.clone());
        };
        let salt = kept.salts.get(pointer);
        let found = (kept.secrets.get(pointer))
            .filter(|s| bool::from(read_back(pointer, salt, s).as_bytes().ct_eq(h.as_bytes())));
        match (v.as_object().map(serde_json::Map::len), found) {
            (Some(1), Some(plain)) => {
                salts.insert(
                    pointer.to_string(),
                    salt.copied().unwrap_or_else(Salt::fresh),
                );
                Ok(Value::String(plain.clone()))
            }
            _ => {
                problems.push(Pointed {
                    pointer: pointer.to_string(),
                    detail: "is not the read-back of the secret kept at this member: write the secret itself".into(),
                });
                Ok(v.clone())
            }
        }
    };
    let kept_body =
        map_secrets(body, "", false, is_secret, &mut f).unwrap_or_else(|()| body.clone());
    match problems.is_empty() {
        true => Ok((kept_body, salts)),
        false => Err(problems),
    }
}

/// The salts of `edited`, a body the gateway changed itself from one
/// that `kept` held (a key added or removed): a secret still at its
/// pointer with its value keeps its salt, any other gets a fresh one.
/// Never for a body an operator sent ([`keep`] is): a value it chose
/// that kept a salt would read back as the stored one.
pub fn salts_of_edit(edited: &Value, is_secret: IsSecret<'_>, kept: &Kept<'_>) -> Salts {
    let now = secrets_at(edited, is_secret);
    let salt_at = |pointer: &String, value: &String| {
        let same = (kept.secrets.get(pointer)).is_some_and(|was| was == value);
        match (same, kept.salts.get(pointer)) {
            (true, Some(salt)) => *salt,
            _ => Salt::fresh(),
        }
    };
    now.iter()
        .map(|(p, v)| (p.clone(), salt_at(p, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cipher() -> SecretsCipher {
        SecretsCipher::new(&[("k1".to_string(), [3u8; 32])]).unwrap()
    }

    /// The webhook's secret goes to its `url`; the others nowhere.
    fn to(_: &str, body: &Value, pointer: &str) -> String {
        match pointer {
            "/webhook/secret" => body["webhook"]["url"].to_string(),
            _ => String::new(),
        }
    }

    fn is_secret(name: &str) -> bool {
        matches!(name, "secret" | "client_secret")
    }

    fn body() -> Value {
        json!({"id": "acme", "webhook": {"url": "https://x.example", "secret": "whsec_plain"},
               "security_keys": [{"kid": "a", "secret": "whsec_one"}], "login_url": "https://l.example"})
    }

    #[test]
    fn a_sealed_body_hides_every_secret_and_opens_to_itself() {
        let c = cipher();
        let salt = Salt::fresh();
        let salts = Salts::from([("/webhook/secret".to_string(), salt)]);
        let sealed = seal(&body(), "acme", (&is_secret, to), &c, &salts);
        let text = sealed.to_string();
        assert!(
            !text.contains("whsec_plain") && !text.contains("whsec_one"),
            "{text}"
        );
        assert_eq!(sealed["login_url"], "https://l.example");
        assert!(sealed["webhook"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("cg3:k1:"));
        assert_eq!(open(&sealed, "acme", (&is_secret, to), &c).unwrap(), body());
        assert_eq!(first_unbound(&sealed, &is_secret), None);
        // Its destination edited in clear: the secret bound to it does not
        // open, the others do.
        let mut elsewhere = sealed.clone();
        elsewhere["webhook"]["url"] = json!("https://evil.example");
        let err = open(&elsewhere, "acme", (&is_secret, to), &c).unwrap_err();
        assert_eq!(err, ("/webhook/secret".to_string(), OpenError::Tampered));
        let (each, first) = open_each(&elsewhere, "acme", (&is_secret, to), &c);
        assert_eq!(first.map(|f| f.0).as_deref(), Some("/webhook/secret"));
        assert_eq!(each["security_keys"][0]["secret"], "whsec_one");
        // Each secret has a salt: the one given, or a fresh one.
        let kept = salts_of(&sealed, &is_secret);
        assert_eq!(kept.get("/webhook/secret"), Some(&salt));
        assert!(kept.contains_key("/security_keys/0/secret"));
        // Bound to its team: another team's id does not open it.
        let err = open(&sealed, "globex", (&is_secret, to), &c).unwrap_err();
        assert_eq!(err.1, OpenError::Tampered);
        let secrets = secrets_at(&body(), &is_secret);
        assert_eq!(secrets["/webhook/secret"], "whsec_plain");
        assert_eq!(secrets["/security_keys/0/secret"], "whsec_one");
    }

    #[test]
    fn an_hmac_sent_back_keeps_only_the_secret_stored_at_its_pointer() {
        let c = cipher();
        let rb = |p: &str, s: Option<&Salt>, v: &str| c.read_back("acme", p, s, v);
        let secrets = secrets_at(&body(), &is_secret);
        let salts = Salts::from([("/webhook/secret".to_string(), Salt::fresh())]);
        let kept = Kept {
            secrets: &secrets,
            salts: &salts,
        };
        let hook = rb(
            "/webhook/secret",
            salts.get("/webhook/secret"),
            "whsec_plain",
        );
        let one = rb("/security_keys/0/secret", None, "whsec_one");
        let sent = json!({"webhook": {"secret": {"hmac": hook}},
                          "security_keys": [{"secret": {"hmac": one}}],
                          "oidc": {"client_secret": "new"}});
        let (out, out_salts) = keep(&sent, &is_secret, &kept, &rb).unwrap();
        assert_eq!(out["webhook"]["secret"], "whsec_plain");
        assert_eq!(out["security_keys"][0]["secret"], "whsec_one");
        assert_eq!(out_salts["/webhook/secret"], salts["/webhook/secret"]);
        // Sealed before salts, kept: a fresh salt from now on.
        assert!(out_salts.contains_key("/security_keys/0/secret"));
        assert!(out_salts.contains_key("/oidc/client_secret"));
        // Moved to another member, or sent back where another stands: 422.
        let moved = json!({"oidc": {"client_secret": {"hmac": hook}},
                           "webhook": {"secret": {"hmac": one}},
                           "security_keys": [{"secret": {"hmac": "00"}}]});
        let problems = keep(&moved, &is_secret, &kept, &rb).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/oidc/client_secret",
                "/security_keys/0/secret",
                "/webhook/secret"
            ]
        );
        // Not a secret member: left as it is.
        let plain = json!({"settings": {"hmac": "x"}});
        assert_eq!(keep(&plain, &is_secret, &kept, &rb).unwrap().0, plain);
    }

    #[test]
    fn a_copy_and_a_look_find_the_same_secrets_in_the_same_order() {
        let body = json!({"b": {"secret": ["one", {"hmac": "h"}, 3]},
                          "a/~": {"client_secret": {"hmac": "x", "more": 1}},
                          "secret": {"nested": "not one", "secret": "two"}, "n": 1});
        let mut looked = Vec::new();
        each_secret(&body, "", false, &is_secret, &mut |p, v| {
            looked.push((p.to_string(), v.clone()));
        });
        let mut copied = Vec::new();
        let copy = map_secrets(&body, "", false, &is_secret, &mut |p, v| {
            copied.push((p.to_string(), v.clone()));
            Ok::<_, ()>(json!("*"))
        })
        .unwrap();
        assert_eq!(looked, copied);
        let pointers: Vec<&str> = looked.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/a~1~0/client_secret",
                "/b/secret/0",
                "/b/secret/1",
                "/secret/secret"
            ]
        );
        assert_eq!(
            copy,
            json!({"b": {"secret": ["*", "*", 3]}, "a/~": {"client_secret": "*"},
                   "secret": {"nested": "not one", "secret": "*"}, "n": 1})
        );
    }

    #[test]
    fn an_edit_keeps_the_salt_of_a_secret_left_where_it_was() {
        let secrets = secrets_at(&body(), &is_secret);
        let (a, b) = (Salt::fresh(), Salt::fresh());
        let salts = Salts::from([
            ("/webhook/secret".to_string(), a),
            ("/security_keys/0/secret".to_string(), b),
        ]);
        let kept = Kept {
            secrets: &secrets,
            salts: &salts,
        };
        let mut edited = body();
        edited["security_keys"] =
            json!([{"kid": "b", "secret": "whsec_two"}, {"kid": "a", "secret": "whsec_one"}]);
        let out = salts_of_edit(&edited, &is_secret, &kept);
        assert_eq!(out["/webhook/secret"], a);
        assert_ne!(out["/security_keys/0/secret"], b);
        assert_ne!(out["/security_keys/1/secret"], b);
        assert_eq!(out.len(), 3);
    }
}
