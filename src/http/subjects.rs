//! Subjects: failures, lockouts, bans; admin unlock (docs/api.md#subjects-failures-lockouts-bans).
use super::json::Json;
use axum::extract::{Request, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{empty_body, NoQuery, Now, PathParam};
use super::openapi::{ApiKeyErrors, EmptyBody, JsonBodyErrors, E403, E404, E422};
use super::AppState;
use crate::domain::input;
use crate::domain::subject::SubjectView;
use crate::error::Result;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read))
        .routes(routes!(unlock))
}

/// A subject's failures, lockouts, lock and ban; an unknown subject is all zeros.
#[utoipa::path(get, path = "/v1/subjects/{subject}", operation_id = "read_subject", tag = "subjects", security(("api_key" = [])),
    params(("subject" = super::openapi::CustomerRefText, Path,
            description = "a `customer_ref`, or `interaction:{id}` for an interaction without one; percent-encoded")),
    responses((status = 200, body = SubjectView), ApiKeyErrors, E403, E404, E422))]
async fn read(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    _: NoQuery,
    PathParam(subject): PathParam<String>,
) -> Result<Json<SubjectView>> {
    caller.require_agent()?;
    let subject = input::subject(&subject)?;
    let team = st.gateway.team(&caller.team)?;
    Ok(Json(st.gateway.subject(team, &subject, now).await?))
}

/// Clear a subject's failures, lockout and ban (admin).
#[utoipa::path(post, path = "/v1/subjects/{subject}/unlock", operation_id = "unlock_subject", tag = "subjects", security(("api_key" = [])),
    params(("subject" = super::openapi::CustomerRefText, Path,
            description = "a `customer_ref`, or `interaction:{id}` for an interaction without one; percent-encoded")),
    request_body(content = Option<EmptyBody>, description = "empty, or `{}`"),
    responses((status = 200, body = SubjectView), ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn unlock(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    _: NoQuery,
    PathParam(subject): PathParam<String>,
    req: Request,
) -> Result<Json<SubjectView>> {
    caller.require_admin()?;
    empty_body(req, &st).await?;
    let subject = input::subject(&subject)?;
    let team = st.gateway.team(&caller.team)?;
    Ok(Json(st.gateway.unlock_subject(team, &subject, now).await?))
}
