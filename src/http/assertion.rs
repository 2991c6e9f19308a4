//! `POST /v1/interactions/{id}/assertion`: a website's pre-chat assertion (docs/api.md#pre-chat-assertions).
use super::json::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Bot;
use super::extract::{InteractionId, JsonBody, NoQuery, Now};
use super::openapi::{ApiKeyErrors, JsonBodyErrors, E403, E404, E409, E410, E423};
use super::AppState;
use crate::error::Result;
use crate::gateway::AssertionOutcome;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(assertion))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionRequest {
    /// The website's signed JWT (HS256, `kid` of one of the team's keys).
    pub assertion: String,
}

/// Authenticate with a pre-chat identity assertion (or learn that step-up is required).
///
/// A bad assertion is 401 `invalid_token` (410 `token_expired`, 409
/// `token_used`); another customer than the interaction's `customer_ref`
/// is 403 `customer_mismatch`.
#[utoipa::path(post, path = "/v1/interactions/{id}/assertion", operation_id = "accept_assertion", tag = "pre-chat", security(("api_key" = [])),
    params(("id" = uuid::Uuid, Path)), request_body = AssertionRequest,
    responses((status = 200, body = AssertionOutcome), ApiKeyErrors, E403, E404, E409, E410, E423,
              JsonBodyErrors))]
async fn assertion(
    State(st): State<AppState>,
    Now(now): Now,
    bot: Bot,
    _: NoQuery,
    InteractionId(id): InteractionId,
    body: JsonBody<AssertionRequest>,
) -> Result<Json<AssertionOutcome>> {
    Ok(Json(
        crate::gateway::assertion::accept_assertion(
            &st.gateway,
            bot.team(),
            id,
            &body.value.assertion,
            now,
        )
        .await?,
    ))
}
