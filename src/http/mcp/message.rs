//! A JSON-RPC message to `/mcp` as it is read: in one pass over the body
//! that also refuses a member named twice, the members of the message,
//! of its `params` and of their `_meta` that the server reads, each
//! borrowed from the body as its own JSON text, and read further only as
//! its method needs it — no tree of the body is built, and what a client
//! adds (`_meta`'s `clientInfo`, members of its own) is walked for the
//! check alone (docs/performance.md#an-mcp-tool-call).
use std::borrow::Cow;

use serde::de::MapAccess;
use serde_json::value::RawValue;

use crate::domain::json_members::{read_object, Check, Kept, Unread};

/// The members of a message. A member is `Some` when it is there, `null`
/// too (`null` is an id).
#[derive(Default)]
pub struct Message<'a> {
    pub jsonrpc: Option<&'a RawValue>,
    /// A request's id; `None` in a notification.
    pub id: Option<&'a RawValue>,
    pub method: Option<&'a RawValue>,
    /// Its `params`' members: none when they are not an object.
    pub params: Params<'a>,
}

/// The members of `params` the server reads, of any method's.
#[derive(Default)]
pub struct Params<'a> {
    /// `tools/call`'s tool.
    pub name: Option<&'a RawValue>,
    /// `tools/call`'s arguments.
    pub arguments: Option<&'a RawValue>,
    /// `initialize`'s version.
    pub protocol_version: Option<&'a RawValue>,
    /// `_meta`'s members: none when it is not an object.
    pub meta: Meta<'a>,
}

/// The members of `params._meta` the server reads
/// (docs/agents.md#protocol-versions).
#[derive(Default)]
pub struct Meta<'a> {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub version: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/clientCapabilities`.
    pub capabilities: Option<&'a RawValue>,
}

/// The message `body` holds, read in one pass that also refuses a member
/// named twice in any of its objects, those it reads and those it reads
/// past (`domain::json_members`).
pub fn read(body: &[u8]) -> Result<Message<'_>, Unread> {
    read_object(body)
}

impl<'a> Kept<'a> for Message<'a> {
    fn keep<A: MapAccess<'a>>(
        &mut self,
        name: &str,
        map: &mut A,
        check: Check<'_>,
    ) -> Result<bool, A::Error> {
        match name {
            "jsonrpc" => taken(&mut self.jsonrpc, map, check),
            "id" => taken(&mut self.id, map, check),
            "method" => taken(&mut self.method, map, check),
            "params" => {
                self.params = map.next_value_seed(check.object())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl<'a> Kept<'a> for Params<'a> {
    fn keep<A: MapAccess<'a>>(
        &mut self,
        name: &str,
        map: &mut A,
        check: Check<'_>,
    ) -> Result<bool, A::Error> {
        match name {
            "name" => taken(&mut self.name, map, check),
            "arguments" => taken(&mut self.arguments, map, check),
            "protocolVersion" => taken(&mut self.protocol_version, map, check),
            "_meta" => {
                self.meta = map.next_value_seed(check.object())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl<'a> Kept<'a> for Meta<'a> {
    fn keep<A: MapAccess<'a>>(
        &mut self,
        name: &str,
        map: &mut A,
        check: Check<'_>,
    ) -> Result<bool, A::Error> {
        match name {
            "io.modelcontextprotocol/protocolVersion" => taken(&mut self.version, map, check),
            "io.modelcontextprotocol/clientCapabilities" => {
                taken(&mut self.capabilities, map, check)
            }
            _ => Ok(false),
        }
    }
}

/// `member` taken as its JSON text from `map`, whose next value it is.
fn taken<'a, A: MapAccess<'a>>(
    member: &mut Option<&'a RawValue>,
    map: &mut A,
    check: Check<'_>,
) -> Result<bool, A::Error> {
    *member = Some(map.next_value_seed(check.raw())?);
    Ok(true)
}

/// Whether a member is a JSON object.
pub fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// A member as a string: `None` when it is not one. Borrowed from the
/// body unless it holds an escape.
pub fn text(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?.get();
    match serde_json::from_str::<&str>(raw) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_read_as_given_and_null_is_not_absent() {
        let body = r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","extra":[1,{"a":2}],
            "params":{"name":"get_verification","arguments":{"x":1},"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28","clientInfo":{"name":"c"},
            "io.modelcontextprotocol/clientCapabilities":{}}}}"#;
        let m = read(body.as_bytes()).unwrap();
        assert_eq!(m.id.map(RawValue::get), Some("null"), "null is an id");
        assert_eq!(text(m.jsonrpc).as_deref(), Some("2.0"));
        assert_eq!(text(m.method).as_deref(), Some("tools/call"));
        let p = m.params;
        assert_eq!(text(p.name).as_deref(), Some("get_verification"));
        assert_eq!(p.arguments.map(RawValue::get), Some(r#"{"x":1}"#));
        let meta = p.meta;
        assert_eq!(text(meta.version).as_deref(), Some("2026-07-28"));
        assert!(meta.capabilities.is_some_and(is_object));
        let none = read(b"{}").unwrap();
        assert!(none.id.is_none() && none.params.name.is_none());
    }

    #[test]
    fn params_that_are_not_an_object_have_no_members_and_a_non_string_is_no_text() {
        for params in ["[1,2]", "\"x\"", "null", "3"] {
            let body = format!(r#"{{"params":{params}}}"#);
            let p = read(body.as_bytes()).unwrap().params;
            assert!(p.name.is_none() && p.meta.version.is_none(), "{params}");
        }
        let raw: Box<RawValue> = serde_json::from_str("7").unwrap();
        assert!(text(Some(&raw)).is_none());
        let escaped: Box<RawValue> = serde_json::from_str(r#""tools\/call""#).unwrap();
        assert_eq!(text(Some(&escaped)).as_deref(), Some("tools/call"));
    }

    /// The one pass refuses a member named twice in any object: one it
    /// reads the members of, one it keeps as text, one it reads past.
    #[test]
    fn a_member_named_twice_anywhere_is_refused_in_the_same_pass() {
        let repeated = |body: &str| match read(body.as_bytes()) {
            Err(Unread::Repeated(name)) => Some(name),
            _ => None,
        };
        for (body, name) in [
            (r#"{"id":1,"\u0069d":2}"#, "id"),
            (r#"{"params":{"name":"a","name":"b"}}"#, "name"),
            (r#"{"params":{"_meta":{"x":1,"x":2}}}"#, "x"),
            (
                r#"{"params":{"arguments":{"after":"a","after":"b"}}}"#,
                "after",
            ),
            (r#"{"params":{"arguments":[{"k":1,"k":2}]}}"#, "k"),
            (r#"{"id":{"a":1,"a":2}}"#, "a"),
            (r#"{"extra":[{"b":{"c":1,"c":1}}]}"#, "c"),
            (r#"{"params":[{"d":1,"d":1}]}"#, "d"),
            (r#"{"params":{"_meta":{"clientInfo":{"e":1,"e":1}}}}"#, "e"),
            (
                r#"{"params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"f":{},"f":{}}}}}"#,
                "f",
            ),
            (r#"{"a":1,"a":2,"b":"#, "a"),
        ] {
            assert_eq!(repeated(body).as_deref(), Some(name), "{body}");
        }
        assert!(matches!(read(br#"{"a":1,"b":"#), Err(Unread::NotJson)));
        assert!(matches!(
            read(br#"{"a":1} {"a":1,"a":1}"#),
            Err(Unread::NotJson)
        ));
        assert!(read(br#"{"params":{"arguments":[{"k":1},{"k":2}]}}"#).is_ok());
    }
}
