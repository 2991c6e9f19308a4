//! Tokens a team's identity provider or Shared Signals transmitter signs:
//! the signature by a key of the provider's set (fetched and cached by
//! `crate::oidc::Providers`), then the claims every such token shares.
//! Used by the hosted login (`oidc`), its back-channel logout
//! (`oidc_logout`), app approval (`ciba`) and Shared Signals (`ssf`).
use super::Core;
use crate::config::OidcConfig;
use crate::oidc::provider::KeyUse;
use crate::oidc::{id_token, KeySet, OidcError};
use crate::time::Timestamp;

/// A token of the team's provider, ID token or logout token alike: its
/// signature by a key of the provider's set (named by `kid`; an unknown
/// one fetches the set again, rate-limited for each `use_` apart:
/// docs/decisions/0093-refetching-a-key-set.md) with an allowed algorithm,
/// then `iss`, `aud` and `azp` ([`id_token::check_audience`]). Returns
/// its claims for the checks of its kind.
pub(super) async fn provider_token(
    core: &Core,
    oidc: &OidcConfig,
    meta: &crate::oidc::Metadata,
    token: &str,
    use_: KeyUse,
    now: Timestamp,
) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
    let keys = KeySet {
        cache: &oidc.issuer,
        jwks_uri: &meta.jwks_uri,
        issuer: &meta.issuer,
        reach: oidc.reach,
    };
    let claims = signed_claims(core, &keys, use_, token, now).await?;
    id_token::check_audience(&claims, &oidc.issuer, &oidc.client_id)?;
    Ok(claims)
}

/// The claims of `token` if a key of `keys` named by its `kid` signed
/// it with an allowed algorithm (an unknown `kid` fetches the set
/// again, rate-limited): the signature check of every token from an
/// identity provider or a Shared Signals transmitter.
pub(super) async fn signed_claims(
    core: &Core,
    keys: &KeySet<'_>,
    use_: KeyUse,
    token: &str,
    now: Timestamp,
) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
    let (alg, kid) = id_token::header(token)?;
    let jwk = core.oidc().key_for(keys, use_, &kid, now).await?;
    id_token::verify_signature(token, &jwk, alg)
}

/// Clock skew allowed on a `Chatgate-Actor` token's `exp`, `nbf` and
/// `iat`, in seconds.
const ACTOR_LEEWAY_SECS: i64 = 30;

/// The longest life of a `Chatgate-Actor` token (`exp` − `iat`, or `exp`
/// − now without `iat`), in seconds: a portal's token is short-lived.
const ACTOR_MAX_LIFE_SECS: i64 = 24 * 3600;

/// The person a `Chatgate-Actor` token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub sub: String,
    /// `preferred_username`, else `email`, else `name`.
    pub name: Option<String>,
}

/// Why a `Chatgate-Actor` token was refused: the check it failed
/// (`detail.reason` of its `access.denied`, never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorRefusal {
    /// The team has no `[console.oidc]`.
    NoProvider,
    /// Not a JWS, an algorithm other than RS256, PS256, ES256, no `kid`.
    Alg,
    /// A `kid` not in the provider's key set, or a key that does not fit.
    Key,
    Signature,
    Iss,
    Aud,
    Exp,
    /// Not valid yet (`nbf`).
    Nbf,
    /// Issued ahead of now (`iat` more than 30 s ahead, or not a number).
    Iat,
    /// A life over 24 hours (`exp` − `iat`, or `exp` − now).
    Life,
    /// A `typ` header other than `JWT` or `at+jwt` (a logout token is no
    /// actor).
    Typ,
    Sub,
    /// The provider's discovery or key set could not be read.
    Provider,
}

impl ActorRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorRefusal::NoProvider => "actor_no_provider",
            ActorRefusal::Alg => "actor_alg",
            ActorRefusal::Key => "actor_key",
            ActorRefusal::Signature => "actor_signature",
            ActorRefusal::Iss => "actor_iss",
            ActorRefusal::Aud => "actor_aud",
            ActorRefusal::Exp => "actor_exp",
            ActorRefusal::Nbf => "actor_nbf",
            ActorRefusal::Iat => "actor_iat",
            ActorRefusal::Life => "actor_life",
            ActorRefusal::Typ => "actor_typ",
            ActorRefusal::Sub => "actor_sub",
            ActorRefusal::Provider => "actor_provider_unavailable",
        }
    }
}

/// The person of a `Chatgate-Actor` token of `team`'s workforce provider
/// (docs/api.md#a-person-behind-every-agent-action): signed by a key of
/// its set with an allowed algorithm, `iss` its issuer, `aud` containing
/// the actor audience, unexpired and already valid (`exp`, and `nbf` when
/// given, with 30 s of leeway), not issued ahead (`iat`, when given, 30 s
/// at most), living 24 hours at most, of a `typ` an actor's token has, with
/// a `sub`. Its role claim is not read: the key's role decides.
pub async fn actor_person(
    core: &Core,
    team: &crate::config::Team,
    token: &str,
    now: Timestamp,
) -> Result<Person, ActorRefusal> {
    let console = team.console.oidc.as_ref().ok_or(ActorRefusal::NoProvider)?;
    actor_person_of(core, &console.provider, &console.actor_audience, token, now).await
}

/// The person of a `Chatgate-Actor` token issued by `oidc`'s issuer for
/// `audience`, checked as [`actor_person`] says: a team's workforce
/// provider, or `[operator.actor]` (docs/operator-api.md#roles).
pub async fn actor_person_of(
    core: &Core,
    oidc: &OidcConfig,
    audience: &str,
    token: &str,
    now: Timestamp,
) -> Result<Person, ActorRefusal> {
    let (alg, kid) = id_token::header(token).map_err(|_| ActorRefusal::Alg)?;
    let typ = id_token::header_typ(token).map_err(|_| ActorRefusal::Alg)?;
    if !actor_typ(typ.as_deref()) {
        return Err(ActorRefusal::Typ);
    }
    let meta = core
        .oidc()
        .metadata(oidc, now)
        .await
        .map_err(|_| ActorRefusal::Provider)?;
    let keys = KeySet {
        cache: &oidc.issuer,
        jwks_uri: &meta.jwks_uri,
        issuer: &meta.issuer,
        reach: oidc.reach,
    };
    let jwk = match core.oidc().key_for(&keys, KeyUse::Actor, &kid, now).await {
        Ok(jwk) => jwk,
        Err(OidcError::Provider(_)) => return Err(ActorRefusal::Provider),
        Err(_) => return Err(ActorRefusal::Key),
    };
    let claims = id_token::verify_signature(token, &jwk, alg).map_err(|e| match e {
        OidcError::Unverified("bad signature") => ActorRefusal::Signature,
        _ => ActorRefusal::Key,
    })?;
    person_of(&claims, &oidc.issuer, audience, now)
}

/// Whether a `Chatgate-Actor` token's `typ` header is one an actor's token
/// has: none, `JWT` (an ID token) or `at+jwt` (an access token, RFC 9068).
/// Compared as RFC 7515 compares media types: without case, and with the
/// `application/` prefix optional. Any other (a logout token's
/// `logout+jwt`, a Security Event Token's `secevent+jwt`) is refused.
pub(super) fn actor_typ(typ: Option<&str>) -> bool {
    let Some(typ) = typ else {
        return true;
    };
    let typ = typ.to_ascii_lowercase();
    let typ = typ.strip_prefix("application/").unwrap_or(&typ);
    matches!(typ, "jwt" | "at+jwt")
}

/// The claim checks of a `Chatgate-Actor` token whose signature held.
fn person_of(
    claims: &serde_json::Map<String, serde_json::Value>,
    issuer: &str,
    audience: &str,
    now: Timestamp,
) -> Result<Person, ActorRefusal> {
    use serde_json::Value;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(issuer) {
        return Err(ActorRefusal::Iss);
    }
    let has_audience = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(audience)),
        _ => false,
    };
    if !has_audience {
        return Err(ActorRefusal::Aud);
    }
    // A fraction never widens the check: `exp` rounded down.
    let exp = claims
        .get("exp")
        .and_then(crate::domain::numeric_date::NumericDate::of)
        .ok_or(ActorRefusal::Exp)?
        .floor;
    if now.unix_seconds() >= exp.saturating_add(ACTOR_LEEWAY_SECS) {
        return Err(ActorRefusal::Exp);
    }
    // Not valid yet; a fraction never widens the check: `nbf` rounded up.
    if let Some(nbf) = claims.get("nbf") {
        let nbf = crate::domain::numeric_date::NumericDate::of(nbf)
            .ok_or(ActorRefusal::Nbf)?
            .ceil;
        if nbf > now.unix_seconds().saturating_add(ACTOR_LEEWAY_SECS) {
            return Err(ActorRefusal::Nbf);
        }
    }
    actor_life(claims, now)?;
    let sub = text("sub")
        .filter(|s| !s.is_empty())
        .ok_or(ActorRefusal::Sub)?;
    Ok(Person {
        sub: sub.to_string(),
        name: crate::domain::console_session::person_name(claims),
    })
}

/// `iat`, when given, is a number not more than 30 s ahead of `now`; the
/// token's life (`exp` − `iat`, or `exp` − `now` without `iat`) is at most
/// 24 hours. A fraction never widens either check: `iat` rounded up for
/// the first, the life read at its longest (`exp` up, `iat` down).
fn actor_life(
    claims: &serde_json::Map<String, serde_json::Value>,
    now: Timestamp,
) -> Result<(), ActorRefusal> {
    use crate::domain::numeric_date::NumericDate;
    let exp = claims
        .get("exp")
        .and_then(NumericDate::of)
        .ok_or(ActorRefusal::Exp)?;
    let start = match claims.get("iat") {
        Some(iat) => {
            let iat = NumericDate::of(iat).ok_or(ActorRefusal::Iat)?;
            if iat.ceil > now.unix_seconds().saturating_add(ACTOR_LEEWAY_SECS) {
                return Err(ActorRefusal::Iat);
            }
            iat.floor
        }
        None => now.unix_seconds(),
    };
    if exp.ceil.saturating_sub(start) > ACTOR_MAX_LIFE_SECS {
        return Err(ActorRefusal::Life);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    const NOW: i64 = 1_800_000_000;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn life(v: Value) -> Result<(), ActorRefusal> {
        actor_life(&claims(v), Timestamp::from_unix_seconds(NOW))
    }

    #[test]
    fn iat_ahead_by_more_than_30_s_is_refused() {
        assert_eq!(life(json!({"exp": NOW + 60, "iat": NOW + 30})), Ok(()));
        assert_eq!(
            life(json!({"exp": NOW + 60, "iat": NOW as f64 + 30.5})),
            Err(ActorRefusal::Iat)
        );
        assert_eq!(
            life(json!({"exp": NOW + 60, "iat": NOW + 31})),
            Err(ActorRefusal::Iat)
        );
        let year = 365 * 24 * 3600;
        assert_eq!(
            life(json!({"exp": NOW + year + 60, "iat": NOW + year})),
            Err(ActorRefusal::Iat)
        );
        assert_eq!(
            life(json!({"exp": NOW + 60, "iat": "now"})),
            Err(ActorRefusal::Iat)
        );
    }

    #[test]
    fn a_life_over_24_hours_is_refused_with_or_without_iat() {
        let day = ACTOR_MAX_LIFE_SECS;
        assert_eq!(life(json!({"exp": NOW + day, "iat": NOW})), Ok(()));
        assert_eq!(
            life(json!({"exp": NOW + day + 1, "iat": NOW})),
            Err(ActorRefusal::Life)
        );
        assert_eq!(
            life(json!({"exp": NOW + day, "iat": NOW as f64 - 0.5})),
            Err(ActorRefusal::Life)
        );
        // Issued long ago, still unexpired: its life is what counts.
        assert_eq!(
            life(json!({"exp": NOW + 60, "iat": NOW - day})),
            Err(ActorRefusal::Life)
        );
        assert_eq!(life(json!({"exp": NOW + day})), Ok(()));
        assert_eq!(life(json!({"exp": NOW + day + 1})), Err(ActorRefusal::Life));
        let ten_years = 10 * 365 * 24 * 3600;
        assert_eq!(
            life(json!({"exp": NOW + ten_years})),
            Err(ActorRefusal::Life)
        );
    }

    #[test]
    fn only_an_id_or_access_token_s_typ_is_an_actor_s() {
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("at+jwt"),
            Some("application/at+JWT"),
        ] {
            assert!(actor_typ(typ), "{typ:?}");
        }
        for typ in [
            "logout+jwt",
            "secevent+jwt",
            "application/logout+jwt",
            "",
            "JOSE",
        ] {
            assert!(!actor_typ(Some(typ)), "{typ}");
        }
    }
}
