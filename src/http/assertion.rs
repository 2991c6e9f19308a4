//! `POST /v1/interactions/{id}/assertion`: a website's pre-chat assertion (CONTRACT 3.6).
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{parse_id, JsonBody, Now, PathParam};
use super::AppState;
use crate::error::Result;
use crate::gateway::AssertionOutcome;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(assertion))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AssertionRequest {
    /// The website's signed JWT (HS256, `kid` of one of the team's keys).
    pub assertion: String,
}

/// Authenticate with a pre-chat identity assertion (or learn that step-up is required).
#[utoipa::path(post, path = "/v1/interactions/{id}/assertion", tag = "pre-chat", security(("api_key" = [])),
    params(("id" = String, Path)), request_body = AssertionRequest, responses((status = 200, body = AssertionOutcome)))]
async fn assertion(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(id): PathParam<String>,
    body: JsonBody<AssertionRequest>,
) -> Result<Json<AssertionOutcome>> {
    caller.require_bot()?;
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    Ok(Json(
        st.gateway
            .accept_assertion(team, id, &body.value.assertion, now)
            .await?,
    ))
}
