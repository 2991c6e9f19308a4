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

impl Named {
    /// Whether the tool changes anything: its call then runs in a task of
    /// its own (`super::post_mcp`).
    pub fn writes(self) -> bool {
        self.0.writes
    }
}

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
            Ok(json) => (Written::Result(json), None),
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
    /// The problem label of a refusal, as its HTTP twin's answer carries it
    /// (`problem.rs`), for the request's log line and audit trail.
    pub label: Option<ProblemLabel>,
}

/// What a call answered, as written once.
enum Written {
    /// The tool's result, its JSON: the `text` content and
    /// `structuredContent`.
    Result(String),
    /// The problem+json of a refusal (`isError`): the `text` content alone.
    Refusal(String),
}

impl ToolResult {
    /// The JSON-RPC answer to request `id` carrying this result, written
    /// as serde writes `{"jsonrpc","id","result":{"content":[{"type",
    /// "text"}],"isError","structuredContent","resultType","_meta"}}`
    /// compact, those members present: the result's JSON is copied as it
    /// is for `structuredContent`, and only escaped for the `text`.
    pub fn answered(&self, id: &RawValue) -> Vec<u8> {
        let (text, structured) = match &self.written {
            Written::Result(json) => (json.as_str(), Some(json.as_str())),
            Written::Refusal(text) => (text.as_str(), None),
        };
        let mut out = Vec::with_capacity(160 + 2 * text.len());
        out.extend_from_slice(r#"{"jsonrpc":"2.0","id":"#.as_bytes());
        out.extend_from_slice(id.get().as_bytes());
        out.extend_from_slice(r#","result":{"content":[{"type":"text","text":"#.as_bytes());
        escaped(&mut out, text);
        out.extend_from_slice(r#"}],"isError":"#.as_bytes());
        out.extend_from_slice(if structured.is_some() {
            b"false"
        } else {
            b"true"
        });
        if let Some(json) = structured {
            out.extend_from_slice(r#","structuredContent":"#.as_bytes());
            out.extend_from_slice(json.as_bytes());
        }
        if let Some(kind) = self.result_type {
            out.extend_from_slice(r#","resultType":"#.as_bytes());
            escaped(&mut out, kind);
        }
        if let Some(meta) = self.meta {
            out.extend_from_slice(r#","_meta":"#.as_bytes());
            out.extend_from_slice(meta.get().as_bytes());
        }
        out.extend_from_slice(b"}}");
        out
    }
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

/// `text` as a JSON string (quoted, escaped as serde_json escapes it).
fn escaped(out: &mut Vec<u8>, text: &str) {
    // Writing a string to a `Vec` fails never.
    let _ = serde_json::to_writer(out, text);
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
