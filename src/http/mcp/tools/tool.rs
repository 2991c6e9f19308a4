//! The trait every MCP tool implements ([`Tool`]), what a call is given
//! ([`Call`]), what `annotations` tells a client of it ([`Hints`]), and
//! the line of the registry each tool is ([`Registered`]); the registry
//! itself is `tools.rs`'s
//! (docs/decisions/0710-an-mcp-tool-is-a-trait-on-one-list.md).
use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::arguments::{arguments, Failure};
use crate::http::auth::BotOnly;
use crate::http::AppState;

/// A tool of the MCP server (CONTRIBUTING.md#add-an-mcp-tool): its name,
/// what `tools/list` tells a model of it, its arguments and its call. No
/// item has a default.
pub(super) trait Tool: 'static {
    /// Its name: `tools/call`'s `params.name`, and its `tool` label of
    /// `chatgate_mcp_calls_total`.
    const NAME: &'static str;
    /// Its title, for a person (`title`, and the annotations' `title`).
    const TITLE: &'static str;
    /// What it does and when to call it, written for a model.
    const DESCRIPTION: &'static str;
    /// What it does to the world (`annotations`).
    const HINTS: Hints;

    /// Its arguments, read strictly (`arguments::arguments`): a member
    /// missing, of the wrong JSON type, not defined or of a value not
    /// allowed is a tool error naming the member's JSON pointer.
    type Args: DeserializeOwned + Send;
    /// Its result, written once as the call's JSON (`structuredContent`,
    /// and the same text as its `text` content): no `Value` is built of it.
    type Output: Written + Send;

    /// The JSON Schema of its arguments (`inputSchema`): the members of
    /// [`Tool::Args`], no other.
    fn input_schema() -> Value;
    /// The JSON Schema of its result (`outputSchema`).
    fn output_schema() -> Value;
    /// The call: its result, or the problem its HTTP twin would answer.
    fn call(
        c: Call<'_>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// What a call is given besides its arguments.
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    pub st: &'a AppState,
    pub bot: &'a BotOnly,
    /// The caller's session under a version with one; `None` stateless.
    pub session: Option<&'a str>,
}

/// What a tool does to the world, as its `annotations` tell a client.
#[derive(Clone, Copy)]
pub(super) struct Hints {
    pub effect: Effect,
    /// The same call twice does no more than once (`idempotentHint`).
    pub idempotent: bool,
    /// It reaches beyond chatgate: a message, a provider
    /// (`openWorldHint`).
    pub open_world: bool,
}

/// Whether a tool changes anything.
#[derive(Clone, Copy)]
pub(super) enum Effect {
    /// It changes nothing (`readOnlyHint` true).
    Reads,
    /// It changes something (`readOnlyHint` false); `destructive`: what
    /// it changes may be lost (`destructiveHint`).
    Writes { destructive: bool },
}

impl Hints {
    /// The `annotations` of a tool titled `title`.
    fn annotations(self, title: &str) -> Value {
        let mut a = json!({"title": title, "idempotentHint": self.idempotent,
                           "openWorldHint": self.open_world});
        match self.effect {
            Effect::Reads => a["readOnlyHint"] = json!(true),
            Effect::Writes { destructive } => {
                a["readOnlyHint"] = json!(false);
                a["destructiveHint"] = json!(destructive);
            }
        }
        a
    }
}

/// A tool's result as its JSON text: written once, by serde, or kept as
/// it was written when the result was made (a `get_verification` answer's
/// JSON is what its cursor's digest is of).
pub(super) trait Written: Serialize {
    fn json(self) -> String;
}

impl Written for crate::gateway::mcp::Verification {
    fn json(self) -> String {
        self.into_json()
    }
}

impl Written for crate::gateway::mcp::StartedVerification {
    fn json(self) -> String {
        written(&self)
    }
}

impl Written for crate::gateway::assurance::AssuranceView {
    fn json(self) -> String {
        written(&self)
    }
}

/// A call under way, as every tool's is held: its result written.
type Answer<'a> = Pin<Box<dyn Future<Output = Result<String, Failure>> + Send + 'a>>;

/// A tool as the code written over every one sees it: one line of
/// `TOOLS`, each member made from its [`Tool`].
#[derive(Clone, Copy)]
pub(super) struct Registered {
    pub name: &'static str,
    /// Whether it changes anything ([`Effect::Writes`]).
    pub writes: bool,
    /// Its entry of `tools/list`.
    pub listed: fn() -> Value,
    /// Its call of the arguments' JSON: they are read at once (the call
    /// holds them as the tool's [`Tool::Args`], not their text).
    pub call: for<'a, 'b> fn(Call<'a>, &'b str) -> Answer<'a>,
    /// The members its arguments are read into, as serde names them: a
    /// test holds them to be its input schema's properties.
    #[cfg(test)]
    pub members: fn() -> Vec<String>,
}

impl Registered {
    pub const fn of<T: Tool>() -> Registered {
        Registered {
            name: T::NAME,
            writes: matches!(T::HINTS.effect, Effect::Writes { .. }),
            listed: listed::<T>,
            call: called::<T>,
            #[cfg(test)]
            members: members::<T::Args>,
        }
    }
}

/// Tool `T`'s entry of `tools/list`.
fn listed<T: Tool>() -> Value {
    json!({
        "name": T::NAME,
        "title": T::TITLE,
        "description": T::DESCRIPTION,
        "inputSchema": T::input_schema(),
        "outputSchema": T::output_schema(),
        "annotations": T::HINTS.annotations(T::TITLE),
    })
}

/// Tool `T`'s call of `args`, read as its arguments first, its result
/// written.
fn called<'a, T: Tool>(c: Call<'a>, args: &str) -> Answer<'a> {
    let args = arguments::<T::Args>(args);
    Box::pin(async move {
        let result = T::call(c, args?).await?;
        Ok(result.json())
    })
}

/// `result` written as JSON, once.
fn written(result: &impl Serialize) -> String {
    // Only a map keyed by a sequence fails to be written; no result holds one.
    serde_json::to_string(result).unwrap_or_else(|_| "null".to_string())
}

/// The members `A` reads, from the error an unknown one gets: "unknown
/// field …, expected one of `a`, `b`".
#[cfg(test)]
fn members<A: DeserializeOwned>() -> Vec<String> {
    let unknown = json!({"\u{1}": 0});
    let error = serde_json::from_value::<A>(unknown).err();
    let said = error.map(|e| e.to_string()).unwrap_or_default();
    let expected = said.split_once("expected").map(|(_, e)| e);
    let names = expected.unwrap_or_default().split('`').skip(1).step_by(2);
    names.map(str::to_string).collect()
}
