//! The MCP server's four tools (docs/agents.md#the-four-tools): their
//! descriptions for a model and JSON Schemas (`tools/list`), and each
//! call (`tools/call`) over the same use cases, parsers and rules as its
//! HTTP twin — `POST /v1/interactions`, `…/login-links`,
//! `…/challenges`, `…/verify`, `GET …/assurance`. A call the HTTP API
//! would refuse is a tool result with `isError` and the problem's JSON,
//! and so are arguments that break the tool's schema (`invalid_request`
//! naming the argument's JSON pointer), so that a model reads what to
//! correct; an unknown tool is JSON-RPC `-32602`. The same under every
//! protocol version: the versions differ in the envelope (`super::modern`).
//! No tool takes or answers a factor's code, a link, a token or a claim's
//! value.
use std::collections::HashMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::super::auth::BotOnly;
use super::super::challenges::NewChallenge;
use super::super::AppState;
use super::RpcError;
use crate::error::Error;
use crate::gateway::mcp::{self as use_cases, Proof};
use crate::gateway::{LinkRequest, NewInteraction};

/// What `initialize` tells the model about this server.
pub const INSTRUCTIONS: &str = "chatgate proves who the customer in this conversation is. \
Never ask the customer for a one-time code, PIN or password and never pass one to a tool: \
start_verification sends the customer somewhere to prove themselves (a link in the chat, a code \
to their phone or e-mail typed on chatgate's page, their wallet, their bank's app), \
get_verification waits for the result, confirm_chat_code takes only the short binding code \
a chatgate page told the customer to type into the chat, and check_assurance says whether the \
proof is recent and strong enough for the action the customer asks for.";

/// The longest wait of `get_verification`.
const MAX_WAIT: u64 = 25;

/// A failed call, answered as a tool error: the problem its HTTP twin
/// would answer, or arguments that break the tool's schema.
struct Failure(Error);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e)
    }
}

/// Arguments that break the schema at `pointer` (a JSON pointer into the
/// arguments): 400 when a member is missing or of the wrong JSON type,
/// else 422 (docs/api.md#errors).
fn broken(pointer: &str, why: &str, wrong_type: bool) -> Failure {
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

/// `tools/call`: the tool's result, `structuredContent` and the same
/// JSON as one `text` content; a refusal with `isError: true`. `session`
/// is the caller's under a version with one, `None` when stateless.
pub async fn call(
    st: &AppState,
    bot: &BotOnly,
    session: Option<&str>,
    params: &Value,
) -> Result<Value, RpcError> {
    let name = params.get("name").and_then(Value::as_str);
    let name = name.ok_or_else(|| RpcError::invalid_params("params.name: required"))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "params.arguments: must be an object",
            ))
        }
    };
    let tool = crate::telemetry::MCP_TOOLS.iter().find(|t| **t == name);
    let tool = *tool.ok_or_else(|| RpcError::invalid_params("no such tool"))?;
    let outcome = match tool {
        "start_verification" => start(st, bot, args).await,
        "get_verification" => get(st, bot, session, args).await,
        "confirm_chat_code" => confirm(st, bot, args).await,
        _ => assurance(st, bot, args).await,
    };
    let (result, is_error) = match outcome {
        Ok(v) => (v, false),
        Err(Failure(e)) => (problem_of(e).await, true),
    };
    let label = if is_error { "error" } else { "ok" };
    metrics::counter!("chatgate_mcp_calls_total", "tool" => tool, "result" => label).increment(1);
    let text = result.to_string();
    let mut answer = json!({"content": [{"type": "text", "text": text}], "isError": is_error});
    if !is_error {
        answer["structuredContent"] = result;
    }
    Ok(answer)
}

/// The problem+json `e` answers on the HTTP API, as JSON.
async fn problem_of(e: Error) -> Value {
    use axum::response::IntoResponse;
    let body = e.into_response().into_body();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The tool's arguments as `T`: a member missing or of the wrong JSON
/// type is 400, one not defined or of a value not allowed 422, each
/// naming the member's JSON pointer, never its value.
fn arguments<T: DeserializeOwned>(args: Value) -> Result<T, Failure> {
    serde_path_to_error::deserialize(args).map_err(|e| {
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
        broken(&pointer, why, wrong_type)
    })
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
fn interaction_id(id: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(id).map_err(|_| Failure(Error::NotFound("no such interaction")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversation {
    channel: String,
    conversation_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactArg {
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ProofName {
    Link,
    Code,
    Network,
    Wallet,
    App,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartArgs {
    conversation: Option<Conversation>,
    interaction_id: Option<String>,
    customer_ref: Option<String>,
    locale: Option<String>,
    contact: Option<ContactArg>,
    proof: ProofName,
    delivery: Option<String>,
    credential: Option<String>,
    #[serde(rename = "match")]
    expected: Option<Value>,
    transaction: Option<Value>,
}

impl StartArgs {
    /// The rules the schema states that serde does not: one way to name
    /// the interaction; each member with the proof it belongs to.
    fn check(&self) -> Result<(), Failure> {
        let bad = |pointer: &str, why: &str| Err(broken(pointer, why, false));
        match (&self.conversation, &self.interaction_id) {
            (Some(_), Some(_)) | (None, None) => {
                return bad(
                    "/interaction_id",
                    "give conversation or interaction_id, one of them",
                )
            }
            (None, Some(_)) if self.customer_ref.is_some() || self.contact.is_some() => {
                let at = match self.contact.is_some() {
                    true => "/contact",
                    false => "/customer_ref",
                };
                return bad(at, "customer_ref and contact go with conversation");
            }
            _ => {}
        }
        let code = self.proof == ProofName::Code;
        let wallet = self.proof == ProofName::Wallet;
        if self.delivery.is_some() && !code {
            return bad("/delivery", "delivery goes with proof code");
        }
        if let Some(d) = self
            .delivery
            .as_deref()
            .filter(|d| !["sms", "email", "voice"].contains(d))
        {
            let _ = d;
            return bad("/delivery", "delivery must be sms, email or voice");
        }
        if (self.credential.is_some() || self.expected.is_some()) && !wallet {
            let at = match self.credential.is_some() {
                true => "/credential",
                false => "/match",
            };
            return bad(at, "credential and match go with proof wallet");
        }
        let pays = matches!(self.proof, ProofName::Code | ProofName::App);
        if self.transaction.as_ref().is_some_and(|t| !t.is_null()) && !pays {
            return bad("/transaction", "transaction goes with proof code or app");
        }
        Ok(())
    }
}

/// `start_verification`: the interaction found or created as `POST
/// /v1/interactions` does, then the proof as `…/login-links` (delivered)
/// or `…/challenges` (a code always with `entry: page`) does.
async fn start(st: &AppState, bot: &BotOnly, args: Value) -> Result<Value, Failure> {
    let a: StartArgs = arguments(args)?;
    a.check()?;
    let team = bot.team();
    let now = st.clock.now();
    let view = match (&a.conversation, &a.interaction_id) {
        (Some(c), _) => {
            let new = NewInteraction {
                channel: c.channel.clone(),
                conversation_id: c.conversation_id.clone(),
                customer_ref: a.customer_ref.clone(),
                session_pin: None,
                contact: a
                    .contact
                    .as_ref()
                    .map(|c| crate::domain::interaction::Contact {
                        phone: c.phone.clone(),
                        email: c.email.clone(),
                    }),
                locale: a.locale.clone(),
            };
            crate::gateway::interactions::create_interaction(&st.gateway, team, new, now)
                .await?
                .0
        }
        (None, Some(id)) => {
            let id = interaction_id(id)?;
            crate::gateway::interactions::get_interaction(&st.gateway, team, id, now).await?
        }
        (None, None) => return Err(broken("/interaction_id", "is required", true)),
    };
    let proof = proof_of(&a, team, &view)?;
    let clock = st.clock.as_ref();
    let started = use_cases::start_verification(&st.gateway, team, view.id, proof, clock).await?;
    Ok(json!(started))
}

/// The proof `a` asks for, as its HTTP twin's parser reads it.
fn proof_of(
    a: &StartArgs,
    team: &crate::config::Team,
    view: &crate::gateway::InteractionView,
) -> Result<Proof, Failure> {
    if a.proof == ProofName::Link {
        return Ok(Proof::Link(LinkRequest {
            deliver: Some(true),
            locale: a
                .locale
                .as_deref()
                .map(crate::domain::locale::LocaleTag::requested)
                .transpose()?,
            ..LinkRequest::default()
        }));
    }
    let (method, delivery, entry) = match a.proof {
        ProofName::Code => {
            let delivery = a.delivery.clone().or_else(|| first_delivery(team, view));
            let delivery = delivery.ok_or_else(|| {
                Error::invalid(
                    "delivery",
                    "the contact has no phone number or e-mail address the team sends codes to",
                )
            })?;
            ("otp", Some(delivery), Some("page".to_string()))
        }
        ProofName::Network => ("network", None, None),
        ProofName::Wallet => ("wallet", None, None),
        _ => ("app", None, None),
    };
    let asked = NewChallenge {
        method: method.into(),
        delivery,
        to: None,
        locale: a.locale.clone(),
        transaction: a.transaction.clone(),
        entry,
        credential: a.credential.clone().map(serde_json::Value::String),
        expected: a.expected.clone(),
        register: None,
    };
    Ok(Proof::Challenge(Box::new(asked.parse()?)))
}

/// A code's delivery by default: the team's first, of `sms`, `email` and
/// `voice`, that the interaction's contact allows.
fn first_delivery(
    team: &crate::config::Team,
    view: &crate::gateway::InteractionView,
) -> Option<String> {
    let (phone, email) = (view.contact.phone.is_some(), view.contact.email.is_some());
    let first = [
        (team.sms_channel.is_some() && phone, "sms"),
        (team.email_channel.is_some() && email, "email"),
        (team.voice_channel.is_some() && phone, "voice"),
    ];
    first.iter().find(|(ok, _)| *ok).map(|(_, d)| d.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetArgs {
    interaction_id: String,
    wait_seconds: Option<u64>,
    after: Option<String>,
}

/// `get_verification` (`gateway::mcp::get_verification` waits). A wait
/// holds a place of the waiting calls' budget (`http/waiting.rs`); with
/// none free for its key or in all, the call answers at once, as with
/// `wait_seconds` 0, and so it does when a provider's request takes its
/// place. A stateless call (no `session`) waits as well: its `after` is
/// what it differs from.
async fn get(
    st: &AppState,
    bot: &BotOnly,
    session: Option<&str>,
    args: Value,
) -> Result<Value, Failure> {
    let a: GetArgs = arguments(args)?;
    let wait = a.wait_seconds.unwrap_or(0);
    if wait > MAX_WAIT {
        return Err(broken(
            "/wait_seconds",
            &format!("is at most {MAX_WAIT}"),
            false,
        ));
    }
    let place = (wait > 0)
        .then(|| st.waiting.for_key(&bot.team_id, &bot.key_id))
        .flatten();
    let asked = use_cases::Asked {
        id: interaction_id(&a.interaction_id)?,
        wait: Duration::from_secs(if place.is_some() { wait } else { 0 }),
        after: a.after.as_deref(),
        session: session.map(|s| (bot.key_id.as_ref(), s)),
    };
    let taken = async {
        match &place {
            Some(p) => p.taken().await,
            None => std::future::pending().await,
        }
    };
    let clock = st.clock.as_ref();
    let answer = use_cases::get_verification(&st.gateway, bot.team(), asked, clock, taken).await?;
    Ok(json!(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmArgs {
    interaction_id: String,
    code: String,
}

/// `confirm_chat_code`: the binding code the customer typed into the chat.
async fn confirm(st: &AppState, bot: &BotOnly, args: Value) -> Result<Value, Failure> {
    let a: ConfirmArgs = arguments(args)?;
    let id = interaction_id(&a.interaction_id)?;
    let team = bot.team();
    let now = st.clock.now();
    use_cases::confirm_chat_code(&st.gateway, team, id, &a.code, now).await?;
    let answer = use_cases::verification(&st.gateway, team, id, st.clock.now()).await?;
    Ok(json!(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssuranceArgs {
    interaction_id: String,
    intent: Option<String>,
    max_age: Option<String>,
    methods: Option<Vec<String>>,
    transaction: Option<String>,
}

/// `check_assurance`: `GET …/assurance`, its query read by its own parser.
async fn assurance(st: &AppState, bot: &BotOnly, args: Value) -> Result<Value, Failure> {
    let a: AssuranceArgs = arguments(args)?;
    let id = interaction_id(&a.interaction_id)?;
    let mut q = HashMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            q.insert(k.to_string(), v);
        }
    };
    put("intent", a.intent);
    put("max_age", a.max_age);
    put("methods", a.methods.map(|m| m.join(",")));
    put("transaction", a.transaction);
    let ask = super::super::assurance::parse_ask(&q)?;
    let transaction = super::super::assurance::parse_transaction(&q)?;
    let now = st.clock.now();
    let team = bot.team();
    let answer =
        crate::gateway::assurance::assurance(&st.gateway, team, id, ask, transaction, now).await?;
    Ok(json!(answer))
}

/// `tools/list`: the four tools, each with its title, description for a
/// model, input and output schemas and annotations.
pub fn list() -> Value {
    json!({"tools": [start_tool(), get_tool(), confirm_tool(), assurance_tool()]})
}

fn start_tool() -> Value {
    json!({
        "name": "start_verification",
        "title": "Start verifying the customer",
        "description": "Sends the customer in this conversation somewhere to prove who they are. \
    You never see or handle their code: tell the customer the `say` sentence (it says where to look; \
    it holds no link, code or number), then call get_verification to learn the result. \
    Choose `proof`: \"link\" (a sign-in link into this chat; the customer signs in on the bank's page), \
    \"code\" (a one-time code to the customer's phone by SMS or voice, or by e-mail; the customer types it \
    on chatgate's page reached by a link in this chat, never into the chat), \"network\" (a link the customer \
    opens on their phone over mobile data: their mobile operator confirms the phone number), \"wallet\" \
    (a link where the customer shows a credential from their digital wallet; needs `match`), or \"app\" \
    (the customer approves in the bank's own app). Name the conversation by `conversation` (it is found or \
    created) or by the `interaction_id` an earlier call answered.",
        "inputSchema": {
            "type": "object", "additionalProperties": false, "required": ["proof"],
            "properties": {
                "conversation": {"type": "object", "additionalProperties": false,
                    "required": ["channel", "conversation_id"],
                    "properties": {"channel": {"type": "string", "description": "one of the team's channels"},
                                   "conversation_id": {"type": "string", "minLength": 1, "maxLength": 256}}},
                "interaction_id": {"type": "string", "format": "uuid"},
                "customer_ref": {"type": "string", "description": "whom the bank expects (a CRM id); with conversation"},
                "locale": {"type": "string", "description": "the conversation's language, a BCP 47 tag such as es or pt-BR"},
                "contact": {"type": "object", "additionalProperties": false,
                    "properties": {"phone": {"type": "string"}, "email": {"type": "string"}},
                    "description": "where a code may go; with conversation"},
                "proof": {"type": "string", "enum": ["link", "code", "network", "wallet", "app"]},
                "delivery": {"type": "string", "enum": ["sms", "email", "voice"],
                    "description": "for code: where it goes; default the first the contact allows"},
                "credential": {"type": "string", "description": "for wallet: one of the team's credentials"},
                "match": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "for wallet: claim name → the value the bank expects"},
                "transaction": {"type": "object", "description": "for code or app: the one payment it approves"}
            }
        },
        "outputSchema": {
            "type": "object", "required": ["interaction_id", "challenge_id", "status", "sent_to", "say"],
            "properties": {
                "interaction_id": {"type": "string"},
                "challenge_id": {"type": ["string", "null"]},
                "status": {"type": "string"},
                "sent_to": {"type": "string", "enum": ["chat", "sms", "email", "voice", "app"]},
                "say": {"type": "string"}
            }
        },
        "annotations": {"title": "Start verifying the customer", "readOnlyHint": false,
                        "destructiveHint": false, "idempotentHint": false, "openWorldHint": true}
    })
}

fn verification_schema() -> Value {
    json!({
        "type": "object",
        "required": ["status", "authenticated", "method", "expires_at", "customer_id", "challenge", "cursor"],
        "properties": {
            "status": {"type": "string", "enum": ["unauthenticated", "pending", "authenticated", "expired", "locked", "banned"]},
            "authenticated": {"type": "boolean"},
            "method": {"type": ["string", "null"]},
            "expires_at": {"type": ["string", "null"]},
            "customer_id": {"type": ["string", "null"]},
            "challenge": {"type": ["object", "null"],
                "properties": {"challenge_id": {"type": "string"}, "method": {"type": "string"},
                               "state": {"type": "string"}, "result": {"type": ["string", "null"]},
                               "awaiting_code": {"type": "boolean"}}},
            "cursor": {"type": "string", "description": "what this answer was; pass it as get_verification's `after` to wait for a change from it"}
        }
    })
}

fn get_tool() -> Value {
    json!({
        "name": "get_verification",
        "title": "Learn whether the customer is verified",
        "description": "Tells whether the customer is verified (`authenticated`), how (`method`), until when, and \
    where the current challenge stands. With `wait_seconds` (up to 25) it waits for a change: pass the `cursor` of \
    its last answer as `after`, and it answers at once when something changed since that answer, else when \
    something changes or the wait ends — call it again with the new `cursor` to keep waiting while the customer \
    acts on their phone. When \
    `challenge.awaiting_code` is true, a chatgate page has shown the customer a short code to type into this \
    chat: pass what they type to confirm_chat_code.",
        "inputSchema": {
            "type": "object", "additionalProperties": false, "required": ["interaction_id"],
            "properties": {"interaction_id": {"type": "string", "format": "uuid"},
                           "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 25},
                           "after": {"type": "string", "description": "the `cursor` of an earlier answer: wait for a change from it"}}
        },
        "outputSchema": verification_schema(),
        "annotations": {"title": "Learn whether the customer is verified", "readOnlyHint": true,
                        "idempotentHint": true, "openWorldHint": false}
    })
}

fn confirm_tool() -> Value {
    json!({
        "name": "confirm_chat_code",
        "title": "Confirm the code the customer typed into the chat",
        "description": "Only when get_verification says `challenge.awaiting_code`: a chatgate page showed the \
    customer a short binding code and asked them to type it into this chat, proving they are the person in this \
    conversation. Pass exactly what they typed. It is never for a one-time code sent to the customer's phone or \
    e-mail, nor a PIN or password: those are typed on chatgate's page, and any other challenge is refused with \
    entry_page and nothing counted. A wrong code counts against the customer.",
        "inputSchema": {
            "type": "object", "additionalProperties": false, "required": ["interaction_id", "code"],
            "properties": {"interaction_id": {"type": "string", "format": "uuid"},
                           "code": {"type": "string", "description": "what the customer typed into the chat"}}
        },
        "outputSchema": verification_schema(),
        "annotations": {"title": "Confirm the code the customer typed into the chat", "readOnlyHint": false,
                        "destructiveHint": false, "idempotentHint": false, "openWorldHint": false}
    })
}

fn assurance_tool() -> Value {
    json!({
        "name": "check_assurance",
        "title": "Check the proof is enough for an action",
        "description": "Before a sensitive action (a balance, a payment, a change of details), asks whether \
    the customer's verification is recent and strong enough: name the bank's `intent` (a policy such as \
    payment), or give `max_age` (90s, 5m, 2h) and `methods`; `transaction` names one payment's hash. When \
    `satisfied` is false, `unmet` says why: start a new verification with start_verification and ask again.",
        "inputSchema": {
            "type": "object", "additionalProperties": false, "required": ["interaction_id"],
            "properties": {
                "interaction_id": {"type": "string", "format": "uuid"},
                "intent": {"type": "string", "minLength": 1, "maxLength": 64},
                "max_age": {"type": "string", "description": "a duration: 90s, 5m, 2h"},
                "methods": {"type": "array", "items": {"type": "string",
                    "enum": ["login_link", "oidc", "pre_chat", "otp", "pin", "app", "network", "wallet", "recognized"]}},
                "transaction": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"}
            }
        },
        "outputSchema": {
            "type": "object", "required": ["interaction_id", "satisfied", "status", "unmet"],
            "properties": {"interaction_id": {"type": "string"}, "satisfied": {"type": "boolean"},
                           "status": {"type": "string"}, "method": {"type": ["string", "null"]},
                           "authenticated_at": {"type": ["string", "null"]},
                           "age_seconds": {"type": ["integer", "null"]},
                           "unmet": {"type": "array", "items": {"type": "string"}}}
        },
        "annotations": {"title": "Check the proof is enough for an action", "readOnlyHint": true,
                        "idempotentHint": true, "openWorldHint": false}
    })
}
