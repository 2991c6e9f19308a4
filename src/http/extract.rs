//! Extractors that speak our error format: JSON bodies (400/413/415 as
//! problem+json, never echoing a value), the request's `now`, and ids in
//! paths (a malformed id is simply not found).
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use crate::error::Error;
use crate::time::Timestamp;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON body of type `T`, with the raw bytes kept (signatures are over them).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads the body (at most [`MAX_BODY`], within `server.body_read_timeout`,
/// else 408) and checks it is declared JSON. `Ok(None)` for an empty body.
pub async fn json_bytes(req: Request, state: &AppState) -> Result<Option<Bytes>, Error> {
    let json = is_json(req.headers());
    let limit = state.gateway.config.server.limits.body_read_timeout;
    let bytes = tokio::time::timeout(limit, Bytes::from_request(req, state))
        .await
        .map_err(|_| Error::RequestTimeout)?
        .map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("the body could not be read".into())
            }
        })?;
    // An empty body is no body, whatever it was labelled; endpoints whose
    // body is optional take it as such, the others answer 400.
    if bytes.is_empty() {
        return Ok(None);
    }
    if !json {
        return Err(Error::UnsupportedMediaType);
    }
    Ok(Some(bytes))
}

/// Parses JSON into `T`, naming the field on error but never its value.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = match inner.classify() {
            serde_json::error::Category::Data => {
                let msg = inner.to_string();
                if let Some(rest) = msg.strip_prefix("missing field ") {
                    let field = rest.split(" at line").next().unwrap_or(rest);
                    let field = field.trim_matches('`');
                    if path == "." {
                        format!("{field}: required")
                    } else {
                        format!("{path}.{field}: required")
                    }
                } else if path == "." {
                    "the body must be a JSON object of the documented shape".into()
                } else {
                    format!("{path}: wrong JSON type or value")
                }
            }
            _ => "the body is not valid JSON".into(),
        };
        Error::BadRequest(detail)
    })?;
    // Nothing but white space may follow the value.
    de.end()
        .map_err(|_| Error::BadRequest("the body is not valid JSON".into()))?;
    Ok(value)
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let raw = json_bytes(req, state)
            .await?
            .ok_or_else(|| Error::BadRequest("a JSON body is required".into()))?;
        Ok(JsonBody {
            value: parse_json(&raw)?,
            raw,
        })
    }
}

/// The moment this request is handled: the clock is read once, here.
#[derive(Debug, Clone, Copy)]
pub struct Now(pub Timestamp);

impl FromRequestParts<AppState> for Now {
    type Rejection = Error;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Ok(Now(state.clock.now()))
    }
}

/// An id from a path: anything that is not a UUID names nothing.
pub fn parse_id(s: &str, what: &'static str) -> Result<Uuid, Error> {
    Uuid::parse_str(s).map_err(|_| Error::NotFound(what))
}

/// `Path`, rejecting in our format: a path segment that does not decode
/// (bad percent-encoding, not UTF-8) names nothing, so 404 `not_found`.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct PathParam<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for Error {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        Error::NotFound("no such resource")
    }
}

/// `Query`, rejecting in our format: 400 `invalid_request`.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct QueryParams<T>(pub T);

impl From<axum::extract::rejection::QueryRejection> for Error {
    fn from(_: axum::extract::rejection::QueryRejection) -> Self {
        Error::BadRequest("the query string does not decode".into())
    }
}
