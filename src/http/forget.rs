//! `POST /v1/interactions/{id}/forget`: the conversation is no longer
//! recognized (docs/api.md#recognized-conversations). A bot passes on the
//! provider's identity-change signals here (WhatsApp's
//! `user_changed_number`, a number given up); an agent who doubts who
//! writes clicks it.
use super::json::Json;
use axum::extract::{Request, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Acting, CallerOrSession};
use super::extract::{empty_body, InteractionId, NoQuery, Now};
use super::openapi::{ActorHeader, ApiKeyErrors, EmptyBody, JsonBodyErrors, E403, E404};
use super::AppState;
use crate::error::Result;
use crate::gateway::InteractionView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(forget))
}

/// Forget who the conversation remembers: `recognized` becomes null, for
/// this and every later interaction of the conversation, until the next
/// authentication in it. The authentication itself (if any) is unchanged.
#[utoipa::path(post, path = "/v1/interactions/{id}/forget", operation_id = "forget_conversation", tag = "interactions", security(("api_key" = []), ("console_session" = [])),
    params(("id" = Uuid, Path), ActorHeader),
    request_body(content = Option<EmptyBody>, description = "empty, or `{}`"),
    responses((status = 200, body = InteractionView), ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn forget(
    State(st): State<AppState>,
    Now(now): Now,
    Acting { caller, acting }: Acting<CallerOrSession>,
    _: NoQuery,
    InteractionId(id): InteractionId,
    req: Request,
) -> Result<Json<InteractionView>> {
    empty_body(req, &st).await?;
    // Bots and agents (and admins) may: every role.
    let team = caller.team();
    Ok(Json(
        crate::gateway::interactions::forget_conversation(&st.gateway, team, id, &acting, now)
            .await?,
    ))
}
