//! An OAuth access token that acts as a team's bot on the MCP server
//! (docs/agents.md#oauth-access-tokens): which team's authorization
//! server a token says it is from (read before its signature, only to
//! choose the key set), and the claim checks of one whose signature held
//! — `iss`, `aud`, `exp` and `nbf` with [`LEEWAY_SECS`], the scope, a
//! `sub` fit to name an actor. Plain functions of `now`.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{Map, Value};

use super::numeric_date::NumericDate;
use crate::time::Timestamp;

/// Clock skew allowed on `exp` and `nbf`, in seconds: a login token's
/// (docs/api.md#errors), not an ID token's minute.
pub const LEEWAY_SECS: i64 = super::login_token::LEEWAY_SECS;

/// The longest `sub` taken: it names the actor in log lines and audit
/// entries.
pub const MAX_SUB: usize = 255;

/// What the actor of an access token is called: `oauth:` and its `sub`.
pub fn actor_id(sub: &str) -> String {
    format!("oauth:{sub}")
}

/// Why an access token was refused: the check it failed, for the log
/// line (never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JWS, `alg: none`, HMAC or another algorithm than RS256,
    /// PS256 or ES256, no `kid`, or a `typ` no access token has.
    Alg,
    /// An `iss` that is no team's `[mcp] oauth` issuer.
    Iss,
    /// An `aud` without the audience of the issuer's team, or with the
    /// audiences of two teams of one issuer.
    Aud,
    /// A `kid` not in the issuer's key set, or a key that does not fit.
    Key,
    Signature,
    Exp,
    Nbf,
    /// The team's scope is not among the token's.
    Scope,
    /// No `sub`, or one that cannot name an actor.
    Sub,
    /// The issuer's metadata or key set could not be read.
    Provider,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Alg => "alg",
            Refusal::Iss => "iss",
            Refusal::Aud => "aud",
            Refusal::Key => "key",
            Refusal::Signature => "signature",
            Refusal::Exp => "exp",
            Refusal::Nbf => "nbf",
            Refusal::Scope => "scope",
            Refusal::Sub => "sub",
            Refusal::Provider => "provider_unavailable",
        }
    }
}

/// Whether `key` is shaped as a compact JWS (three base64url parts): only
/// such a bearer is read as an access token.
pub fn looks_like_jwt(key: &str) -> bool {
    let b64 = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = key.split('.').collect();
    parts.len() == 3 && !parts[0].is_empty() && !parts[1].is_empty() && parts.iter().all(|p| b64(p))
}

/// The `iss` and `aud` a token says, unverified: only what chooses
/// whose key set checks it. `None` for a payload that is not a JSON
/// object with a string `iss`.
pub fn says(token: &str) -> Option<(String, Vec<String>)> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64URL.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let iss = claims.get("iss")?.as_str()?.to_string();
    Some((iss, audiences(&claims)))
}

/// A token's `aud`: one string or an array of them.
fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// What a team expects of its access tokens.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub scope: &'a str,
}

/// The `sub` of a token whose signature held, if its claims pass: `iss`
/// the issuer, `aud` containing the audience, `exp` not passed and `nbf`
/// (when present) not ahead, each by more than [`LEEWAY_SECS`], the scope
/// among `scope`'s space-separated values (or, without `scope`, `scp`'s,
/// a string or an array, as some providers write them), and a `sub` of 1
/// to [`MAX_SUB`] bytes without a control character.
pub fn check(
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
    now: Timestamp,
) -> Result<String, Refusal> {
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return Err(Refusal::Iss);
    }
    if !audiences(claims).iter().any(|a| a == expect.audience) {
        return Err(Refusal::Aud);
    }
    // A fraction never widens a check: `exp` rounded down, `nbf` up.
    let exp = claims
        .get("exp")
        .and_then(NumericDate::of)
        .ok_or(Refusal::Exp)?
        .floor;
    if now.unix_seconds() >= exp.saturating_add(LEEWAY_SECS) {
        return Err(Refusal::Exp);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = NumericDate::of(nbf).ok_or(Refusal::Nbf)?.ceil;
        if nbf > now.unix_seconds().saturating_add(LEEWAY_SECS) {
            return Err(Refusal::Nbf);
        }
    }
    if !scopes(claims).any(|s| s == expect.scope) {
        return Err(Refusal::Scope);
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let fits = !sub.is_empty() && sub.len() <= MAX_SUB && !sub.chars().any(char::is_control);
    if !fits {
        return Err(Refusal::Sub);
    }
    Ok(sub.to_string())
}

/// The scopes a token holds: `scope` (RFC 9068), else `scp`.
fn scopes(claims: &Map<String, Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => {
            Box::new(s.split(' ').filter(|s| !s.is_empty()))
        }
        (None, Some(Value::Array(a))) => Box::new(a.iter().filter_map(Value::as_str)),
        _ => Box::new(std::iter::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const EXPECT: Expect<'static> = Expect {
        issuer: "https://as.example",
        audience: "https://gw.example/mcp",
        scope: "chatgate:bot",
    };

    fn valid() -> Value {
        json!({"iss": "https://as.example", "aud": "https://gw.example/mcp",
               "sub": "agent-7", "exp": NOW + 300, "scope": "openid chatgate:bot"})
    }

    fn checked(change: Value) -> Result<String, Refusal> {
        let mut c = valid();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        check(
            c.as_object().unwrap(),
            &EXPECT,
            Timestamp::from_unix_seconds(NOW),
        )
    }

    #[test]
    fn a_valid_token_names_its_sub() {
        assert_eq!(checked(json!({})), Ok("agent-7".into()));
        assert_eq!(actor_id("agent-7"), "oauth:agent-7");
    }

    #[test]
    fn iss_must_be_the_issuer() {
        assert_eq!(
            checked(json!({"iss": "https://other.example"})),
            Err(Refusal::Iss)
        );
        assert_eq!(checked(json!({"iss": null})), Err(Refusal::Iss));
    }

    #[test]
    fn aud_must_contain_the_audience() {
        assert_eq!(
            checked(json!({"aud": "https://gw.example"})),
            Err(Refusal::Aud)
        );
        assert_eq!(checked(json!({"aud": null})), Err(Refusal::Aud));
        let several = json!({"aud": ["x", "https://gw.example/mcp"]});
        assert_eq!(checked(several), Ok("agent-7".into()));
    }

    #[test]
    fn exp_is_required_and_has_five_seconds_of_leeway() {
        assert_eq!(checked(json!({"exp": null})), Err(Refusal::Exp));
        assert_eq!(checked(json!({"exp": "soon"})), Err(Refusal::Exp));
        assert_eq!(checked(json!({"exp": NOW - 4})), Ok("agent-7".into()));
        assert_eq!(checked(json!({"exp": NOW - 5})), Err(Refusal::Exp));
        assert_eq!(
            checked(json!({"exp": (NOW - 4) as f64 - 0.5})),
            Err(Refusal::Exp)
        );
    }

    #[test]
    fn nbf_ahead_by_more_than_five_seconds_is_refused() {
        assert_eq!(checked(json!({"nbf": NOW + 5})), Ok("agent-7".into()));
        assert_eq!(
            checked(json!({"nbf": (NOW + 5) as f64 + 0.5})),
            Err(Refusal::Nbf)
        );
        assert_eq!(checked(json!({"nbf": "now"})), Err(Refusal::Nbf));
    }

    #[test]
    fn the_scope_must_be_held() {
        assert_eq!(checked(json!({"scope": "openid"})), Err(Refusal::Scope));
        assert_eq!(
            checked(json!({"scope": "chatgate:botx"})),
            Err(Refusal::Scope)
        );
        assert_eq!(checked(json!({"scope": null})), Err(Refusal::Scope));
        assert_eq!(
            checked(json!({"scope": null, "scp": ["chatgate:bot"]})),
            Ok("agent-7".into())
        );
        assert_eq!(
            checked(json!({"scope": null, "scp": "a chatgate:bot"})),
            Ok("agent-7".into())
        );
        // `scope` wins over `scp`.
        assert_eq!(
            checked(json!({"scope": "a", "scp": "chatgate:bot"})),
            Err(Refusal::Scope)
        );
    }

    #[test]
    fn sub_must_name_an_actor() {
        assert_eq!(checked(json!({"sub": null})), Err(Refusal::Sub));
        assert_eq!(checked(json!({"sub": ""})), Err(Refusal::Sub));
        assert_eq!(checked(json!({"sub": "a\nb"})), Err(Refusal::Sub));
        assert_eq!(checked(json!({"sub": "x".repeat(256)})), Err(Refusal::Sub));
        assert_eq!(checked(json!({"sub": 42})), Err(Refusal::Sub));
    }

    #[test]
    fn only_a_compact_jws_is_read_and_its_issuer_said() {
        assert!(!looks_like_jwt("cg_live_key_0123456789"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a.b c.d"));
        assert!(looks_like_jwt("eyJh.eyJp.sig"));
        assert!(looks_like_jwt("eyJh.eyJp."), "alg none has no signature");
        let payload =
            B64URL.encode(json!({"iss": "https://as.example", "aud": ["a", 1, "b"]}).to_string());
        let token = format!("eyJh.{payload}.x");
        assert_eq!(
            says(&token),
            Some(("https://as.example".into(), vec!["a".into(), "b".into()]))
        );
        assert_eq!(says("eyJh.!!.x"), None);
        let no_iss = B64URL.encode(json!({"aud": "a"}).to_string());
        assert_eq!(says(&format!("h.{no_iss}.s")), None);
    }
}
