//! The logout token of OpenID Connect Back-Channel Logout 1.0, as plain
//! functions of `now`: after its signature and the checks it shares with an
//! ID token (`id_token::check_audience`), the ones the logout
//! specification adds (docs/api.md#revocation-from-the-identity-provider).
use serde_json::{Map, Value};

use super::OidcError;
use crate::domain::numeric_date::NumericDate;
use crate::time::Timestamp;

/// The member of `events` that makes a token a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The oldest `iat` accepted, in seconds before now.
pub const MAX_AGE_SECS: i64 = 300;

/// How far ahead of now an `iat` may be (clock skew), in seconds.
pub const AHEAD_SECS: i64 = super::id_token::LEEWAY_SECS;

/// Longest `jti` kept; a longer one is refused.
pub const MAX_JTI: usize = 256;

/// Whom a valid logout token logs out: a provider session (`sid`), a
/// provider subject (`sub`), or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    /// Remembered, so that the token logs out only once.
    pub jti: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
}

fn invalid(reason: &'static str) -> OidcError {
    OidcError::InvalidIdToken(reason)
}

/// The logout specification's checks (section 2.6, steps 4 to 6): `iat`
/// within [`MAX_AGE_SECS`] back and [`AHEAD_SECS`] ahead, an `exp` (when
/// sent) not passed, a `jti`, the `events` member [`EVENT`] holding an
/// object, `sub` or `sid`, and no `nonce` (an ID token is never a logout
/// token).
pub fn check_logout_claims(
    claims: &Map<String, Value>,
    now: Timestamp,
) -> Result<Logout, OidcError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let now_s = now.unix_seconds();
    // A time with a fraction never widens a check (docs/api.md#conventions):
    // `iat` ahead rounded up, its age and `exp` rounded down.
    let iat = claims
        .get("iat")
        .and_then(NumericDate::of)
        .ok_or(invalid("no iat"))?;
    if iat.ceil > now_s.saturating_add(AHEAD_SECS) {
        return Err(invalid("iat in the future"));
    }
    if iat.floor < now_s.saturating_sub(MAX_AGE_SECS) {
        return Err(invalid("iat older than 5 minutes"));
    }
    if let Some(exp) = claims.get("exp") {
        let exp = NumericDate::of(exp)
            .ok_or(invalid("exp not a number"))?
            .floor;
        if now_s >= exp.saturating_add(super::id_token::LEEWAY_SECS) {
            return Err(invalid("expired"));
        }
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(invalid("no jti"))?;
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(EVENT));
    if !matches!(event, Some(Value::Object(_))) {
        return Err(invalid("no back-channel logout event"));
    }
    if claims.contains_key("nonce") {
        return Err(invalid("a nonce: not a logout token"));
    }
    let named = |name: &'static str| match claims.get(name) {
        None => Ok(None),
        Some(Value::String(v)) if !v.is_empty() => Ok(Some(v.clone())),
        Some(_) => Err(invalid("sub or sid not a string")),
    };
    let (sub, sid) = (named("sub")?, named("sid")?);
    if sub.is_none() && sid.is_none() {
        return Err(invalid("neither sub nor sid"));
    }
    Ok(Logout {
        jti: jti.to_string(),
        sub,
        sid,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_000_000;

    fn check(change: Value) -> Result<Logout, OidcError> {
        let mut c = json!({"iss": "https://id.example", "aud": "chatgate", "iat": NOW - 10,
            "jti": "j-1", "sub": "cust-42", "sid": "s-1", "events": {EVENT: {}}});
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        check_logout_claims(c.as_object().unwrap(), Timestamp::from_unix_seconds(NOW))
    }

    #[test]
    fn a_valid_token_names_its_session_and_subject() {
        let l = check(json!({})).unwrap();
        assert_eq!(
            (l.jti.as_str(), l.sub.as_deref(), l.sid.as_deref()),
            ("j-1", Some("cust-42"), Some("s-1"))
        );
        assert!(check(json!({"sub": null})).is_ok(), "sid alone");
        assert!(check(json!({"sid": null})).is_ok(), "sub alone");
        assert!(check(json!({"iat": NOW - 300})).is_ok(), "5 minutes old");
        assert!(check(json!({"iat": NOW + 60})).is_ok(), "60 s ahead");
        assert!(check(json!({"exp": NOW + 120})).is_ok());
    }

    #[test]
    fn times_with_a_fraction_are_read_and_checked_tightly() {
        assert!(check(json!({"iat": NOW as f64 - 10.5, "exp": NOW as f64 + 120.5})).is_ok());
        // Half a second over the bounds is over them.
        assert!(
            check(json!({"iat": NOW as f64 - 300.5})).is_err(),
            "too old"
        );
        assert!(check(json!({"iat": NOW as f64 + 60.5})).is_err(), "ahead");
        assert!(check(json!({"exp": NOW as f64 - 59.5})).is_err(), "expired");
    }

    #[test]
    fn each_logout_rule_refuses_its_case() {
        for (case, change) in [
            ("no iat", json!({"iat": null})),
            ("iat too old", json!({"iat": NOW - 301})),
            ("iat ahead", json!({"iat": NOW + 61})),
            ("expired", json!({"exp": NOW - 61})),
            ("no jti", json!({"jti": null})),
            ("empty jti", json!({"jti": ""})),
            ("no events", json!({"events": null})),
            (
                "another event",
                json!({"events": {"http://example.com/other": {}}}),
            ),
            ("event not an object", json!({"events": {EVENT: "yes"}})),
            ("neither sub nor sid", json!({"sub": null, "sid": null})),
            ("sub not a string", json!({"sub": 42, "sid": null})),
            ("nonce", json!({"nonce": "n-1"})),
        ] {
            assert!(
                matches!(check(change), Err(OidcError::InvalidIdToken(_))),
                "{case}"
            );
        }
    }
}
