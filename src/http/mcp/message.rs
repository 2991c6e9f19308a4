//! A JSON-RPC message to `/mcp` as it is read: each member the server
//! reads borrowed from the body as its own JSON text, and read further
//! only as its method needs it — no tree of the whole body is built, and
//! what a client adds (`_meta`'s `clientInfo`, members of its own) is
//! skipped over (docs/performance.md#an-mcp-tool-call).
use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The members of a message.
#[derive(Deserialize, Default)]
pub struct Message<'a> {
    #[serde(borrow, default, deserialize_with = "given")]
    pub jsonrpc: Option<&'a RawValue>,
    /// A request's id; `None` in a notification (`null` is an id).
    #[serde(borrow, default, deserialize_with = "given")]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "given")]
    pub method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "given")]
    pub params: Option<&'a RawValue>,
}

/// The members of `params` the server reads, of any method's.
#[derive(Deserialize, Default)]
pub struct Params<'a> {
    /// `tools/call`'s tool.
    #[serde(borrow, default, deserialize_with = "given")]
    pub name: Option<&'a RawValue>,
    /// `tools/call`'s arguments.
    #[serde(borrow, default, deserialize_with = "given")]
    pub arguments: Option<&'a RawValue>,
    /// `initialize`'s version.
    #[serde(
        borrow,
        default,
        rename = "protocolVersion",
        deserialize_with = "given"
    )]
    pub protocol_version: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_meta", deserialize_with = "given")]
    pub meta: Option<&'a RawValue>,
}

/// The members of `params._meta` the server reads
/// (docs/agents.md#protocol-versions).
#[derive(Deserialize, Default)]
pub struct Meta<'a> {
    #[serde(
        borrow,
        default,
        rename = "io.modelcontextprotocol/protocolVersion",
        deserialize_with = "given"
    )]
    pub version: Option<&'a RawValue>,
    #[serde(
        borrow,
        default,
        rename = "io.modelcontextprotocol/clientCapabilities",
        deserialize_with = "given"
    )]
    pub capabilities: Option<&'a RawValue>,
}

/// A member that is there, `null` too (an `Option` alone reads `null` as
/// absent).
fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The members of `raw` when it is an object; none when it is anything
/// else (as a missing member reads).
pub fn members<'a, T: Deserialize<'a> + Default>(raw: Option<&'a RawValue>) -> T {
    raw.filter(|r| is_object(r))
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default()
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
        let m: Message = serde_json::from_str(body).unwrap();
        assert_eq!(m.id.map(RawValue::get), Some("null"), "null is an id");
        assert_eq!(text(m.jsonrpc).as_deref(), Some("2.0"));
        assert_eq!(text(m.method).as_deref(), Some("tools/call"));
        let p: Params = members(m.params);
        assert_eq!(text(p.name).as_deref(), Some("get_verification"));
        assert_eq!(p.arguments.map(RawValue::get), Some(r#"{"x":1}"#));
        let meta: Meta = members(p.meta);
        assert_eq!(text(meta.version).as_deref(), Some("2026-07-28"));
        assert!(meta.capabilities.is_some_and(is_object));
        let none: Message = serde_json::from_str("{}").unwrap();
        assert!(none.id.is_none() && none.params.is_none());
    }

    #[test]
    fn params_that_are_not_an_object_have_no_members_and_a_non_string_is_no_text() {
        for params in ["[1,2]", "\"x\"", "null", "3"] {
            let raw: Box<RawValue> = serde_json::from_str(params).unwrap();
            let p: Params = members(Some(&raw));
            assert!(p.name.is_none() && p.meta.is_none(), "{params}");
        }
        let raw: Box<RawValue> = serde_json::from_str("7").unwrap();
        assert!(text(Some(&raw)).is_none());
        let escaped: Box<RawValue> = serde_json::from_str(r#""tools\/call""#).unwrap();
        assert_eq!(text(Some(&escaped)).as_deref(), Some("tools/call"));
    }
}
