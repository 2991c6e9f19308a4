//! The MCP server (docs/agents.md#the-server): the Streamable HTTP
//! transport of the Model Context Protocol at `POST /mcp` and `DELETE
//! /mcp` (a `GET`, which would open a stream of the server's own messages,
//! is 405 with a valid key: this server sends none), JSON-RPC 2.0 written
//! here over `serde_json`
//! (docs/decisions/0502-the-mcp-server-is-written-over-serde-json.md).
//!
//! Behind [`door`] (the `Origin` and `Host` rules, then the key before the
//! method) and a bot's key alone, or a team's OAuth access token acting as
//! its bot (`http::auth`; 401 and 403 carry `WWW-Authenticate`
//! naming `GET /.well-known/oauth-protected-resource/mcp`); a body
//! over 64 KiB is 413 and one nested deeper than [`MAX_DEPTH`] is 400
//! before it is parsed; a session (`Mcp-Session-Id`) is the store's
//! (`gateway::mcp`), bound to the key that opened it. Each request is
//! answered as `application/json`, or as one `text/event-stream` event
//! when the client accepts only that. The versions differ in the
//! envelope alone ([`modern`]: the stateless `2026-07-28` beside the
//! handshake and session of `2025-06-18` and `2025-11-25`); the tools,
//! the same under each, are in [`tools`].
mod door;
mod message;
mod modern;
mod tools;

pub use door::other_method;
pub use tools::register_series;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::BotOnly;
use super::extract::{body_bytes, is_json, NoQuery};
use super::openapi::{raw_schema, ApiKeyErrors, JsonBodyErrors, RawSchema, E400, E403, E404, E422};
use super::AppState;
use crate::domain::json_members::Unread;
use crate::error::Error;
use message::{text, Message, Params};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_mcp, delete_mcp))
        .routes(routes!(protected_resource))
}

/// The protocol versions with a handshake, oldest first: `initialize`
/// answers a client's own when it is one of them, else the newest.
pub const VERSIONS: [&str; 2] = modern::LEGACY;

/// The session header.
const SESSION: &str = "mcp-session-id";

/// The deepest nesting of arrays and objects a body may have.
pub const MAX_DEPTH: usize = 32;

/// A JSON-RPC 2.0 message to the server (docs/agents.md#the-server):
/// `initialize`, `ping`, `tools/list`, `tools/call`, or a notification;
/// under `2026-07-28`, `server/discover`, `tools/list` or `tools/call`.
pub struct McpMessage;

impl RawSchema for McpMessage {
    fn json() -> Value {
        json!({"type": "object", "required": ["jsonrpc", "method"],
               "description": "A JSON-RPC 2.0 request (with `id`) or notification (without).",
               "properties": {"jsonrpc": {"type": "string", "enum": ["2.0"]},
                              "id": {"type": "string", "maxLength": 128, "description": "the request id (a number is taken too); absent in a notification"},
                              "method": {"type": "string", "maxLength": 128},
                              "params": {"$ref": "#/components/schemas/McpParams"}}})
    }
}
raw_schema!(McpMessage);

/// The `params` of a JSON-RPC message: an object, as its method says.
pub struct McpParams;

impl RawSchema for McpParams {
    fn json() -> Value {
        json!({"type": "object", "description": "as the method says (docs/agents.md#the-tools)"})
    }
}
raw_schema!(McpParams);

/// A message to the Model Context Protocol server (bot keys only).
///
/// Protocol versions `2025-06-18` and `2025-11-25` open a session;
/// `2026-07-28` is stateless (no `initialize`, no session: an
/// `Mcp-Session-Id` is ignored): every request names its version in
/// `params._meta` and in `MCP-Protocol-Version`, its method in
/// `Mcp-Method` and a tool's name in `Mcp-Name`; a header that differs
/// is 400 with JSON-RPC error `-32020`, another version 400 `-32022`
/// (`data.supported` lists the versions), a `_meta` without the version
/// or the client's capabilities 400 `-32602`, a method not offered 404
/// `-32601`, each a JSON-RPC error as `application/json`.
///
/// Under a version with a handshake, `initialize` answers an `Mcp-Session-Id` (good for 24 hours, ended by
/// an hour unused or as its key's least recently used past
/// `server.max_mcp_sessions_per_key`, for the key that opened it; another
/// key's, unknown or ended: 404); every other message carries it. A notification is 202 with no body. A body that is
/// not one JSON-RPC 2.0 message is 400, nested deeper than 32 levels 400
/// before it is parsed, over 64 KiB 413. An agent's or admin's key is 403.
/// Before the key, a request whose `Origin` is not one of `[mcp]
/// allowed_origins`, or whose `Host` is neither `public_url`'s nor one of
/// `[mcp] allowed_hosts`, is 403 `forbidden`, nothing done; any method
/// without a valid key is 401, its `WWW-Authenticate` naming
/// `resource_metadata` (`GET /.well-known/oauth-protected-resource/mcp`).
/// A team with `[mcp] oauth` also takes its authorization server's access
/// tokens (a JWT: `iss`, `aud`, `exp`, `nbf` and `scope` checked) as its
/// bot's key; a refused one is 401 `unauthorized` with `error="invalid_token"`
/// (or `insufficient_scope`) in `WWW-Authenticate`.
#[utoipa::path(post, path = "/mcp", operation_id = "mcp", tag = "mcp",
    security(("api_key" = [])), request_body = McpMessage,
    params(("Mcp-Session-Id" = Option<String>, Header, description = "the session `initialize` answered"),
           ("MCP-Protocol-Version" = Option<String>, Header, description = "2025-06-18, 2025-11-25 or 2026-07-28"),
           ("Mcp-Method" = Option<String>, Header, description = "2026-07-28: the body's `method`"),
           ("Mcp-Name" = Option<String>, Header, description = "2026-07-28, `tools/call`: the body's `params.name` (or `=?base64?…?=` of it)")),
    responses((status = 200, description = "the JSON-RPC answer (`application/json`, or one `text/event-stream` event when only that is accepted)", body = Object),
              (status = 202, description = "a notification, taken"),
              ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn post_mcp(State(st): State<AppState>, _: door::Door, req: Request) -> Response {
    // What comes before a tool call runs boxed and is gone when it is
    // done: the key's, the body's and the session's reads, the body and
    // the headers are not held while a `get_verification` waits.
    let call = match Box::pin(prepare(&st, req)).await {
        Ok(call) => call,
        Err(answered) => return answered,
    };
    let ToolCall {
        bot,
        id,
        tool,
        args,
        sse,
        session,
        stateless,
    } = call;
    let answer = if tool.writes() {
        // A tool that changes something runs in a task of its own, as
        // every other state-changing request does (`http::guard`): its
        // client hanging up cannot stop it between two of its steps. A
        // tool that reads runs in the request's task: a client that hangs
        // up ends it, and a waiting call's place in the budget with it.
        let waits = crate::waits::Waits::current().unwrap_or_default();
        let task = tokio::spawn(
            waits
                .scope(async move {
                    tools::call(&st, &bot, session.as_deref(), tool, arguments(&args)).await
                })
                .in_current_span(),
        );
        match task.await {
            Ok(answer) => answer,
            Err(e) => return Error::internal_from("the request's task failed", e).into_response(),
        }
    } else {
        let answer = tools::call(&st, &bot, session.as_deref(), tool, arguments(&args));
        drop(args);
        answer.await
    };
    let answer = if stateless {
        answer.completed()
    } else {
        answer
    };
    let denied = answer.label;
    respond(StatusCode::OK, answer.answered(&id), sse, None, denied)
}

/// A `tools/call` read and checked: what its answer needs of the request.
struct ToolCall {
    bot: BotOnly,
    id: Box<RawValue>,
    tool: tools::Named,
    /// The JSON of its arguments, a part of the body.
    args: Bytes,
    sse: bool,
    /// The caller's session under a version with one.
    session: Option<String>,
    stateless: bool,
}

/// The arguments' JSON text (`{}` when none were given).
fn arguments(args: &Bytes) -> &str {
    std::str::from_utf8(args).unwrap_or_default()
}

/// The request up to its method: the caller (refused with the
/// `WWW-Authenticate` MCP clients read), the query, the body, the version
/// and the session. A `tools/call` is given back to be made; every other
/// request is answered here (`Err`: the answer).
async fn prepare(st: &AppState, req: Request) -> Result<ToolCall, Response> {
    let (mut parts, body) = req.into_parts();
    let bot = BotOnly::from_request_parts(&mut parts, st).await;
    NoQuery::from_request_parts(&mut parts, st)
        .await
        .map_err(IntoResponse::into_response)?;
    let bot = bot.map_err(|e| door::refused(e, st))?;
    let headers = std::mem::take(&mut parts.headers);
    let json = is_json(&headers);
    let bytes = read(Request::from_parts(parts, body), json, st)
        .await
        .map_err(IntoResponse::into_response)?;
    let message = message_of(&bytes).map_err(IntoResponse::into_response)?;
    let sse = only_event_stream(&headers);
    let id = message.id;
    let params = message.params;
    let modern = match modern::era(&headers, &params.meta) {
        Ok(Some(era)) => era == modern::Era::Modern,
        Ok(None) => {
            let e = Error::BadRequest("MCP-Protocol-Version is not one this server speaks".into());
            return Err(e.into_response());
        }
        Err(e) => return Err(error_with(id.unwrap_or(RawValue::NULL), e, sse)),
    };
    let Some(method) = text(message.method) else {
        // A client's answer or error to a request of ours: we make none.
        return Err(StatusCode::ACCEPTED.into_response());
    };
    if !modern && method == "initialize" {
        return Err(initialize(st, &bot, id, &params, sse).await);
    }
    // Under `2026-07-28` there is none (one named is ignored).
    let session = match modern {
        true => None,
        false => Some(
            in_session(st, &bot, &headers)
                .await
                .map_err(IntoResponse::into_response)?,
        ),
    };
    let Some(id) = id else {
        return Err(StatusCode::ACCEPTED.into_response());
    };
    if modern {
        // The mirrored headers, then the method.
        let name = text(params.name);
        modern::headers_match(&headers, &method, name.as_deref())
            .map_err(|e| error_with(id, e, sse))?;
    }
    let answer = match (modern, method.as_ref()) {
        (_, "tools/call") => {
            let (tool, args) = tools::asked(&params).map_err(|e| error_with(id, e, sse))?;
            let args = match args {
                Some(args) => bytes.slice_ref(args.as_bytes()),
                None => Bytes::from_static(b"{}"),
            };
            return Ok(ToolCall {
                bot,
                id: id.to_owned(),
                tool,
                args,
                sse,
                session,
                stateless: modern,
            });
        }
        (false, "ping") => Ok(json!({})),
        (false, "tools/list") => Ok(tools::list()),
        (true, "tools/list") => Ok(modern::cacheable_list(tools::list())),
        (true, "server/discover") => Ok(modern::discover(tools::INSTRUCTIONS)),
        (false, _) => Err(RpcError::new(-32601, "method not found")),
        (true, _) => {
            Err(RpcError::new(-32601, "method not found").with_status(StatusCode::NOT_FOUND))
        }
    };
    let answer = answer.map(|r| if modern { modern::complete(r) } else { r });
    Err(answer_with(id, answer, sse, None, None))
}

/// End a session of the Model Context Protocol server.
///
/// 204; a session that is not this key's, unknown or ended, is 404. A
/// foreign `Origin` or `Host` is 403 before the key, as for `POST`.
#[utoipa::path(delete, path = "/mcp", operation_id = "mcp_end", tag = "mcp",
    security(("api_key" = [])),
    params(("Mcp-Session-Id" = String, Header, description = "the session to end")),
    responses((status = 204, description = "ended"), ApiKeyErrors, E400, E403, E404, E422))]
async fn delete_mcp(
    State(st): State<AppState>,
    _: door::Door,
    bot: Result<BotOnly, Error>,
    _: NoQuery,
    headers: HeaderMap,
) -> Response {
    let bot = match bot {
        Ok(bot) => bot,
        Err(e) => return door::refused(e, &st),
    };
    let Some(id) = headers.get(SESSION).and_then(|v| v.to_str().ok()) else {
        return Error::BadRequest("Mcp-Session-Id: required".into()).into_response();
    };
    let now = st.clock.now();
    match crate::gateway::mcp::end_session(&st.gateway, bot.team(), &bot.key_id, id, now).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The protected-resource metadata of `/mcp` (RFC 9728): how a client
/// authorises (a bot key as a bearer token, or an access token of a
/// team's `[mcp] oauth` issuer, each listed once).
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp",
    operation_id = "mcp_protected_resource", tag = "mcp", security(),
    responses((status = 200, body = Object, description = "`resource` (`{public_url}/mcp`), `bearer_methods_supported` `[\"header\"]`, `authorization_servers` (the `[mcp] oauth` issuers of the teams that have one; `[]` when none has), `scopes_supported` `[\"chatgate:bot\"]`, `resource_name` `chatgate`"), E422))]
async fn protected_resource(State(st): State<AppState>, _: NoQuery) -> Response {
    let config = st.gateway.config();
    let public_url = &config.server.public_url;
    let issuers: Vec<&String> = config.sums.mcp_issuers().collect();
    axum::Json(json!({
        "resource": format!("{public_url}/mcp"),
        "bearer_methods_supported": ["header"],
        "authorization_servers": issuers,
        "scopes_supported": [crate::config::DEFAULT_MCP_SCOPE],
        "resource_name": "chatgate",
    }))
    .into_response()
}

/// The body (`json`: its headers, taken out, declared JSON): one
/// JSON-RPC 2.0 message, an object (400 otherwise, and for nesting deeper
/// than [`MAX_DEPTH`], checked before it is parsed). A member named twice
/// is refused as the message is read ([`message_of`]).
async fn read(req: Request, json: bool, st: &AppState) -> Result<Bytes, Error> {
    let bytes = body_bytes(req, json, st)
        .await?
        .ok_or_else(|| Error::BadRequest("the body must be a JSON-RPC message".into()))?;
    if depth_over(&bytes, MAX_DEPTH) {
        return Err(Error::BadRequest(format!(
            "the body nests deeper than {MAX_DEPTH} levels"
        )));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::BadRequest(
            "the body must be one JSON-RPC message, an object (no batch)".into(),
        ));
    }
    Ok(bytes)
}

/// The message `bytes` hold (an object, [`read`]), read in one pass
/// that refuses a member named twice in any object: `jsonrpc` `"2.0"`,
/// a `method` that is a string when there is one (400 otherwise).
fn message_of(bytes: &[u8]) -> Result<Message<'_>, Error> {
    let message = message::read(bytes).map_err(|e| match e {
        Unread::Repeated(_) => {
            Error::BadRequest("the body names a member twice in one object".into())
        }
        Unread::NotJson => Error::BadRequest("the body is not valid JSON".into()),
    })?;
    if text(message.jsonrpc).as_deref() != Some("2.0") {
        return Err(Error::BadRequest("jsonrpc: must be \"2.0\"".into()));
    }
    if message.method.is_some() && text(message.method).is_none() {
        return Err(Error::BadRequest("method: must be a string".into()));
    }
    if message.id.is_some_and(|id| !an_id(id.get())) {
        return Err(Error::BadRequest(
            "id: must be a string, a number or null".into(),
        ));
    }
    Ok(message)
}

/// Whether a request's id, as its text, is one JSON-RPC 2.0 allows: a
/// string, a number or null. The answer echoes it as the client wrote it,
/// so an array or an object (whose text may hold a line break, which an
/// event stream's frame may not) is refused.
fn an_id(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9')) || text == "null"
}

/// Whether `bytes` nest arrays and objects deeper than `max` (strings
/// skipped), read in one pass without building anything.
fn depth_over(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut at) = (0usize, 0);
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => {
                // To the string's closing quote, each escape's next byte
                // passed over.
                at += 1;
                while let Some(&c) = bytes.get(at) {
                    match c {
                        b'"' => break,
                        b'\\' => at += 2,
                        _ => at += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    false
}

/// Whether the client accepts `text/event-stream` and not
/// `application/json`: then the answer is one event.
fn only_event_stream(headers: &HeaderMap) -> bool {
    let (mut events, mut json) = (false, false);
    let accepted = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.split(';').next().unwrap_or("").trim());
    for m in accepted {
        let is = |kind: &str| m.eq_ignore_ascii_case(kind);
        events |= is("text/event-stream");
        json |= is("application/json") || is("*/*") || is("application/*");
    }
    events && !json
}

/// `initialize`: a new session of the caller's key, and what this server is.
async fn initialize(
    st: &AppState,
    bot: &BotOnly,
    id: Option<&RawValue>,
    params: &Params<'_>,
    sse: bool,
) -> Response {
    let Some(id) = id else {
        return Error::BadRequest("initialize is a request: id required".into()).into_response();
    };
    let asked = text(params.protocol_version);
    let version = VERSIONS
        .iter()
        .find(|v| Some(**v) == asked.as_deref())
        .unwrap_or(&VERSIONS[1]);
    let now = st.clock.now();
    let session =
        match crate::gateway::mcp::open_session(&st.gateway, bot.team(), &bot.key_id, now).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        };
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": modern::server_info(),
        "instructions": tools::INSTRUCTIONS,
    });
    answer_with(id, Ok(result), sse, Some(&session), None)
}

/// The session the request's `Mcp-Session-Id` names, if it is the
/// caller's and live: 400 without one, 404 otherwise.
async fn in_session(st: &AppState, bot: &BotOnly, headers: &HeaderMap) -> Result<String, Error> {
    let id = headers
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::BadRequest("Mcp-Session-Id: required after initialize".into()))?;
    let now = st.clock.now();
    crate::gateway::mcp::session(&st.gateway, bot.team(), &bot.key_id, id, now).await?;
    Ok(id.to_string())
}

/// A JSON-RPC error: its code, message (never a value of the request)
/// and data, and the HTTP status it is answered with (200 unless the
/// transport says otherwise).
#[derive(Debug)]
pub struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
    status: StatusCode,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
            status: StatusCode::OK,
        }
    }

    /// `-32602`: an unknown tool, or `params` that are not the method's.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }

    pub fn with_data(self, data: Value) -> Self {
        RpcError {
            data: Some(data),
            ..self
        }
    }

    pub fn with_status(self, status: StatusCode) -> Self {
        RpcError { status, ..self }
    }
}

/// The JSON-RPC answer to request `id`, as JSON or as one event, with the
/// session header of an `initialize`, and the problem label of a tool
/// call its HTTP twin would have refused, as the twin's answer carries it:
/// its log line says the code, and a 403 `forbidden` is recorded as the
/// twin's is, an `access.denied` entry naming the caller, a bot key or
/// `oauth:` + a token's `sub` (docs/agents.md#oauth-access-tokens).
fn answer_with(
    id: &RawValue,
    answer: Result<impl Serialize, RpcError>,
    sse: bool,
    session: Option<&str>,
    denied: Option<super::ProblemLabel>,
) -> Response {
    #[derive(Serialize)]
    struct Answered<'a, R> {
        jsonrpc: &'static str,
        id: &'a RawValue,
        result: R,
    }
    let (status, text) = match answer {
        Ok(result) => {
            let answered = Answered {
                jsonrpc: "2.0",
                id,
                result,
            };
            // Only a map keyed by a sequence fails to be written; no
            // result holds one.
            (
                StatusCode::OK,
                serde_json::to_string(&answered).unwrap_or_default(),
            )
        }
        Err(e) => {
            let mut error = json!({"code": e.code, "message": e.message});
            if let Some(data) = e.data {
                error["data"] = data;
            }
            let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
            (e.status, body.to_string())
        }
    };
    respond(status, text.into_bytes(), sse, session, denied)
}

/// The answer `json` (a JSON-RPC message) with `status`, as JSON or as
/// one event, with the session header and the problem label
/// ([`answer_with`]).
fn respond(
    status: StatusCode,
    json: Vec<u8>,
    sse: bool,
    session: Option<&str>,
    denied: Option<super::ProblemLabel>,
) -> Response {
    let (kind, body) = if sse {
        let mut event = Vec::with_capacity(json.len() + 24);
        event.extend_from_slice(b"event: message\ndata: ");
        event.extend_from_slice(&json);
        event.extend_from_slice(b"\n\n");
        ("text/event-stream", event)
    } else {
        ("application/json", json)
    };
    let mut res = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        body,
    )
        .into_response();
    if let Some(v) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        res.headers_mut().insert(SESSION, v);
    }
    if let Some(label) = denied {
        res.extensions_mut().insert(label);
    }
    res
}

/// The JSON-RPC error `e` answered to request `id`.
fn error_with(id: &RawValue, e: RpcError, sse: bool) -> Response {
    answer_with(id, Err::<Value, _>(e), sse, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, from its type alone.
    fn future_of<A, B, C, R: std::future::Future, F: Fn(A, B, C) -> R>(_: &F) -> usize {
        std::mem::size_of::<R>()
    }

    /// The most the handler's own future (held in axum's box for as long
    /// as a call waits) and `tools::call`'s may take together: what comes
    /// before the call (the key, the body, the session) is boxed apart and
    /// gone by then (docs/performance.md#an-mcp-tool-call).
    const WAITING_HANDLER: usize = 896;

    #[test]
    fn what_a_waiting_tool_call_holds_of_its_request_is_under_a_kib() {
        fn call_of<A, B, C, D, E, R: std::future::Future, F: Fn(A, B, C, D, E) -> R>(
            _: &F,
        ) -> usize {
            std::mem::size_of::<R>()
        }
        let (handler, call) = (future_of(&post_mcp), call_of(&tools::call));
        eprintln!("post_mcp {handler} bytes, tools::call {call} bytes");
        assert!(handler <= WAITING_HANDLER, "{handler} bytes");
        assert!(
            call < handler,
            "tools::call's {call} bytes are within the handler's"
        );
    }

    #[test]
    fn an_id_is_a_string_a_number_or_null() {
        let with_id = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        for id in [r#""a b""#, "7", "-1.5e3", "null"] {
            let body = with_id(id);
            let message = message_of(body.as_bytes()).unwrap();
            assert_eq!(message.id.map(RawValue::get), Some(id));
        }
        for id in ["[1,\n2]", "{\"a\":\n1}", "true"] {
            let body = with_id(id);
            let Err(Error::BadRequest(why)) = message_of(body.as_bytes()) else {
                panic!("{id} taken as an id");
            };
            assert!(why.starts_with("id: "), "{why}");
        }
        let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(message_of(notification.as_bytes()).unwrap().id.is_none());
    }

    /// A stateless `get_verification` as the allocs tool sends it
    /// (tools/allocs.rs), with what a client adds to `_meta`.
    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"get_verification","arguments":{"interaction_id":"0192d3f8-5f0e-7a51-8c1e-1f2d3c4b5a69",
        "wait_seconds":25,"after":"00112233445566778899aabbccddeeff0011223344556677"},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
        "io.modelcontextprotocol/clientInfo":{"name":"allocs","version":"1"},
        "io.modelcontextprotocol/clientCapabilities":{}}}}"#;

    #[test]
    fn a_tool_call_is_read_up_to_its_arguments_without_an_allocation() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (modern::VERSION_HEADER, modern::MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_verification"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let (args, made) = crate::counted_allocations::allocations(|| {
            let message = message_of(CALL.as_bytes()).unwrap();
            let params = message.params;
            let era = modern::era(&headers, &params.meta).unwrap();
            assert_eq!(era, Some(modern::Era::Modern));
            let method = text(message.method).unwrap();
            let name = text(params.name);
            modern::headers_match(&headers, &method, name.as_deref()).unwrap();
            let (_, args) = tools::asked(&params).unwrap();
            args.map(str::len)
        });
        assert!(args.is_some_and(|n| n > 100), "the arguments' text");
        // Its members are borrowed from the body, no tree of it is built,
        // and the one pass that reads them (the check for a member named
        // twice with it) keeps no stack of its own: serde_json's of the
        // objects nested in `params` and `_meta`, which it read past in
        // a pass of its own, made the 2 there were.
        assert_eq!(made, 0);
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(!depth_over(br#"{"a":[{"b":"[[[[[[["}]}"#, 3));
        assert!(depth_over(br#"{"a":[{"b":[1]}]}"#, 3));
        assert!(!depth_over(br#"{"a":"\"[[[[","b":{}}"#, 2));
        // After an escaped backslash a quote ends the string; an escaped
        // quote does not.
        assert!(depth_over(br#"{"a":"\\",[[[[]]]]}"#, 3));
        assert!(!depth_over(br#"{"a":"\",[[[[]]]]"}"#, 3));
        assert!(!depth_over(br#"{"a":"[[[[\"#, 3), "a string not closed");
        let deep = "[".repeat(100_000);
        assert!(depth_over(deep.as_bytes(), MAX_DEPTH));
    }

    #[test]
    fn an_event_stream_only_when_json_is_not_accepted() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            only_event_stream(&h)
        };
        assert!(with("text/event-stream"));
        assert!(!with("application/json, text/event-stream"));
        assert!(!with("*/*"));
        assert!(!only_event_stream(&HeaderMap::new()));
    }
}
