//! `/v1/interactions`: create, read, list; activity and logout.
use super::json::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Acting, Agent, Bot, CallerOrSession};
use super::extract::{empty_body, InteractionId, JsonBody, NoQuery, Now, QueryParams};
use super::openapi::{
    ActorHeader, ApiKeyErrors, EmptyBody, JsonBodyErrors, E400, E403, E404, E422,
};
use super::AppState;
use crate::domain::input::ConversationId;
use crate::domain::interaction::{Contact, Status};
use crate::error::{Error, Result};
use crate::gateway::{view, InteractionView, ListQuery, NewInteraction, Page};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_interaction, list_interactions))
        .routes(routes!(get_interaction))
        .routes(routes!(activity))
        .routes(routes!(logout))
}

/// `POST /v1/interactions` body (docs/api.md#interactions).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewInteraction)]
pub struct NewInteractionBody {
    /// One of the team's channels.
    #[schema(value_type = super::openapi::ChannelName)]
    pub channel: String,
    #[schema(value_type = super::openapi::ConversationIdText)]
    pub conversation_id: String,
    /// Whom lockouts follow (phone, CRM id, e-mail).
    #[schema(value_type = Option<super::openapi::CustomerRefText>)]
    pub customer_ref: Option<String>,
    /// Defined by the agent; digits only, the team's PIN lengths. Stored only hashed.
    #[schema(value_type = Option<super::openapi::SessionPinText>)]
    pub session_pin: Option<String>,
    #[serde(default, deserialize_with = "super::extract::object")]
    pub contact: Option<ContactBody>,
    /// The language of the conversation from now on; on an existing
    /// interaction it switches (docs/api.md#languages).
    #[schema(value_type = Option<super::openapi::LocaleText>)]
    pub locale: Option<String>,
}

/// Where out-of-band messages go (SMS, e-mail challenges).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewContact)]
pub struct ContactBody {
    #[schema(value_type = Option<super::openapi::PhoneText>)]
    pub phone: Option<String>,
    #[schema(value_type = Option<super::openapi::EmailText>)]
    pub email: Option<String>,
}

impl From<NewInteractionBody> for NewInteraction {
    fn from(b: NewInteractionBody) -> Self {
        NewInteraction {
            channel: b.channel,
            conversation_id: b.conversation_id,
            customer_ref: b.customer_ref,
            session_pin: b.session_pin,
            contact: b.contact.map(|c| Contact {
                phone: c.phone,
                email: c.email,
            }),
            locale: b.locale,
        }
    }
}

/// Create an interaction, or return the existing one for the same channel and conversation.
///
/// `contact.phone` is read with libphonenumber and answered in E.164; on a
/// `whatsapp` channel so is `conversation_id` (the customer's number, a
/// missing `+` implied), and one that is not a number is 422.
#[utoipa::path(post, path = "/v1/interactions", tag = "interactions", request_body = NewInteractionBody,
    security(("api_key" = [])),
    responses((status = 201, description = "created", body = InteractionView, links(
                  ("read" = (operation_id = "get_interaction", parameters(("id" = "$response.body#/id")))),
                  ("start_challenge" = (operation_id = "start_challenge", parameters(("id" = "$response.body#/id")))),
                  ("issue_link" = (operation_id = "issue_link", parameters(("id" = "$response.body#/id")))),
                  ("accept_assertion" = (operation_id = "accept_assertion", parameters(("id" = "$response.body#/id")))),
                  ("activity" = (operation_id = "activity", parameters(("id" = "$response.body#/id")))),
                  ("logout" = (operation_id = "logout_interaction", parameters(("id" = "$response.body#/id")))),
              )),
              (status = 200, description = "already existed", body = InteractionView, links(
                  ("read" = (operation_id = "get_interaction", parameters(("id" = "$response.body#/id")))),
                  ("start_challenge" = (operation_id = "start_challenge", parameters(("id" = "$response.body#/id")))),
                  ("issue_link" = (operation_id = "issue_link", parameters(("id" = "$response.body#/id")))),
                  ("accept_assertion" = (operation_id = "accept_assertion", parameters(("id" = "$response.body#/id")))),
                  ("activity" = (operation_id = "activity", parameters(("id" = "$response.body#/id")))),
                  ("logout" = (operation_id = "logout_interaction", parameters(("id" = "$response.body#/id")))),
              )),
              ApiKeyErrors, E403, JsonBodyErrors))]
async fn create_interaction(
    State(st): State<AppState>,
    Now(now): Now,
    bot: Bot,
    _: NoQuery,
    body: JsonBody<NewInteractionBody>,
) -> Result<(StatusCode, Json<InteractionView>)> {
    let new = body.value.into();
    let (view, created) =
        crate::gateway::interactions::create_interaction(&st.gateway, bot.team(), new, now).await?;
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
#[utoipa::path(get, path = "/v1/interactions/{id}", tag = "interactions", security(("api_key" = []), ("console_session" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = InteractionView), ApiKeyErrors, E404, E422))]
async fn get_interaction(
    State(st): State<AppState>,
    Now(now): Now,
    caller: CallerOrSession,
    _: NoQuery,
    InteractionId(id): InteractionId,
) -> Result<Json<InteractionView>> {
    // Every role may read and log out (docs/api.md#interactions); an agent
    // also sees an open app challenge's binding code.
    let team = caller.team();
    if caller.role.acts_as_agent() {
        return Ok(Json(
            crate::gateway::challenges::app::get_interaction_for_agent(&st.gateway, team, id, now)
                .await?,
        ));
    }
    Ok(Json(
        crate::gateway::interactions::get_interaction(&st.gateway, team, id, now).await?,
    ))
}

/// `GET /v1/interactions` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only interactions with this status.
    #[param(value_type = Option<view::Status>)]
    status: Option<String>,
    /// Only interactions on this channel (one of the team's).
    #[param(value_type = Option<super::openapi::ChannelName>)]
    channel: Option<String>,
    /// Page size, 1 to 500; default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    cursor: Option<String>,
    /// The chat's own conversation id: the page holds that conversation's
    /// one interaction (or none). Needs `channel`.
    #[param(min_length = 1, max_length = 256)]
    conversation_id: Option<String>,
}

/// List the team's interactions, newest first.
///
/// With `conversation_id` (and `channel`), the one interaction of that
/// conversation, read from the conversation index, not by a walk.
#[utoipa::path(get, path = "/v1/interactions", tag = "interactions", security(("api_key" = []), ("console_session" = [])),
    params(ListParams),
    responses((status = 200, body = Page), ApiKeyErrors, E400, E403, E422))]
async fn list_interactions(
    State(st): State<AppState>,
    Now(now): Now,
    agent: Agent,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page>> {
    let team = agent.team();
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => {
            Some(Status::parse(s).ok_or_else(|| Error::invalid("status", "is not a status"))?)
        }
    };
    if q.channel.as_deref().is_some_and(|c| !team.has_channel(c)) {
        return Err(Error::invalid(
            "channel",
            "is not one of the team's channels",
        ));
    }
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| Error::invalid("limit", "must be 1 to 500"))?,
    };
    if q.cursor.as_deref() == Some("") {
        return Err(Error::invalid(
            "cursor",
            "is not a cursor this gateway issued",
        ));
    }
    if let Some(conversation) = q.conversation_id.as_deref() {
        let Some(channel) = q.channel.as_deref() else {
            return Err(Error::invalid("conversation_id", "needs channel"));
        };
        let reach = st.gateway.reach(channel);
        let whatsapp = st.gateway.config().whatsapp_chat(channel);
        let conversation = ConversationId::on(reach, whatsapp, conversation)?;
        let found = crate::gateway::interactions::find_conversation(
            &st.gateway,
            team,
            channel,
            &conversation,
            now,
        )
        .await?;
        let items = found
            .into_iter()
            .filter(|v| status.is_none_or(|s| view::Status::from(s) == v.status))
            .collect();
        return Ok(Json(Page {
            items,
            next_cursor: None,
        }));
    }
    let query = ListQuery {
        status,
        channel: q.channel,
        limit,
        cursor: q.cursor,
    };
    Ok(Json(
        crate::gateway::interactions::list_interactions(&st.gateway, team, query, now).await?,
    ))
}

/// The customer was active now. Body empty or `{}`.
#[utoipa::path(post, path = "/v1/interactions/{id}/activity", tag = "interactions", security(("api_key" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = Option<EmptyBody>, description = "empty, or `{}`"),
    responses((status = 200, body = InteractionView), ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn activity(
    State(st): State<AppState>,
    Now(now): Now,
    bot: Bot,
    _: NoQuery,
    InteractionId(id): InteractionId,
    req: Request,
) -> Result<Json<InteractionView>> {
    empty_body(req, &st).await?;
    Ok(Json(
        crate::gateway::interactions::record_activity(&st.gateway, bot.team(), id, now).await?,
    ))
}

/// End the authentication; status `unauthenticated`.
#[utoipa::path(post, path = "/v1/interactions/{id}/logout", operation_id = "logout_interaction", tag = "interactions", security(("api_key" = []), ("console_session" = [])),
    params(("id" = Uuid, Path), ActorHeader),
    request_body(content = Option<EmptyBody>, description = "empty, or `{}`"),
    responses((status = 200, body = InteractionView), ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn logout(
    State(st): State<AppState>,
    Now(now): Now,
    Acting { caller, acting }: Acting<CallerOrSession>,
    _: NoQuery,
    InteractionId(id): InteractionId,
    req: Request,
) -> Result<Json<InteractionView>> {
    empty_body(req, &st).await?;
    // Every role may read and log out (docs/api.md#interactions).
    Ok(Json(
        crate::gateway::interactions::logout(&st.gateway, caller.team(), id, &acting, now).await?,
    ))
}
