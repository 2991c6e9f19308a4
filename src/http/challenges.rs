//! OTP and session-PIN challenges (CONTRACT 3.7).
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{parse_id, JsonBody, Now, PathParam};
use super::AppState;
use crate::error::Result;
use crate::gateway::{NewChallenge, RevealedCode, StartedChallenge, Verified};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(verify))
        .routes(routes!(reveal))
}

/// Start an OTP or PIN challenge; replaces the interaction's open one.
#[utoipa::path(post, path = "/v1/interactions/{id}/challenges", tag = "challenges", security(("api_key" = [])),
    params(("id" = String, Path)), request_body = NewChallenge, responses((status = 201, body = StartedChallenge)))]
async fn start(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(id): PathParam<String>,
    body: JsonBody<NewChallenge>,
) -> Result<(StatusCode, Json<StartedChallenge>)> {
    caller.require_bot()?;
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.gateway
                .start_challenge(team, id, body.value, now)
                .await?,
        ),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    /// 1 to 20 ASCII digits.
    pub code: String,
}

/// Check a code.
#[utoipa::path(post, path = "/v1/interactions/{id}/challenges/{cid}/verify", tag = "challenges",
    security(("api_key" = [])), params(("id" = String, Path), ("cid" = String, Path)), request_body = CodeBody,
    responses((status = 200, body = Verified)))]
async fn verify(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam((id, cid)): PathParam<(String, String)>,
    body: JsonBody<CodeBody>,
) -> Result<Json<Verified>> {
    caller.require_bot()?;
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    let cid = parse_id(&cid, "no such challenge")?;
    Ok(Json(
        st.gateway
            .verify_challenge(team, id, cid, &body.value.code, now)
            .await?,
    ))
}

/// The open OTP, for an agent, where the team allows it.
#[utoipa::path(get, path = "/v1/interactions/{id}/challenges/{cid}/code", tag = "challenges",
    security(("api_key" = [])), params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = RevealedCode)))]
async fn reveal(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam((id, cid)): PathParam<(String, String)>,
) -> Result<Json<RevealedCode>> {
    caller.require_agent()?;
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    let cid = parse_id(&cid, "no such challenge")?;
    Ok(Json(
        st.gateway
            .reveal_code(team, id, cid, &caller.key_id, now)
            .await?,
    ))
}
