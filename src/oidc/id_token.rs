//! The ID token checks of OpenID Connect Core 3.1.3.7, as plain functions:
//! the header (an allow-list of asymmetric algorithms, a `kid`), the
//! signature (by `jsonwebtoken` with a key of the provider's set), then the
//! claims against what this login expects. Time is a parameter: the
//! library's own clock is never used.
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::OidcError;
use crate::domain::numeric_date::NumericDate;
use crate::time::Timestamp;

/// Clock skew allowed on `exp`, `nbf`, `iat` and `auth_time`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The oldest `iat` an ID token may have, in seconds: a token issued
/// longer ago is not the answer to a login just started (a replayed or
/// stored one).
pub const MAX_IAT_AGE_SECS: i64 = 600;

/// The only algorithms an ID token may be signed with: never `none`, never
/// HMAC (whose key would be the client secret, known to the provider's
/// other clients' operators and to anyone who leaks the config).
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];

/// What one login expects of its ID token.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The `nonce` sent in the authorization request; `None` for a login
    /// that sends none (an approval in the customer's app, CIBA), whose
    /// token's `nonce`, if any, is not looked at.
    pub nonce: Option<&'a str>,
    pub max_age: Option<Duration>,
    /// Not empty: `acr` must be one of them.
    pub acr_values: &'a [String],
    /// The string claim that names the customer.
    pub customer_claim: &'a str,
}

/// Whom a valid ID token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// The `customer_claim`'s value, as sent (its identifier rules are the
    /// gateway's, checked where the customer is built).
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The provider's `sub` and session id (`sid`), so that its
    /// back-channel logout finds this login.
    pub sub: Option<String>,
    pub sid: Option<String>,
    /// What the token says of how the customer signed in: `acr` (a string
    /// of at most [`MAX_ACR_CHARS`]) and `amr` (an array of at most
    /// [`MAX_AMR`] strings of at most [`MAX_ACR_CHARS`]); `None` when it
    /// says nothing, or something else (docs/api.md#the-interaction-object).
    pub acr: Option<String>,
    pub amr: Option<Vec<String>>,
}

/// The longest `acr` or `amr` value kept of an ID token.
pub const MAX_ACR_CHARS: usize = 128;
/// The most `amr` values kept of an ID token.
pub const MAX_AMR: usize = 16;

/// The token's `acr` and `amr` as kept: each `None` unless of the shape and
/// size an interaction keeps (never truncated: a value cut short would
/// say something the provider did not).
fn sign_in(claims: &Map<String, Value>) -> (Option<String>, Option<Vec<String>>) {
    let fits = |s: &str| !s.is_empty() && s.len() <= MAX_ACR_CHARS;
    let acr = claims
        .get("acr")
        .and_then(Value::as_str)
        .filter(|a| fits(a));
    let amr = claims
        .get("amr")
        .and_then(Value::as_array)
        .and_then(|values| {
            let texts: Option<Vec<String>> = values
                .iter()
                .map(|v| v.as_str().filter(|s| fits(s)).map(str::to_string))
                .collect();
            texts.filter(|t| t.len() <= MAX_AMR)
        });
    (acr.map(str::to_string), amr)
}

fn invalid(reason: &'static str) -> OidcError {
    OidcError::InvalidIdToken(reason)
}

fn unverified(reason: &'static str) -> OidcError {
    OidcError::Unverified(reason)
}

/// The algorithm and `kid` of a token's header, if the algorithm is allowed.
/// `alg: none` and unknown algorithms do not parse at all.
pub fn header(token: &str) -> Result<(Algorithm, String), OidcError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| unverified("malformed header or an algorithm that is not allowed"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(unverified("an algorithm that is not allowed"));
    }
    if header.crit.is_some() {
        return Err(unverified("a critical header extension"));
    }
    let kid = header.kid.ok_or(unverified("no kid"))?;
    Ok((header.alg, kid))
}

/// The `typ` header of `token`, if it has one.
pub fn header_typ(token: &str) -> Result<Option<String>, OidcError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| unverified("malformed header or an algorithm that is not allowed"))?;
    Ok(header.typ)
}

/// The claims of `token` if `jwk` (the key its `kid` named) signed it with
/// `alg`. A key meant for encryption, or for another algorithm, is refused.
pub fn verify_signature(
    token: &str,
    jwk: &Jwk,
    alg: Algorithm,
) -> Result<Map<String, Value>, OidcError> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err(unverified("the key is not a signing key"));
    }
    if let Some(key_alg) = jwk.common.key_algorithm {
        if key_algorithm(alg) != key_alg {
            return Err(unverified("the key is for another algorithm"));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| unverified("unusable key"))?;
    let mut validation = Validation::new(alg);
    // Every claim is checked by `check_claims`, with the caller's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| unverified("bad signature"))
}

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::PS256 => KeyAlgorithm::PS256,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    }
}

/// The checks every token of the team's provider passes, ID token and
/// logout token alike (after its signature): `iss` is the issuer, `aud`
/// contains the client, and `azp` is the client when `aud` names several
/// (or when it is there at all).
pub fn check_audience(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
) -> Result<(), OidcError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(issuer) {
        return Err(invalid("wrong iss"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(invalid("no aud")),
    };
    if !audiences.contains(&client_id) {
        return Err(invalid("wrong aud"));
    }
    let azp = text("azp");
    if (audiences.len() > 1 || claims.get("azp").is_some()) && azp != Some(client_id) {
        return Err(invalid("wrong or missing azp"));
    }
    Ok(())
}

/// The claim checks, in the order of OpenID Connect Core 3.1.3.7: the
/// shared [`check_audience`], then [`check_login_claims`].
pub fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
    now: Timestamp,
) -> Result<Proven, OidcError> {
    check_audience(claims, expect.issuer, expect.client_id)?;
    check_login_claims(claims, expect, now)
}

/// The checks only an ID token passes, once [`check_audience`] has:
/// `exp`, `nbf`, `iat`, `nonce`, `acr`, `auth_time`, the customer claim.
pub fn check_login_claims(
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
    now: Timestamp,
) -> Result<Proven, OidcError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    // A time with a fraction never widens a check (docs/api.md#conventions):
    // `exp`, `auth_time` and `iat` (not too old) rounded down, `nbf` and
    // `iat` (not in the future) up.
    let number = |name: &str| claims.get(name).and_then(NumericDate::of);
    let now_s = now.unix_seconds();
    let exp = number("exp").ok_or(invalid("no exp"))?.floor;
    if now_s >= exp.saturating_add(LEEWAY_SECS) {
        return Err(invalid("expired"));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = NumericDate::of(nbf)
            .ok_or(invalid("nbf not a number"))?
            .ceil;
        if nbf > now_s.saturating_add(LEEWAY_SECS) {
            return Err(invalid("not valid yet (nbf)"));
        }
    }
    let iat = number("iat").ok_or(invalid("no iat"))?;
    if iat.ceil > now_s.saturating_add(LEEWAY_SECS) {
        return Err(invalid("issued in the future"));
    }
    if now_s.saturating_sub(iat.floor) > MAX_IAT_AGE_SECS {
        return Err(invalid("issued more than 10 minutes ago"));
    }
    let nonce_ok = expect.nonce.is_none_or(|sent| {
        text("nonce").is_some_and(|n| {
            use subtle::ConstantTimeEq;
            bool::from(n.as_bytes().ct_eq(sent.as_bytes()))
        })
    });
    if !nonce_ok {
        return Err(invalid("wrong or missing nonce"));
    }
    if !expect.acr_values.is_empty()
        && !text("acr").is_some_and(|acr| expect.acr_values.iter().any(|v| v == acr))
    {
        return Err(invalid("acr not one of acr_values"));
    }
    if let Some(max_age) = expect.max_age {
        let auth_time = number("auth_time").ok_or(invalid("no auth_time"))?.floor;
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        if now_s
            > auth_time
                .saturating_add(max_age)
                .saturating_add(LEEWAY_SECS)
        {
            return Err(invalid("auth_time older than max_age"));
        }
    }
    let customer_id = text(expect.customer_claim)
        .ok_or(invalid("the customer claim is missing or not a string"))?
        .to_string();
    // An address the provider has not verified (or lets its users change)
    // proves nothing about who holds it.
    if expect.customer_claim == "email"
        && !matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        && text("email_verified") != Some("true")
    {
        return Err(invalid(
            "email is the customer claim but not email_verified",
        ));
    }
    let (acr, amr) = sign_in(claims);
    Ok(Proven {
        customer_id,
        name: text("name").map(str::to_string),
        email: text("email").map(str::to_string),
        sub: text("sub").map(str::to_string),
        sid: text("sid").map(str::to_string),
        acr,
        amr,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_000_000;

    fn expect<'a>(acr: &'a [String]) -> Expect<'a> {
        Expect {
            issuer: "https://id.example",
            client_id: "chatgate",
            nonce: Some("n-1"),
            max_age: Some(Duration::from_secs(300)),
            acr_values: acr,
            customer_claim: "sub",
        }
    }

    fn claims(change: Value) -> Map<String, Value> {
        let mut c = json!({"iss": "https://id.example", "aud": "chatgate", "sub": "cust-42",
            "exp": NOW + 300, "iat": NOW, "nonce": "n-1", "auth_time": NOW - 10, "acr": "gold",
            "name": "Ada"});
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    fn check(change: Value) -> Result<Proven, OidcError> {
        let acr = ["gold".to_string()];
        check_claims(
            &claims(change),
            &expect(&acr),
            Timestamp::from_unix_seconds(NOW),
        )
    }

    #[test]
    fn the_acr_and_amr_are_kept_only_when_of_their_shape_and_size() {
        let p = check(json!({"amr": ["hwk", "user"]})).unwrap();
        assert_eq!(p.acr.as_deref(), Some("gold"));
        assert_eq!(p.amr, Some(vec!["hwk".to_string(), "user".to_string()]));
        let (acr, amr) = sign_in(&claims(json!({"acr": null})));
        assert_eq!((acr, amr), (None, None));
        let long = "a".repeat(MAX_ACR_CHARS + 1);
        let seventeen: Vec<String> = (0..=MAX_AMR).map(|i| format!("m{i}")).collect();
        for odd in [
            json!({"acr": 3, "amr": "pwd"}),
            json!({"acr": "", "amr": ["pwd", 1]}),
            json!({"acr": long.clone(), "amr": seventeen}),
            json!({"acr": ["gold"], "amr": [long]}),
        ] {
            assert_eq!(sign_in(&claims(odd.clone())), (None, None), "{odd}");
        }
        let sixteen: Vec<String> = (0..MAX_AMR).map(|i| format!("m{i}")).collect();
        let (_, amr) = sign_in(&claims(json!({"amr": sixteen.clone()})));
        assert_eq!(amr, Some(sixteen));
    }

    #[test]
    fn a_valid_token_proves_its_customer() {
        let p = check(json!({})).unwrap();
        assert_eq!(p.customer_id, "cust-42");
        assert_eq!(p.name.as_deref(), Some("Ada"));
        assert_eq!(p.email, None);
        assert!(check(json!({"aud": ["chatgate", "other"], "azp": "chatgate"})).is_ok());
        assert!(check(json!({"exp": NOW - 59})).is_ok(), "60 s leeway");
        assert!(check(json!({"nbf": NOW + 59})).is_ok(), "60 s leeway");
        assert!(check(json!({"nbf": NOW - 5})).is_ok());
        assert!(check(json!({"iat": NOW - 600})).is_ok(), "10 minutes");
    }

    #[test]
    fn times_with_a_fraction_are_read_and_checked_tightly() {
        let half = |n: i64| json!(n as f64 + 0.5);
        assert!(check(json!({"exp": half(NOW + 300), "iat": half(NOW - 1),
            "auth_time": half(NOW - 10)}))
        .is_ok());
        // exp NOW - 59.5 with 60 s leeway ends at NOW + 0.5, but a
        // fraction never extends: refused at NOW, as NOW - 60 is.
        assert!(check(json!({"exp": NOW as f64 - 59.5})).is_err());
        assert!(check(json!({"exp": NOW as f64 - 58.5})).is_ok());
        // iat NOW + 60.5 is past the leeway: issued in the future.
        assert!(check(json!({"iat": half(NOW + 60)})).is_err());
        // auth_time NOW - 360.5 is older than max_age 300 s and the leeway.
        assert!(check(json!({"auth_time": NOW as f64 - 360.5})).is_err());
        assert!(check(json!({"auth_time": NOW as f64 - 359.5})).is_ok());
    }

    #[test]
    fn each_claim_rule_refuses_its_case() {
        for (case, change) in [
            ("iss", json!({"iss": "https://evil.example"})),
            ("no aud", json!({"aud": null})),
            ("aud", json!({"aud": "other"})),
            ("several aud, no azp", json!({"aud": ["chatgate", "other"]})),
            ("azp", json!({"aud": ["chatgate", "other"], "azp": "other"})),
            ("single aud, foreign azp", json!({"azp": "other"})),
            ("exp", json!({"exp": NOW - 61})),
            ("no exp", json!({"exp": null})),
            ("iat future", json!({"iat": NOW + 120})),
            ("iat a year old", json!({"iat": NOW - 365 * 86_400})),
            ("iat eleven minutes old", json!({"iat": NOW - 660})),
            ("nbf ahead", json!({"nbf": NOW + 120})),
            ("nbf not a number", json!({"nbf": "soon"})),
            ("nonce", json!({"nonce": "n-2"})),
            ("no nonce", json!({"nonce": null})),
            ("acr", json!({"acr": "bronze"})),
            ("no acr", json!({"acr": null})),
            ("auth_time", json!({"auth_time": NOW - 400})),
            ("no auth_time", json!({"auth_time": null})),
            ("customer claim not a string", json!({"sub": 42})),
        ] {
            assert!(
                matches!(check(change), Err(OidcError::InvalidIdToken(_))),
                "{case}"
            );
        }
    }

    #[test]
    fn an_email_customer_claim_needs_email_verified() {
        let acr = ["gold".to_string()];
        let by_email = Expect {
            customer_claim: "email",
            ..expect(&acr)
        };
        let check = |verified: Value| {
            check_claims(
                &claims(json!({"email": "ada@example.com", "email_verified": verified})),
                &by_email,
                Timestamp::from_unix_seconds(NOW),
            )
        };
        assert_eq!(check(json!(true)).unwrap().customer_id, "ada@example.com");
        assert!(check(json!("true")).is_ok(), "as some providers send it");
        for v in [
            Value::Null,
            json!(false),
            json!("false"),
            json!(1),
            json!("TRUE"),
        ] {
            assert!(
                matches!(check(v.clone()), Err(OidcError::InvalidIdToken(_))),
                "{v}"
            );
        }
        // Another claim needs no such thing.
        assert!(check(json!(false)).is_err());
        assert!(super::check_claims(
            &claims(json!({"email_verified": false})),
            &expect(&acr),
            Timestamp::from_unix_seconds(NOW)
        )
        .is_ok());
    }

    #[test]
    fn only_asymmetric_algorithms_with_a_kid_pass_the_header() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine;
        let token = |h: Value| format!("{}.e30.c2ln", B64.encode(h.to_string()));
        assert!(header(&token(json!({"alg": "RS256", "kid": "k"}))).is_ok());
        assert!(header(&token(json!({"alg": "ES256", "kid": "k"}))).is_ok());
        for h in [
            json!({"alg": "none", "kid": "k"}),
            json!({"alg": "HS256", "kid": "k"}),
            json!({"alg": "RS512", "kid": "k"}),
            json!({"alg": "RS256"}),
        ] {
            assert!(header(&token(h.clone())).is_err(), "{h}");
        }
    }
}
