//! Subjects: failures, lockouts, bans; admin unlock (docs/api.md#subjects-failures-lockouts-bans).
use super::json::Json;
use axum::extract::{Request, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Acting, Admin, Agent};
use super::extract::{json_bytes, parse_json, NoQuery, Now, PathParam};
use super::openapi::{ActorHeader, ApiKeyErrors, JsonBodyErrors, E403, E404, E422};
use super::AppState;
use crate::domain::input;
use crate::error::{Error, Result};
use crate::gateway::view::SubjectView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read))
        .routes(routes!(unlock))
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
