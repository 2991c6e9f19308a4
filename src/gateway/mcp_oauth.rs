//! An OAuth access token on the MCP server
//! (docs/agents.md#oauth-access-tokens): the one team whose `[mcp] oauth`
//! issuer and audience it names, its signature by a key of that issuer's
//! set — fetched, cached and refetched by the OpenID login's cache
//! (`crate::oidc::Providers`, docs/decisions/0093-refetching-a-key-set.md)
//! — then its claims (`domain::access_token`). A token that passes acts
//! as that team's bot, named `oauth:` + its `sub`.
use std::sync::Arc;

use super::Core;
use crate::config::Team;
use crate::domain::access_token::{self, Expect, Refusal};
use crate::oidc::provider::KeyUse;
use crate::oidc::{id_token, KeySet, OidcError};
use crate::time::Timestamp;

/// Who a valid access token is.
#[derive(Debug, Clone)]
pub struct OauthBot {
    pub team: Arc<Team>,
    /// The token's `sub`.
    pub sub: String,
}

/// Why a token was refused, and the team whose issuer and audience it
/// named, once one did.
#[derive(Debug)]
pub struct Refused {
    pub reason: Refusal,
    pub team: Option<Arc<Team>>,
}

/// The bot `token` is: an allowed algorithm with a `kid` and an access
/// token's `typ` (none, `JWT` or `at+jwt`), one team's issuer and
/// audience, a key of that issuer's set that signed it, and the claims
/// `access_token::check` asks for. Nothing of the token is kept or logged.
pub async fn bot_of_access_token(
    core: &Core,
    token: &str,
    now: Timestamp,
) -> Result<OauthBot, Refused> {
    let early = |reason| Refused { reason, team: None };
    let (alg, kid) = id_token::header(token).map_err(|_| early(Refusal::Alg))?;
    let typ = id_token::header_typ(token).map_err(|_| early(Refusal::Alg))?;
    if !super::provider_tokens::actor_typ(typ.as_deref()) {
        return Err(early(Refusal::Alg));
    }
    let team = team_named(core, token).map_err(early)?;
    let fail = |reason| Refused {
        reason,
        team: Some(Arc::clone(&team)),
    };
    let Some(oauth) = team.mcp_oauth.as_ref() else {
        return Err(fail(Refusal::Iss));
    };
    let provider = &oauth.provider;
    let meta = (core.oidc().authorization_server(provider, now).await)
        .map_err(|_| fail(Refusal::Provider))?;
    let keys = KeySet {
        cache: &provider.issuer,
        jwks_uri: &meta.jwks_uri,
        issuer: &meta.issuer,
        reach: provider.reach,
    };
    let jwk = match core.oidc().key_for(&keys, KeyUse::Mcp, &kid, now).await {
        Ok(jwk) => jwk,
        Err(OidcError::Provider(_)) => return Err(fail(Refusal::Provider)),
        Err(_) => return Err(fail(Refusal::Key)),
    };
    let claims = id_token::verify_signature(token, &jwk, alg).map_err(|e| match e {
        OidcError::Unverified("bad signature") => fail(Refusal::Signature),
        _ => fail(Refusal::Key),
    })?;
    let expect = Expect {
        issuer: &provider.issuer,
        audience: &oauth.audience,
        scope: &oauth.scope,
    };
    let sub = access_token::check(&claims, &expect, now).map_err(fail)?;
    Ok(OauthBot {
        team: Arc::clone(&team),
        sub,
    })
}

/// The one team whose `[mcp] oauth` issuer is the token's `iss` and
/// whose audience its `aud` holds (read before the signature, only to
/// choose the key set; both are checked again after it). Found from the
/// issuers kept with the teams, never by going round them.
fn team_named(core: &Core, token: &str) -> Result<Arc<Team>, Refusal> {
    let (iss, aud) = access_token::says(token).ok_or(Refusal::Iss)?;
    let config = core.config();
    let mut teams = config.sums.mcp_teams_of(&iss).peekable();
    if teams.peek().is_none() {
        return Err(Refusal::Iss);
    }
    let mut named = teams
        .filter_map(|id| config.teams.get(id))
        .filter(|t| (t.mcp_oauth.as_ref()).is_some_and(|o| aud.contains(&o.audience)));
    match (named.next(), named.next()) {
        (Some(team), None) => Ok(Arc::clone(team)),
        // None, or two teams of one issuer both named: whose it is is unknown.
        _ => Err(Refusal::Aud),
    }
}
