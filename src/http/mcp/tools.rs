//! The MCP server's tools (docs/agents.md#the-tools), each one
//! [`Tool`](tool::Tool) in a file of its own, and their registry
//! [`TOOLS`], from which `tools/list`, the dispatch of `tools/call` and
//! the `tool` label of `chatgate_mcp_calls_total` are all made
//! (docs/decisions/0710-an-mcp-tool-is-a-trait-on-one-list.md). Each
//! call goes over the same use cases, parsers and rules as its HTTP twin
//! — `POST /v1/interactions`, `…/login-links`, `…/challenges`,
//! `…/verify`, `GET …/assurance`. A call the HTTP API would refuse is a
//! tool result with `isError` and the problem's JSON, and so are
//! arguments that break the tool's schema (`invalid_request` naming the
//! argument's JSON pointer), so that a model reads what to correct; an
//! unknown tool is JSON-RPC `-32602`. The same under every protocol
//! version: the versions differ in the envelope (`super::modern`). No
//! tool takes or answers a factor's code, a link, a token or a claim's
//! value.
//!
//! A tool written but not on [`TOOLS`] does not build (its type is never
//! used), and no `match` here has a wildcard arm.
#![deny(dead_code, clippy::wildcard_enum_match_arm)]
mod arguments;
mod check_assurance;
mod confirm_chat_code;
mod get_verification;
mod start_verification;
mod tool;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::super::auth::BotOnly;
use super::super::{AppState, ProblemLabel};
use super::message::{is_object, text, Params};
use super::RpcError;
use arguments::Failure;
use tool::{Call, Registered};

/// What `initialize` tells the model about this server.
pub const INSTRUCTIONS: &str = "chatgate proves who the customer in this conversation is. \
Never ask the customer for a one-time code, PIN or password and never pass one to a tool: \
start_verification sends the customer somewhere to prove themselves (a link in the chat, a code \
to their phone or e-mail typed on chatgate's page, their wallet, their bank's app), \
get_verification waits for the result, confirm_chat_code takes only the short binding code \
a chatgate page told the customer to type into the chat, and check_assurance says whether the \
proof is recent and strong enough for the action the customer asks for.";

/// Every tool, one line a tool, in the order `tools/list` gives them.
const TOOLS: &[Registered] = &[
    Registered::of::<start_verification::StartVerification>(),
    Registered::of::<get_verification::GetVerification>(),
    Registered::of::<confirm_chat_code::ConfirmChatCode>(),
    Registered::of::<check_assurance::CheckAssurance>(),
];

/// The `result` label of `chatgate_mcp_calls_total`: `ok`, then `error`
/// (a tool result with `isError`), indexed by whether it is one.
const RESULTS: [&str; 2] = ["ok", "error"];

/// The tool `tools/call` names, if one is.
fn named(name: &str) -> Option<&'static Registered> {
    TOOLS.iter().find(|t| t.name == name)
}

/// A tool a `tools/call` named.
#[derive(Clone, Copy)]
pub struct Named(&'static Registered);

/// `tools/call` of `tool` with the JSON of its arguments `args`: the
/// tool's result, `structuredContent` and the same JSON as one `text`
/// content; a refusal with `isError: true`. `session` is the caller's
/// under a version with one, `None` when stateless. The arguments are
/// read before this returns: the call holds none of their text.
pub fn call<'a>(
    st: &'a AppState,
    bot: &'a BotOnly,
    session: Option<&'a str>,
    Named(tool): Named,
    args: &str,
) -> impl std::future::Future<Output = ToolResult> + Send + 'a {
    let outcome = (tool.call)(Call { st, bot, session }, args);
    async move {
        let (written, label) = match outcome.await {
            Ok(result) => (Written::Result(result), None),
            Err(Failure(e)) => {
                let (text, label) = Box::pin(problem_of(e)).await;
                (Written::Refusal(text), label)
            }
        };
        let is_error = matches!(written, Written::Refusal(_));
        let result = RESULTS[usize::from(is_error)];
        metrics::counter!("chatgate_mcp_calls_total", "tool" => tool.name, "result" => result)
            .increment(1);
        ToolResult {
            written,
            result_type: None,
            meta: None,
            label,
        }
    }
}

/// The tool a `tools/call`'s `params` name and the JSON of its arguments
/// (`None`: none given, as `{}`): `-32602` without a name, with arguments
/// that are not an object, or for a name no tool has.
pub fn asked<'p>(params: &Params<'p>) -> Result<(Named, Option<&'p str>), RpcError> {
    let name = text(params.name);
    let name = name.ok_or_else(|| RpcError::invalid_params("params.name: required"))?;
    let tool = named(&name);
    let args = match params.arguments {
        None => None,
        Some(a) if a.get() == "null" => None,
        Some(a) if is_object(a) => Some(a.get()),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "params.arguments: must be an object",
            ))
        }
    };
    let tool = tool.ok_or_else(|| RpcError::invalid_params("no such tool"))?;
    Ok((Named(tool), args))
}

/// A tool's result as `tools/call` answers it, written once: its JSON is
/// the `text` content, and the same text is `structuredContent`.
pub struct ToolResult {
    written: Written,
    result_type: Option<&'static str>,
    meta: Option<&'static RawValue>,
    /// The problem label of a refusal, as its HTTP twin's answer carries
    /// it (`problem.rs`), for the request's log line and audit trail.
    pub label: Option<ProblemLabel>,
}

/// What a call answered, as written once.
enum Written {
    /// The tool's result: the `text` content and `structuredContent`.
    Result(Box<RawValue>),
    /// The problem+json of a refusal (`isError`): the `text` content alone.
    Refusal(String),
}

impl Serialize for ToolResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (text, structured) = match &self.written {
            Written::Result(raw) => (raw.get(), Some(raw)),
            Written::Refusal(text) => (text.as_str(), None),
        };
        let mut r = s.serialize_struct("ToolResult", 5)?;
        r.serialize_field("content", &[Text { kind: "text", text }])?;
        r.serialize_field("isError", &structured.is_none())?;
        if let Some(raw) = structured {
            r.serialize_field("structuredContent", raw)?;
        }
        if let Some(kind) = self.result_type {
            r.serialize_field("resultType", kind)?;
        }
        if let Some(meta) = self.meta {
            r.serialize_field("_meta", meta)?;
        }
        r.end()
    }
}

/// One `text` content.
#[derive(Serialize)]
struct Text<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl ToolResult {
    /// As a stateless result is answered (`super::modern::complete`):
    /// `resultType` `complete` and the server in its `_meta`.
    pub fn completed(self) -> Self {
        ToolResult {
            result_type: Some("complete"),
            meta: Some(super::modern::server_meta()),
            ..self
        }
    }
}

/// The problem+json `e` answers on the HTTP API, as its text, and its
/// label.
async fn problem_of(e: crate::error::Error) -> (String, Option<ProblemLabel>) {
    use axum::response::IntoResponse;
    let res = e.into_response();
    let label = res.extensions().get::<ProblemLabel>().copied();
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    (String::from_utf8_lossy(&bytes).into_owned(), label)
}

/// `tools/list`: every tool, each with its title, description for a
/// model, input and output schemas and annotations.
pub fn list() -> Value {
    let tools: Vec<Value> = TOOLS.iter().map(|t| (t.listed)()).collect();
    json!({ "tools": tools })
}

/// Every tool's series of `chatgate_mcp_calls_total`, at 0, so that an
/// alert on one has a series before its first call.
pub fn register_series() {
    for tool in TOOLS {
        for result in RESULTS {
            metrics::counter!("chatgate_mcp_calls_total", "tool" => tool.name, "result" => result)
                .increment(0);
        }
    }
}

#[cfg(test)]
mod tests;
