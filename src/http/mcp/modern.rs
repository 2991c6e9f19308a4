//! The protocol versions of `/mcp` (docs/agents.md#protocol-versions):
//! which one a request speaks, and the stateless envelope of
//! `2026-07-28` — no `initialize`, no session, the version in each
//! request's `_meta` and its `MCP-Protocol-Version` header, the method
//! (and a tool's name) mirrored in `Mcp-Method` (and `Mcp-Name`),
//! `server/discover`, `resultType` and `serverInfo` on every result,
//! caching hints on the lists
//! (docs/decisions/0650-one-tool-layer-under-three-protocol-versions.md).
//!
//! The versions differ here, in the envelope; the tools
//! ([`super::tools`]) are the same under each.
use std::borrow::Cow;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::message::{is_object, text, Meta};
use super::RpcError;

/// The versions with an `initialize` handshake and a session, oldest first.
pub const LEGACY: [&str; 2] = ["2025-06-18", "2025-11-25"];

/// The stateless version.
pub const MODERN: &str = "2026-07-28";

/// Every version served, newest first: `server/discover`'s
/// `supportedVersions` and an unsupported version's `supported`.
pub const SUPPORTED: [&str; 3] = [MODERN, LEGACY[1], LEGACY[0]];

/// How long a client may keep `tools/list` and `server/discover`
/// (`ttlMs`): the tools change only with a new release.
pub const LIST_TTL_MS: u64 = 600_000;

// A list is fresh for a minute at least (docs/agents.md#protocol-versions).
const _: () = assert!(LIST_TTL_MS >= 60_000);

/// The `_meta` key of a request's version (`super::message::Meta`'s).
#[cfg(test)]
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// The `_meta` key of the client's capabilities.
#[cfg(test)]
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

/// The `_meta` key of the server's name and version on every result.
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// The header of a request's version.
pub const VERSION_HEADER: &str = "mcp-protocol-version";

/// `HeaderMismatch`: a mirrored header missing, malformed or not the body's.
const HEADER_MISMATCH: i64 = -32020;

/// `UnsupportedProtocolVersion`.
const UNSUPPORTED_VERSION: i64 = -32022;

/// The rules of a request: with a handshake and a session, or stateless.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Era {
    Legacy,
    Modern,
}

/// Which era a message speaks, from the `_meta` version of its `params` and its
/// `MCP-Protocol-Version` header. A request whose `_meta` names a
/// version is stateless: the header must name the same (`-32020`), the
/// version must be `2026-07-28` (`-32022`, with the supported list) and
/// `_meta` must hold the client's capabilities (`-32602`), each HTTP 400.
/// Without one, a header of `2026-07-28` is `-32602` (its `_meta` is
/// missing); an unknown header is the legacy transport's 400 (`None`:
/// the caller's problem); a legacy one, or none, is the legacy era.
pub fn era(headers: &HeaderMap, meta: &Meta<'_>) -> Result<Option<Era>, RpcError> {
    let header = headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().map(str::trim).unwrap_or("\u{fffd}"));
    let Some(version) = meta.version else {
        return match header {
            None => Ok(Some(Era::Legacy)),
            Some(h) if LEGACY.contains(&h) => Ok(Some(Era::Legacy)),
            Some(MODERN) => Err(bad_meta(
                "params._meta: io.modelcontextprotocol/protocolVersion is required",
            )),
            Some(_) => Ok(None),
        };
    };
    let Some(version) = text(Some(version)) else {
        return Err(bad_meta(
            "params._meta: io.modelcontextprotocol/protocolVersion must be a string",
        ));
    };
    let version = version.as_ref();
    if LEGACY.contains(&version) && header.is_none_or(|h| h == version) {
        return Ok(Some(Era::Legacy));
    }
    if header != Some(version) {
        return Err(mismatch(
            "MCP-Protocol-Version must name the version of params._meta",
        ));
    }
    if version != MODERN {
        let data = json!({"supported": SUPPORTED, "requested": shown(version)});
        return Err(
            RpcError::new(UNSUPPORTED_VERSION, "Unsupported protocol version")
                .with_data(data)
                .with_status(StatusCode::BAD_REQUEST),
        );
    }
    if !meta.capabilities.is_some_and(is_object) {
        return Err(bad_meta(
            "params._meta: io.modelcontextprotocol/clientCapabilities (an object) is required",
        ));
    }
    Ok(Some(Era::Modern))
}

/// A requested version as an error may echo it: printable, short.
fn shown(version: &str) -> String {
    version
        .chars()
        .filter(|c| !c.is_control())
        .take(32)
        .collect()
}

fn bad_meta(why: &'static str) -> RpcError {
    RpcError::invalid_params(why).with_status(StatusCode::BAD_REQUEST)
}

fn mismatch(why: &'static str) -> RpcError {
    RpcError::new(HEADER_MISMATCH, why).with_status(StatusCode::BAD_REQUEST)
}

/// The mirrored headers of a stateless request: `Mcp-Method` equal to
/// `method`, and for `tools/call` `Mcp-Name` equal to `params.name`
/// (either both or neither; its `=?base64?…?=` form decoded first).
/// Header names are matched case-insensitively, values exactly, after
/// the optional whitespace around them.
pub fn headers_match(
    headers: &HeaderMap,
    method: &str,
    name: Option<&str>,
) -> Result<(), RpcError> {
    let said = header(headers, "mcp-method")?;
    match said {
        None => return Err(mismatch("Mcp-Method: required")),
        Some(m) if m != method => {
            return Err(mismatch("Mcp-Method does not match the body's method"))
        }
        Some(_) => {}
    }
    if method != "tools/call" {
        return Ok(());
    }
    match (header(headers, "mcp-name")?, name) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(mismatch("Mcp-Name: required")),
        (Some(h), Some(n)) if h == n => Ok(()),
        (Some(_), _) => Err(mismatch("Mcp-Name does not match the body's params.name")),
    }
}

/// A mirrored header's value: trimmed, `=?base64?…?=` decoded; one that
/// is not visible ASCII, repeated, or not valid Base64 of UTF-8 is a
/// mismatch.
fn header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<Cow<'h, str>>, RpcError> {
    let mut all = headers.get_all(name).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(mismatch("a mirrored header is given twice"));
    }
    let text = value
        .to_str()
        .map_err(|_| mismatch("a mirrored header holds characters outside visible ASCII"))?
        .trim_matches([' ', '\t']);
    let Some(encoded) = text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    else {
        return Ok(Some(Cow::Borrowed(text)));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| mismatch("a mirrored header's =?base64? value is not Base64"))?;
    String::from_utf8(bytes)
        .map(|t| Some(Cow::Owned(t)))
        .map_err(|_| mismatch("a mirrored header's =?base64? value is not UTF-8"))
}

/// What this server is: `initialize`'s `serverInfo`, and the `_meta`
/// `serverInfo` of every stateless result.
pub fn server_info() -> Value {
    json!({"name": "chatgate", "title": "chatgate", "version": env!("CARGO_PKG_VERSION")})
}

/// The `_meta` of a stateless result that has none of its own, the
/// server's name and version ([`complete`]'s), written once.
pub fn server_meta() -> &'static RawValue {
    static META: std::sync::LazyLock<Box<RawValue>> = std::sync::LazyLock::new(|| {
        let meta = json!({ SERVER_INFO_KEY: server_info() });
        serde_json::value::to_raw_value(&meta).unwrap_or_else(|_| RawValue::NULL.to_owned())
    });
    &META
}

/// `server/discover`: the versions, the capabilities, what this server is.
pub fn discover(instructions: &str) -> Value {
    json!({
        "supportedVersions": SUPPORTED,
        "capabilities": {"tools": {"listChanged": false}},
        "instructions": instructions,
        "ttlMs": LIST_TTL_MS,
        "cacheScope": "public",
    })
}

/// `tools/list` under `2026-07-28`: the same list, cacheable for the
/// caller alone (another key may one day see other tools).
pub fn cacheable_list(mut list: Value) -> Value {
    if let Some(o) = list.as_object_mut() {
        o.insert("ttlMs".into(), json!(LIST_TTL_MS));
        o.insert("cacheScope".into(), json!("private"));
    }
    list
}

/// A stateless result as it is answered: `resultType` `complete` and
/// the server's name and version in its `_meta`.
pub fn complete(mut result: Value) -> Value {
    if let Some(o) = result.as_object_mut() {
        o.insert("resultType".into(), json!("complete"));
        let meta = o
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(SERVER_INFO_KEY.into(), server_info());
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::message::read;
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// [`era`] of a message whose `params` are `params`, as read.
    fn era_of(headers: &HeaderMap, params: &Value) -> Result<Option<Era>, RpcError> {
        let text = json!({ "params": params }).to_string();
        let message = read(text.as_bytes()).ok().unwrap();
        era(headers, &message.params.meta)
    }

    /// The `params` of a message with `meta`.
    fn with_meta(meta: Value) -> Value {
        json!({"_meta": meta})
    }

    fn modern_meta() -> Value {
        json!({VERSION_KEY: MODERN, CAPABILITIES_KEY: {}})
    }

    #[test]
    fn the_era_follows_the_meta_version_and_the_header() {
        let bare = Value::Null;
        assert_eq!(era_of(&headers(&[]), &bare).unwrap(), Some(Era::Legacy));
        let legacy = headers(&[(VERSION_HEADER, "2025-06-18")]);
        assert_eq!(era_of(&legacy, &bare).unwrap(), Some(Era::Legacy));
        assert_eq!(
            era_of(&headers(&[(VERSION_HEADER, "1999-01-01")]), &bare).unwrap(),
            None
        );
        let modern = headers(&[(VERSION_HEADER, MODERN)]);
        assert_eq!(
            era_of(&modern, &with_meta(modern_meta())).unwrap(),
            Some(Era::Modern)
        );
        // A modern header without _meta, or _meta without capabilities.
        let e = era_of(&modern, &bare).unwrap_err();
        assert_eq!((e.code, e.status), (-32602, StatusCode::BAD_REQUEST));
        let e = era_of(&modern, &with_meta(json!({VERSION_KEY: MODERN}))).unwrap_err();
        assert_eq!((e.code, e.status), (-32602, StatusCode::BAD_REQUEST));
    }

    #[test]
    fn a_header_other_than_the_meta_version_is_a_mismatch_and_an_unknown_version_names_the_supported(
    ) {
        let meta = json!({VERSION_KEY: "v999", CAPABILITIES_KEY: {}});
        let modern = headers(&[(VERSION_HEADER, MODERN)]);
        let e = era_of(&modern, &with_meta(meta.clone())).unwrap_err();
        assert_eq!((e.code, e.status), (-32020, StatusCode::BAD_REQUEST));
        let e = era_of(&headers(&[]), &with_meta(modern_meta())).unwrap_err();
        assert_eq!(e.code, -32020, "no header at all");
        let e = era_of(&headers(&[(VERSION_HEADER, "v999")]), &with_meta(meta)).unwrap_err();
        assert_eq!((e.code, e.status), (-32022, StatusCode::BAD_REQUEST));
        let data = e.data.unwrap();
        assert_eq!(data["requested"], "v999");
        assert_eq!(data["supported"], json!(SUPPORTED));
    }

    #[test]
    fn the_mirrored_method_and_name_must_be_the_body_s() {
        let call = Some("get_verification");
        let ok = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "  get_verification "),
        ]);
        assert!(headers_match(&ok, "tools/call", call).is_ok());
        let encoded = base64::engine::general_purpose::STANDARD.encode("get_verification");
        let ok = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", &format!("=?base64?{encoded}?=")),
        ]);
        assert!(headers_match(&ok, "tools/call", call).is_ok());
        for bad in [
            headers(&[]),
            headers(&[
                ("mcp-method", "TOOLS/CALL"),
                ("mcp-name", "get_verification"),
            ]),
            headers(&[("mcp-method", "tools/call")]),
            headers(&[
                ("mcp-method", "tools/call"),
                ("mcp-name", "start_verification"),
            ]),
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?***?=")]),
            headers(&[
                ("mcp-method", "tools/call"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_verification"),
            ]),
        ] {
            let e = headers_match(&bad, "tools/call", call).unwrap_err();
            assert_eq!(
                (e.code, e.status),
                (-32020, StatusCode::BAD_REQUEST),
                "{bad:?}"
            );
        }
        let list = headers(&[("mcp-method", "tools/list")]);
        assert!(headers_match(&list, "tools/list", None).is_ok());
    }

    #[test]
    fn a_stateless_result_is_complete_and_names_the_server() {
        let r = complete(cacheable_list(json!({"tools": []})));
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["_meta"][SERVER_INFO_KEY]["name"], "chatgate");
        assert_eq!(
            (r["ttlMs"].as_u64(), r["cacheScope"].as_str()),
            (Some(LIST_TTL_MS), Some("private"))
        );
        let meta: Value = serde_json::from_str(server_meta().get()).unwrap();
        assert_eq!(meta, r["_meta"]);
        let d = discover("x");
        assert_eq!(d["supportedVersions"][0], MODERN);
    }
}
