//! An SD-JWT VC presentation verified (docs/wallet.md#sd-jwt-vc):
//! `<issuer-jwt>~<disclosure>~…~<kb-jwt>`. The issuer JWT must be signed
//! (ES256, ES384 or EdDSA) by the leaf of its `x5c`, whose chain reaches a
//! trusted issuer at `now`; its `typ`, `vct` and times hold; its
//! disclosures are put back ([`super::disclosures`]); and the Key Binding
//! JWT is signed by the key of its `cnf`, for this verifier's `client_id`
//! and `nonce`, recently, over exactly this presentation.
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::disclosures::{disclose, HashAlg};
pub use super::invalid::Invalid;
use super::issuers::{verify_chain, Chain, TrustedIssuers};
use super::jose::{b64, Jws, Object, PublicKey};
use super::outcome::Refused;
pub use super::outcome::{Outcome, Verified};
use super::status_list::StatusRef;
use crate::domain::numeric_date::NumericDate;
use crate::time::Timestamp;

/// The leeway of the credential's `exp`, `nbf` and `iat`, and of a key
/// binding's `iat` in the future, in seconds.
pub const LEEWAY: i64 = 60;

/// How old a key binding may be (its `iat`), in seconds.
pub const KB_MAX_AGE: i64 = 300;

/// What the presentation is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub trusted: &'a TrustedIssuers,
    /// The accepted `vct` values.
    pub vct: &'a [String],
    /// The key binding's `aud`: the verifier's `client_id` for an answer
    /// by `direct_post.jwt`; `origin:` and the page's origin for one
    /// through the Digital Credentials API, signed request or not
    /// (OpenID4VP 1.0, Appendix A.4).
    pub audience: &'a str,
    /// The key binding's `nonce`: the request's.
    pub nonce: &'a str,
    pub now: Timestamp,
}

/// The outcome of `presentation` against `expected`.
pub fn verify(presentation: &str, expected: &Expected<'_>) -> Outcome {
    verified(presentation, expected).into()
}

fn verified(presentation: &str, expected: &Expected<'_>) -> Result<Verified, Refused> {
    let last = presentation.rfind('~').ok_or(Invalid::Malformed)?;
    let (up_to_kb, kb) = presentation.split_at(last + 1);
    let mut parts = up_to_kb[..last].split('~');
    let issuer_jwt = parts.next().ok_or(Invalid::Malformed)?;
    let disclosures: Vec<&str> = parts.collect();
    if disclosures.iter().any(|d| d.is_empty()) {
        return Err(Invalid::Malformed.into());
    }
    let jws = Jws::split(issuer_jwt).ok_or(Invalid::Malformed)?;
    let issuer = issuer_of(&jws, expected)?;
    let claims = jws.claims;
    let vct = credential_claims(&claims, expected)?;
    let alg = match claims.get("_sd_alg") {
        None => HashAlg::Sha256,
        Some(v) => v
            .as_str()
            .and_then(HashAlg::parse)
            .ok_or(Invalid::UnsupportedDigestAlg)?,
    };
    let holder = claims
        .get("cnf")
        .and_then(|c| c.get("jwk"))
        .and_then(Value::as_object)
        .and_then(PublicKey::from_jwk)
        .ok_or(Invalid::NoHolderKey)?;
    let key_binding = key_binding(kb, &holder, &alg.digest(up_to_kb), expected)?;
    let status = StatusRef::from_claim(claims.get("status"))?;
    let claims = disclose(claims, &disclosures, alg)?;
    Ok(Verified {
        claims,
        issuer: issuer.subject,
        credential_type: vct,
        status,
        key_binding,
    })
}

/// The issuer JWT's header checked, its chain and its signature.
fn issuer_of(jws: &Jws<'_>, expected: &Expected<'_>) -> Result<super::issuers::Issuer, Refused> {
    match jws.header.get("typ").and_then(Value::as_str) {
        Some("dc+sd-jwt" | "vc+sd-jwt") => {}
        _ => return Err(Invalid::WrongType.into()),
    }
    jws.alg().ok_or(Invalid::UnsupportedAlg)?;
    // Without `x5c` the issuer cannot be tied to a trusted one.
    let x5c = match jws.header.get("x5c") {
        None => return Err(Refused::Untrusted),
        Some(Value::Array(certs)) => certs,
        Some(_) => return Err(Invalid::Malformed.into()),
    };
    let x5c: Vec<Vec<u8>> = x5c
        .iter()
        .map(|c| c.as_str().and_then(b64))
        .collect::<Option<_>>()
        .ok_or(Invalid::Malformed)?;
    let issuer = verify_chain(&x5c, expected.trusted, expected.now).map_err(|c| match c {
        Chain::Malformed => Refused::Invalid(Invalid::Malformed),
        Chain::Untrusted => Refused::Untrusted,
    })?;
    if !jws.signed_by(&issuer.key) {
        return Err(Invalid::BadSignature.into());
    }
    Ok(issuer)
}

/// The credential's `vct` (accepted) and times (`exp`, `nbf`, `iat`, each
/// optional, within [`LEEWAY`]).
fn credential_claims(claims: &Object, expected: &Expected<'_>) -> Result<String, Invalid> {
    let vct = claims
        .get("vct")
        .and_then(Value::as_str)
        .ok_or(Invalid::Malformed)?;
    if !expected.vct.iter().any(|v| v == vct) {
        return Err(Invalid::VctNotAccepted);
    }
    let now = expected.now.unix_seconds();
    if date(claims, "exp")?.is_some_and(|exp| now >= exp.floor.saturating_add(LEEWAY)) {
        return Err(Invalid::Expired);
    }
    if date(claims, "nbf")?.is_some_and(|nbf| now < nbf.ceil.saturating_sub(LEEWAY)) {
        return Err(Invalid::NotYetValid);
    }
    if date(claims, "iat")?.is_some_and(|iat| now < iat.ceil.saturating_sub(LEEWAY)) {
        return Err(Invalid::IssuedInTheFuture);
    }
    Ok(vct.to_string())
}

/// The NumericDate `name` of `claims`, if present; present but not a
/// number is malformed.
fn date(claims: &Object, name: &str) -> Result<Option<NumericDate>, Invalid> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => NumericDate::of_number(n)
            .map(Some)
            .ok_or(Invalid::Malformed),
        Some(_) => Err(Invalid::Malformed),
    }
}

/// The Key Binding JWT: `typ` `kb+jwt`, signed by `holder`, `aud` the
/// client id, `nonce` the request's, `iat` within the last
/// [`KB_MAX_AGE`] seconds, `sd_hash` the presentation's digest `sd_hash`:
/// its claims.
fn key_binding(
    kb: &str,
    holder: &PublicKey,
    sd_hash: &str,
    expected: &Expected<'_>,
) -> Result<Object, Invalid> {
    if kb.is_empty() {
        return Err(Invalid::NoKeyBinding);
    }
    let jws = Jws::split(kb).ok_or(Invalid::Malformed)?;
    if jws.header.get("typ").and_then(Value::as_str) != Some("kb+jwt") {
        return Err(Invalid::WrongType);
    }
    jws.alg().ok_or(Invalid::UnsupportedAlg)?;
    if !jws.signed_by(holder) {
        return Err(Invalid::BadSignature);
    }
    let text = |name: &str| jws.claims.get(name).and_then(Value::as_str).unwrap_or("");
    if !same(text("aud"), expected.audience) {
        return Err(Invalid::WrongAudience);
    }
    if !same(text("nonce"), expected.nonce) {
        return Err(Invalid::WrongNonce);
    }
    let iat = date(&jws.claims, "iat")?.ok_or(Invalid::Malformed)?;
    let now = expected.now.unix_seconds();
    if now.saturating_sub(iat.floor) > KB_MAX_AGE || iat.ceil.saturating_sub(now) > LEEWAY {
        return Err(Invalid::StaleKeyBinding);
    }
    if !same(text("sd_hash"), sd_hash) {
        return Err(Invalid::WrongSdHash);
    }
    Ok(jws.claims)
}

/// Whether two non-empty texts are equal, in time independent of where
/// they differ.
pub(super) fn same(given: &str, want: &str) -> bool {
    !given.is_empty() && bool::from(given.as_bytes().ct_eq(want.as_bytes()))
}
