//! Pre-chat identity assertions (docs/api.md#pre-chat-assertions): a JWT (HS256) signed by the
//! team's website with one of the team's security keys, naming the customer.
//! Issuer and audience are the reverse of login tokens: `iss` = team id,
//! `aud` = `server.issuer`. One-time use of `jti` is the caller's business.
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};

use super::input;
use super::interaction::Customer;
use super::locale::LocaleTag;
use super::login_token::{
    check_exp, check_nbf, hs256_kid, jwt_error, validation, BAD_KEY, LEEWAY_SECS,
};
use super::numeric_date::NumericDate;
use super::secrets::TeamKeys;
use crate::error::Error;
use crate::time::Timestamp;

/// A verified assertion: who the customer is, as the website says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assertion {
    /// The customer id.
    pub sub: String,
    /// One-time id.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub fingerprint: Option<String>,
    pub region: Option<String>,
    /// The language the website's customer reads (docs/api.md#languages).
    pub locale: Option<String>,
}

impl Assertion {
    /// The `locale` claim when it is a well-formed tag; one that is not is
    /// left out, never a refusal of the login
    /// (docs/decisions/0104-an-assertion-s-language.md).
    pub fn locale(&self) -> Option<LocaleTag> {
        self.locale
            .as_deref()
            .and_then(|l| LocaleTag::parse(l).ok())
    }

    /// The customer it proves, its claims held to the same rules as a
    /// login page's `customer` (422 naming the claim): `sub` is an
    /// identifier (normalised here), the rest display values. The
    /// fingerprint and region are checked too, though only their keyed
    /// hashes are kept.
    pub fn customer(&mut self) -> Result<Customer, Error> {
        self.sub = input::customer_id("assertion.sub", &self.sub)?;
        let mut customer = Customer::from([("id".to_string(), self.sub.clone())]);
        for (k, v) in [
            ("name", &self.name),
            ("email", &self.email),
            ("phone", &self.phone),
        ] {
            if let Some(v) = v {
                let field = format!("assertion.{k}");
                customer.insert(
                    k.to_string(),
                    input::display(&field, v, input::MAX_IDENTITY_CHARS)?,
                );
            }
        }
        for (k, v) in [("fingerprint", &self.fingerprint), ("region", &self.region)] {
            if let Some(v) = v {
                input::display(&format!("assertion.{k}"), v, input::MAX_IDENTITY_CHARS)?;
            }
        }
        Ok(customer)
    }
}

#[derive(Deserialize)]
struct Wire {
    // `iss` and `aud` must be single strings (arrays are refused).
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    iat: NumericDate,
    exp: NumericDate,
    #[serde(default)]
    nbf: Option<NumericDate>,
    // Optional claims: absent or null is `None`; any other non-string is refused.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    /// A login token's claim (`mid_chat` / `pre_chat`); never in an assertion.
    #[serde(default)]
    stage: Option<serde_json::Value>,
}

/// Verifies an assertion for `team`. `max_age` bounds `exp - iat`
/// (`0s` disables the bound, as every duration in the configuration).
pub fn verify(
    token: &str,
    team: &impl TeamKeys,
    issuer: &str,
    max_age: Duration,
    now: Timestamp,
) -> Result<Assertion, Error> {
    let kid = hs256_kid(token)?;
    let key = team.key_by_kid(&kid).ok_or(BAD_KEY)?;
    // `exp` is required by `Wire`: the library's own check would refuse a
    // NumericDate with a fraction.
    let mut v = validation(&["iss", "aud", "sub"]);
    v.set_issuer(&[team.team_id()]);
    v.set_audience(&[issuer]);
    let w = jsonwebtoken::decode::<Wire>(token, &DecodingKey::from_secret(key.secret.expose()), &v)
        .map_err(jwt_error)?
        .claims;

    if w.iss != team.team_id() || w.aud != issuer {
        // Already checked by the library; kept so the rule reads here too.
        return Err(Error::InvalidToken("wrong issuer or audience"));
    }
    // One kind of token never passes as the other (RFC 8725 §2.8): a login
    // token has iss = gateway, aud = team and a `stage`; an assertion the
    // reverse pair and no `stage`. The loader refuses an issuer that is a
    // team id; this holds even if it did not.
    if w.iss == w.aud || w.stage.is_some() {
        return Err(Error::InvalidToken("a login token is not an assertion"));
    }
    // An `exp` before 1970 is no time a JWT library reads (they read it
    // unsigned): malformed, as they would say.
    if w.sub.is_empty() || w.jti.is_empty() || w.exp.floor < 0 {
        return Err(Error::InvalidToken(
            "a required claim is missing or malformed",
        ));
    }
    // A fraction never widens a check (docs/api.md#conventions): the
    // lifetime is measured at its longest, the issue time and `nbf` as
    // late as they may be, `exp` as early.
    let lifetime_ms = (i128::from(w.exp.ceil) - i128::from(w.iat.floor)) * 1000;
    if lifetime_ms < 0 {
        return Err(Error::InvalidToken("exp is before iat"));
    }
    if !max_age.is_zero() && lifetime_ms > i128::try_from(max_age.as_millis()).unwrap_or(i128::MAX)
    {
        return Err(Error::InvalidToken(
            "the assertion lives longer than assertion_max_age",
        ));
    }
    if (i128::from(w.iat.ceil) - i128::from(LEEWAY_SECS)) * 1000 > i128::from(now.unix_millis()) {
        return Err(Error::InvalidToken("the assertion is issued in the future"));
    }
    check_nbf(w.nbf.map(|n| n.ceil), now)?;
    check_exp(w.exp.floor, now)?;

    Ok(Assertion {
        sub: w.sub,
        jti: w.jti,
        iat: w.iat.floor,
        exp: w.exp.floor,
        name: w.name,
        email: w.email,
        phone: w.phone,
        fingerprint: w.fingerprint,
        region: w.region,
        locale: w.locale,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::login_token::tests::{at, sign_raw, team, TestTeam, T0};

    const ISSUER: &str = "chatgate";
    const MAX_AGE: Duration = Duration::from_secs(600);
    const CLAIM: &str = "a required claim is missing or malformed";
    const BAD: &str = "bad signature or unknown key";

    /// acme: k1 = 1s (primary), k2 = 2s.
    fn acme() -> TestTeam {
        team("acme", &[("k1", 1), ("k2", 2)])
    }

    fn hdr(kid: &str) -> Value {
        json!({"alg": "HS256", "typ": "JWT", "kid": kid})
    }

    /// Valid claims (iat T0, exp T0 + 300) with `k` set to `v` ("-" removes it).
    fn with(k: &str, v: Value) -> Value {
        let mut c = json!({"iss": "acme", "aud": ISSUER, "sub": "cust-42", "jti": "a-1", "iat": T0, "exp": T0 + 300});
        match v {
            Value::String(s) if s == "-" => c.as_object_mut().unwrap().remove(k),
            v => c.as_object_mut().unwrap().insert(k.into(), v),
        };
        c
    }

    fn claims() -> Value {
        with("extra", json!({"ignored": true}))
    }

    fn verify_at(token: &str, now: i64) -> Result<Assertion, Error> {
        verify(token, &acme(), ISSUER, MAX_AGE, at(now))
    }

    fn check_at(payload: &Value, now: i64) -> Result<Assertion, Error> {
        verify_at(&sign_raw(&hdr("k1"), payload, 1), now)
    }

    #[track_caller]
    fn invalid(r: Result<Assertion, Error>, why: &str) {
        match r {
            Err(Error::InvalidToken(m)) => assert_eq!(m, why),
            other => panic!("expected InvalidToken({why:?}), got {other:?}"),
        }
    }

    #[test]
    fn valid_assertion_with_optional_claims() {
        let mut c = claims();
        let optional = [
            ("name", "Ada"),
            ("email", "a@b.example"),
            ("phone", "+1555"),
            ("fingerprint", "fp"),
            ("region", "EU"),
        ];
        for (k, v) in optional {
            c[k] = json!(v);
        }
        let a = check_at(&c, T0).unwrap();
        assert_eq!(
            (a.sub.as_str(), a.jti.as_str(), a.iat, a.exp),
            ("cust-42", "a-1", T0, T0 + 300)
        );
        assert_eq!(
            (a.name.as_deref(), a.region.as_deref()),
            (Some("Ada"), Some("EU"))
        );
        let a = check_at(&claims(), T0).unwrap();
        assert_eq!(
            (a.name, a.email, a.phone, a.fingerprint, a.region),
            (None, None, None, None, None)
        );
        // Any of the team's keys, by kid.
        assert!(verify_at(&sign_raw(&hdr("k2"), &claims(), 2), T0).is_ok());
    }

    #[test]
    fn only_hs256_with_a_known_kid_and_the_right_key() {
        let c = claims();
        for alg in ["HS384", "HS512", "RS256", "ES256"] {
            let r = verify_at(&sign_raw(&json!({"alg": alg, "kid": "k1"}), &c, 1), T0);
            invalid(r, "unsupported algorithm; only HS256 is accepted");
        }
        invalid(
            verify_at(&sign_raw(&json!({"alg": "none", "kid": "k1"}), &c, 1), T0),
            "malformed token",
        );
        invalid(
            verify_at(&sign_raw(&json!({"alg": "HS256"}), &c, 1), T0),
            "the token header has no kid",
        );
        invalid(verify_at(&sign_raw(&hdr("k9"), &c, 1), T0), BAD);
        invalid(verify_at(&sign_raw(&hdr("k1"), &c, 2), T0), BAD);
        invalid(verify_at(&sign_raw(&hdr("k1"), &c, 9), T0), BAD);
        // Signed with another team's key (same kid), presented for acme.
        let other = team("globex", &[("k1", 9)]);
        let token = sign_raw(&hdr("k1"), &with("iss", json!("globex")), 9);
        assert!(verify(&token, &other, ISSUER, MAX_AGE, at(T0)).is_ok());
        invalid(verify_at(&token, T0), BAD);
    }

    #[test]
    fn iss_must_be_the_team_and_aud_the_gateway() {
        invalid(check_at(&with("iss", json!(ISSUER)), T0), "wrong issuer");
        invalid(check_at(&with("aud", json!("acme")), T0), "wrong audience");
        for (k, v) in [
            ("iss", json!(["acme"])),
            ("aud", json!([ISSUER])),
            ("aud", json!(42)),
        ] {
            invalid(check_at(&with(k, v), T0), CLAIM);
        }
    }

    #[test]
    fn required_claims_missing_or_mistyped() {
        for k in ["iss", "aud", "sub", "iat", "exp", "jti"] {
            invalid(check_at(&with(k, json!("-")), T0), CLAIM);
            invalid(check_at(&with(k, Value::Null), T0), CLAIM);
        }
        for (k, v) in [
            ("sub", json!("")),
            ("jti", json!("")),
            ("sub", json!(42)),
            ("iat", json!("1")),
            ("exp", json!(true)),
        ] {
            invalid(check_at(&with(k, v), T0), CLAIM);
        }
        // Fractional NumericDates are allowed (rounded down).
        assert_eq!(
            check_at(&with("iat", json!(T0 as f64 + 0.7)), T0)
                .unwrap()
                .iat,
            T0
        );
    }

    #[test]
    fn optional_claims_must_be_strings() {
        for k in ["name", "email", "phone", "fingerprint", "region"] {
            for bad in [json!(1), json!(true), json!(["x"]), json!({"a": "b"})] {
                invalid(check_at(&with(k, bad), T0), CLAIM);
            }
            assert!(check_at(&with(k, Value::Null), T0).is_ok(), "{k} null");
        }
    }

    #[test]
    fn times_with_a_fraction_never_widen_the_checks() {
        // exp T0 + 300.5 is read; it does not live past T0 + 305 (leeway).
        let c = with("exp", json!(T0 as f64 + 300.5));
        assert_eq!(check_at(&c, T0).unwrap().exp, T0 + 300);
        assert!(check_at(&c, T0 + 305).is_ok());
        assert!(matches!(check_at(&c, T0 + 306), Err(Error::TokenExpired)));
        // nbf and iat T0 + 5.5 are half a second past the leeway at T0.
        invalid(
            check_at(&with("nbf", json!(T0 as f64 + 5.5)), T0),
            "the token is not valid yet",
        );
        assert!(check_at(&with("nbf", json!(T0 as f64 + 5.5)), T0 + 1).is_ok());
        let early = with("iat", json!(T0 as f64 + 5.5));
        invalid(
            check_at(&early, T0),
            "the assertion is issued in the future",
        );
        assert!(check_at(&early, T0 + 1).is_ok());
        // A lifetime a half second over max_age is over it.
        let mut long = with("exp", json!(T0 as f64 + 600.5));
        long["iat"] = json!(T0);
        invalid(
            check_at(&long, T0),
            "the assertion lives longer than assertion_max_age",
        );
    }

    #[test]
    fn lifetime_is_bounded_by_max_age() {
        assert!(check_at(&with("exp", json!(T0 + 600)), T0).is_ok());
        let r = check_at(&with("exp", json!(T0 + 601)), T0);
        invalid(r, "the assertion lives longer than assertion_max_age");
        invalid(
            check_at(&with("exp", json!(T0 - 1)), T0),
            "exp is before iat",
        );
        let token = sign_raw(&hdr("k1"), &with("exp", json!(T0 + 86_400)), 1);
        assert!(
            verify(&token, &acme(), ISSUER, Duration::ZERO, at(T0)).is_ok(),
            "0s disables"
        );
    }

    #[test]
    fn exp_has_five_seconds_of_leeway_checked_after_the_signature() {
        let c = claims(); // exp = T0 + 300
        assert!(check_at(&c, T0 + 305).is_ok());
        assert!(matches!(check_at(&c, T0 + 306), Err(Error::TokenExpired)));
        invalid(verify_at(&sign_raw(&hdr("k1"), &c, 3), T0 + 3600), BAD);
    }

    #[test]
    fn nbf_and_iat_may_not_be_in_the_future() {
        assert!(check_at(&with("nbf", json!(T0 + 5)), T0).is_ok());
        invalid(
            check_at(&with("nbf", json!(T0 + 6)), T0),
            "the token is not valid yet",
        );
        invalid(check_at(&with("nbf", json!("soon")), T0), CLAIM);
        assert!(check_at(&claims(), T0 - 5).is_ok());
        invalid(
            check_at(&claims(), T0 - 6),
            "the assertion is issued in the future",
        );
    }

    #[test]
    fn garbage_is_invalid_token() {
        let long = "x".repeat(5000);
        for g in [
            "",
            "a.b.c",
            "...",
            "e30.e30.e30",
            "eyJhbGciOiJIUzI1NiJ9..",
            &long,
        ] {
            assert!(
                matches!(verify_at(g, T0), Err(Error::InvalidToken(_))),
                "{g:?}"
            );
        }
        for p in [json!(null), json!([]), json!("x")] {
            invalid(check_at(&p, T0), CLAIM);
        }
    }
    /// Even with an issuer equal to the team id (which the loader refuses),
    /// a login token is not an assertion, and an assertion not a login token.
    #[test]
    fn one_kind_of_token_never_passes_as_the_other() {
        use crate::domain::login_token::{self, LoginClaims, Stage};
        let team = acme();
        let login = LoginClaims {
            iss: "acme".into(),
            aud: "acme".into(),
            sub: uuid::Uuid::now_v7().to_string(),
            jti: uuid::Uuid::now_v7().to_string(),
            iat: T0,
            exp: Some(T0 + 300),
            team: "acme".into(),
            channel: "webchat".into(),
            stage: Stage::MidChat,
            scope: None,
            expected_customer: None,
            locale: None,
        };
        let token = login_token::issue(&team.security_keys[0], &login).unwrap();
        let r = verify(&token, &team, "acme", MAX_AGE, at(T0));
        invalid(r, "a login token is not an assertion");
        // Its `stage` alone gives it away, whatever the pair says.
        let mut c = claims();
        c["stage"] = json!("pre_chat");
        invalid(check_at(&c, T0), "a login token is not an assertion");
        // The same token read as a login token: iss = aud gives it away.
        let find = |id: &str| (id == "acme").then_some(&team);
        let r = login_token::verify(&token, "acme", find, at(T0));
        match r {
            Err(Error::InvalidToken(m)) => assert_eq!(m, "an assertion is not a login token"),
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }
}
