//! Pre-chat assertions (docs/api.md#pre-chat-assertions): the JWT layer refuses garbage, other
//! algorithms, other keys and any one-byte change with `invalid_token`; the
//! time rules (`iat` not in the future, `exp` not past, `exp - iat` within
//! `assertion_max_age`) hold for any times. Claim contents (`sub`, `name`,
//! `phone`, ...) are only required never to panic here: their validation
//! rules are checked elsewhere (docs/decisions/0019-identity-values.md).
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::tokens::other_alg;
use super::{ascii_edit, cases, hostile, json_value};
use crate::domain::assertion::{verify, Assertion};
use crate::domain::login_token::tests::{sign_raw, team, TestTeam, T0};
use crate::domain::login_token::LEEWAY_SECS;
use crate::error::Error;
use crate::time::Timestamp;

const ISSUER: &str = "chatgate";
const MAX_AGE: Duration = Duration::from_secs(600);
const BAD_KEY: &str = "bad signature or unknown key";

/// acme: k1 = 32 × 1 (primary), k2 = 32 × 2.
fn acme() -> TestTeam {
    team("acme", &[("k1", 1), ("k2", 2)])
}

fn hdr() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": "k1"})
}

fn check(token: &str, max_age: Duration, now: Timestamp) -> Result<Assertion, Error> {
    verify(token, &acme(), ISSUER, max_age, now)
}

#[track_caller]
fn assert_invalid_token(r: &Result<Assertion, Error>) {
    assert!(matches!(r, Err(Error::InvalidToken(_))), "{r:?}");
}

prop_compose! {
    /// Valid claims of plain ASCII, with `iat` near T0 and a lifetime within
    /// [`MAX_AGE`].
    fn claims()(
        sub in "[A-Za-z0-9_.-]{1,40}",
        jti in "[A-Za-z0-9_-]{1,40}",
        iat in T0 - 1_000..T0 + 1_000,
        lifetime in 0i64..=600,
    ) -> Value {
        json!({"iss": "acme", "aud": ISSUER, "sub": sub, "jti": jti, "iat": iat, "exp": iat + lifetime})
    }
}

fn num(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_text_is_invalid_token(token in hostile(), now in any::<i64>()) {
        assert_invalid_token(&check(&token, MAX_AGE, Timestamp::from_unix_millis(now)));
    }

    #[test]
    fn any_one_byte_change_is_invalid_token(c in claims(), edit in ascii_edit()) {
        let token = sign_raw(&hdr(), &c, 1);
        let now = Timestamp::from_unix_seconds(num(&c, "iat"));
        prop_assert!(check(&token, MAX_AGE, now).is_ok());
        if let Some(tampered) = edit.apply_str(&token) {
            assert_invalid_token(&check(&tampered, MAX_AGE, now));
        }
    }

    #[test]
    fn alg_other_than_hs256_is_refused(c in claims(), alg in other_alg()) {
        let token = sign_raw(&json!({"alg": alg, "kid": "k1"}), &c, 1);
        let now = Timestamp::from_unix_seconds(num(&c, "iat"));
        assert_invalid_token(&check(&token, MAX_AGE, now));
    }

    #[test]
    fn any_other_key_is_bad_signature(c in claims(), fill in any::<u8>(), kid in prop::sample::select(vec!["k1", "k2", "k3"])) {
        let right = match kid { "k1" => 1, "k2" => 2, _ => 0 };
        prop_assume!(fill != right);
        let token = sign_raw(&json!({"alg": "HS256", "kid": kid}), &c, fill);
        let r = check(&token, MAX_AGE, Timestamp::from_unix_seconds(num(&c, "iat")));
        prop_assert!(matches!(r, Err(Error::InvalidToken(BAD_KEY))), "{:?}", r);
    }

    /// The time rules as a model: accepted exactly when `exp >= iat`,
    /// `exp - iat <= max_age` (0 = no bound), `iat - 5 s <= now` and
    /// `now <= exp + 5 s`; past `exp` is `token_expired`, the rest
    /// `invalid_token`. An `exp` before 1970 is no NumericDate to the JWT
    /// library (it reads `exp` as unsigned): `invalid_token`.
    #[test]
    fn time_rules_hold_for_any_times(
        c in claims(),
        iat in prop_oneof![any::<i64>(), T0 - 2_000..T0 + 2_000],
        exp in prop_oneof![any::<i64>(), T0 - 2_000..T0 + 2_000],
        max_age_secs in prop_oneof![Just(0u64), 1u64..2_000, Just(u64::MAX)],
        now_ms in prop_oneof![any::<i64>(), (T0 - 4_000) * 1000..(T0 + 4_000) * 1000],
    ) {
        let mut c = c;
        c["iat"] = json!(iat);
        c["exp"] = json!(exp);
        let max_age = Duration::from_secs(max_age_secs);
        let r = check(&sign_raw(&hdr(), &c, 1), max_age, Timestamp::from_unix_millis(now_ms));
        let (iat, exp, now) = (i128::from(iat), i128::from(exp), i128::from(now_ms));
        let leeway = i128::from(LEEWAY_SECS);
        let lifetime_ok = exp >= 0 && exp >= iat && (max_age_secs == 0 || exp - iat <= i128::from(max_age_secs));
        let issued_ok = (iat - leeway) * 1000 <= now;
        let live = now <= (exp + leeway) * 1000;
        match r {
            Ok(a) => prop_assert!(lifetime_ok && issued_ok && live && a.sub == c["sub"]),
            Err(Error::TokenExpired) => prop_assert!(lifetime_ok && issued_ok && !live),
            Err(Error::InvalidToken(_)) => prop_assert!(!(lifetime_ok && issued_ok)),
            Err(e) => prop_assert!(false, "{:?}", e),
        }
    }

    /// Fractional NumericDates never panic, whatever their size.
    #[test]
    fn any_numeric_date_never_panics(iat in any::<f64>(), exp in any::<f64>(), now in any::<i64>()) {
        let mut c = json!({"iss": "acme", "aud": ISSUER, "sub": "s", "jti": "j"});
        c["iat"] = json!(iat);
        c["exp"] = json!(exp);
        let r = check(&sign_raw(&hdr(), &c, 1), MAX_AGE, Timestamp::from_unix_millis(now));
        prop_assert!(r.is_ok() || matches!(r, Err(Error::InvalidToken(_) | Error::TokenExpired)), "{:?}", r);
    }

    /// Any claim value, signed with the right key: a verified assertion or a
    /// documented refusal, never a panic. (What is accepted is decided by the
    /// identity-field rules; see the module comment.)
    #[test]
    fn any_claim_value_never_panics(
        c in claims(),
        claim in prop::sample::select(vec![
            "iss", "aud", "sub", "jti", "iat", "exp", "nbf",
            "name", "email", "phone", "fingerprint", "region", "x",
        ]),
        text in hostile(),
        value in json_value(),
        as_text in any::<bool>(),
    ) {
        let mut c = c;
        c[claim] = if as_text { Value::String(text) } else { value };
        let r = check(&sign_raw(&hdr(), &c, 1), MAX_AGE, Timestamp::from_unix_seconds(T0));
        let documented = match &r {
            Ok(_) => true,
            Err(e) => matches!(e.code(), "invalid_token" | "token_expired" | "invalid_request"),
        };
        prop_assert!(documented, "{:?}", r);
    }
}
