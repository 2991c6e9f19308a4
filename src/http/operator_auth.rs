//! Who may manage teams and channels (docs/operator-api.md#roles): an
//! operator API key of `[operator]`, checked before the path, query or
//! body is looked at. Without `[operator]` every operator path is 404; a
//! team's key is 403 here (as an operator key is 403 on a team's path,
//! `auth.rs`); an `operator_read` key is 403 on every `PUT`, `POST` and
//! `DELETE`; then the person a `Chatgate-Actor` names, required for a write
//! when `require_person` says so. A valid operator key refused (403, or the
//! 401 of its `Chatgate-Actor`) on a team's path is an `access.denied` of
//! that team's trail; elsewhere there is no team's trail: the request's
//! log line alone says so (docs/operator-api.md#roles).
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;

use super::auth::{actor_refused, actor_token, bearer_key, ACTOR_HEADER};
use super::denials::CallerSlot;
use super::AppState;
use crate::config::{OperatorConfig, OperatorRole};
use crate::domain::audit::Actor;
use crate::error::Error;
use crate::gateway::{ActorRefusal, Person};

/// An operator key's request, its role already allowed for the method.
/// Who it is (the key, the person) is what a write's `config.changed`
/// entry names (docs/operator-api.md#how-the-store-keeps-them).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Operator {
    pub key_id: Arc<str>,
    pub role: OperatorRole,
    /// The person its valid `Chatgate-Actor` named.
    pub person: Option<Person>,
    /// The configuration in force: `[operator]` is on.
    pub config: Arc<OperatorConfig>,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Some(config) = state.gateway.config().operator.clone() else {
            return Err(Error::NotFound("no such resource"));
        };
        let presented = bearer_key(parts)?;
        let Some((key_id, role)) = state.api_keys.find_operator(presented) else {
            if state.api_keys.is_team_key(presented) {
                return Err(Error::Forbidden(
                    "a team's API key may not manage teams and channels",
                ));
            }
            return Err(Error::Unauthorized);
        };
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            if let Some(team) = team_of_path(parts, state) {
                slot.set(&team, Actor::api_key(&key_id));
            }
        }
        let writes = matches!(parts.method, Method::PUT | Method::POST | Method::DELETE);
        if writes && !role.writes() {
            return Err(Error::Forbidden(
                "an operator_read key may read teams and channels, not change them",
            ));
        }
        let person = named_person(parts, state, &config).await?;
        if writes && config.require_person && person.is_none() {
            return Err(Error::PersonRequired);
        }
        Ok(Operator {
            key_id,
            role,
            person,
            config,
        })
    }
}

/// The team in force whose id `parts`' path names (`/v1/teams/{id}…`):
/// the trail of an `access.denied`. Read only once the key is known to be
/// an operator's, which may read every team.
fn team_of_path(parts: &Parts, state: &AppState) -> Option<Arc<str>> {
    let rest = parts.uri.path().strip_prefix("/v1/teams/")?;
    let id = rest.split('/').next()?;
    let config = state.gateway.config();
    config.teams.get(id).map(|team| Arc::from(team.id.as_str()))
}

/// The person `parts`' `Chatgate-Actor` names, checked against
/// `[operator.actor]` as a team's is against its workforce provider: none
/// without the header; 401 `invalid_token` for a token that fails a check
/// (or with no `[operator.actor]` to check it).
async fn named_person(
    parts: &Parts,
    state: &AppState,
    config: &OperatorConfig,
) -> Result<Option<Person>, Error> {
    let Some(header) = parts.headers.get(ACTOR_HEADER) else {
        return Ok(None);
    };
    let refused = |reason: ActorRefusal| {
        tracing::info!(
            reason = reason.as_str(),
            "an operator's Chatgate-Actor token was refused"
        );
        actor_refused(parts, reason)
    };
    let token = actor_token(header).ok_or_else(|| refused(ActorRefusal::Alg))?;
    let provider = (config.actor.as_ref()).ok_or_else(|| refused(ActorRefusal::NoProvider))?;
    let now = state.clock.now();
    let person =
        crate::gateway::actor_person_of(&state.gateway, provider, &provider.client_id, token, now)
            .await
            .map_err(refused)?;
    Ok(Some(person))
}
