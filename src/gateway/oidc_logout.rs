//! OpenID Connect Back-Channel Logout 1.0 from the team's provider
//! (docs/api.md#revocation-from-the-identity-provider): what a hosted login
//! remembers of the provider session that proved it, and the logout token
//! that ends that session's interactions (`sid`) or every interaction of
//! the customer (`sub`).
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::records::EndedSession;
use super::revocation::{count_received, count_refused};
use super::work::Step;
use super::writes::Writes;
use super::{audit, Core};
use crate::config::{OidcConfig, Team};
use crate::domain::audit::{Acting, Action, Actor, Via};
use crate::domain::input;
use crate::domain::logout::{proven_by_login_at, remembers_login_at, Receiver, RefusalReason};
use crate::error::{Error, Result};
use crate::events::types::LoggedOut;
use crate::events::EventData;
use crate::oidc::flow::STATE_TTL;
use crate::oidc::logout_token::{self, Logout};
use crate::oidc::provider::KeyUse;
use crate::oidc::{id_token, OidcError};
use crate::store::keys;
use crate::time::Timestamp;

/// How long a logout token's `jti` is remembered: longer than the `iat`
/// window a token is accepted in (5 minutes back, 60 s ahead).
const JTI_MEMORY: Duration =
    Duration::from_secs((logout_token::MAX_AGE_SECS + logout_token::AHEAD_SECS + 60) as u64);

/// How long an ended provider session is remembered: as long as a hosted
/// login started in it before its logout may still complete (a started
/// login's state lives [`STATE_TTL`]).
const ENDED_SESSION_MEMORY: Duration = STATE_TTL;

/// Longest logout token read; a real one is under 2 KiB.
pub const MAX_TOKEN: usize = 16 * 1024;

/// What a hosted login keeps of the provider session that proved it.
#[derive(Debug, Clone, Default)]
pub(super) struct ProviderSession {
    pub sub: Option<String>,
    pub sid: Option<String>,
}

impl ProviderSession {
    pub fn of(proven: &id_token::Proven) -> Self {
        ProviderSession {
            sub: proven.sub.clone(),
            sid: proven.sid.clone(),
        }
    }
}

/// Why a back-channel logout was refused: each is an answer of the
/// logout specification's format (never a token).
#[derive(Debug, thiserror::Error)]
pub enum LogoutRefusal {
    /// 404: the team has no `[oidc]` with `backchannel_logout = true`.
    #[error("no back-channel logout for this team")]
    NotServed,
    /// 400 `invalid_request`: the token fails a check (the reason is its
    /// `error_description`).
    #[error("the logout token was refused: {0}")]
    Invalid(&'static str),
    /// 503: the provider's key set could not be fetched; the provider may
    /// send the token again.
    #[error("the provider failed: {0}")]
    Provider(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<OidcError> for LogoutRefusal {
    fn from(e: OidcError) -> Self {
        match e {
            OidcError::Provider(why) => LogoutRefusal::Provider(why),
            OidcError::InvalidIdToken(why)
            | OidcError::Unverified(why)
            | OidcError::BadState(why) => LogoutRefusal::Invalid(why),
            OidcError::Cancelled | OidcError::WrongIssuer => LogoutRefusal::Invalid("wrong iss"),
        }
    }
}

/// Remembers, for the provider's back-channel logout, which interaction
/// a hosted login of provider session `sid` is for (scored by the
/// login's time, which its authentication keeps), and which customer
/// the provider's `sub` was mapped to. Kept as long as an
/// authentication of the team can last.
pub(super) async fn remember_session(
    core: &Core,
    team: &Team,
    session: &ProviderSession,
    interaction_id: Uuid,
    customer_id: &str,
    now: Timestamp,
) -> Result<()> {
    let Some(oidc) = team.oidc.as_ref() else {
        return Ok(());
    };
    let ttl = longest_authentication(team);
    let mut entries = Vec::new();
    if let Some(sid) = &session.sid {
        let index = keys::oidc_session(&team.keyspace, &oidc.issuer, sid);
        entries.push((index, interaction_id.to_string()));
    }
    if let Some(sub) = &session.sub {
        let index = keys::oidc_subject(&team.keyspace, &oidc.issuer, sub);
        entries.push((index, customer_id.to_string()));
    }
    if entries.is_empty() {
        return Ok(());
    }
    core.change(&team.keyspace, &[], now, |c| {
        for (index, member) in &entries {
            c.index_add(index, member, now, ttl);
        }
        Ok(Step::Write(()))
    })
    .await
}

/// `POST /oidc/backchannel-logout/{team}`: the logout token checked as
/// an ID token is ([`Core::provider_token`]) and as the logout
/// specification adds ([`logout_token::check_logout_claims`]), its
/// `jti` claimed once, then the session's (or the customer's)
/// interactions logged out. Returns how many ended.
pub async fn backchannel_logout(
    core: &Arc<Core>,
    team_id: &str,
    token: Option<&str>,
    via: &Via,
    now: Timestamp,
) -> std::result::Result<usize, LogoutRefusal> {
    let (team, oidc) = core
        .config()
        .team(team_id)
        .and_then(|t| Some((t, t.oidc.as_ref().filter(|o| o.backchannel_logout)?)))
        .ok_or(LogoutRefusal::NotServed)?;
    count_received(team, Receiver::OidcLogout);
    let acting = Acting::new(Actor::provider(&oidc.issuer), via);
    let result = checked_logout(core, team, oidc, token, &acting, now).await;
    if let Err((reason, e)) = &result {
        count_refused(team, Receiver::OidcLogout, *reason);
        tracing::info!(team = %team.id, reason = %e, "identity provider back-channel logout refused");
    }
    result.map_err(|(_, e)| e)
}

async fn checked_logout(
    core: &Arc<Core>,
    team: &Team,
    oidc: &OidcConfig,
    token: Option<&str>,
    acting: &Acting,
    now: Timestamp,
) -> std::result::Result<usize, (RefusalReason, LogoutRefusal)> {
    let token = token
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
        .ok_or((
            RefusalReason::Malformed,
            LogoutRefusal::Invalid("no logout_token"),
        ))?;
    let meta = core
        .oidc()
        .metadata(oidc, now)
        .await
        .map_err(|e| (RefusalReason::Unavailable, e.into()))?;
    let claims =
        super::provider_tokens::provider_token(core, oidc, &meta, token, KeyUse::Logout, now)
            .await
            .map_err(|e| (reason_of(&e), e.into()))?;
    let logout = logout_token::check_logout_claims(&claims, now)
        .map_err(|e| (RefusalReason::Claims, e.into()))?;
    let unavailable = |e: Error| (RefusalReason::Unavailable, LogoutRefusal::Store(e));
    let claimed = crate::gateway::revocation::claim_jti(
        core,
        team,
        Receiver::OidcLogout,
        &logout.jti,
        JTI_MEMORY,
        now,
    )
    .await
    .map_err(unavailable)?
    .ok_or((
        RefusalReason::Replay,
        LogoutRefusal::Invalid("jti seen before"),
    ))?;
    match end_provider_session(core, team, oidc, &logout, acting, now).await {
        Ok(n) => Ok(n),
        Err(e) => {
            crate::gateway::revocation::release_jti(core, claimed, now).await;
            Err(unavailable(e))
        }
    }
}

/// A `sid` ends the interactions hosted logins of that session
/// authenticated (and still are); a `sub` alone ends every interaction
/// of the customers it was mapped to (with `customer_claim = "sub"`,
/// the `sub` itself names one).
async fn end_provider_session(
    core: &Arc<Core>,
    team: &Team,
    oidc: &OidcConfig,
    logout: &Logout,
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    let receiver = Receiver::OidcLogout;
    if let Some(sid) = &logout.sid {
        // Marked before the session's logins are read: a login that
        // commits after the mark finds it, one that committed before is
        // in the index read below.
        mark_session_ended(core, team, oidc, sid, now).await?;
        let index = keys::oidc_session(&team.keyspace, &oidc.issuer, sid);
        let mut n = 0;
        for e in crate::gateway::revocation::index_entries(core, &index).await? {
            let Ok(id) = Uuid::parse_str(&e.member) else {
                continue;
            };
            let at = Timestamp::from_unix_millis(e.score);
            if end_login(core, team, id, at, acting, now).await? {
                n += 1;
            }
        }
        super::revocation::count_logged_out(team, receiver, usize::from(n > 0));
        // The customer the session's `sub` names is no longer
        // recognized anywhere: a conversation may remember the login
        // longer than its interaction lives.
        if let Some(sub) = &logout.sub {
            for customer in customers_of_sub(core, team, oidc, sub).await? {
                crate::gateway::recognition::forget_recognitions_of(core, team, &customer).await?;
            }
        }
        return Ok(n);
    }
    let Some(sub) = &logout.sub else {
        return Ok(0);
    };
    let customers = customers_of_sub(core, team, oidc, sub).await?;
    crate::gateway::revocation::revoke_customers(core, team, receiver, &customers, acting, now)
        .await
}

/// The key whose presence says the provider ended its session `sid`
/// (docs/decisions/0100-a-login-of-an-ended-provider-session.md).
pub(super) fn ended_session_key(team: &Team, oidc: &OidcConfig, sid: &str) -> String {
    keys::oidc_session_ended(&team.keyspace, &oidc.issuer, sid)
}

/// Marks provider session `sid` ended for [`ENDED_SESSION_MEMORY`] from
/// now (a mark already there lives on that long).
async fn mark_session_ended(
    core: &Core,
    team: &Team,
    oidc: &OidcConfig,
    sid: &str,
    now: Timestamp,
) -> Result<()> {
    let key = ended_session_key(team, oidc, sid);
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let mark = c.read::<EndedSession>(&key)?;
        c.put(&mark, &EndedSession {}, Some(ENDED_SESSION_MEMORY))?;
        Ok(Step::Write(()))
    })
    .await
}

/// Ends interaction `id`'s authentication when the hosted login that
/// proved it at `at` did (a `sid` logout), and forgets its
/// conversation's recognition when that remembers the same login, also
/// once the authentication has ended by itself. Answers whether it
/// logged the interaction out.
async fn end_login(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    at: Timestamp,
    acting: &Acting,
    now: Timestamp,
) -> Result<bool> {
    let cause = Receiver::OidcLogout.cause();
    let result = core
        .update_interaction(team, id, now, |w| {
            let proven = proven_by_login_at(&w.rec, at, now, w.settings);
            let remembered = w.recognized().is_some_and(|r| remembers_login_at(r, at));
            if proven {
                let entry = audit::on_interaction(Action::LoggedOut, acting, &w.rec);
                w.audit(entry.with("cause", cause.as_str()));
                w.rec.log_out(now);
                w.emit(EventData::InteractionLoggedOut(LoggedOut {
                    cause,
                    actor: None,
                }));
            }
            if proven || remembered {
                w.forget_recognition();
            }
            Ok(proven)
        })
        .await;
    match result {
        Ok((_, hit)) => Ok(hit),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The customers hosted logins mapped `sub` to (with
/// `customer_claim = "sub"`, the `sub` itself names one).
async fn customers_of_sub(
    core: &Core,
    team: &Team,
    oidc: &OidcConfig,
    sub: &str,
) -> Result<Vec<String>> {
    let index = keys::oidc_subject(&team.keyspace, &oidc.issuer, sub);
    let mut customers: Vec<String> = crate::gateway::revocation::index_entries(core, &index)
        .await?
        .into_iter()
        .map(|e| e.member)
        .collect();
    if oidc.customer_claim == "sub" {
        if let Ok(id) = input::customer_id("sub", sub) {
            customers.push(id);
        }
    }
    customers.sort();
    customers.dedup();
    Ok(customers)
}

/// The metrics' reason for a token the shared checks refused.
fn reason_of(e: &OidcError) -> RefusalReason {
    match e {
        OidcError::Provider(_) => RefusalReason::Unavailable,
        OidcError::Unverified(_) => RefusalReason::Key,
        _ => RefusalReason::Claims,
    }
}

/// The longest an authentication of `team` can last, or a conversation
/// remember it, on any of its channels: how long a hosted login's session
/// is remembered.
fn longest_authentication(team: &Team) -> Duration {
    std::iter::once(&team.settings)
        .chain(team.channel_settings.values())
        .map(|s| {
            s.authenticated_ttl
                .get()
                .max(s.interaction_ttl.get())
                .max(s.recognize_for.get())
        })
        .max()
        .unwrap_or(Duration::from_secs(86_400))
}
