//! Subjects: failures, lockouts, bans; admin unlock (CONTRACT 3.4).
use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{Now, PathParam};
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
#[utoipa::path(get, path = "/v1/subjects/{subject}", tag = "subjects", security(("api_key" = [])),
    params(("subject" = String, Path, description = "customer_ref, or interaction:{id}; percent-encoded")),
    responses((status = 200, body = SubjectView)))]
async fn read(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(subject): PathParam<String>,
) -> Result<Json<SubjectView>> {
    caller.require_agent()?;
    let subject = input::subject(&subject)?;
    let team = st.gateway.team(&caller.team)?;
    Ok(Json(st.gateway.subject(team, &subject, now).await?))
}

/// Clear a subject's failures, lockout and ban (admin).
#[utoipa::path(post, path = "/v1/subjects/{subject}/unlock", tag = "subjects", security(("api_key" = [])),
    params(("subject" = String, Path)), responses((status = 200, body = SubjectView)))]
async fn unlock(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(subject): PathParam<String>,
) -> Result<Json<SubjectView>> {
    caller.require_admin()?;
    let subject = input::subject(&subject)?;
    let team = st.gateway.team(&caller.team)?;
    Ok(Json(st.gateway.unlock_subject(team, &subject, now).await?))
}
