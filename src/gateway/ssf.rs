//! The Shared Signals (CAEP) push receiver
//! (docs/api.md#revocation-from-the-identity-provider): a Security Event
//! Token verified against the transmitter's key set (as an ID token is
//! against the provider's), its claims ([`crate::ssf`]), its `jti` claimed
//! for a day (a replay is accepted and does nothing), then each customer
//! its events name logged out everywhere.
use std::sync::Arc;
use std::time::Duration;

use super::revocation::{count_received, count_refused};
use super::Core;
use crate::config::{SsfConfig, Team};
use crate::domain::audit::{Acting, Actor, Via};
use crate::domain::input;
use crate::domain::logout::{Receiver, RefusalReason};
use crate::error::Error;
use crate::oidc::provider::KeyUse;
use crate::oidc::{KeySet, OidcError};
use crate::ssf::{self, Set, SetError, Transmitter};
use crate::time::Timestamp;

/// How long a token's `jti` is remembered.
const JTI_MEMORY: Duration = Duration::from_secs(ssf::JTI_MEMORY_SECS as u64);

/// Longest token read; a real one is a few KiB.
pub const MAX_SET: usize = 64 * 1024;

/// Why a pushed token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SsfRefusal {
    /// 404: the team has no `[ssf]`.
    #[error("no Shared Signals receiver for this team")]
    NotServed,
    /// 400 with RFC 8935's error object; nothing changed.
    #[error(transparent)]
    Invalid(#[from] SetError),
    /// 503: the transmitter's key set could not be fetched.
    #[error("the transmitter's key set failed: {0}")]
    Provider(String),
    /// 503: the store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// `POST /ssf/{team}/events`: `set` is the body, `secevent` whether it
/// was declared `application/secevent+jwt`. `Ok`: accepted (202),
/// also a replay, which does nothing.
pub async fn ssf_event(
    core: &Arc<Core>,
    team_id: &str,
    (secevent, set): (bool, &[u8]),
    via: &Via,
    now: Timestamp,
) -> Result<(), SsfRefusal> {
    let (team, config) = core
        .config()
        .team(team_id)
        .and_then(|t| Some((t, t.ssf.as_ref()?)))
        .ok_or(SsfRefusal::NotServed)?;
    count_received(team, Receiver::Ssf);
    let acting = Acting::new(Actor::provider(&config.issuer), via);
    let result = checked_event(core, team, config, (secevent, set), &acting, now).await;
    match &result {
        Err((reason, e)) => {
            count_refused(team, Receiver::Ssf, *reason);
            tracing::info!(team = %team.id, reason = %e, "Shared Signals event refused");
        }
        Ok(false) => count_refused(team, Receiver::Ssf, RefusalReason::Replay),
        Ok(true) => {}
    }
    result.map(|_| ()).map_err(|(_, e)| e)
}

/// `Ok(false)`: a replay.
async fn checked_event(
    core: &Arc<Core>,
    team: &Team,
    config: &SsfConfig,
    (secevent, set): (bool, &[u8]),
    acting: &Acting,
    now: Timestamp,
) -> Result<bool, (RefusalReason, SsfRefusal)> {
    let token = set_token(secevent, set)?;
    let event = verified_event(core, team, config, token, now).await?;
    let unavailable = |e: Error| (RefusalReason::Unavailable, SsfRefusal::Store(e));
    let Some(claimed) = crate::gateway::revocation::claim_jti(
        core,
        team,
        Receiver::Ssf,
        &event.jti,
        JTI_MEMORY,
        now,
    )
    .await
    .map_err(unavailable)?
    else {
        return Ok(false);
    };
    // Named as chatgate knows its customers: folded as every identifier
    // is; a subject that cannot be an identifier names nobody.
    let mut customers: Vec<String> = event
        .log_out
        .iter()
        .filter_map(|s| input::customer_id("subject", s).ok())
        .collect();
    customers.sort();
    customers.dedup();
    if customers.is_empty() {
        return Ok(true);
    }
    let receiver = Receiver::Ssf;
    match crate::gateway::revocation::revoke_customers(
        core, team, receiver, &customers, acting, now,
    )
    .await
    {
        Ok(_) => Ok(true),
        Err(e) => {
            crate::gateway::revocation::release_jti(core, claimed, now).await;
            Err(unavailable(e))
        }
    }
}

/// The token of a SET request: its media type must be
/// `application/secevent+jwt`, its body a readable token.
fn set_token(secevent: bool, set: &[u8]) -> Result<&str, (RefusalReason, SsfRefusal)> {
    let malformed = |why| (RefusalReason::Malformed, SetError::Request(why).into());
    if !secevent {
        return Err(malformed("the media type is not application/secevent+jwt"));
    }
    let token = std::str::from_utf8(set)
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_SET)
        .ok_or_else(|| malformed("the token cannot be read"))?;
    ssf::readable(token).map_err(|e| (RefusalReason::Malformed, e.into()))?;
    Ok(token)
}

/// The event `token` carries, once a key of the transmitter's set signed
/// it and its claims name this receiver.
async fn verified_event(
    core: &Core,
    team: &Team,
    config: &SsfConfig,
    token: &str,
    now: Timestamp,
) -> Result<Set, (RefusalReason, SsfRefusal)> {
    let claims = transmitter_token(core, config, token, now)
        .await
        .map_err(|e| match e {
            OidcError::Provider(why) => (RefusalReason::Unavailable, SsfRefusal::Provider(why)),
            OidcError::Unverified(why) => (RefusalReason::Key, SetError::Key(why).into()),
            _ => (RefusalReason::Key, SetError::Key("refused").into()),
        })?;
    let transmitter = Transmitter {
        issuer: &config.issuer,
        audience: &config.audience,
        on_credential_change: config.on_credential_change,
        provider_issuer: team.oidc.as_ref().map(|o| o.issuer.as_str()),
    };
    ssf::check_set_claims(&claims, &transmitter, now).map_err(|e| {
        let reason = match e {
            SetError::Issuer => RefusalReason::Issuer,
            SetError::Audience => RefusalReason::Audience,
            SetError::Key(_) => RefusalReason::Key,
            SetError::Request(_) => RefusalReason::Claims,
        };
        (reason, e.into())
    })
}

/// The claims of a token signed by a key of the transmitter's set (an
/// unknown `kid` fetches it again, rate-limited as the provider's),
/// with RS256, PS256 or ES256.
async fn transmitter_token(
    core: &Core,
    config: &SsfConfig,
    token: &str,
    now: Timestamp,
) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
    let cache = format!("ssf {}", config.jwks_uri);
    let keys = KeySet {
        cache: &cache,
        jwks_uri: &config.jwks_uri,
        issuer: &config.issuer,
        reach: config.reach,
    };
    super::provider_tokens::signed_claims(core, &keys, KeyUse::Ssf, token, now).await
}
