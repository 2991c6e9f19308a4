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
}

impl Caller {
    /// The caller's team.
    pub fn team(&self) -> &Team {
        &self.team
    }

    /// The caller as an audit entry's actor, asking through `via`.
    pub fn acting(&self, via: &Via) -> Acting {
        Acting::new(Actor::api_key(&self.key_id), via)
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
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // An auditor reads the audit trail and nothing else.
        authorise(parts, state, |role| role != Role::Auditor, NOT_THIS_ROLE)
    }
}

/// An authenticated caller whose role may act as the endpoint requires:
/// the role is checked here, before the path, query or body is looked at.
fn authorise(
    parts: &Parts,
    state: &AppState,
    may: fn(Role) -> bool,
    refusal: &'static str,
) -> Result<Caller, Error> {
    let caller = Caller::authenticate(parts, state)?;
    if may(caller.role) {
        Ok(caller)
    } else {
        Err(Error::Forbidden(refusal))
    }
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
        authorise(parts, state, Role::acts_as_bot, NOT_THIS_ROLE).map(Bot)
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        authorise(parts, state, Role::acts_as_agent, NOT_THIS_ROLE).map(Agent)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let is_admin = |role| role == Role::Admin;
        authorise(parts, state, is_admin, "only an admin API key may do this").map(Admin)
    }
}

/// A key that may read the audit trail: an auditor or an admin key, else 403.
#[derive(Debug, Clone)]
pub struct Auditor(Caller);

impl FromRequestParts<AppState> for Auditor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let refusal = "only an auditor or admin API key may read the audit trail";
        authorise(parts, state, Role::reads_audit, refusal).map(Auditor)
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
