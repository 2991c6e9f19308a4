//! The secrets of a team written through the operator API, in its JSON
//! form (docs/operator-api.md#secrets): sealed one by one where they stand
//! before the store keeps the form, opened again when it is read, and an
//! `{"hmac"}` object a write sends back replaced by the stored secret it
//! names. A secret member is named by the caller's `is_secret` (the
//! configuration's list); an array under such a member holds secrets too.
use secrecy::ExposeSecret;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::secrets_cipher::{OpenError, SecretsCipher};
use crate::error::Pointed;

/// Whether a member of that name holds a secret.
pub type IsSecret<'a> = &'a dyn Fn(&str) -> bool;

/// The place a sealed value is bound to: the team's id and the pointer.
fn place(team: &str, pointer: &str) -> String {
    format!("{team}{pointer}")
}

/// One RFC 6901 reference token.
fn token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// `value` with every secret (a string, or an object, under a secret
/// member) replaced by what `f` makes of it and its pointer.
fn map_secrets<E>(
    value: &Value,
    pointer: &str,
    secret: bool,
    is_secret: IsSecret<'_>,
    f: &mut dyn FnMut(&str, &Value) -> Result<Value, E>,
) -> Result<Value, E> {
    Ok(match value {
        Value::String(_) if secret => f(pointer, value)?,
        Value::Object(o) if secret && o.contains_key("hmac") => f(pointer, value)?,
        Value::Object(o) => {
            let mut out = serde_json::Map::new();
            for (name, v) in o {
                let at = format!("{pointer}/{}", token(name));
                out.insert(
                    name.clone(),
                    map_secrets(v, &at, is_secret(name), is_secret, f)?,
                );
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, v) in a.iter().enumerate() {
                out.push(map_secrets(
                    v,
                    &format!("{pointer}/{i}"),
                    secret,
                    is_secret,
                    f,
                )?);
            }
            Value::Array(out)
        }
        other => other.clone(),
    })
}

/// `body` (of team `team`) with each secret string sealed under the first
/// key, bound to its place.
pub fn seal(body: &Value, team: &str, is_secret: IsSecret<'_>, cipher: &SecretsCipher) -> Value {
    let mut f = |pointer: &str, v: &Value| -> Result<Value, ()> {
        Ok(match v.as_str() {
            Some(s) => Value::String(cipher.seal(&place(team, pointer), s)),
            None => v.clone(),
        })
    };
    map_secrets(body, "", false, is_secret, &mut f).unwrap_or_else(|()| body.clone())
}

/// A stored form's secrets opened: the body as written, or the pointer
/// of the first secret that does not open and why.
pub fn open(
    stored: &Value,
    team: &str,
    is_secret: IsSecret<'_>,
    cipher: &SecretsCipher,
) -> Result<Value, (String, OpenError)> {
    let mut f = |pointer: &str, v: &Value| {
        let sealed = v
            .as_str()
            .ok_or((pointer.to_string(), OpenError::Malformed))?;
        let opened = cipher
            .open(&place(team, pointer), sealed)
            .map_err(|e| (pointer.to_string(), e))?;
        Ok(Value::String(opened.expose_secret().to_string()))
    };
    map_secrets(stored, "", false, is_secret, &mut f)
}

/// Every secret string of an opened body.
pub fn secrets_of(body: &Value, is_secret: IsSecret<'_>) -> Vec<String> {
    let mut found = Vec::new();
    let mut f = |_: &str, v: &Value| -> Result<Value, ()> {
        found.extend(v.as_str().map(str::to_string));
        Ok(v.clone())
    };
    let _ = map_secrets(body, "", false, is_secret, &mut f);
    found
}

/// `body` with each `{"hmac": h}` under a secret member replaced by the
/// one of `kept` (the team's stored secrets) whose read-back is `h`; a
/// problem for each that names none (422: write the secret itself).
pub fn keep(
    body: &Value,
    is_secret: IsSecret<'_>,
    kept: &[String],
    read_back: &dyn Fn(&str) -> String,
) -> Result<Value, Vec<Pointed>> {
    let shown: Vec<(String, &String)> = kept.iter().map(|k| (read_back(k), k)).collect();
    let mut problems = Vec::new();
    let mut f = |pointer: &str, v: &Value| -> Result<Value, ()> {
        let Some(h) = v.get("hmac").and_then(Value::as_str) else {
            return Ok(v.clone());
        };
        let found = shown
            .iter()
            .find(|(s, _)| bool::from(s.as_bytes().ct_eq(h.as_bytes())));
        match (v.as_object().map(serde_json::Map::len), found) {
            (Some(1), Some((_, plain))) => Ok(Value::String((*plain).clone())),
            _ => {
                problems.push(Pointed {
                    pointer: pointer.to_string(),
                    detail: "names no secret kept here: write the secret itself".into(),
                });
                Ok(v.clone())
            }
        }
    };
    let kept_body =
        map_secrets(body, "", false, is_secret, &mut f).unwrap_or_else(|()| body.clone());
    match problems.is_empty() {
        true => Ok(kept_body),
        false => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cipher() -> SecretsCipher {
        SecretsCipher::new(&[("k1".to_string(), [3u8; 32])]).unwrap()
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
        let sealed = seal(&body(), "acme", &is_secret, &c);
        let text = sealed.to_string();
        assert!(
            !text.contains("whsec_plain") && !text.contains("whsec_one"),
            "{text}"
        );
        assert_eq!(sealed["login_url"], "https://l.example");
        assert!(sealed["webhook"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("cg1:k1:"));
        assert_eq!(open(&sealed, "acme", &is_secret, &c).unwrap(), body());
        // Bound to its team: another team's id does not open it.
        let err = open(&sealed, "globex", &is_secret, &c).unwrap_err();
        assert_eq!(err.1, OpenError::Tampered);
        let mut secrets = secrets_of(&body(), &is_secret);
        secrets.sort();
        assert_eq!(secrets, ["whsec_one", "whsec_plain"]);
    }

    #[test]
    fn an_hmac_sent_back_keeps_the_stored_secret_and_another_is_refused() {
        let c = cipher();
        let rb = |v: &str| c.read_back(v);
        let kept = vec!["whsec_plain".to_string()];
        let sent = json!({"webhook": {"secret": {"hmac": rb("whsec_plain")}}});
        let out = keep(&sent, &is_secret, &kept, &rb).unwrap();
        assert_eq!(out, json!({"webhook": {"secret": "whsec_plain"}}));
        let wrong = json!({"webhook": {"secret": {"hmac": rb("other")}}, "oidc": {"client_secret": {"hmac": "00"}}});
        let problems = keep(&wrong, &is_secret, &kept, &rb).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/oidc/client_secret", "/webhook/secret"]);
        // Not a secret member: left as it is.
        let plain = json!({"settings": {"hmac": "x"}});
        assert_eq!(keep(&plain, &is_secret, &kept, &rb).unwrap(), plain);
    }
}
