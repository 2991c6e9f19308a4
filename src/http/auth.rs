//! Who is calling, and whether they may: the `Authorization: Bearer <api
//! key>` of a bot, agent or admin, and the extractors that authorise a
//! handler by its role (docs/api.md#callers-and-roles). Keys are compared
//! by SHA-256 in constant time, against every configured key, so the
//! answer takes the same time for any wrong key.
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use crate::config::{Config, Role, Team};
use crate::domain::audit::{Acting, Actor, Via};
use crate::domain::secrets::ApiKeyHash;
use crate::error::Error;
use crate::gateway::Person;

/// The header by which a portal names the person it acts for
/// (docs/api.md#a-person-behind-every-agent-action).
pub const ACTOR_HEADER: &str = "chatgate-actor";

/// The longest `Chatgate-Actor` token read.
const MAX_ACTOR_TOKEN: usize = 16 * 1024;

struct Entry {
    hash: ApiKeyHash,
    team: Arc<str>,
    key_id: Arc<str>,
    role: Role,
}

/// Every configured API key, by hash.
pub struct ApiKeys(Vec<Entry>);

/// The key a request presented, as configured.
struct Key {
    team: Arc<str>,
    key_id: Arc<str>,
    role: Role,
}

impl ApiKeys {
    pub fn from_config(config: &Config) -> Self {
        let entries = config
            .teams
            .values()
            .flat_map(|t| {
                t.api_keys.iter().map(|k| Entry {
                    hash: k.sha256,
                    team: t.id.as_str().into(),
                    key_id: k.id.as_str().into(),
                    role: k.role,
                })
            })
            .collect();
        ApiKeys(entries)
    }

    fn find(&self, presented: &str) -> Option<Key> {
        let hash = ApiKeyHash::of_key(presented);
        let mut found = None;
        for e in &self.0 {
            // No early exit: every key is compared.
            if e.hash.matches(&hash) && found.is_none() {
                found = Some(Key {
                    team: e.team.clone(),
                    key_id: e.key_id.clone(),
                    role: e.role,
                });
            }
        }
        found
    }
}

/// An authenticated caller, with its team as configured in the core in
/// force (its names shared with the configured key's: a request copies
/// no string). Endpoints a bot, an agent and an admin may all call take
/// it (an auditor key is 403 there: it reads the audit trail and nothing
/// else); the others take [`Bot`], [`Agent`], [`Admin`] or [`Auditor`].
#[derive(Debug, Clone)]
pub struct Caller {
    team: Arc<Team>,
    /// The team's id, as the key names it.
    pub team_id: Arc<str>,
    pub key_id: Arc<str>,
    pub role: Role,
    /// The person its valid `Chatgate-Actor` named.
    pub person: Option<Person>,
}

impl Caller {
    /// The caller's team.
    pub fn team(&self) -> &Team {
        &self.team
    }

    /// The caller as an audit entry's actor, asking through `via`.
    pub fn acting(&self, via: &Via) -> Acting {
        let actor = match &self.person {
            Some(p) => Actor::person(&p.sub, p.name.as_deref(), &self.key_id),
            None => Actor::api_key(&self.key_id),
        };
        Acting::new(actor, via)
    }

    /// Ok unless the team requires a person for an action that changes
    /// something, the key is an agent's or an admin's (a bot's is not
    /// affected) and none was named: 403 `person_required`.
    pub fn person_if_required(&self) -> Result<(), Error> {
        let required = self.team.console.require_person && self.role.acts_as_agent();
        if required && self.person.is_none() {
            return Err(Error::PersonRequired);
        }
        Ok(())
    }

    /// The person `parts`' `Chatgate-Actor` names, checked by the team's
    /// workforce provider: none without the header; 422 for a key that
    /// acts for no agent; 401 `invalid_token` for a token that fails a
    /// check (the check kept for its `access.denied`).
    async fn named_person(&mut self, parts: &Parts, state: &AppState) -> Result<(), Error> {
        let Some(header) = parts.headers.get(ACTOR_HEADER) else {
            return Ok(());
        };
        if !self.role.acts_as_agent() {
            return Err(Error::Unprocessable(
                "Chatgate-Actor is for agent and admin API keys".into(),
            ));
        }
        let refused = |reason: crate::gateway::ActorRefusal| {
            if let Some(slot) = parts.extensions.get::<super::denials::CallerSlot>() {
                slot.actor_refused(reason.as_str());
            }
            Error::InvalidToken("the Chatgate-Actor token was refused")
        };
        let token = header
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= MAX_ACTOR_TOKEN)
            .ok_or_else(|| refused(crate::gateway::ActorRefusal::Alg))?;
        let now = state.clock.now();
        let person = crate::gateway::actor_person(&state.gateway, &self.team, token, now)
            .await
            .map_err(refused)?;
        self.person = Some(person);
        Ok(())
    }

    /// The caller whose key `parts` presents: 401 without one this
    /// gateway knows, before anything else is looked at.
    fn authenticate(parts: &Parts, state: &AppState) -> Result<Self, Error> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthorized)?;
        let (scheme, key) = header.trim().split_once(' ').ok_or(Error::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unauthorized);
        }
        let key = state.api_keys.find(key.trim()).ok_or(Error::Unauthorized)?;
        // A caller with a key may continue its own trace.
        if let Some(remote) = parts.extensions.get::<crate::spans::RemoteParent>() {
            remote.adopt();
        }
        if let Some(slot) = parts.extensions.get::<super::TeamSlot>() {
            slot.set(&key.team);
        }
        if let Some(slot) = parts.extensions.get::<super::denials::CallerSlot>() {
            slot.set(&key.team, &key.key_id);
        }
        Ok(Caller {
            team: Arc::clone(state.gateway.team(&key.team)?),
            team_id: key.team,
            key_id: key.key_id,
            role: key.role,
            person: None,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // An auditor reads the audit trail and nothing else.
        authorise(parts, state, |role| role != Role::Auditor, NOT_THIS_ROLE).await
    }
}

/// An authenticated caller whose role may act as the endpoint requires:
/// the role is checked here, before the path, query or body is looked at,
/// then the person its `Chatgate-Actor` names.
async fn authorise(
    parts: &Parts,
    state: &AppState,
    may: fn(Role) -> bool,
    refusal: &'static str,
) -> Result<Caller, Error> {
    let mut caller = Caller::authenticate(parts, state)?;
    if !may(caller.role) {
        return Err(Error::Forbidden(refusal));
    }
    caller.named_person(parts, state).await?;
    Ok(caller)
}

/// The refusal of a key whose role may not act as a bot or an agent.
const NOT_THIS_ROLE: &str = "this API key's role may not do this";

/// A caller that acts as a bot: a bot or an admin key, else 403.
#[derive(Debug, Clone)]
pub struct Bot(Caller);

/// A caller that acts as an agent: an agent or an admin key, else 403.
#[derive(Debug, Clone)]
pub struct Agent(Caller);

/// An admin key, else 403.
#[derive(Debug, Clone)]
pub struct Admin(Caller);

impl FromRequestParts<AppState> for Bot {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        authorise(parts, state, Role::acts_as_bot, NOT_THIS_ROLE)
            .await
            .map(Bot)
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        authorise(parts, state, Role::acts_as_agent, NOT_THIS_ROLE)
            .await
            .map(Agent)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let is_admin = |role| role == Role::Admin;
        authorise(parts, state, is_admin, "only an admin API key may do this")
            .await
            .map(Admin)
    }
}

/// A key that may read the audit trail: an auditor or an admin key, else 403.
#[derive(Debug, Clone)]
pub struct Auditor(Caller);

impl FromRequestParts<AppState> for Auditor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let refusal = "only an auditor or admin API key may read the audit trail";
        authorise(parts, state, Role::reads_audit, refusal)
            .await
            .map(Auditor)
    }
}

/// Each role extractor is its caller.
macro_rules! is_a_caller {
    ($($role:ident),*) => {$(
        impl std::ops::Deref for $role {
            type Target = Caller;
            fn deref(&self) -> &Caller {
                &self.0
            }
        }
    )*};
}
is_a_caller!(Bot, Agent, Admin, Auditor);
