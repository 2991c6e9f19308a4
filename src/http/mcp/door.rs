//! The MCP server's front door (docs/agents.md#who-may-reach-the-server):
//! before a key is read, a request whose `Origin` is not one of `[mcp]
//! allowed_origins`, or whose `Host` is neither `server.public_url`'s nor
//! one of `[mcp] allowed_hosts`, is 403 (DNS rebinding: a page of another
//! site must not reach a gateway on this machine or network). A request
//! without `Origin`, a server-side client's, passes that rule. The key is
//! then read before the method: any method without a valid key (or a
//! team's OAuth access token, `http::auth`) is 401, whose
//! `WWW-Authenticate` names the protected-resource metadata.
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::super::auth::BotOnly;
use super::super::AppState;
use crate::error::Error;

/// The path of the protected-resource metadata (RFC 9728) of `/mcp`.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// A request that came through the door: its `Origin` and `Host` allowed.
pub struct Door;

impl FromRequestParts<AppState> for Door {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        match refusal(parts, st) {
            Some(res) => Err(res),
            None => Ok(Door),
        }
    }
}

/// The 403 of a request from a foreign `Origin` or to a foreign `Host`.
fn refusal(parts: &Parts, st: &AppState) -> Option<Response> {
    let config = st.gateway.config();
    let mcp = &config.mcp;
    let origins = parts.headers.get_all(header::ORIGIN);
    if origins
        .iter()
        .any(|o| !o.to_str().is_ok_and(|o| mcp.allows_origin(o)))
    {
        return Some(
            Error::Forbidden("this Origin may not reach the MCP server ([mcp] allowed_origins)")
                .into_response(),
        );
    }
    let host = match parts.headers.get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => parts.uri.authority().map(|a| a.as_str()),
    };
    let allowed = host.is_some_and(|h| mcp.allows_host(h));
    (!allowed).then(|| {
        Error::Forbidden("this Host may not reach the MCP server ([mcp] allowed_hosts)")
            .into_response()
    })
}

/// A method `/mcp` does not serve: through the door, then 401 without a
/// valid key; `None` when the 405 stands.
pub async fn other_method(st: &AppState, req: Request) -> Option<Response> {
    let (mut parts, _) = req.into_parts();
    if let Some(res) = refusal(&parts, st) {
        return Some(res);
    }
    match BotOnly::from_request_parts(&mut parts, st).await {
        Err(e @ (Error::Unauthorized | Error::BearerRefused { .. })) => Some(refused(e, st)),
        _ => None,
    }
}

/// The refusal of a caller, with the `WWW-Authenticate` MCP clients read:
/// `resource_metadata` names where to learn how to authorise; a refused
/// access token says why as RFC 6750 does (`invalid_token`, or
/// `insufficient_scope` with the scope it lacked).
pub fn refused(e: Error, st: &AppState) -> Response {
    let metadata = format!(
        "resource_metadata=\"{}{METADATA_PATH}\"",
        st.gateway.config().server.public_url
    );
    let value = match &e {
        Error::Forbidden(_) | Error::RoleRefused { .. } => {
            format!("Bearer error=\"insufficient_scope\", {metadata}")
        }
        Error::BearerRefused { scope: Some(scope) } => {
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\", {metadata}")
        }
        Error::BearerRefused { scope: None } => {
            format!("Bearer error=\"invalid_token\", {metadata}")
        }
        _ => format!("Bearer {metadata}"),
    };
    let mut res = e.into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}
