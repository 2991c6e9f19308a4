//! The OpenAPI 3.1 document (`/openapi.json`), generated from the handlers'
//! `#[utoipa::path]` annotations and the DTOs' `ToSchema` derives: the
//! shared parts live here — the bearer scheme, the error answers every
//! operation lists (one [`Problem`] schema), and the few facts that come from
//! this deployment's configuration (channel names, session-PIN lengths).
//!
//! The document is a test oracle (`.ci/schemathesis.sh`): every status a
//! handler can answer is listed; every constraint the handlers enforce is
//! in the schemas, no more and no less, where a schema can state it, and in
//! the operation's 422 description where not ([`REFUSALS`]); every event is
//! the `Event` schema, and every frame of the event stream, parsed, an
//! `EventFrame` (`events.rs`).
use std::collections::BTreeMap;

use serde_json::{json, Value};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoResponses, OpenApi};

use super::problem::{Problem, ProblemCode, PROBLEM_JSON};
use crate::config::Config;
use crate::domain::interaction::Method;

pub mod down_level;
mod events;
mod text;
pub use text::{
    ConversationIdText, CustomerIdText, CustomerRefText, DisplayText, EmailText, LocaleText,
    PhoneText, SubjectText,
};

/// A schema whose rules a derive cannot state (conditional requirements,
/// `const`), written as JSON Schema. Its `ToSchema` (from [`raw_schema!`])
/// is a placeholder that [`finish`] replaces by [`RawSchema::json`]; the
/// list of them is `raw_schemas` in `http/mod.rs`, so this module imports
/// no handler module (handlers import it).
pub trait RawSchema {
    fn json() -> Value;
}

/// Implements `ToSchema` for a [`RawSchema`] type, under its type name.
macro_rules! raw_schema {
    ($t:ty) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new().into()
            }
        }
        impl utoipa::ToSchema for $t {}
    };
}
pub(crate) use raw_schema;

/// The served documents, each rendered once (a clone shares the bytes):
/// the 3.1 document and the 3.0 and 2.0 ones derived from it
/// (`down_level.rs`), whose server is `public_url`.
#[derive(Clone)]
pub struct Documents([axum::body::Bytes; 3]);

impl Documents {
    pub fn of(full: String, public_url: &str) -> Documents {
        // `server.public_url` is checked a URL at load; the gateway's own
        // address is the fallback that still names a server.
        let url = url::Url::parse(public_url)
            .or_else(|_| url::Url::parse("http://127.0.0.1/"))
            .ok();
        let Some(url) = url else {
            let full: axum::body::Bytes = full.into();
            return Documents([full.clone(), full.clone(), full]);
        };
        let parsed: Value = serde_json::from_str(&full).unwrap_or_default();
        let down = |v| {
            let d = down_level::document(&parsed, v, &url);
            serde_json::to_string(&d).unwrap_or_default().into()
        };
        Documents([
            full.into(),
            down(down_level::Version::V3_0),
            down(down_level::Version::V2_0),
        ])
    }

    pub fn get(&self, version: down_level::Version) -> axum::body::Bytes {
        let i = match version {
            down_level::Version::V3_1 => 0,
            down_level::Version::V3_0 => 1,
            down_level::Version::V2_0 => 2,
        };
        self.0[i].clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatgate",
        description = "Authentication gateway for conversational messaging.\n\n\
            Errors are `application/problem+json` (RFC 9457) with a stable `code`. \
            A body field or query parameter an operation does not define is 422 `invalid_request` naming it. \
            Bots, agents and admins send `Authorization: Bearer <api key>`; \
            the login page and the website sign their requests (Standard Webhooks) instead."
    ),
    servers((url = "/", description = "this gateway")),
    components(schemas(Problem, ProblemCode, ChannelName, SessionPinText, EmptyBody, ConversationIdText, CustomerRefText, CustomerIdText, DisplayText, PhoneText, EmailText, LocaleText)),
    modifiers(&BearerAuth),
    tags(
        (name = "interactions", description = "Conversations and whether they are authenticated"),
        (name = "login", description = "Login links, the login page's callback, back-channel logout"),
        (name = "pre-chat", description = "Pre-chat identity assertions"),
        (name = "challenges", description = "OTP and session-PIN challenges"),
        (name = "subjects", description = "Failures, lockouts and bans"),
        (name = "events", description = "The live event stream"),
        (name = "audit", description = "The audit trail: who revealed, unlocked, logged out; chained and signed"),
        (name = "integrations", description = "Bot platforms' webhooks in their own formats"),
        (name = "mcp", description = "The Model Context Protocol server: tools for bots built on language models"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "operator", description = "Teams and channels, for the system's operator keys"),
    )
)]
pub struct ApiDoc;

/// The `api_key` security scheme: `Authorization: Bearer <api key>`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // A person signed in to the console: its agent endpoints
        // (docs/console-sign-in.md); `__Host-chatgate-console` on https.
        let mut cookie = utoipa::openapi::security::ApiKeyValue::new("chatgate-console");
        cookie.description = Some(
            "the console's session cookie (`__Host-chatgate-console` when the gateway's public URL is https); a POST or DELETE with it also needs the header `Chatgate-Console: 1`"
                .into(),
        );
        components.add_security_scheme(
            "console_session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(cookie)),
        );
        // `GET /metrics` when `server.metrics_token` is set.
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// A channel name: in the served document, an enum of the configured ones
/// (see [`Deployment::documents`]); a name the caller's team lacks is 422.
pub struct ChannelName;

impl utoipa::PartialSchema for ChannelName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for ChannelName {}

/// A session PIN: digits, `pin.min_length..=pin.max_length` of the
/// interaction's channel (the served document states the system defaults).
pub struct SessionPinText;

impl utoipa::PartialSchema for SessionPinText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{4,20}$"))
            .into()
    }
}

impl utoipa::ToSchema for SessionPinText {}

/// The `Chatgate-Actor` header of every operation the team may require a
/// person for (reveal, logout, unlock, forget), as `params(ActorHeader)`:
/// the person an agent or admin key acts for (docs/api.md#a-person-behind-every-agent-action).
pub struct ActorHeader;

impl utoipa::IntoParams for ActorHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![actor_param(
            "the person an agent or admin key acts for: a token of the team's workforce \
             provider (docs/api.md#a-person-behind-every-agent-action); required with \
             `[console] require_person`",
        )]
    }
}

/// The `Chatgate-Actor` header of an operator's write: the person behind
/// it (docs/operator-api.md#roles).
pub struct OperatorActorHeader;

impl utoipa::IntoParams for OperatorActorHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![actor_param(
            "the person behind an operator's write: a token of `[operator.actor]`'s issuer \
             (docs/operator-api.md#roles); required with `[operator] require_person`",
        )]
    }
}

/// An optional `Chatgate-Actor` header parameter: a compact JWS.
fn actor_param(description: &str) -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::Required;
    let token = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"));
    ParameterBuilder::new()
        .name("Chatgate-Actor")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(token))
        .build()
}

/// What of a configuration the served documents are made of, and all
/// they are made of ([`Deployment::documents`]): a configuration with the
/// same makes the same documents.
#[derive(PartialEq)]
pub struct Deployment {
    channels: Vec<String>,
    pin: (u32, u32),
    oidc: bool,
    operator: bool,
    public_url: String,
}

impl Deployment {
    /// What `config`'s documents are made of: read off the sums kept
    /// with its teams, so it costs the channels, not the teams.
    pub fn of(config: &Config) -> Deployment {
        let pin = &config.defaults.pin;
        Deployment {
            channels: config.sums.channels().cloned().collect(),
            pin: (pin.min_length, pin.max_length),
            oidc: config.sums.any_oidc(),
            operator: config.operator.is_some(),
            public_url: config.server.public_url.clone(),
        }
    }

    /// The documents this deployment serves, made of the handlers'
    /// document `doc` and the `raw` schemas.
    pub fn documents(&self, doc: utoipa::openapi::OpenApi, raw: &[(&str, Value)]) -> Documents {
        Documents::of(for_deployment(doc, self, raw), &self.public_url)
    }
}

/// The document as served by `deployment`: the `ChannelName` schema lists
/// the configured channel names and `SessionPinText` the configured lengths.
fn for_deployment(
    mut doc: utoipa::openapi::OpenApi,
    deployment: &Deployment,
    raw: &[(&str, Value)],
) -> String {
    let channels = deployment.channels.clone();
    let (min_length, max_length) = deployment.pin;
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "ChannelName".into(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A channel of the caller's team (another configured name is 422).",
            ))
            .enum_values(Some(channels))
            .into(),
    );
    components.schemas.insert(
        "SessionPinText".into(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Digits only, pin.min_length..pin.max_length of the channel's settings.",
            ))
            .pattern(Some(format!("^[0-9]{{{min_length},{max_length}}}$")))
            .into(),
    );
    // `"provider": "oidc"` needs a team's `[oidc]`: without any, the
    // document does not offer it.
    if !deployment.oidc {
        components.schemas.insert(
            "Provider".into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "`login_page` (the team's login page posts the signed callback). \
                     No team of this gateway has `[oidc]`, so `oidc` is not offered (422).",
                ))
                .enum_values(Some(["login_page"]))
                .into(),
        );
    }
    // Without `[operator]` its paths answer 404, as an unknown path does:
    // the document offers them only where they are served
    // (docs/operator-api.md#turning-it-on).
    let operator = deployment.operator;
    if !operator {
        doc.paths.paths.retain(|_, item| !is_operators(item));
        if let Some(tags) = doc.tags.as_mut() {
            tags.retain(|t| t.name != OPERATOR_TAG);
        }
    }
    let mut doc = finish(doc, raw);
    if !operator {
        without_unused_schemas(&mut doc);
    }
    doc.to_string()
}

/// `doc` without the component schemas nothing in it names any more (the
/// operator API's, once its paths are left out).
fn without_unused_schemas(doc: &mut Value) {
    loop {
        let Some(schemas) = doc["components"]["schemas"].as_object() else {
            return;
        };
        let text = doc.to_string();
        let unused: Vec<String> = schemas
            .keys()
            .filter(|name| !text.contains(&format!("\"#/components/schemas/{name}\"")))
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
            unused.iter().for_each(|name| _ = schemas.remove(name));
        }
    }
}

/// The tag of the operator API's operations.
const OPERATOR_TAG: &str = "operator";

/// Whether `item` is a path of the operator API (its operations tagged so).
fn is_operators(item: &utoipa::openapi::PathItem) -> bool {
    [&item.get, &item.put, &item.post, &item.delete, &item.patch]
        .into_iter()
        .flatten()
        .any(|op| op.tags.iter().flatten().any(|t| t == OPERATOR_TAG))
}

/// The generated document, completed: optional bodies, and the `raw`
/// schemas (by component name) in place of their placeholders.
pub fn finish(mut doc: utoipa::openapi::OpenApi, raw: &[(&str, Value)]) -> Value {
    optional_bodies_are_absent(&mut doc);
    let Ok(mut doc) = serde_json::to_value(&doc) else {
        return Value::Null;
    };
    for (name, schema) in raw {
        doc["components"]["schemas"][*name] = schema.clone();
    }
    doc["components"]["schemas"]["Event"] = events::schema();
    doc["components"]["schemas"]["EventFrame"] = events::frame_schema();
    // The stream is text, but what a client reads from it is its frames,
    // parsed: each one an `EventFrame`.
    if let Some(stream) =
        doc.pointer_mut("/paths/~1v1~1events/get/responses/200/content/text~1event-stream")
    {
        stream["schema"] = json!({"$ref": "#/components/schemas/EventFrame"});
    }
    doc["webhooks"] = events::webhooks();
    camel_case_links(&mut doc);
    describe_refusals(&mut doc);
    name_the_methods(&mut doc);
    doc
}

/// What the assurance query's `methods` may name: every authentication
/// method (`Method::ALL`), then `recognized`.
pub(super) fn method_names() -> String {
    let mut names: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
    names.push("recognized");
    names.join(", ")
}

/// The pattern and description of the assurance query's `methods`, made
/// from [`method_names`], so that a method added is in the document
/// without a hand-written list to keep.
fn name_the_methods(doc: &mut Value) {
    let Some(params) = doc
        .pointer_mut("/paths/~1v1~1interactions~1{id}~1assurance/get/parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let names = method_names();
    let one = format!("({})", names.replace(", ", "|"));
    for p in params.iter_mut().filter(|p| p["name"] == "methods") {
        p["schema"]["pattern"] = Value::String(format!("^ *{one} *(, *{one} *)*$"));
        p["description"] = Value::String(format!(
            "comma-separated: {names} (a recognized conversation meets it)"
        ));
    }
}

/// The 422s of each operation beyond "a value that is not allowed": the
/// rules its schemas cannot state (a rule over Unicode scripts, over two
/// query parameters, or over state and configuration), by operation id
/// (docs/api.md#what-the-openapi-document-states). Appended to its 422
/// description, so a client (and a fuzzer's reader) finds them there.
const REFUSALS: &[(&str, &str)] = &[
    ("create_interaction", "A `customer_ref` whose letters mix scripts (Latin with Cyrillic or Greek) is 422, as is a `channel` the caller's team does not have, and a `session_pin` outside the channel's PIN lengths."),
    ("login_callback", "A `customer.id` whose letters mix scripts (Latin with Cyrillic or Greek) is 422."),
    ("customer_logout", "A `customer_id` whose letters mix scripts (Latin with Cyrillic or Greek) is 422."),
    ("issue_link", "`\"provider\": \"oidc\"` for a team without `[oidc]`, and an `expected_customer` whose letters mix scripts, are 422."),
    ("start_challenge", "`sms` or `email` delivery without `to`, on an interaction without that `contact`, is 422; so is a challenge on an SMS or e-mail channel (which sends to the interaction's `contact`) that has none, and a delivery the team does not allow."),
    ("verify_code", "A PIN outside the channel's PIN lengths is 422 (not counted as a failure)."),
    ("assurance", "`intent` together with `max_age` or `methods`, an `intent` the team's settings do not name, and a `max_age` that is not a duration of more than 0s (`90s`, `5m`, `2h`, `1h 30m`) are 422."),
    ("list_interactions", "`conversation_id` without `channel`, and a `cursor` this gateway did not issue, are 422."),
    ("read_subject", "A `subject` that is neither `interaction:{uuid}` nor a `customer_ref` (its letters of one script, not starting with `interaction:` in any case) is 422."),
    ("unlock_subject", "A `subject` that is neither `interaction:{uuid}` nor a `customer_ref` (its letters of one script, not starting with `interaction:` in any case) is 422."),
];

fn describe_refusals(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let ops = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for op in ops {
        let id = op["operationId"].as_str().unwrap_or_default();
        let Some((_, rule)) = REFUSALS.iter().find(|(name, _)| *name == id) else {
            continue;
        };
        if let Some(d) = op.pointer_mut("/responses/422/description") {
            *d = Value::String(format!("{} {rule}", d.as_str().unwrap_or_default()));
        }
    }
}

/// utoipa 5 writes a Link object's fields in snake case (`operation_id`);
/// OpenAPI spells them `operationId`, `operationRef`, `requestBody`.
fn camel_case_links(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|r| r.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(Value::as_object_mut) else {
            continue;
        };
        for link in links.values_mut().filter_map(Value::as_object_mut) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(from) {
                    link.insert(to.to_string(), v);
                }
            }
        }
    }
}

/// An optional request body (`request_body = Option<T>`) is described by
/// utoipa as "`T` or JSON `null`"; ours is "`T`, or no body at all" (a JSON
/// `null` is not an object: 400). Keep only `T`.
fn optional_bodies_are_absent(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::OneOf;
    use utoipa::openapi::Required;
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.post, &mut item.put, &mut item.patch];
        for op in ops.into_iter().flatten() {
            let Some(body) = op.request_body.as_mut() else {
                continue;
            };
            if body.required == Some(Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                if let Some(RefOr::T(Schema::OneOf(OneOf { items, .. }))) = &content.schema {
                    if let [RefOr::T(Schema::Object(null)), inner] = items.as_slice() {
                        if null.schema_type == Type::Null.into() {
                            content.schema = Some(inner.clone());
                        }
                    }
                }
            }
        }
    }
}

/// One problem+json answer; `Retry-After` where the status carries it.
fn problem(description: &str, retry_after: bool) -> Response {
    let mut b = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if retry_after {
        b = b.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("whole seconds"))
                .build(),
        );
    }
    b.build()
}

/// Error answers for `#[utoipa::path(responses(...))]`: `E404` lists 404
/// `not_found`, and so on. Each is a problem+json [`Problem`].
macro_rules! problem_responses {
    ($($name:ident = $status:literal, $retry:literal, $desc:literal;)*) => {$(
        #[doc = concat!("`", stringify!($status), "`: ", $desc)]
        pub struct $name;
        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([($status.to_string(), problem($desc, $retry).into())])
            }
        }
    )*};
}

problem_responses! {
    E400 = "400", false, "`invalid_request`: not JSON, a required field missing, or a field of the wrong JSON type (named in `detail`)";
    E401 = "401", false, "`unauthorized` (no or unknown API key, or an `Authorization` header without `Bearer `); on signed or token requests `invalid_token`, `invalid_signature`; on verify `invalid_code`";
    E403 = "403", false, "`forbidden` (the key's role may not do this: `detail` names the role and the roles that may), `customer_mismatch`, `banned`, or `number_refused` (a number check refused the phone number, `reason` in the body)";
    E404 = "404", false, "`not_found`: no such resource for this team";
    E408 = "408", false, "`request_timeout`: the body did not arrive in time";
    E409 = "409", false, "`token_used`, `challenge_used`, `no_session_pin`, `no_next_step`, `entry_page` (a code typed on the gateway's page, never verified by the bot), `not_authenticated` (a wallet registration without a recent authentication) or `not_registered` (a payment in the wallet for a customer with no registered attestation)";
    E410 = "410", false, "`token_expired`, `challenge_expired` or `challenge_exhausted`";
    CallbackE409 = "409", false, "`token_used`: the token was used by another request, or this `webhook-id` was used with another body (a retry sends the very same body)";
    CallbackE410 = "410", false, "`token_expired`: the token has expired; `challenge_expired`: a retry of a callback whose login waited for its binding code, once that binding has ended (a new link, a logout, the code's expiry or use)";
    E413 = "413", false, "`payload_too_large`: body over 64 KiB";
    E415 = "415", false, "`unsupported_media_type`: the body is not declared JSON";
    E422 = "422", false, "`invalid_request`: a value that is not allowed, or a field or query parameter the operation does not define (named in `detail`)";
    E423 = "423", true, "`locked`: the subject is locked out (`locked_until`, `Retry-After`)";
    E429 = "429", true, "`rate_limited`: too many challenges sent for the subject, or to one phone number or e-mail address, within `otp.send_window` (`Retry-After`)";
    E429SignIn = "429", true, "`rate_limited`: the team's sign-ins started in this instance reached `[console] sign_in_rate` a second (`Retry-After`)";
    E429Streams = "429", true, "`rate_limited`: this API key (`server.max_streams_per_key`) or its team (`server.max_streams_per_team`) has its most event streams open (`Retry-After`)";
    E502 = "502", false, "`channel_error`: the channel provider refused or failed the message";
    ManagedE409 = "409", false, "`managed_by_file`: the team or channel is kept in a file; change its file";
    KeyAddE409 = "409", false, "`managed_by_file`: the team is kept in a file; `key_exists`: the team has a key of that id (or that very key), or another team or an operator has the key";
    KeyRemoveE409 = "409", false, "`managed_by_file`: the team is kept in a file; `key_in_use`: the team's primary security key, or its last";
    E412 = "412", false, "`precondition_failed`: `If-Match` names another version (or nothing exists to match), or `If-None-Match: *` and it exists";
    E428 = "428", false, "`precondition_required`: a replace or delete without `If-Match`";
    ChannelE409 = "409", false, "`managed_by_file`: the channel is kept in a file; `channel_in_use`: teams written through this API list the channel (`teams`), and a delete, or this replace, would leave them without it";
    OperatorE413 = "413", false, "`payload_too_large`: body over 1 MiB";
    ConfigE422 = "422", false, "`invalid_config`: the body breaks a rule of a team or channel file, a URL or `host` names `localhost` or an address of a special-purpose registry (loopback, private, shared, link-local, benchmarking, documentation, multicast, reserved, or an IPv6 form of one; unless `[operator] allow_private_destinations`) or carries a credential, or an `{\"hmac\"}` is not the read-back of the secret stored at its pointer, or is sent back while a member that decides where that secret goes changed (`errors`: each problem at its JSON pointer); `invalid_request`: a query parameter the operation does not define or a value it does not allow";
    E503 = "503", false, "`store_unavailable`: the store cannot be reached, or the request took too long; `overloaded`: too many open connections; `draining` (`/readyz` only): the instance is shutting down";
}

/// The answers of every operation that reads a JSON body.
pub struct JsonBodyErrors;

impl IntoResponses for JsonBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = E400::responses();
        all.extend(E408::responses());
        all.extend(E413::responses());
        all.extend(E415::responses());
        all.extend(E422::responses());
        all
    }
}

/// The answers of an operator's write that reads a team or channel body.
pub struct OperatorBodyErrors;

impl IntoResponses for OperatorBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = E400::responses();
        all.extend(E408::responses());
        all.extend(OperatorE413::responses());
        all.extend(E415::responses());
        all.extend(ConfigE422::responses());
        all
    }
}

/// The answers of every operation behind an API key (a role check adds [`E403`]).
pub struct ApiKeyErrors;

impl IntoResponses for ApiKeyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = E401::responses();
        all.extend(E503::responses());
        all
    }
}

/// A body that may be empty or `{}` and defines no member.
pub struct EmptyBody;

impl RawSchema for EmptyBody {
    fn json() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "maxProperties": 0,
            "description": "No member is defined: the body is empty or `{}`."
        })
    }
}
raw_schema!(EmptyBody);
