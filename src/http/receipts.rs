//! The providers' delivery receipts (docs/api.md#delivery-receipts):
//! `POST /v1/providers/twilio/{channel}/status`, checked by Twilio's
//! signature, never by an API key.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::PathParam;
use super::openapi::{E400, E401, E404, E413, E503};
use super::AppState;
use crate::error::Result;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(twilio_status))
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
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    st.gateway
        .twilio_receipt(&channel, &fields, signature)
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

/// A delivery report of Telegram's verification gateway for a code a
/// `telegram_gateway` channel sent.
///
/// Every code the channel sends names this route as its `callback_url`
/// under `server.public_url`. `X-Request-Signature` (the hex HMAC-SHA256,
/// keyed by the SHA-256 digest of the channel's `token`, of
/// `X-Request-Timestamp`, a newline and the raw body) is checked first:
/// missing or wrong is 401 `invalid_signature` and nothing changes. Then a
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
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    st.gateway
        .telegram_gateway_report(
            &channel,
            &body,
            header("x-request-timestamp"),
            header("x-request-signature"),
        )
        .await?;
    Ok(StatusCode::OK)
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
