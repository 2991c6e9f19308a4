//! Subjects: failures, lockouts, bans; admin unlock (CONTRACT 3.4).
use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{Now, PathParam};
use super::AppState;
use crate::domain::subject::SubjectView;
use crate::error::{Error, Result};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read))
        .routes(routes!(unlock))
}

fn check(subject: &str) -> Result<()> {
    let n = subject.chars().count();
    if n == 0 || n > 300 || subject.chars().any(char::is_control) {
        return Err(Error::invalid(
            "subject",
            "must be 1 to 300 printable characters",
        ));
    }
    Ok(())
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
    check(&subject)?;
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
    check(&subject)?;
    let team = st.gateway.team(&caller.team)?;
    Ok(Json(st.gateway.unlock_subject(team, &subject, now).await?))
}
