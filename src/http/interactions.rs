//! `/v1/interactions`: create, read, list; activity and logout.
use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{json_bytes, parse_id, parse_json, JsonBody, Now, PathParam, QueryParams};
use super::AppState;
use crate::domain::interaction::Status;
use crate::error::{Error, Result};
use crate::gateway::{InteractionView, ListQuery, NewInteraction, Page};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_interaction, list_interactions))
        .routes(routes!(get_interaction))
        .routes(routes!(activity))
        .routes(routes!(logout))
}

/// Create an interaction, or return the existing one for the same channel and conversation.
#[utoipa::path(post, path = "/v1/interactions", tag = "interactions", request_body = NewInteraction,
    security(("api_key" = [])),
    responses((status = 201, description = "created", body = InteractionView),
              (status = 200, description = "already existed", body = InteractionView)))]
async fn create_interaction(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    body: JsonBody<NewInteraction>,
) -> Result<(StatusCode, Json<InteractionView>)> {
    caller.require_bot()?;
    let team = st.gateway.team(&caller.team)?;
    let (view, created) = st.gateway.create_interaction(team, body.value, now).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(view),
    ))
}

/// Read one interaction.
#[utoipa::path(get, path = "/v1/interactions/{id}", tag = "interactions", security(("api_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = InteractionView)))]
async fn get_interaction(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<InteractionView>> {
    // Every role may read and log out (CONTRACT 3.4).
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    Ok(Json(st.gateway.get_interaction(team, id, now).await?))
}

/// List the team's interactions, newest first.
#[utoipa::path(get, path = "/v1/interactions", tag = "interactions", security(("api_key" = [])),
    params(("status" = Option<Status>, Query), ("channel" = Option<String>, Query),
           ("limit" = Option<u32>, Query, description = "1..500, default 50"),
           ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page)))]
async fn list_interactions(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    QueryParams(q): QueryParams<HashMap<String, String>>,
) -> Result<Json<Page>> {
    caller.require_agent()?;
    let team = st.gateway.team(&caller.team)?;
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) => {
            Some(Status::parse(s).ok_or_else(|| Error::invalid("status", "is not a status"))?)
        }
    };
    let channel = q.get("channel").filter(|c| !c.is_empty()).cloned();
    if channel.as_deref().is_some_and(|c| !team.has_channel(c)) {
        return Err(Error::invalid(
            "channel",
            "is not one of the team's channels",
        ));
    }
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| Error::invalid("limit", "must be 1 to 500"))?,
    };
    let query = ListQuery {
        status,
        channel,
        limit,
        cursor: q.get("cursor").cloned(),
    };
    Ok(Json(st.gateway.list_interactions(team, query, now).await?))
}

/// The customer was active now. Body empty or `{}`.
#[utoipa::path(post, path = "/v1/interactions/{id}/activity", tag = "interactions", security(("api_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = InteractionView)))]
async fn activity(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(id): PathParam<String>,
    req: Request,
) -> Result<Json<InteractionView>> {
    caller.require_bot()?;
    if let Some(bytes) = json_bytes(req, &st).await? {
        let _: serde_json::Map<String, serde_json::Value> = parse_json(&bytes)?;
    }
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    Ok(Json(st.gateway.record_activity(team, id, now).await?))
}

/// End the authentication; status `unauthenticated`.
#[utoipa::path(post, path = "/v1/interactions/{id}/logout", tag = "interactions", security(("api_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = InteractionView)))]
async fn logout(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<InteractionView>> {
    // Every role may read and log out (CONTRACT 3.4).
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    Ok(Json(st.gateway.logout(team, id, now).await?))
}
