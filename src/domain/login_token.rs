//! Login-link tokens (docs/api.md#the-login-callback): compact JWS, HS256, signed with the
//! team's primary security key, verified by `kid` within the team named by `aud`.
//!
//! Also home of the JWT checks shared with [`super::assertion`]: the header
//! rules (HS256 exactly, `kid` required, no `crit`) and error mapping.
//! Time is a parameter: the library's own clock is never used.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::numeric_date::{self, NumericDate};
use super::secrets::{SecurityKey, TeamKeys};
use crate::error::Error;
use crate::time::Timestamp;

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 5;

/// Where in the conversation the login happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    MidChat,
    PreChat,
}

/// The claims of a login token, as issued and as a login page reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginClaims {
    /// `server.issuer`.
    pub iss: String,
    /// The team id.
    pub aud: String,
    /// The interaction id (a UUID; checked by [`verify`]).
    pub sub: String,
    /// The link id (one-time; a UUID, checked by [`verify`]).
    pub jti: String,
    /// Read rounded down when it has a fraction (docs/api.md#conventions).
    #[serde(deserialize_with = "numeric_date::floor")]
    pub iat: i64,
    /// Absent when `token_ttl` is "0s"; read rounded down.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date::opt_floor"
    )]
    pub exp: Option<i64>,
    pub team: String,
    pub channel: String,
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_customer: Option<String>,
    /// The interaction's language when the link was issued (an entry of
    /// `locale.supported`), so the login page can speak it too; absent
    /// from a token issued before languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Signs `claims` with `key`: header `{"alg":"HS256","typ":"JWT","kid":<kid>}`.
pub fn issue(key: &SecurityKey, claims: &LoginClaims) -> Result<String, Error> {
    sign_hs256(key, claims, "a login token could not be signed")
}

/// Signs any `claims` as [`issue`] does (`what`: the error, should it fail).
pub fn sign_hs256<T: Serialize>(
    key: &SecurityKey,
    claims: &T,
    what: &'static str,
) -> Result<String, Error> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(key.secret.expose()),
    )
    .map_err(|e| Error::internal_from(what, e))
}

/// A token's payload as read: [`LoginClaims`]' members, as they read
/// them, and `nbf`. (Not `LoginClaims` flattened beside `nbf`: serde reads
/// a flattened struct by buffering every member first, then reading them
/// again.)
#[derive(Deserialize)]
struct Wire {
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    #[serde(deserialize_with = "numeric_date::floor")]
    iat: i64,
    #[serde(default, deserialize_with = "numeric_date::opt_floor")]
    exp: Option<i64>,
    team: String,
    channel: String,
    stage: Stage,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    expected_customer: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    /// Rounded up: a fraction never makes a token valid sooner.
    #[serde(default)]
    nbf: Option<NumericDate>,
}

impl Wire {
    /// The claims, and `nbf`.
    fn split(self) -> (LoginClaims, Option<NumericDate>) {
        let Wire {
            iss,
            aud,
            sub,
            jti,
            iat,
            exp,
            team,
            channel,
            stage,
            scope,
            expected_customer,
            locale,
            nbf,
        } = self;
        let claims = LoginClaims {
            iss,
            aud,
            sub,
            jti,
            iat,
            exp,
            team,
            channel,
            stage,
            scope,
            expected_customer,
            locale,
        };
        (claims, nbf)
    }
}

/// Verifies a login token. The unverified `aud` only chooses the team whose
/// keys are tried; everything is then checked against that team's key, so
/// the returned `aud` (= `team`) is the id of the team that signed it, and
/// `sub` and `jti` are UUIDs.
///
/// The checks and their answers are those of `jsonwebtoken::decode` with
/// [`validation`] (`iss`, `aud`, `sub` required, the issuer and the team as
/// audience), in its order: the header, the signature (HMAC-SHA256 over
/// the header and payload as sent, compared in constant time), the
/// claims, then the issuer and the audience. Each part is decoded once:
/// the header by [`hs256_kid`], the payload's text once, read for `aud`
/// before the signature and for the claims after it.
pub fn verify<'a, T: TeamKeys + 'a>(
    token: &str,
    issuer: &str,
    find_team: impl Fn(&str) -> Option<&'a T>,
    now: Timestamp,
) -> Result<LoginClaims, Error> {
    const MALFORMED: Error = Error::InvalidToken("malformed token");
    let kid = hs256_kid(token)?;
    let mut parts = token.split('.');
    let (Some(header), Some(sent), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MALFORMED);
    };
    // What the signature is over: the header and the payload as sent.
    let signed = &token.as_bytes()[..header.len() + 1 + sent.len()];
    let payload = B64URL.decode(sent).map_err(|_| MALFORMED)?;
    let aud = unverified_aud(&payload)?;
    let team = find_team(&aud).ok_or(BAD_KEY)?;
    let key = team.key_by_kid(&kid).ok_or(BAD_KEY)?;

    let signature = B64URL.decode(signature).map_err(|_| MALFORMED)?;
    let mut mac = key.hmac.mac();
    hmac::Mac::update(&mut mac, signed);
    hmac::Mac::verify_slice(mac, &signature).map_err(|_| BAD_KEY)?;

    let (claims, nbf) = serde_json::from_slice::<Wire>(&payload)
        .map_err(|_| Error::InvalidToken("a required claim is missing or malformed"))?
        .split();
    if claims.iss != issuer {
        return Err(Error::InvalidToken("wrong issuer"));
    }
    if claims.aud != team.team_id() {
        return Err(Error::InvalidToken("wrong audience"));
    }
    if Uuid::parse_str(&claims.sub).is_err() || Uuid::parse_str(&claims.jti).is_err() {
        return Err(Error::InvalidToken(
            "a required claim is missing or malformed",
        ));
    }
    if claims.team != team.team_id() {
        return Err(Error::InvalidToken(
            "the token's team does not match its audience",
        ));
    }
    // iss = aud is an assertion's pair only when the issuer is a team id,
    // which the loader refuses; never read one as a login token (RFC 8725 §2.8).
    if claims.iss == claims.aud {
        return Err(Error::InvalidToken("an assertion is not a login token"));
    }
    check_nbf(nbf.map(|n| n.ceil), now)?;
    if let Some(exp) = claims.exp {
        check_exp(exp, now)?;
    }
    Ok(claims)
}

/// Unknown team, unknown kid and a wrong signature answer alike.
pub(crate) const BAD_KEY: Error = Error::InvalidToken("bad signature or unknown key");

/// The header rules: no member name twice in the header's or the
/// payload's JSON, valid JOSE header, `alg` exactly HS256, no `crit`
/// extensions, a non-empty `kid`. Returns the kid.
pub(crate) fn hs256_kid(token: &str) -> Result<String, Error> {
    // A member name twice in the header's or the payload's JSON: readers
    // would disagree on the token (docs/api.md#errors), so it is malformed.
    let repeats = |part: &str| {
        let json = B64URL.decode(part).unwrap_or_default();
        super::json_members::repeated_member(&json).is_some()
    };
    if token.split('.').take(2).any(repeats) {
        return Err(Error::InvalidToken("malformed token"));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken("malformed token"))?;
    if header.alg != Algorithm::HS256 {
        return Err(Error::InvalidToken(
            "unsupported algorithm; only HS256 is accepted",
        ));
    }
    if header.crit.is_some() {
        return Err(Error::InvalidToken("unsupported critical header"));
    }
    match header.kid {
        Some(kid) if !kid.is_empty() => Ok(kid),
        _ => Err(Error::InvalidToken("the token header has no kid")),
    }
}

/// HS256 only, signature checked, time left to us (`validate_exp`/`nbf` off).
pub(crate) fn validation(required: &[&str]) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = LEEWAY_SECS.unsigned_abs();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_required_spec_claims(required);
    v
}

pub(crate) fn jwt_error(e: jsonwebtoken::errors::Error) -> Error {
    match e.kind() {
        ErrorKind::InvalidSignature => BAD_KEY,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => {
            Error::InvalidToken("unsupported algorithm; only HS256 is accepted")
        }
        ErrorKind::InvalidIssuer => Error::InvalidToken("wrong issuer"),
        ErrorKind::InvalidAudience => Error::InvalidToken("wrong audience"),
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_) => Error::InvalidToken("a required claim is missing or malformed"),
        _ => Error::InvalidToken("malformed token"),
    }
}

fn millis(secs: i64) -> i128 {
    i128::from(secs) * 1000
}

/// `now > exp + leeway` is expired (410), checked only after the signature.
pub(crate) fn check_exp(exp: i64, now: Timestamp) -> Result<(), Error> {
    if i128::from(now.unix_millis()) > millis(exp) + millis(LEEWAY_SECS) {
        return Err(Error::TokenExpired);
    }
    Ok(())
}

/// `nbf` more than the leeway in the future is not yet valid.
pub(crate) fn check_nbf(nbf: Option<i64>, now: Timestamp) -> Result<(), Error> {
    match nbf {
        Some(nbf) if millis(nbf) - millis(LEEWAY_SECS) > i128::from(now.unix_millis()) => {
            Err(Error::InvalidToken("the token is not valid yet"))
        }
        _ => Ok(()),
    }
}

/// Reads `aud` (a string) from the payload without trusting it: it only
/// chooses which team's keys to try.
fn unverified_aud(payload: &[u8]) -> Result<String, Error> {
    const MALFORMED: Error = Error::InvalidToken("malformed token");
    #[derive(Deserialize)]
    struct Peek {
        aud: Option<serde_json::Value>,
    }
    let peek: Peek = serde_json::from_slice(payload).map_err(|_| MALFORMED)?;
    match peek.aud {
        Some(serde_json::Value::String(aud)) => Ok(aud),
        Some(_) => Err(Error::InvalidToken("wrong audience")),
        None => Err(Error::InvalidToken(
            "a required claim is missing or malformed",
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use hmac::{Hmac, Mac};
    use serde_json::{json, Value};
    use sha2::Sha256;

    use super::*;
    use crate::domain::secrets::SecretBytes;
    use crate::time::{Clock, SystemClock};

    pub(crate) const T0: i64 = 1_795_000_000;
    const ISSUER: &str = "chatgate";

    /// A team as the token rules see it.
    pub(crate) struct TestTeam {
        pub id: String,
        pub security_keys: Vec<SecurityKey>,
    }

    impl TeamKeys for TestTeam {
        fn team_id(&self) -> &str {
            &self.id
        }
        fn key_by_kid(&self, kid: &str) -> Option<&SecurityKey> {
            self.security_keys.iter().find(|k| k.kid == kid)
        }
    }

    /// A team with keys `(kid, fill byte)` of 32 bytes; the first is primary.
    pub(crate) fn team(id: &str, keys: &[(&str, u8)]) -> TestTeam {
        let key = |(i, (kid, b)): (usize, &(&str, u8))| {
            SecurityKey::new(kid.to_string(), SecretBytes::new(vec![*b; 32]), i == 0)
        };
        TestTeam {
            id: id.into(),
            security_keys: keys.iter().enumerate().map(key).collect(),
        }
    }

    /// A compact JWS with any header, HMAC-SHA256 with a key of 32 `key` bytes.
    pub(crate) fn sign_raw(header: &Value, payload: &Value, key: u8) -> String {
        let (h, p) = (header.to_string(), payload.to_string());
        let msg = format!("{}.{}", B64URL.encode(h), B64URL.encode(p));
        let mut mac = Hmac::<Sha256>::new_from_slice(&[key; 32]).unwrap();
        mac.update(msg.as_bytes());
        format!("{msg}.{}", B64URL.encode(mac.finalize().into_bytes()))
    }

    pub(crate) fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(secs)
    }

    /// acme: k1 = 1s (primary), k2 = 2s. globex: k1 = 9s.
    fn teams() -> Vec<TestTeam> {
        vec![
            team("acme", &[("k1", 1), ("k2", 2)]),
            team("globex", &[("k1", 9)]),
        ]
    }

    fn claims(iat: i64, exp: Option<i64>) -> LoginClaims {
        LoginClaims {
            iss: ISSUER.into(),
            aud: "acme".into(),
            sub: Uuid::now_v7().to_string(),
            jti: Uuid::now_v7().to_string(),
            iat,
            exp,
            team: "acme".into(),
            channel: "webchat".into(),
            stage: Stage::MidChat,
            scope: Some("statement_copy".into()),
            expected_customer: None,
            locale: None,
        }
    }

    /// acme's claims (iat T0, exp T0 + 600) with `k` set to `v` (null removes it).
    fn payload_with(k: &str, v: Value) -> Value {
        let mut p = serde_json::to_value(claims(T0, Some(T0 + 600))).unwrap();
        match v {
            Value::Null => p.as_object_mut().unwrap().remove(k),
            v => p.as_object_mut().unwrap().insert(k.into(), v),
        };
        p
    }

    fn hdr(kid: &str) -> Value {
        json!({"alg": "HS256", "typ": "JWT", "kid": kid})
    }

    fn check(token: &str, now: i64) -> Result<LoginClaims, Error> {
        let ts = teams();
        let c = verify(token, ISSUER, |id| ts.iter().find(|t| t.id == id), at(now))?;
        assert_eq!(c.team, c.aud);
        Ok(c)
    }

    #[track_caller]
    fn invalid(token: &str, why: &str) {
        match check(token, T0) {
            Err(Error::InvalidToken(m)) => assert_eq!(m, why),
            other => panic!("expected InvalidToken({why:?}), got {other:?}"),
        }
    }

    const BAD: &str = "bad signature or unknown key";
    const ALG: &str = "unsupported algorithm; only HS256 is accepted";
    const CLAIM: &str = "a required claim is missing or malformed";
    const MALFORMED: &str = "malformed token";

    #[test]
    fn round_trip_with_primary_and_secondary_key() {
        let c = claims(T0, Some(T0 + 600));
        for key in &teams()[0].security_keys {
            assert_eq!(check(&issue(key, &c).unwrap(), T0 + 1).unwrap(), c);
        }
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("expected_customer").is_none(), "None is omitted");
        assert_eq!(json["stage"], "mid_chat");
    }

    #[test]
    fn standard_library_reads_it_with_the_shared_key() {
        let now = SystemClock.now().unix_seconds();
        let c = claims(now, Some(now + 600));
        let token = issue(&teams()[0].security_keys[0], &c).unwrap();
        let header = B64URL.decode(token.split('.').next().unwrap()).unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}));
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&["acme"]);
        v.set_issuer(&[ISSUER]);
        let key = jsonwebtoken::DecodingKey::from_secret(&[1u8; 32]);
        let data = jsonwebtoken::decode::<Value>(&token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], c.sub);
        assert_eq!(data.claims["jti"], c.jti);
        assert_eq!(
            (&data.claims["team"], &data.claims["channel"]),
            (&json!("acme"), &json!("webchat"))
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let p = payload_with("x", json!(1));
        for alg in ["HS384", "HS512", "RS256", "ES256", "PS256", "EdDSA"] {
            invalid(&sign_raw(&json!({"alg": alg, "kid": "k1"}), &p, 1), ALG);
        }
        for alg in ["none", "None", "hs256", ""] {
            invalid(
                &sign_raw(&json!({"alg": alg, "kid": "k1"}), &p, 1),
                MALFORMED,
            );
        }
        let unsigned = B64URL.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        invalid(
            &format!("{unsigned}.{}.", B64URL.encode(p.to_string())),
            MALFORMED,
        );
        // A real HS512 token made by the library with the right key.
        let mut h = Header::new(Algorithm::HS512);
        h.kid = Some("k1".into());
        let hs512 = jsonwebtoken::encode(&h, &p, &EncodingKey::from_secret(&[1u8; 32])).unwrap();
        invalid(&hs512, ALG);
        let crit = json!({"alg": "HS256", "kid": "k1", "crit": ["b64"]});
        invalid(&sign_raw(&crit, &p, 1), "unsupported critical header");
    }

    /// A compact JWS of raw header and payload text, signed with acme's k1.
    fn sign_text(header: &str, payload: &str) -> String {
        let msg = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
        let mut mac = Hmac::<Sha256>::new_from_slice(&[1; 32]).unwrap();
        mac.update(msg.as_bytes());
        format!("{msg}.{}", B64URL.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_member_named_twice_in_the_header_or_payload_is_malformed() {
        let p = payload_with("x", json!(1)).to_string();
        let h = hdr("k1").to_string();
        assert!(
            check(&sign_text(&h, &p), T0).is_ok(),
            "well signed, once each"
        );
        // A claim the gateway does not read, twice: serde would skip both.
        let extra = p.replacen('{', r#"{"x":0,"#, 1);
        invalid(&sign_text(&h, &extra), MALFORMED);
        // The signer may read the first `sub`, the gateway would the last.
        let twice = p.replacen('{', r#"{"sub":"019ab1c2-0000-7000-8000-000000000001","#, 1);
        invalid(&sign_text(&h, &twice), MALFORMED);
        let escaped = p.replacen(
            '{',
            r#"{"\u0073ub":"019ab1c2-0000-7000-8000-000000000001","#,
            1,
        );
        invalid(&sign_text(&h, &escaped), MALFORMED);
        let header_twice = h.replacen('{', r#"{"kid":"k2","#, 1);
        invalid(&sign_text(&header_twice, &p), MALFORMED);
    }

    #[test]
    fn wrong_key_other_team_key_unknown_or_missing_kid() {
        let p = payload_with("x", json!(1));
        assert!(check(&sign_raw(&hdr("k1"), &p, 1), T0).is_ok());
        invalid(&sign_raw(&hdr("k1"), &p, 3), BAD);
        // globex's key has kid "k1" too; it must not open acme's tokens.
        invalid(&sign_raw(&hdr("k1"), &p, 9), BAD);
        // acme's k2 secret under the k1 kid.
        invalid(&sign_raw(&hdr("k1"), &p, 2), BAD);
        invalid(&sign_raw(&hdr("k3"), &p, 1), BAD);
        invalid(&sign_raw(&hdr(""), &p, 1), "the token header has no kid");
        invalid(
            &sign_raw(&json!({"alg": "HS256", "typ": "JWT"}), &p, 1),
            "the token header has no kid",
        );
    }

    #[test]
    fn wrong_iss_aud_or_team_claim() {
        invalid(
            &sign_raw(&hdr("k1"), &payload_with("iss", json!("other")), 1),
            "wrong issuer",
        );
        invalid(
            &sign_raw(&hdr("k1"), &payload_with("aud", json!("nobody")), 1),
            BAD,
        );
        invalid(
            &sign_raw(&hdr("k1"), &payload_with("aud", json!(["acme"])), 1),
            "wrong audience",
        );
        // globex exists, but acme's key does not sign for it; globex's does.
        let mut p = payload_with("aud", json!("globex"));
        p["team"] = json!("globex");
        invalid(&sign_raw(&hdr("k1"), &p, 1), BAD);
        assert!(check(&sign_raw(&hdr("k1"), &p, 9), T0).is_ok());
        let team = payload_with("team", json!("globex"));
        invalid(
            &sign_raw(&hdr("k1"), &team, 1),
            "the token's team does not match its audience",
        );
    }

    #[test]
    fn required_claims_must_be_present_and_typed() {
        for k in ["iss", "sub", "jti", "iat", "team", "channel", "stage"] {
            invalid(
                &sign_raw(&hdr("k1"), &payload_with(k, Value::Null), 1),
                CLAIM,
            );
        }
        invalid(
            &sign_raw(&hdr("k1"), &payload_with("aud", Value::Null), 1),
            CLAIM,
        );
        for (k, v) in [
            ("sub", "not-a-uuid"),
            ("jti", "x"),
            ("iat", "now"),
            ("exp", "later"),
            ("stage", "later"),
        ] {
            invalid(&sign_raw(&hdr("k1"), &payload_with(k, json!(v)), 1), CLAIM);
        }
    }

    #[test]
    fn exp_has_five_seconds_of_leeway_checked_after_the_signature() {
        let token = issue(&teams()[0].security_keys[0], &claims(T0, Some(T0 + 600))).unwrap();
        assert!(check(&token, T0 + 605).is_ok());
        assert!(matches!(check(&token, T0 + 606), Err(Error::TokenExpired)));
        let ts = teams();
        let just_after = Timestamp::from_unix_millis((T0 + 605) * 1000 + 1);
        let r = verify(
            &token,
            ISSUER,
            |id| ts.iter().find(|t| t.id == id),
            just_after,
        );
        assert!(matches!(r, Err(Error::TokenExpired)));
        let forged = sign_raw(&hdr("k1"), &payload_with("exp", json!(T0 - 3600)), 3);
        invalid(&forged, BAD);
    }

    #[test]
    fn no_exp_never_expires_but_nbf_is_honoured() {
        let token = issue(&teams()[0].security_keys[0], &claims(T0, None)).unwrap();
        assert_eq!(check(&token, T0 + 10 * 365 * 86_400).unwrap().exp, None);
        let p = payload_with("nbf", json!(T0 + 60));
        let token = sign_raw(&hdr("k1"), &p, 1);
        invalid(&token, "the token is not valid yet");
        assert!(check(&token, T0 + 55).is_ok());
    }

    #[test]
    fn times_with_a_fraction_are_read_and_checked_tightly() {
        // exp T0 + 600.5: read, and never later than written (5 s leeway).
        let p = payload_with("exp", json!(T0 as f64 + 600.5));
        let token = sign_raw(&hdr("k1"), &p, 1);
        let c = check(&token, T0).unwrap();
        assert_eq!(c.exp, Some(T0 + 600));
        assert!(check(&token, T0 + 605).is_ok());
        assert!(matches!(check(&token, T0 + 606), Err(Error::TokenExpired)));
        // iat with a fraction is read as well.
        let p = payload_with("iat", json!(T0 as f64 - 0.25));
        assert!(check(&sign_raw(&hdr("k1"), &p, 1), T0).is_ok());
        // nbf T0 + 5.5 is valid from T0 + 0.5 (leeway): not yet at T0.
        let p = payload_with("nbf", json!(T0 as f64 + 5.5));
        let token = sign_raw(&hdr("k1"), &p, 1);
        invalid(&token, "the token is not valid yet");
        assert!(check(&token, T0 + 1).is_ok());
        for bad in [json!("1"), json!(true), json!(1e300)] {
            invalid(&sign_raw(&hdr("k1"), &payload_with("exp", bad), 1), CLAIM);
        }
    }

    #[test]
    fn garbage_is_invalid_token_never_a_panic() {
        let good = issue(&teams()[0].security_keys[0], &claims(T0, None)).unwrap();
        let (extra, no_sig) = (
            format!("{good}.x"),
            good.rsplit_once('.').unwrap().0.to_string(),
        );
        let long = "a".repeat(70_000);
        let garbage = [
            "",
            ".",
            "..",
            "...",
            "a",
            "a.b",
            "a.b.c",
            "eyJ.eyJ.x",
            "e30.e30.",
            "\u{0}",
        ];
        for g in garbage
            .iter()
            .copied()
            .chain([long.as_str(), extra.as_str(), no_sig.as_str()])
        {
            assert!(matches!(check(g, T0), Err(Error::InvalidToken(_))), "{g:?}");
        }
        for p in [json!(null), json!([1, 2]), json!("acme"), json!({})] {
            assert!(matches!(
                check(&sign_raw(&hdr("k1"), &p, 1), T0),
                Err(Error::InvalidToken(_))
            ));
        }
    }

    #[test]
    fn errors_never_repeat_the_token() {
        let token = sign_raw(&hdr("k1"), &payload_with("x", json!(1)), 3);
        let text = check(&token, T0).unwrap_err().to_string();
        assert!(
            !text.contains(token.split('.').nth(2).unwrap()) && !text.contains("k1"),
            "{text}"
        );
    }
}
