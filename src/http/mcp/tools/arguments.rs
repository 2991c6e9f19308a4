//! A tool's arguments, read as its [`Tool::Args`](super::tool::Tool):
//! arguments that break the tool's schema are a tool error
//! (`invalid_request` naming the argument's JSON pointer, never its
//! value), as is a call the HTTP API would refuse ([`Failure`]).
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::Error;

/// A failed call, answered as a tool error: the problem its HTTP twin
/// would answer, or arguments that break the tool's schema.
pub(super) struct Failure(pub Error);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e)
    }
}

/// Arguments that break the schema at `pointer` (a JSON pointer into the
/// arguments): 400 when a member is missing or of the wrong JSON type,
/// else 422 (docs/api.md#errors).
pub(super) fn broken(pointer: &str, why: &str, wrong_type: bool) -> Failure {
    let shown: String = pointer
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    let detail = format!("arguments {shown}: {why}");
    Failure(match wrong_type {
        true => Error::BadRequest(detail),
        false => Error::Unprocessable(detail),
    })
}

/// The tool's arguments as `T`: a member missing or of the wrong JSON
/// type is 400, one not defined or of a value not allowed 422, each
/// naming the member's JSON pointer, never its value.
pub(super) fn arguments<T: DeserializeOwned>(args: &str) -> Result<T, Failure> {
    // Read as they are, with no path kept; only arguments that break the
    // schema are read again to learn where.
    if let Ok(args) = serde_json::from_str(args) {
        return Ok(args);
    }
    let mut read = serde_json::Deserializer::from_str(args);
    let e = match serde_path_to_error::deserialize::<_, T>(&mut read) {
        Ok(args) => return Ok(args),
        Err(e) => e,
    };
    let mut pointer = pointer_of(e.path());
    let inner = e.into_inner().to_string();
    // serde's text may quote the value given: only its kind is kept.
    let mut named = |rest: &str| {
        let name = rest.split('`').nth(1).unwrap_or("");
        if !pointer.ends_with(&format!("/{}", escaped(name))) {
            pointer.push('/');
            pointer.push_str(&escaped(name));
        }
    };
    let (why, wrong_type) = if let Some(rest) = inner.strip_prefix("missing field ") {
        named(rest);
        ("is required", true)
    } else if let Some(rest) = inner.strip_prefix("unknown field ") {
        named(rest);
        ("is not defined by this tool", false)
    } else if inner.starts_with("invalid type") {
        ("is of the wrong JSON type", true)
    } else {
        ("is not a value this tool allows", false)
    };
    Err(broken(&pointer, why, wrong_type))
}

/// The JSON pointer (RFC 6901) of a place in the arguments.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(escaped(key)),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .map(|s| format!("/{s}"))
        .collect()
}

/// A member's name as a JSON pointer's reference token.
fn escaped(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// An interaction id argument: not a UUID names no interaction (404, as
/// on the HTTP API).
pub(super) fn interaction_id(id: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(id).map_err(|_| Failure(Error::NotFound("no such interaction")))
}
