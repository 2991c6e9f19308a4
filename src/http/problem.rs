//! The one mapping from [`Error`] to an `application/problem+json` response
//! (RFC 9457) with the contract's `code` (CONTRACT 3.2).
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

pub const PROBLEM_JSON: &str = "application/problem+json";

fn title(code: &str) -> &'static str {
    match code {
        "invalid_request" => "Invalid request",
        "unauthorized" => "Unauthorized",
        "invalid_token" => "Invalid token",
        "invalid_signature" => "Invalid signature",
        "invalid_code" => "Invalid code",
        "forbidden" => "Forbidden",
        "customer_mismatch" => "Customer mismatch",
        "banned" => "Banned",
        "not_found" => "Not found",
        "request_timeout" => "Request timeout",
        "token_used" => "Token already used",
        "challenge_used" => "Challenge already used",
        "no_session_pin" => "No session PIN",
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
        _ => "Internal error",
    }
}

/// The problem+json body for `status` and `code`.
pub fn body(status: StatusCode, code: &str, detail: &str) -> serde_json::Value {
    json!({
        "type": format!("urn:chatgate:problem:{code}"),
        "title": title(code),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    })
}

/// A problem+json response outside the [`Error`] table (405).
pub fn response(status: StatusCode, code: &str, detail: &str) -> Response {
    send(status, &body(status, code, detail))
}

fn send(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = body(status, code, &self.to_string());
        let mut retry_after = None;
        match &self {
            Error::InvalidCode { attempts_remaining } => {
                body["requires_2fa"] = json!(true);
                body["attempts_remaining"] = json!(attempts_remaining);
            }
            Error::Locked {
                until,
                retry_after: r,
            } => {
                body["locked_until"] = json!(until);
                retry_after = Some(*r);
            }
            Error::RateLimited { retry_after: r } => retry_after = Some(*r),
            Error::Internal => tracing::error!("internal error answered 500"),
            _ => {}
        }
        let mut res = send(status, &body);
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
