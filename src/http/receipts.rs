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
    OpenApiRouter::new().routes(routes!(twilio_status))
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
