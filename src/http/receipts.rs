//! The providers' delivery receipts (docs/api.md#delivery-receipts):
//! `POST /v1/providers/twilio/{channel}/status`, checked by Twilio's
//! signature, a `twilio_voice` channel's call statuses and key presses
//! (`/v1/providers/twilio-voice/{channel}/status`, `…/gather/{message}`,
//! docs/api.md#codes-read-by-a-voice-call), `GET`/`POST /v1/providers/whatsapp/{channel}/webhook`,
//! Meta's handshake and its signed status webhooks, and `POST
//! /v1/providers/telegram-gateway/{channel}/report`, Telegram's signed
//! reports; never an API key.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::RequestVia;
use super::extract::{Now, PathParam, QueryParams};
use super::openapi::{E400, E401, E403, E404, E413, E422, E503};
use super::AppState;
use crate::channels::twilio_voice::gather_url;
use crate::error::Result;
use crate::gateway::receipts::TwilioApi;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(twilio_status))
        .routes(routes!(twilio_voice_status))
        .routes(routes!(twilio_voice_gather))
        .routes(routes!(whatsapp_handshake, whatsapp_webhook))
        .routes(routes!(telegram_gateway_report))
}

/// A Twilio status callback for a message a `twilio` channel sent.
///
/// Every message the channel sends names this route as its
/// `StatusCallback` under `server.public_url`. The `X-Twilio-Signature`
/// (HMAC-SHA1 under the channel's `auth_token` of that URL followed by
/// every posted field's name and value, fields sorted by name) is checked
/// first: missing or wrong is 401 `invalid_signature` and nothing changes.
/// Then a callback without `MessageSid` or `MessageStatus` is 400; one
/// about a message the gateway does not know is 200 and ignored.
#[utoipa::path(post, path = "/v1/providers/twilio/{channel}/status", operation_id = "twilio_status_callback", tag = "challenges", security(),
    params(("channel" = String, Path, description = "the `twilio` channel that sent the message")),
    request_body(content_type = "application/x-www-form-urlencoded", content = TwilioStatusForm),
    responses(
        (status = 200, description = "taken (also when the message is unknown)"),
        E400, E401, E404, E413, E503))]
async fn twilio_status(
    State(st): State<AppState>,
    PathParam(channel): PathParam<String>,
    Now(now): Now,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let callback = (channel.as_str(), &headers, &body[..]);
    twilio_callback(&st, TwilioApi::Messages, callback, now).await
}

/// A status callback of Twilio's `api` to `channel`, with its headers and
/// body: 200 once taken.
async fn twilio_callback(
    st: &AppState,
    api: TwilioApi,
    (channel, headers, body): (&str, &HeaderMap, &[u8]),
    now: crate::time::Timestamp,
) -> Result<StatusCode> {
    let (fields, signature) = twilio_form(headers, body);
    crate::gateway::receipts::twilio_receipt(&st.gateway, api, channel, &fields, signature, now)
        .await?;
    Ok(StatusCode::OK)
}

/// The fields of a Twilio status callback the gateway reads (Twilio posts
/// more; every posted field is signed).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct TwilioStatusForm {
    /// The `sid` of the send's answer.
    MessageSid: String,
    /// `queued`, `sent`, `delivered`, `read`, `undelivered`, `failed`, …
    MessageStatus: String,
    /// Twilio's error code, with `undelivered` and `failed`.
    ErrorCode: Option<String>,
}

/// A Twilio status callback for a call a `twilio_voice` channel placed.
///
/// Every call the channel places names this route as its `StatusCallback`
/// under `server.public_url`. `X-Twilio-Signature` is checked first, as for
/// `twilio` receipts: missing or wrong is 401 `invalid_signature` and
/// nothing changes. Then a callback without `CallSid` or `CallStatus` is
/// 400; `initiated`, `ringing`, `in-progress` move the challenge's
/// `delivery_status` to `sent`; `busy`, `no-answer`, `failed`, `canceled`
/// to `failed` (that status its `delivery_error` code); `completed`
/// without a reading of the code to `failed` with code `not_heard`.
#[utoipa::path(post, path = "/v1/providers/twilio-voice/{channel}/status", operation_id = "twilio_voice_status_callback", tag = "challenges", security(),
    params(("channel" = String, Path, description = "the `twilio_voice` channel that placed the call")),
    request_body(content_type = "application/x-www-form-urlencoded", content = TwilioCallStatusForm),
    responses(
        (status = 200, description = "taken (also when the call is unknown)"),
        E400, E401, E404, E413, E503))]
async fn twilio_voice_status(
    State(st): State<AppState>,
    PathParam(channel): PathParam<String>,
    Now(now): Now,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let callback = (channel.as_str(), &headers, &body[..]);
    twilio_callback(&st, TwilioApi::Calls, callback, now).await
}

/// The key press of a call a `twilio_voice` channel placed.
///
/// Each call's TwiML names this route, under an opaque id of the call, as
/// its `<Gather action>`. `X-Twilio-Signature` is checked first: missing or
/// wrong is 401 `invalid_signature` and nothing is read. While the call's
/// challenge is open, a `Digits` field answers TwiML that says the
/// `voice_otp` text twice, the code spoken digit by digit, then hangs up
/// (at most three readings per challenge); anything else (another press, a
/// challenge used, exhausted, replaced or expired, an id the gateway never
/// issued) answers the `voice_unavailable` text and hangs up.
#[utoipa::path(post, path = "/v1/providers/twilio-voice/{channel}/gather/{message}", operation_id = "twilio_voice_gather", tag = "challenges", security(),
    params(
        ("channel" = String, Path, description = "the `twilio_voice` channel that placed the call"),
        ("message" = String, Path, description = "the call's opaque id, from its TwiML")),
    request_body(content_type = "application/x-www-form-urlencoded", content = TwilioGatherForm),
    responses(
        (status = 200, description = "TwiML: the code read aloud, or that it is no longer available", body = String, content_type = "text/xml"),
        E401, E404, E413, E503))]
async fn twilio_voice_gather(
    State(st): State<AppState>,
    PathParam((channel, message)): PathParam<(String, String)>,
    Now(now): Now,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let (fields, signature) = twilio_form(&headers, &body);
    // Read here, once: the gateway gets a plain press.
    let cfg = crate::gateway::voice::voice_config(&st.gateway, &channel)?;
    let url = gather_url(&st.gateway.config().server.public_url, &channel, &message);
    let press = cfg.key_press(&url, &message, &fields, signature)?;
    let twiml = crate::gateway::voice::press(&st.gateway, &channel, press, now).await?;
    Ok(([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], twiml).into_response())
}

/// The posted fields of a Twilio request and its `X-Twilio-Signature`.
fn twilio_form<'h>(
    headers: &'h HeaderMap,
    body: &[u8],
) -> (Vec<(String, String)>, Option<&'h str>) {
    let fields = url::form_urlencoded::parse(body).into_owned().collect();
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    (fields, signature)
}

/// The fields of a call's status callback the gateway reads (Twilio posts
/// more; every posted field is signed).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct TwilioCallStatusForm {
    /// The `sid` of the call's answer.
    CallSid: String,
    /// `initiated`, `ringing`, `in-progress`, `completed`, `busy`,
    /// `no-answer`, `failed`, `canceled`.
    CallStatus: String,
}

/// The fields of a key press the gateway reads.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct TwilioGatherForm {
    /// The call's sid.
    CallSid: Option<String>,
    /// The key pressed.
    Digits: Option<String>,
}

/// The query of Meta's subscription handshake.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Handshake {
    /// `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    mode: Option<String>,
    /// The channel's `verify_token`, as entered at Meta.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    /// What to answer.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription handshake for a `whatsapp` channel's webhook.
///
/// Answers the `hub.challenge` value as `text/plain` when `hub.mode` is
/// `subscribe` and `hub.verify_token` is the channel's `verify_token`;
/// else 403. A channel without `verify_token` answers 404.
#[utoipa::path(get, path = "/v1/providers/whatsapp/{channel}/webhook", operation_id = "whatsapp_webhook_handshake", tag = "challenges", security(),
    params(("channel" = String, Path, description = "the `whatsapp` channel"), Handshake),
    responses(
        (status = 200, description = "the `hub.challenge` value", body = String, content_type = "text/plain"),
        E403, E404, E422, E503))]
async fn whatsapp_handshake(
    State(st): State<AppState>,
    PathParam(channel): PathParam<String>,
    QueryParams(q): QueryParams<Handshake>,
) -> Result<Response> {
    let challenge = crate::gateway::receipts::whatsapp_handshake(
        &st.gateway,
        &channel,
        q.mode.as_deref(),
        q.verify_token.as_deref(),
        q.challenge.as_deref(),
    )?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge,
    )
        .into_response())
}

/// A WhatsApp Cloud webhook for a `whatsapp` channel: the statuses of the
/// messages it sent, and changes of who is behind a conversation.
///
/// `X-Hub-Signature-256` (`sha256=` and the hex HMAC-SHA256 of the raw
/// body under the channel's `app_secret`) is checked first: missing or
/// wrong is 401 `invalid_signature` and nothing changes. Then a body that
/// cannot be read, or a status without `id` or `status`, is 400; each
/// `entry[].changes[].value.statuses[]` moves its message's status
/// forward; one about a message the gateway does not know is ignored.
/// A system message `user_changed_number` or `user_changed_user_id`
/// (also `customer_changed_number`, `customer_identity_changed`), or an
/// `identity_key_hash` (`contacts[]`) or `recipient_identity_key_hash`
/// (`statuses[]`) other than the one last given for the conversation,
/// ends every authentication in that conversation (`interaction.logged_out`
/// with cause `identity_changed`), fails its open challenge and forgets
/// its recognition (docs/channels.md#identity-changes); a repeated system
/// message acts once, and one about a conversation the gateway does not
/// hold is ignored, as are other incoming messages. A channel without
/// `app_secret` answers 404.
#[utoipa::path(post, path = "/v1/providers/whatsapp/{channel}/webhook", operation_id = "whatsapp_webhook", tag = "challenges", security(),
    params(("channel" = String, Path, description = "the `whatsapp` channel that sent the messages")),
    request_body(content_type = "application/json", content = WhatsappWebhook),
    responses(
        (status = 200, description = "taken (also when a message is unknown)"),
        E400, E401, E404, E413, E503))]
async fn whatsapp_webhook(
    State(st): State<AppState>,
    PathParam(channel): PathParam<String>,
    Now(now): Now,
    RequestVia(via): RequestVia,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let signed = (&body[..], signature);
    crate::gateway::receipts::whatsapp_receipt(&st.gateway, &channel, signed, &via, now).await?;
    Ok(StatusCode::OK)
}

/// A delivery report of Telegram's verification gateway for a code a
/// `telegram_gateway` channel sent.
///
/// Every code the channel sends names this route as its `callback_url`
/// under `server.public_url`. `X-Request-Signature` (the hex HMAC-SHA256,
/// keyed by the SHA-256 digest of the channel's `token`, of
/// `X-Request-Timestamp`, a newline and the raw body) is checked first:
/// missing or wrong, or a timestamp more than 5 minutes from now, is 401
/// `invalid_signature` and nothing changes. Then a
/// body that cannot be read, or lacks `request_id` or
/// `delivery_status.status`, is 400; one about a message the gateway does
/// not know is 200 and ignored.
#[utoipa::path(post, path = "/v1/providers/telegram-gateway/{channel}/report", operation_id = "telegram_gateway_report", tag = "challenges", security(),
    params(("channel" = String, Path, description = "the `telegram_gateway` channel that sent the code")),
    request_body(content_type = "application/json", content = TelegramGatewayReport),
    responses(
        (status = 200, description = "taken (also when the message is unknown)"),
        E400, E401, E404, E413, E503))]
async fn telegram_gateway_report(
    State(st): State<AppState>,
    PathParam(channel): PathParam<String>,
    Now(now): Now,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    crate::gateway::receipts::telegram_gateway_report(
        &st.gateway,
        &channel,
        &body,
        header("x-request-timestamp"),
        header("x-request-signature"),
        now,
    )
    .await?;
    Ok(StatusCode::OK)
}

/// The part of a WhatsApp Cloud webhook the gateway reads (Meta posts more;
/// the whole raw body is signed).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct WhatsappWebhook {
    /// Each entry's `changes[].value.statuses[]`: `id` (the
    /// `messages[0].id` of the send's answer), `status` (`sent`,
    /// `delivered`, `read`, `failed`) and, on failure, `errors[0]` (`code`,
    /// `title`); `recipient_identity_key_hash` beside `recipient_id`,
    /// `recipient_user_id` or `recipient_parent_user_id`. Its
    /// `changes[].value.contacts[]`: `identity_key_hash` beside `wa_id`,
    /// `user_id` or `parent_user_id`. Its `changes[].value.messages[]` of
    /// `type` `system`: `id`, `system.type` and `from`, `from_user_id` or
    /// `from_parent_user_id`.
    entry: Vec<serde_json::Value>,
}

/// The fields of a Telegram gateway report the gateway reads.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TelegramGatewayReport {
    /// The `request_id` of the send's answer.
    request_id: String,
    delivery_status: TelegramGatewayStatus,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TelegramGatewayStatus {
    /// `sent`, `delivered`, `read`, `expired` or `revoked`.
    status: String,
    /// Unix time of the change.
    updated_at: Option<i64>,
}
