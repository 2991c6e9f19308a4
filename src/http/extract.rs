//! Extractors that speak our error format: JSON bodies (400/413/415 as
//! problem+json, never echoing a value), the request's `now` and where it
//! comes from, and ids in paths, typed (a malformed id is simply not found).
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use crate::domain::audit::Via;
use crate::domain::json_members::repeated_member;
use crate::error::Error;
use crate::time::Timestamp;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON body of type `T`, with the raw bytes kept (signatures are over them).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

/// Whether `headers` declare a JSON body (`application/json` or
/// `application/…+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
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
    body_bytes(req, json, state).await
}

/// [`json_bytes`] of a request whose headers were taken out of it, `json`
/// when they declared JSON ([`is_json`]).
pub async fn body_bytes(
    req: Request,
    json: bool,
    state: &AppState,
) -> Result<Option<Bytes>, Error> {
    let limit = state.gateway.config().server.limits.body_read_timeout;
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
/// A member the body does not define is 422 naming it (docs/api.md#errors);
/// the body DTOs refuse them with `#[serde(deny_unknown_fields)]`. A member
/// name twice in one object, at any depth, is 400: not valid JSON.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // Every body is an object: serde would fill a struct from an array too.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::BadRequest("the body must be a JSON object".into()));
    }
    // serde would keep the last of them, where another reader of the body
    // may keep the first.
    if let Some(name) = repeated_member(bytes) {
        return Err(repeated(&name));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let within = |field: &str| {
            if path == "." {
                field.to_string()
            } else {
                format!("{path}.{field}")
            }
        };
        match inner.classify() {
            serde_json::error::Category::Data => {
                let msg = inner.to_string();
                if let Some(field) = quoted_after(&msg, "missing field ") {
                    Error::BadRequest(format!("{}: required", within(field)))
                } else if let Some(field) = quoted_after(&msg, "unknown field ") {
                    // The path may already end at the unknown member.
                    if path == field || path.ends_with(&format!(".{field}")) {
                        unknown_field(&path)
                    } else {
                        unknown_field(&within(field))
                    }
                } else if path == "." {
                    Error::BadRequest(
                        "the body must be a JSON object of the documented shape".into(),
                    )
                } else {
                    Error::BadRequest(format!("{path}: wrong JSON type or value"))
                }
            }
            _ => Error::BadRequest("the body is not valid JSON".into()),
        }
    })?;
    // Nothing but white space may follow the value.
    de.end()
        .map_err(|_| Error::BadRequest("the body is not valid JSON".into()))?;
    Ok(value)
}

/// For a member that is an object: `null` or absent is `None`; an array is
/// refused (serde would fill a struct from one).
pub fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::de::Error as _;
    match <Option<serde_json::Value> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
        Some(_) => Err(D::Error::custom("must be an object")),
    }
}

/// 400 for a body whose objects name member `name` twice: not valid JSON
/// (docs/api.md#errors). The name is the client's own text: cut short and
/// stripped of control characters before it goes into `detail`.
fn repeated(name: &str) -> Error {
    let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    Error::BadRequest(format!(
        "the body is not valid JSON: an object names the member `{shown}` twice"
    ))
}

/// The name serde quotes as `` `name` `` after `prefix` at the start of `msg`.
fn quoted_after<'m>(msg: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = msg.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// 422 naming a body member or query parameter the operation does not
/// define. The name is the client's own text: cut short and stripped of
/// control characters before it goes into `detail`.
pub fn unknown_field(name: &str) -> Error {
    Error::undefined(name)
}

/// The JSON object members of a hand-parsed body that are not among `known`:
/// the first one is 422.
pub fn only_members(
    obj: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
) -> Result<(), Error> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(unknown_field(k)),
        None => Ok(()),
    }
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

/// A body that defines no member: empty, or `{}` (activity, logout, unlock).
pub async fn empty_body(req: Request, state: &AppState) -> Result<(), Error> {
    if let Some(bytes) = json_bytes(req, state).await? {
        let body: serde_json::Map<String, serde_json::Value> = parse_json(&bytes)?;
        only_members(&body, &[])?;
    }
    Ok(())
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

/// Where a request comes from, for the audit entries it causes: its
/// peer's address and its `X-Request-Id` (set by `observe.rs` before any
/// handler runs).
pub struct RequestVia(pub Via);

impl<S: Send + Sync> FromRequestParts<S> for RequestVia {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        Ok(RequestVia(super::denials::via_of(parts)))
    }
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

/// `Query`, rejecting in our format: a parameter the operation does not
/// define (the query structs `deny_unknown_fields`) is 422 naming it; any
/// other query that does not decode is 400 `invalid_request`.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct QueryParams<T>(pub T);

impl From<axum::extract::rejection::QueryRejection> for Error {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        let text = e.body_text();
        let unknown = text
            .find("unknown field `")
            .and_then(|at| quoted_after(&text[at..], "unknown field "));
        match unknown {
            Some(name) => unknown_field(name),
            None => Error::BadRequest("the query string does not decode".into()),
        }
    }
}

/// For operations that define no query parameter: any one is 422 naming it
/// (docs/api.md#errors: a typo must never silently change what happens).
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        if parts.uri.query().is_none_or(str::is_empty) {
            return Ok(NoQuery);
        }
        let pairs: axum::extract::Query<Vec<(String, String)>> =
            axum::extract::Query::try_from_uri(&parts.uri)
                .map_err(|_| Error::BadRequest("the query string does not decode".into()))?;
        match pairs.0.first() {
            Some((name, _)) => Err(unknown_field(name)),
            None => Ok(NoQuery),
        }
    }
}

/// `{id}` of `/v1/interactions/{id}…`: anything that is not a UUID names
/// nothing, so 404 `not_found` "no such interaction" (a segment that does
/// not decode is [`PathParam`]'s 404).
#[derive(Debug, Clone, Copy)]
pub struct InteractionId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for InteractionId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let PathParam(id) = PathParam::<String>::from_request_parts(parts, state).await?;
        Ok(InteractionId(uuid(&id, "no such interaction")?))
    }
}

/// `{id}` and `{cid}` of `/v1/interactions/{id}/challenges/{cid}…`: an
/// interaction and one of its challenges, each 404 `not_found` when it is
/// not a UUID, the interaction's first.
#[derive(Debug, Clone, Copy)]
pub struct ChallengeIds {
    pub id: Uuid,
    pub cid: Uuid,
}

impl<S: Send + Sync> FromRequestParts<S> for ChallengeIds {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let PathParam((id, cid)) =
            PathParam::<(String, String)>::from_request_parts(parts, state).await?;
        Ok(ChallengeIds {
            id: uuid(&id, "no such interaction")?,
            cid: uuid(&cid, "no such challenge")?,
        })
    }
}

/// An id from a path: anything that is not a UUID names nothing.
fn uuid(s: &str, what: &'static str) -> Result<Uuid, Error> {
    Uuid::parse_str(s).map_err(|_| Error::NotFound(what))
}
