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
