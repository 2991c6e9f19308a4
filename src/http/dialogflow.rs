//! `POST /v1/integrations/dialogflow-cx`: Dialogflow CX's webhook
//! (docs/integrating-bot-platforms.md#dialogflow-cx). Reads its
//! `WebhookRequest` (members it does not use are ignored: Google adds
//! members) and answers a `WebhookResponse`.
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Bot;
use super::extract::{JsonBody, NoQuery};
use super::json::Json;
use super::openapi::{raw_schema, ApiKeyErrors, JsonBodyErrors, RawSchema, E403, E404};
use super::AppState;
use crate::domain::bot_turn::{Said, Tag};
use crate::domain::challenge::Delivery;
use crate::error::{Error, Result};
use crate::gateway::bots::{self, BotAnswer, BotTurn};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(dialogflow_cx))
}

/// Dialogflow CX's `WebhookRequest`, the members the gateway reads.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DialogflowWebhookRequest)]
pub struct WebhookRequest {
    /// Dialogflow's id of this turn, written in the gateway's debug log.
    pub detect_intent_response_id: Option<String>,
    /// The language of the turn (a BCP 47 tag): the interaction's `locale`.
    pub language_code: Option<String>,
    pub fulfillment_info: FulfillmentInfo,
    pub session_info: SessionInfo,
    /// What the customer typed or said, when the turn came from text.
    pub text: Option<String>,
}

/// `fulfillmentInfo`: the `tag` names the action.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = DialogflowFulfillmentInfo)]
pub struct FulfillmentInfo {
    /// `chatgate.status`, `chatgate.send_code`, `chatgate.check_code` or
    /// `chatgate.send_link`.
    #[schema(value_type = DialogflowTag)]
    pub tag: String,
}

/// The tags the gateway answers, by `Tag::as_str`.
pub struct DialogflowTag;

impl RawSchema for DialogflowTag {
    fn json() -> Value {
        let tags: Vec<&str> = Tag::ALL.iter().map(|t| t.as_str()).collect();
        json!({"type": "string", "enum": tags, "description": "The action a fulfillment's webhook call asks for."})
    }
}
raw_schema!(DialogflowTag);

/// `sessionInfo`: the session (its last segment is the conversation) and
/// its parameters.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = DialogflowSessionInfo)]
pub struct SessionInfo {
    /// `projects/P/locations/L/agents/A/sessions/SESSION_ID`.
    #[schema(pattern = "/sessions/[^/]+$")]
    pub session: String,
    #[serde(default)]
    #[schema(value_type = DialogflowParameters)]
    pub parameters: Option<Map<String, Value>>,
}

/// The session parameters the gateway reads; others are ignored.
pub struct DialogflowParameters;

impl RawSchema for DialogflowParameters {
    fn json() -> Value {
        let deliveries: Vec<&str> = Delivery::REQUESTABLE.iter().map(|d| d.as_str()).collect();
        json!({
            "type": "object",
            "additionalProperties": true,
            "properties": {
                "customer_ref": {"$ref": "#/components/schemas/CustomerRefText"},
                "chatgate_delivery": {"type": "string", "enum": deliveries, "description": "`chatgate.send_code`: the OTP's `delivery` (default `chat`)."},
                "code": {"description": "`chatgate.check_code`: the code, a string of digits or an integral number (`@sys.number` gives `123456.0`); absent: the request's `text`."}
            }
        })
    }
}
raw_schema!(DialogflowParameters);

impl WebhookRequest {
    /// The turn it asks for: 400 for an unknown tag or a session that is
    /// not a session's name.
    fn turn(self) -> Result<BotTurn> {
        let tag = Tag::parse(&self.fulfillment_info.tag).ok_or_else(|| {
            let tags: Vec<&str> = Tag::ALL.iter().map(|t| t.as_str()).collect();
            Error::BadRequest(format!(
                "fulfillmentInfo.tag: must be one of {}",
                tags.join(", ")
            ))
        })?;
        let conversation = session_id(&self.session_info.session).ok_or_else(|| {
            Error::BadRequest("sessionInfo.session: must name a session (…/sessions/ID)".into())
        })?;
        let params = self.session_info.parameters.unwrap_or_default();
        let text_of = |name: &str| -> Result<Option<String>> {
            match params.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Error::BadRequest(format!(
                    "sessionInfo.parameters.{name}: must be a string"
                ))),
            }
        };
        let said = (tag == Tag::CheckCode).then(|| said(params.get("code"), self.text.as_deref()));
        Ok(BotTurn {
            tag,
            conversation: conversation.to_string(),
            customer_ref: text_of("customer_ref")?,
            locale: self.language_code,
            delivery: text_of("chatgate_delivery")?,
            said,
        })
    }
}

/// The last segment of `projects/…/sessions/ID` (an environment's
/// session, `…/environments/E/sessions/ID`, too).
fn session_id(session: &str) -> Option<&str> {
    let (_, id) = session.rsplit_once("/sessions/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The code the customer gave: the parameter `code` (a string, or a
/// number as `@sys.number` gives it), else the turn's text.
fn said(code: Option<&Value>, text: Option<&str>) -> Said {
    match code {
        Some(Value::String(s)) => Said::text(s),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => Said::integer(u),
            None => n.as_f64().map_or(Said::NotACode, Said::number),
        },
        None | Some(Value::Null) => Said::text(text.unwrap_or("")),
        Some(_) => Said::NotACode,
    }
}

/// Dialogflow CX's `WebhookResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DialogflowWebhookResponse)]
pub struct WebhookResponse {
    pub fulfillment_response: FulfillmentResponse,
    pub session_info: AnswerSessionInfo,
}

/// One text message for the customer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DialogflowFulfillmentResponse)]
pub struct FulfillmentResponse {
    pub messages: Vec<ResponseMessage>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DialogflowResponseMessage)]
pub struct ResponseMessage {
    pub text: ResponseText,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DialogflowResponseText)]
pub struct ResponseText {
    /// One text: the result's `say_*` template.
    pub text: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DialogflowAnswerSessionInfo)]
pub struct AnswerSessionInfo {
    pub parameters: AnswerParameters,
}

/// The session parameters every answer sets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = DialogflowAnswerParameters)]
pub struct AnswerParameters {
    pub chatgate_interaction_id: Uuid,
    pub chatgate_authenticated: bool,
    /// How the interaction was authenticated; null when it is not.
    #[schema(value_type = Option<crate::gateway::view::Method>)]
    pub chatgate_method: Option<&'static str>,
    /// The open challenge; null when there is none.
    pub chatgate_challenge_id: Option<Uuid>,
    /// `authenticated`, `not_authenticated`, `code_sent`, `link_sent`,
    /// `wrong_code`, `code_expired`, `locked`, `banned`, `send_failed` or
    /// `rate_limited`.
    pub chatgate_result: &'static str,
    /// After `chatgate.check_code`: null, which clears the session's `code`
    /// so that the agent asks for the next one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub code: Option<Value>,
}

impl WebhookResponse {
    fn of(answer: BotAnswer, tag: Tag) -> Self {
        let i = &answer.interaction;
        WebhookResponse {
            fulfillment_response: FulfillmentResponse {
                messages: vec![ResponseMessage {
                    text: ResponseText {
                        text: vec![answer.text],
                    },
                }],
            },
            session_info: AnswerSessionInfo {
                parameters: AnswerParameters {
                    chatgate_interaction_id: i.id,
                    chatgate_authenticated: i.authenticated,
                    chatgate_method: i.method.map(|m| m.as_str()),
                    chatgate_challenge_id: i.open_challenge.as_ref().map(|c| c.challenge_id),
                    chatgate_result: answer.result.as_str(),
                    code: (tag == Tag::CheckCode).then_some(Value::Null),
                },
            },
        }
    }
}

/// Dialogflow CX's webhook: one action per `fulfillmentInfo.tag` on the
/// conversation of the session, answered as a `WebhookResponse`.
///
/// The team's `[dialogflow] channel` holds the conversations; the
/// customer is `sessionInfo.parameters.customer_ref` when present. A
/// refusal (a wrong code, a lockout, a send limit, a failed send) is a 200
/// answer whose `chatgate_result` says it, counted as the API's own call
/// counts it. Members the gateway does not read are ignored. An unknown tag
/// or a body that is not a `WebhookRequest` is 400; a team without
/// `[dialogflow]` is 404.
#[utoipa::path(post, path = "/v1/integrations/dialogflow-cx", operation_id = "dialogflow_cx_webhook", tag = "integrations",
    security(("api_key" = [])), request_body = WebhookRequest,
    responses((status = 200, body = WebhookResponse), ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn dialogflow_cx(
    State(st): State<AppState>,
    bot: Bot,
    _: NoQuery,
    body: JsonBody<WebhookRequest>,
) -> Result<Json<WebhookResponse>> {
    let team = bot.team();
    let Some(dialogflow) = &team.dialogflow else {
        return Err(Error::NotFound("this team has no [dialogflow]"));
    };
    let response_id = body.value.detect_intent_response_id.as_deref();
    tracing::debug!(response_id = response_id.unwrap_or(""), "dialogflow turn");
    let turn = body.value.turn()?;
    let tag = turn.tag;
    let answer = bots::take_turn(
        &st.gateway,
        team,
        &dialogflow.channel,
        turn,
        st.clock.as_ref(),
    )
    .await?;
    Ok(Json(WebhookResponse::of(answer, tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_id_is_the_last_segment() {
        let s = "projects/p/locations/global/agents/a-1/sessions/f3a9-77";
        assert_eq!(session_id(s), Some("f3a9-77"));
        let env = "projects/p/locations/l/agents/a/environments/e/sessions/abc";
        assert_eq!(session_id(env), Some("abc"));
        assert_eq!(session_id("projects/p/sessions/"), None);
        assert_eq!(session_id("abc"), None);
    }

    #[test]
    fn a_code_is_the_parameter_else_the_text() {
        let digits = |s: &str| Said::Digits(s.into());
        assert_eq!(said(Some(&json!("123456")), Some("x")), digits("123456"));
        // A number's digits, padded to the code's length when checked.
        let number = |s: &str| Said::Number(s.into());
        assert_eq!(said(Some(&json!(123456.0)), None), number("123456"));
        assert_eq!(said(Some(&json!(123456)), None), number("123456"));
        assert_eq!(
            said(Some(&json!(12345)), None).code(6).as_deref(),
            Some("012345")
        );
        assert_eq!(said(Some(&json!(12.5)), None), Said::NotACode);
        assert_eq!(said(Some(&json!(-3)), None), Said::NotACode);
        assert_eq!(said(Some(&json!(true)), None), Said::NotACode);
        assert_eq!(said(None, Some(" 654321 ")), digits("654321"));
        assert_eq!(said(Some(&Value::Null), Some("hello")), Said::NotACode);
        assert_eq!(said(None, None), Said::NotACode);
    }
}
