//! The one mapping from [`Error`] to an `application/problem+json` response
//! (RFC 9457) with the API's `code` (docs/api.md#errors).
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::time::Timestamp;

pub const PROBLEM_JSON: &str = "application/problem+json";

fn title(code: &str) -> &'static str {
    match code {
        "invalid_request" => "Invalid request",
        "unauthorized" => "Unauthorized",
        "invalid_token" => "Invalid token",
        "invalid_signature" => "Invalid signature",
        "invalid_code" => "Invalid code",
        "forbidden" => "Forbidden",
        "person_required" => "Person required",
        "customer_mismatch" => "Customer mismatch",
        "banned" => "Banned",
        "number_refused" => "Number refused",
        "not_found" => "Not found",
        "request_timeout" => "Request timeout",
        "token_used" => "Token already used",
        "challenge_used" => "Challenge already used",
        "no_session_pin" => "No session PIN",
        "not_authenticated" => "Not authenticated",
        "not_registered" => "Not registered",
        "no_next_step" => "No next step",
        "entry_page" => "Code typed on the page",
        "token_expired" => "Token expired",
        "challenge_expired" => "Challenge expired",
        "challenge_exhausted" => "Challenge exhausted",
        "payload_too_large" => "Payload too large",
        "unsupported_media_type" => "Unsupported media type",
        "locked" => "Locked",
        "rate_limited" => "Too many requests",
        "channel_error" => "Channel error",
        "store_unavailable" => "Store unavailable",
        "overloaded" => "Overloaded",
        "draining" => "Draining",
        "managed_by_file" => "Managed by file",
        "key_exists" => "Key exists",
        "key_in_use" => "Key in use",
        "precondition_required" => "Precondition required",
        "precondition_failed" => "Precondition failed",
        "invalid_config" => "Invalid configuration",
        "channel_in_use" => "Channel in use",
        _ => "Internal error",
    }
}

/// The `code` of a problem: one of the API reference's table (docs/api.md#errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    InvalidRequest,
    Unauthorized,
    InvalidToken,
    InvalidSignature,
    InvalidCode,
    Forbidden,
    PersonRequired,
    CustomerMismatch,
    Banned,
    NumberRefused,
    NotFound,
    RequestTimeout,
    TokenUsed,
    ChallengeUsed,
    NoSessionPin,
    /// 409: a wallet registration without a recent authentication
    /// (docs/wallet.md#registering-the-wallet-for-payments).
    NotAuthenticated,
    /// 409: a payment in the wallet for a customer with no registered
    /// attestation.
    NotRegistered,
    NoNextStep,
    /// 409: `verify` of a challenge whose code is typed on the gateway's
    /// page (docs/api.md#codes-typed-on-the-gateways-page); nothing counted.
    EntryPage,
    TokenExpired,
    ChallengeExpired,
    ChallengeExhausted,
    PayloadTooLarge,
    UnsupportedMediaType,
    Locked,
    RateLimited,
    ChannelError,
    StoreUnavailable,
    /// 503 before any route: more connections are open than
    /// `server.max_connections` (an extension of the API reference's table; `Retry-After`).
    Overloaded,
    /// 503 from `/readyz` only, while the instance shuts down.
    Draining,
    ManagedByFile,
    KeyExists,
    KeyInUse,
    PreconditionRequired,
    PreconditionFailed,
    InvalidConfig,
    ChannelInUse,
}

// The OpenAPI document's schema and the answers' text, one type: borrowed
// and serialized straight into the answer (every wrong code of a brute
// force gets one), its members in the order a `serde_json` map wrote them
// in earlier versions (by name), so the text is as it was.
/// An error answer, `application/problem+json` (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// `invalid_code` only: wrong codes left on this challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub attempts_remaining: Option<u32>,
    #[schema(value_type = ProblemCode)]
    pub code: &'a str,
    /// A safe sentence; for request errors it names the field, never its value.
    pub detail: &'a str,
    /// `invalid_config` only: every problem found, each at its RFC 6901
    /// pointer into the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ConfigProblem>>)]
    pub errors: Option<&'a [crate::error::Pointed]>,
    /// `locked` only: when the lockout ends (also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<Timestamp>,
    /// `number_refused` only: `sim_swap`, `call_forwarding` or
    /// `check_failed` (docs/number-checks.md#the-verdicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "sim_swap")]
    pub reason: Option<&'static str>,
    /// `invalid_code` only: always true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_2fa: Option<bool>,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// `channel_in_use` only: the teams of the operator API that list the
    /// channel, by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub teams: Option<&'a [String]>,
    /// A short, fixed title for the code.
    pub title: &'static str,
    /// `urn:chatgate:problem:{code}`.
    #[serde(rename = "type", serialize_with = "urn")]
    #[schema(example = "urn:chatgate:problem:invalid_request")]
    pub kind: &'a str,
}

/// `urn:chatgate:problem:{code}` (`kind` holds the code).
fn urn<S: serde::Serializer>(code: &&str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("urn:chatgate:problem:{code}"))
}

impl<'a> Problem<'a> {
    fn new(status: StatusCode, code: &'a str, detail: &'a str) -> Self {
        Problem {
            errors: None,
            attempts_remaining: None,
            code,
            detail,
            locked_until: None,
            reason: None,
            requires_2fa: None,
            status: status.as_u16(),
            teams: None,
            title: title(code),
            kind: code,
        }
    }
}

/// One problem of an operator's body (`errors` of `invalid_config`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ConfigProblem {
    /// RFC 6901 JSON pointer into the body; `""` is the body as a whole.
    #[schema(example = "/settings/otp/ttl")]
    pointer: String,
    /// What is wrong, never the value.
    detail: String,
}

/// A problem+json response outside the [`Error`] table (405).
pub fn response(status: StatusCode, code: &'static str, detail: &str) -> Response {
    send(status, code, &Problem::new(status, code, detail))
}

/// The answer, with its `code` in an extension for the request log line.
fn send(status: StatusCode, code: &'static str, body: &Problem<'_>) -> Response {
    // Only what JSON cannot write fails (a map keyed by a sequence, say);
    // `Problem` holds none.
    let text = serde_json::to_vec(body).unwrap_or_default();
    let mut res = (status, text).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res.extensions_mut().insert(super::ProblemLabel(code));
    res
}

/// The HTTP status of `e` (docs/api.md#errors).
pub fn status(e: &Error) -> StatusCode {
    match e {
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized
        | Error::NotBearer
        | Error::BearerRefused { .. }
        | Error::InvalidToken(_)
        | Error::InvalidSignature(_)
        | Error::InvalidCode { .. } => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_)
        | Error::RoleRefused { .. }
        | Error::PersonRequired
        | Error::CustomerMismatch
        | Error::Banned
        | Error::NumberRefused(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        Error::TokenUsed
        | Error::ChallengeUsed
        | Error::NoSessionPin
        | Error::NotAuthenticated(_)
        | Error::NotRegistered(_)
        | Error::NoNextStep(_)
        | Error::EntryPage => StatusCode::CONFLICT,
        Error::TokenExpired | Error::ChallengeExpired | Error::ChallengeExhausted => {
            StatusCode::GONE
        }
        Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::Unprocessable(_) | Error::DeliveryRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Locked { .. } => StatusCode::LOCKED,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::Channel(_) => StatusCode::BAD_GATEWAY,
        Error::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Error::ManagedByFile(_)
        | Error::KeyExists(_)
        | Error::KeyInUse(_)
        | Error::ChannelInUse(_) => StatusCode::CONFLICT,
        Error::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
        Error::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        Error::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = status(&self);
        let detail = self.to_string();
        let mut body = Problem::new(status, code, &detail);
        let mut retry_after = None;
        match &self {
            Error::InvalidCode { attempts_remaining } => {
                body.requires_2fa = Some(true);
                body.attempts_remaining = Some(*attempts_remaining);
            }
            Error::Locked {
                until,
                retry_after: r,
            } => {
                body.locked_until = Some(*until);
                retry_after = Some(*r);
            }
            Error::RateLimited { retry_after: r } => retry_after = Some(*r),
            Error::NumberRefused(r) => body.reason = Some(r),
            Error::InvalidConfig(problems) => body.errors = Some(problems),
            Error::ChannelInUse(teams) => body.teams = Some(teams),
            Error::Internal(bug) => tracing::error!(
                what = bug.what,
                at = %bug.at,
                cause = bug.source.as_ref().map(tracing::field::display),
                "internal error answered 500"
            ),
            _ => {}
        }
        let mut res = send(status, code, &body);
        if matches!(self, Error::RequestTimeout) {
            // The rest of the body may still come: this connection is done.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(r) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&r.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answered_code_is_a_documented_code() {
        let answered = [
            Error::BadRequest(String::new()),
            Error::Unprocessable(String::new()),
            Error::DeliveryRefused(""),
            Error::Unauthorized,
            Error::BearerRefused { scope: None },
            Error::InvalidToken(""),
            Error::InvalidSignature(""),
            Error::InvalidCode {
                attempts_remaining: 0,
            },
            Error::Forbidden(""),
            Error::PersonRequired,
            Error::CustomerMismatch,
            Error::Banned,
            Error::NumberRefused("sim_swap"),
            Error::NotFound(""),
            Error::RequestTimeout,
            Error::TokenUsed,
            Error::ChallengeUsed,
            Error::NoSessionPin,
            Error::NotAuthenticated(""),
            Error::NotRegistered(""),
            Error::NoNextStep(""),
            Error::EntryPage,
            Error::TokenExpired,
            Error::ChallengeExpired,
            Error::ChallengeExhausted,
            Error::PayloadTooLarge,
            Error::UnsupportedMediaType,
            Error::RateLimited { retry_after: 1 },
            Error::Channel(String::new()),
            Error::StoreUnavailable,
            Error::ManagedByFile(""),
            Error::KeyExists(""),
            Error::KeyInUse(""),
            Error::PreconditionRequired,
            Error::PreconditionFailed,
            Error::InvalidConfig(Vec::new()),
            Error::ChannelInUse(Vec::new()),
        ];
        let codes = answered
            .iter()
            .map(Error::code)
            .chain(["overloaded", "draining"]);
        for code in codes {
            let parsed: Result<ProblemCode, _> =
                serde_json::from_value(serde_json::Value::String(code.into()));
            assert!(parsed.is_ok(), "{code} is not in ProblemCode");
        }
    }

    #[test]
    fn every_code_has_a_title_of_its_own() {
        let codes = [
            "invalid_request",
            "unauthorized",
            "invalid_token",
            "invalid_signature",
            "invalid_code",
            "forbidden",
            "person_required",
            "customer_mismatch",
            "banned",
            "number_refused",
            "not_found",
            "request_timeout",
            "token_used",
            "challenge_used",
            "no_session_pin",
            "not_authenticated",
            "not_registered",
            "no_next_step",
            "entry_page",
            "token_expired",
            "challenge_expired",
            "challenge_exhausted",
            "payload_too_large",
            "unsupported_media_type",
            "locked",
            "rate_limited",
            "channel_error",
            "store_unavailable",
            "overloaded",
            "draining",
            "managed_by_file",
            "key_exists",
            "key_in_use",
            "precondition_required",
            "precondition_failed",
            "invalid_config",
            "channel_in_use",
        ];
        let mut seen = std::collections::HashSet::new();
        for code in codes {
            let t = title(code);
            assert_ne!(
                t,
                title("internal_error"),
                "{code} is titled as an internal error"
            );
            assert!(seen.insert(t), "{code} shares its title {t:?}");
        }
    }

    /// The text as the `serde_json::Value` of earlier versions wrote it.
    fn as_before(e: &Error) -> String {
        use serde_json::json;
        let code = e.code();
        let status = status(e);
        let mut body = json!({
            "type": format!("urn:chatgate:problem:{code}"),
            "title": title(code),
            "status": status.as_u16(),
            "detail": e.to_string(),
            "code": code,
        });
        match e {
            Error::InvalidCode { attempts_remaining } => {
                body["requires_2fa"] = json!(true);
                body["attempts_remaining"] = json!(attempts_remaining);
            }
            Error::Locked { until, .. } => body["locked_until"] = json!(until),
            _ => {}
        }
        body.to_string()
    }

    #[tokio::test]
    async fn bodies_are_as_before_byte_for_byte() {
        let errors = [
            Error::BadRequest("field `x`: \"quoted\" \u{1}".into()),
            Error::Unauthorized,
            Error::InvalidCode {
                attempts_remaining: 3,
            },
            Error::Locked {
                until: Timestamp::from_unix_seconds(1_795_000_000),
                retry_after: 60,
            },
            Error::RateLimited { retry_after: 2 },
            Error::NotFound("no such interaction"),
            Error::internal("a test"),
        ];
        for e in errors {
            let before = as_before(&e);
            let res = e.into_response();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(std::str::from_utf8(&body).unwrap(), before);
        }
    }
}
