//! Subjects: failures, lockouts, bans; admin unlock (docs/api.md#subjects-failures-lockouts-bans);
//! the customer's wallets registered for payments
//! (docs/api.md#wallets-registered-for-payments).
use super::json::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Acting, Admin, Agent, CallerOrSession};
use super::extract::{json_bytes, parse_json, NoQuery, Now, PathParam};
use super::openapi::{ActorHeader, ApiKeyErrors, JsonBodyErrors, E403, E404, E422};
use super::AppState;
use crate::config::Role;
use crate::domain::input;
use crate::domain::wallet::registration;
use crate::error::{Error, Result};
use crate::gateway::registrations::RegisteredWallet;
use crate::gateway::view::SubjectView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read))
        .routes(routes!(unlock))
        .routes(routes!(wallets))
        .routes(routes!(unregister_wallet))
}

/// A subject's failures, lockouts, lock and ban; an unknown subject is all zeros.
#[utoipa::path(get, path = "/v1/subjects/{subject}", operation_id = "read_subject", tag = "subjects", security(("api_key" = []), ("console_session" = [])),
    params(("subject" = super::openapi::SubjectText, Path,
            description = "a `customer_ref`, or `interaction:{id}` for an interaction without one; percent-encoded")),
    responses((status = 200, body = SubjectView), ApiKeyErrors, E403, E404, E422))]
async fn read(
    State(st): State<AppState>,
    Now(now): Now,
    agent: Agent,
    _: NoQuery,
    PathParam(subject): PathParam<String>,
) -> Result<Json<SubjectView>> {
    let subject = input::subject(&subject)?;
    Ok(Json(
        crate::gateway::subjects::subject(&st.gateway, agent.team(), &subject, now).await?,
    ))
}

/// `POST /v1/subjects/{subject}/unlock` body (optional: empty, `{}`, or
/// one origin).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockBody {
    /// With `lockout.scope = "origin"`: unlock this origin alone (as the
    /// subject's `origins` name it, e.g. `sms:+447400123456`). Absent: the
    /// whole subject, every origin and the strangers' lock.
    #[schema(min_length = 1, max_length = 1024)]
    pub origin: Option<String>,
}

/// Clear a subject's failures, lockout and ban (admin), or one origin's.
#[utoipa::path(post, path = "/v1/subjects/{subject}/unlock", operation_id = "unlock_subject", tag = "subjects", security(("api_key" = []), ("console_session" = [])),
    params(("subject" = super::openapi::SubjectText, Path,
            description = "a `customer_ref`, or `interaction:{id}` for an interaction without one; percent-encoded"), ActorHeader),
    request_body(content = Option<UnlockBody>, description = "empty, `{}`, or `{\"origin\": \"...\"}`"),
    responses((status = 200, body = SubjectView), ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn unlock(
    State(st): State<AppState>,
    Now(now): Now,
    Acting {
        caller: admin,
        acting,
    }: Acting<Admin>,
    _: NoQuery,
    PathParam(subject): PathParam<String>,
    req: Request,
) -> Result<Json<SubjectView>> {
    let body: UnlockBody = match json_bytes(req, &st).await? {
        Some(bytes) => parse_json(&bytes)?,
        None => UnlockBody::default(),
    };
    if body
        .origin
        .as_ref()
        .is_some_and(|o| o.is_empty() || o.chars().count() > 1024)
    {
        return Err(Error::invalid("origin", "must be 1 to 1024 characters"));
    }
    let subject = input::subject(&subject)?;
    let origin = body.origin.as_deref();
    let team = admin.team();
    Ok(Json(
        crate::gateway::subjects::unlock_subject(&st.gateway, team, &subject, origin, &acting, now)
            .await?,
    ))
}

/// The customer's wallet attestations registered for payments, oldest
/// first (docs/api.md#wallets-registered-for-payments); none is `[]`.
#[utoipa::path(get, path = "/v1/subjects/{subject}/wallets", operation_id = "list_registered_wallets", tag = "subjects", security(("api_key" = []), ("console_session" = [])),
    params(("subject" = super::openapi::SubjectText, Path,
            description = "a `customer_ref`, percent-encoded")),
    responses((status = 200, body = Vec<RegisteredWallet>), ApiKeyErrors, E403, E404, E422))]
async fn wallets(
    State(st): State<AppState>,
    caller: CallerOrSession,
    _: NoQuery,
    PathParam(subject): PathParam<String>,
) -> Result<Json<Vec<RegisteredWallet>>> {
    let subject = input::subject(&subject)?;
    let team = caller.team();
    Ok(Json(
        crate::gateway::registrations::registered_wallets(&st.gateway, team, &subject).await?,
    ))
}

/// Remove one of the customer's registered wallet attestations (an admin,
/// or an agent naming the person behind the request), by its holder
/// key's thumbprint: 204, audited as `wallet.unregistered`; 404 when none
/// is registered. An agent without a person is 403 `person_required`.
#[utoipa::path(delete, path = "/v1/subjects/{subject}/wallets/{thumbprint}", operation_id = "unregister_wallet", tag = "subjects", security(("api_key" = []), ("console_session" = [])),
    params(("subject" = super::openapi::SubjectText, Path,
            description = "a `customer_ref`, percent-encoded"),
           ("thumbprint" = String, Path, description = "the RFC 7638 thumbprint of the attestation's holder key, as listed"),
           ActorHeader),
    responses((status = 204, description = "removed"), ApiKeyErrors, E403, E404, E422))]
async fn unregister_wallet(
    State(st): State<AppState>,
    Now(now): Now,
    Acting {
        caller: agent,
        acting,
    }: Acting<Agent>,
    _: NoQuery,
    PathParam((subject, thumbprint)): PathParam<(String, String)>,
) -> Result<StatusCode> {
    registration::may_unregister(agent.role == Role::Admin, agent.person.is_some())?;
    let subject = input::subject(&subject)?;
    if thumbprint.is_empty() || thumbprint.len() > 128 {
        return Err(Error::NotFound(
            "no wallet with this thumbprint is registered",
        ));
    }
    let team = agent.team();
    let removed = (subject.as_str(), thumbprint.as_str());
    crate::gateway::registrations::unregister(&st.gateway, team, removed, &acting, now).await?;
    Ok(StatusCode::NO_CONTENT)
}
