//! Login tokens (docs/api.md#the-login-callback): any text is `invalid_token` or a verified
//! token, never a panic; an issued token verifies to exactly its claims and
//! any one-byte change of it is `invalid_token`; only HS256 with the team's
//! key is accepted; `exp` and `nbf` are honoured to the millisecond.
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::{ascii_edit, cases, hostile, json_value, same_hmac_key};
use crate::domain::login_token::tests::{sign_raw, team, TestTeam, T0};
use crate::domain::login_token::{issue, verify, LoginClaims, Stage, LEEWAY_SECS};
use crate::error::Error;
use crate::time::Timestamp;

const ISSUER: &str = "chatgate";
const BAD_KEY: &str = "bad signature or unknown key";
const ALG: &str = "unsupported algorithm; only HS256 is accepted";
const MALFORMED: &str = "malformed token";

/// acme: k1 = 32 × 1 (primary), k2 = 32 × 2. globex: k1 = 32 × 9.
fn teams() -> Vec<TestTeam> {
    vec![
        team("acme", &[("k1", 1), ("k2", 2)]),
        team("globex", &[("k1", 9)]),
    ]
}

fn check(token: &str, now: Timestamp) -> Result<LoginClaims, Error> {
    let ts = teams();
    verify(token, ISSUER, |id| ts.iter().find(|t| t.id == id), now)
}

#[track_caller]
fn assert_invalid_token(r: &Result<LoginClaims, Error>) {
    assert!(matches!(r, Err(Error::InvalidToken(_))), "{r:?}");
}

prop_compose! {
    /// acme's claims with arbitrary times and free-text members.
    fn claims()(
        iat in T0 - 10_000_000..T0 + 10_000_000,
        ttl in prop::option::of(0i64..10_000_000),
        sub in any::<u128>(),
        jti in any::<u128>(),
        channel in ".{0,40}",
        pre_chat in any::<bool>(),
        scope in prop::option::of(".{0,40}"),
        expected_customer in prop::option::of(".{0,80}"),
    ) -> LoginClaims {
        LoginClaims {
            iss: ISSUER.into(),
            aud: "acme".into(),
            sub: Uuid::from_u128(sub).to_string(),
            jti: Uuid::from_u128(jti).to_string(),
            iat,
            exp: ttl.map(|t| iat + t),
            team: "acme".into(),
            channel,
            stage: if pre_chat { Stage::PreChat } else { Stage::MidChat },
            scope,
            expected_customer,
            locale: None,
        }
    }
}

/// A token for `c` signed with acme's `k1` (`false`) or `k2` (`true`).
fn issued(c: &LoginClaims, secondary: bool) -> String {
    let team = &teams()[0];
    issue(&team.security_keys[usize::from(secondary)], c).unwrap()
}

/// JOSE `alg` values other than exactly `HS256`: every other algorithm
/// the library knows, case variants, `none`, and arbitrary text.
pub(super) fn other_alg() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "HS384",
        "HS512",
        "RS256",
        "RS384",
        "RS512",
        "ES256",
        "ES384",
        "PS256",
        "PS384",
        "PS512",
        "EdDSA",
        "none",
        "None",
        "NONE",
        "hs256",
        "Hs256",
        "HS256 ",
        " HS256",
        "HS256\u{0}",
        "",
    ]);
    prop_oneof![known.prop_map(String::from), hostile()].prop_filter("not HS256", |a| a != "HS256")
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_text_is_invalid_token(token in hostile(), now in any::<i64>()) {
        assert_invalid_token(&check(&token, Timestamp::from_unix_millis(now)));
    }

    #[test]
    fn jws_shaped_garbage_is_invalid_token(
        segments in prop::collection::vec("[A-Za-z0-9_=+/-]{0,60}", 0..6),
        json_segments in prop::collection::vec(json_value(), 0..4),
    ) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
        use base64::Engine;
        let mut parts = segments;
        parts.extend(json_segments.iter().map(|v| B64URL.encode(v.to_string())));
        assert_invalid_token(&check(&parts.join("."), Timestamp::from_unix_seconds(T0)));
    }

    #[test]
    fn issued_tokens_verify_to_exactly_their_claims(
        c in claims(),
        secondary in any::<bool>(),
        after_iat in -10_000_000i64..10_000_000,
    ) {
        let token = issued(&c, secondary);
        // Not before `iat` either: verify does not judge `iat`.
        let now = c.iat + after_iat;
        let now = c.exp.map_or(now, |exp| now.min(exp + LEEWAY_SECS));
        prop_assert_eq!(check(&token, Timestamp::from_unix_seconds(now)).unwrap(), c);
    }

    #[test]
    fn exp_is_honoured_to_the_millisecond(
        c in claims(),
        offset_ms in -20_000i64..20_000,
    ) {
        let c = LoginClaims { exp: Some(c.exp.unwrap_or(c.iat + 600)), ..c };
        let deadline_ms = (c.exp.unwrap() + LEEWAY_SECS) * 1000;
        let r = check(&issued(&c, false), Timestamp::from_unix_millis(deadline_ms + offset_ms));
        if offset_ms <= 0 {
            prop_assert_eq!(r.unwrap(), c);
        } else {
            prop_assert!(matches!(r, Err(Error::TokenExpired)), "{:?}", r);
        }
    }

    #[test]
    fn nbf_is_honoured(c in claims(), nbf_offset in -100i64..100) {
        // No exp, so only nbf decides.
        let c = LoginClaims { exp: None, ..c };
        let mut payload = serde_json::to_value(&c).unwrap();
        payload["nbf"] = json!(T0 + nbf_offset);
        let token = sign_raw(&json!({"alg": "HS256", "kid": "k1"}), &payload, 1);
        let r = check(&token, Timestamp::from_unix_seconds(T0));
        if nbf_offset <= LEEWAY_SECS {
            prop_assert_eq!(r.unwrap(), c);
        } else {
            let ok = matches!(r, Err(Error::InvalidToken("the token is not valid yet")));
            prop_assert!(ok, "{:?}", r);
        }
    }

    #[test]
    fn any_one_byte_change_is_invalid_token(
        c in claims(),
        secondary in any::<bool>(),
        edit in ascii_edit(),
    ) {
        let token = issued(&c, secondary);
        let now = Timestamp::from_unix_seconds(c.iat);
        prop_assert!(check(&token, now).is_ok());
        if let Some(tampered) = edit.apply_str(&token) {
            assert_invalid_token(&check(&tampered, now));
        }
    }

    #[test]
    fn alg_other_than_hs256_is_refused(c in claims(), alg in other_alg()) {
        let payload = serde_json::to_value(&c).unwrap();
        let token = sign_raw(&json!({"alg": alg, "typ": "JWT", "kid": "k1"}), &payload, 1);
        match check(&token, Timestamp::from_unix_seconds(c.iat)) {
            Err(Error::InvalidToken(m)) => prop_assert!(m == ALG || m == MALFORMED, "{}", m),
            other => prop_assert!(false, "alg {:?} gave {:?}", alg, other),
        }
    }

    #[test]
    fn alg_that_is_not_a_string_is_refused(c in claims(), alg in json_value()) {
        prop_assume!(alg != json!("HS256"));
        let payload = serde_json::to_value(&c).unwrap();
        let token = sign_raw(&json!({"alg": alg, "kid": "k1"}), &payload, 1);
        assert_invalid_token(&check(&token, Timestamp::from_unix_seconds(c.iat)));
    }

    #[test]
    fn any_other_key_is_bad_signature(
        c in claims(),
        key in prop::collection::vec(any::<u8>(), 0..80),
        kid in prop::sample::select(vec!["k1", "k2", "k3", "K1", "k1 "]),
    ) {
        prop_assume!(!same_hmac_key(&key, &[1; 32]) && !same_hmac_key(&key, &[2; 32]));
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_string());
        let token = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(&key)).unwrap();
        let r = check(&token, Timestamp::from_unix_seconds(c.iat));
        prop_assert!(matches!(r, Err(Error::InvalidToken(BAD_KEY))), "{:?}", r);
    }

    #[test]
    fn any_header_or_claim_signed_with_the_right_key_never_panics(
        c in claims(),
        extra_header in prop::collection::btree_map(".{0,8}", json_value(), 0..4),
        claim in prop::sample::select(vec![
            "iss", "aud", "sub", "jti", "iat", "exp", "nbf", "team", "channel", "stage",
            "scope", "expected_customer", "x",
        ]),
        value in json_value(),
    ) {
        let mut header = json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
        for (k, v) in extra_header {
            if k != "alg" && k != "kid" {
                header[k] = v;
            }
        }
        let mut payload = serde_json::to_value(&c).unwrap();
        payload[claim] = value;
        let token = sign_raw(&header, &payload, 1);
        let r = check(&token, Timestamp::from_unix_seconds(c.iat));
        let documented = match &r {
            Ok(back) => back.team == "acme",
            Err(e) => matches!(e.code(), "invalid_token" | "token_expired"),
        };
        prop_assert!(documented, "{:?}", r);
    }
}
