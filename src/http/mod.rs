//! The HTTP API (docs/api.md): one router per resource, composed here with
//! the middleware stack, the OpenAPI document generated from the handlers,
//! and the fallback that makes every unknown path a problem+json 404.
mod assertion;
mod assurance;
mod audit;
mod auth;
mod challenges;
mod code_entry;
mod console;
mod denials;
mod dialogflow;
mod events;
mod extract;
mod forget;
mod home;
mod interactions;
mod json;
mod login;
mod mcp;
mod network;
mod observe;
mod openapi;
mod operator;
mod operator_auth;
mod operator_writes;
mod ops;
mod pages;
mod problem;
mod receipts;
mod revocation;
mod subjects;
mod team_gate;
mod waiting;
mod wallet;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{ApiKeys, Caller};
pub use extract::MAX_BODY;
pub use home::{lines as where_things_are, port_mismatch};
pub use observe::{ProblemLabel, TeamSlot};
pub use waiting::Waiting;

use self::openapi::RawSchema;
use crate::domain::settings::TextKey;
use crate::error::Error;
use crate::gateway::Core;
use crate::telemetry::Metrics;
use crate::time::Clock;
use crate::waits::Waits;

/// Shared by every handler: one `Arc`, so the clone axum makes for every
/// middleware and extractor of every request is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub gateway: Arc<Core>,
    pub clock: Arc<dyn Clock>,
    pub api_keys: ApiKeys,
    pub metrics: Metrics,
    /// The served documents, rendered once.
    pub openapi: openapi::Documents,
    /// Request ids and HTTP metric handles (`observe.rs`).
    pub observer: Arc<observe::Observer>,
    /// Open live event streams, within their caps (`events.rs`).
    pub streams: Arc<crate::events::slots::StreamSlots>,
    /// Each team's requests in flight on the endpoints that may wait on
    /// its provider (`team_gate.rs`).
    pub team_gates: Arc<team_gate::TeamGates>,
    /// The waiting calls' budget, which the team gates share (`waiting.rs`).
    pub waiting: Arc<waiting::Waiting>,
    /// Each team's console sign-ins started this second (`console.rs`).
    pub sign_in_starts: Arc<console::SignInStarts>,
    /// Rung by an operator's write to put the API teams in force at once
    /// (`operator_writes.rs`).
    pub api_teams: Arc<crate::gateway::operator::teams::ApiTeamsBell>,
}

/// What a router shares with the routers that replace it when the
/// configuration is reloaded: the clock, the metrics, the request ids and
/// metric handles, and the open event streams within their caps.
#[derive(Clone)]
pub struct Lasting {
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    observer: Arc<observe::Observer>,
    streams: Arc<crate::events::slots::StreamSlots>,
    team_gates: Arc<team_gate::TeamGates>,
    waiting: Arc<waiting::Waiting>,
    sign_in_starts: Arc<console::SignInStarts>,
    api_teams: Arc<crate::gateway::operator::teams::ApiTeamsBell>,
    /// The routes and the OpenAPI document of the handlers, made once.
    api: Arc<std::sync::OnceLock<(Router<AppState>, utoipa::openapi::OpenApi)>>,
    /// The served documents of the last router, with what they were made
    /// of: a router whose configuration changed none of it (a team
    /// written) shares them.
    documents: Arc<std::sync::Mutex<Option<(openapi::Deployment, openapi::Documents)>>>,
}

impl Lasting {
    /// `config`'s `[server]` caps the event streams and the waiting calls
    /// (a reload keeps them). The MCP tools' series are registered at 0 in
    /// `metrics`' recorder.
    pub fn new(config: &crate::config::Config, clock: Arc<dyn Clock>, metrics: Metrics) -> Self {
        let limits = &config.server.limits;
        let streams = crate::events::slots::StreamSlots::new(
            limits.max_streams_per_key,
            limits.max_streams_per_team,
            limits.max_streams,
        );
        let waiting = Arc::new(waiting::Waiting::new(
            limits.max_waits,
            limits.max_waits_per_key,
        ));
        mcp::register_series();
        Lasting {
            clock,
            metrics,
            observer: Arc::new(observe::Observer::new()),
            streams: Arc::new(streams),
            team_gates: Arc::new(team_gate::TeamGates::new(Arc::clone(&waiting))),
            waiting,
            sign_in_starts: Arc::default(),
            api_teams: Arc::default(),
            api: Arc::default(),
            documents: Arc::default(),
        }
    }

    /// The routes and the document of the handlers: made by the first
    /// router, shared by those that replace it.
    fn api(&self) -> &(Router<AppState>, utoipa::openapi::OpenApi) {
        self.api.get_or_init(api)
    }

    /// The served documents of `config`: the last router's when what they
    /// are made of did not move, else made again.
    fn documents(&self, config: &crate::config::Config) -> openapi::Documents {
        let deployment = openapi::Deployment::of(config);
        let mut last = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, documents)) = last.as_ref().filter(|(d, _)| *d == deployment) {
            return documents.clone();
        }
        let documents = deployment.documents(self.api().1.clone(), &raw_schemas());
        *last = Some((deployment, documents.clone()));
        documents
    }

    /// The waiting calls' budget: how many hold a place now.
    pub fn waiting(&self) -> Arc<waiting::Waiting> {
        Arc::clone(&self.waiting)
    }

    /// What an operator's write rings to put the API teams in force.
    pub fn operator_bell(&self) -> Arc<crate::gateway::operator::teams::ApiTeamsBell> {
        Arc::clone(&self.api_teams)
    }
}

/// Set by the server when a write to the connection made no progress for
/// `server.write_timeout` (the connection then ends); each request carries
/// its connection's in its extensions, so an event stream can tell why it
/// was dropped.
#[derive(Clone, Default)]
pub struct WriteTimedOut(Arc<std::sync::atomic::AtomicBool>);

impl WriteTimedOut {
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// All API routes with their OpenAPI description.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(interactions::router())
        .merge(login::router())
        .merge(network::router())
        .merge(code_entry::router())
        .merge(wallet::router())
        .merge(revocation::router())
        .merge(assertion::router())
        .merge(assurance::router())
        .merge(forget::router())
        .merge(challenges::router())
        .merge(subjects::router())
        .merge(ops::router())
        .merge(home::router())
        .merge(events::router())
        .merge(console::router())
        .merge(receipts::router())
        .merge(dialogflow::router())
        .merge(mcp::router())
        .merge(audit::router())
        .merge(operator::router())
        .merge(operator_writes::router())
        .split_for_parts()
}

/// The [`RawSchema`] components of the handlers, by component name: listed
/// here, where the handlers are assembled, so `openapi.rs` imports no
/// handler module.
fn raw_schemas() -> [(&'static str, serde_json::Value); 11] {
    [
        ("TeamForm", operator::TeamForm::json()),
        ("ChannelForm", operator::ChannelForm::json()),
        ("EmptyBody", openapi::EmptyBody::json()),
        ("SubjectText", openapi::SubjectText::json()),
        ("CallbackOutcome", login::CallbackOutcomeSchema::json()),
        ("LoginCallback", login::LoginCallback::json()),
        ("NewChallenge", challenges::NewChallenge::json()),
        (
            "DialogflowParameters",
            dialogflow::DialogflowParameters::json(),
        ),
        ("DialogflowTag", dialogflow::DialogflowTag::json()),
        ("McpMessage", mcp::McpMessage::json()),
        ("McpParams", mcp::McpParams::json()),
    ]
}

/// The OpenAPI document, before [`openapi::Deployment::documents`] fills
/// in the configured channel names and PIN lengths.
pub fn openapi_json() -> String {
    serde_json::to_string_pretty(&openapi::finish(api().1, &raw_schemas())).unwrap_or_default()
}

pub use openapi::down_level::Version as DocumentVersion;

/// The OpenAPI document of `version` for `config`: what
/// `GET /openapi.json?version=` answers and `chatgate openapi` prints
/// (docs/api.md#the-openapi-documents).
pub fn openapi_document(config: &crate::config::Config, version: DocumentVersion) -> String {
    let documents = openapi::Deployment::of(config).documents(api().1, &raw_schemas());
    String::from_utf8_lossy(&documents.get(version)).into_owned()
}

/// The complete application: routes, fallbacks and middleware, for
/// `gateway`'s configuration (API keys, the OpenAPI document); a reload
/// builds another with the same `lasting`.
pub fn router(gateway: Arc<Core>, lasting: &Lasting) -> Router {
    let routes = lasting.api().0.clone();
    let api_keys = ApiKeys::from_config(gateway.config());
    let document = lasting.documents(gateway.config());
    let state = AppState(Arc::new(Shared {
        gateway,
        clock: Arc::clone(&lasting.clock),
        api_keys,
        metrics: lasting.metrics.clone(),
        openapi: document,
        observer: Arc::clone(&lasting.observer),
        streams: Arc::clone(&lasting.streams),
        team_gates: Arc::clone(&lasting.team_gates),
        waiting: Arc::clone(&lasting.waiting),
        sign_in_starts: Arc::clone(&lasting.sign_in_starts),
        api_teams: Arc::clone(&lasting.api_teams),
    }));
    // One middleware (every `from_fn` boxes the rest of the stack per
    // request, so their number is a cost on every answer): `observe` gives
    // the request id, the log line and the metrics of every answer (the
    // deadline's 503 and a panic's 500 too) around `guard`, which holds the
    // rest, see there. (Header and idle timeouts and the connection cap are
    // below the router, in the connection loop; the body timeout is where the
    // body is read, `extract::json_bytes`.)
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// Every unknown path is 404 problem+json, except to a browser under
/// `/l/` (a short link mistyped or cut short): that gets the page.
async fn not_found(
    axum::extract::State(st): axum::extract::State<AppState>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    if uri.path().starts_with("/l/") && pages::wants_html(&headers) {
        let said = pages::Said::of(
            st.gateway.config(),
            None,
            &headers,
            TextKey::PageLinkUnknown,
        );
        return pages::render_said(StatusCode::NOT_FOUND, &said, None);
    }
    Error::NotFound("no such resource").into_response()
}

/// A method a path does not serve is 405; at `/mcp` only past its door
/// and with a valid key (docs/agents.md#who-may-reach-the-server).
async fn method_not_allowed(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: Request,
) -> Response {
    if req.uri().path() == "/mcp" {
        if let Some(res) = mcp::other_method(&st, req).await {
            return res;
        }
    }
    problem::response(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "method not allowed on this path",
    )
}

/// Everything between the request log (`observe`, which calls this) and the
/// handler:
///
/// - a declared body over [`MAX_BODY`] is 413 before any handler reads it;
/// - a state-changing request runs in a task of its own, so that a client
///   hanging up (which drops the request's future) or the deadline cannot
///   stop a use case between two of its steps: a challenge whose delivery
///   failed is rolled back, a commit's events are published, whoever is
///   still waiting. A `GET` or `HEAD` reads (a status, a list, a page, the
///   event stream) or, for an agent's reveal, records its audit event
///   before it answers, so stopping one half-way leaves nothing half-done:
///   it runs in the request's own task. So does a `POST /mcp`: its
///   handler runs a tool that changes something in a task of its own
///   (`mcp::post_mcp`), and what else it does (a tool that reads, a
///   session opened or its use recorded) is one read or one commit;
/// - past [`REQUEST_DEADLINE`] the answer is 503 problem+json, or 502
///   while the request waits on a provider;
/// - a panic is 500 problem+json (the process goes on);
/// - every answer gets its security headers ([`security_headers`]), also
///   the 413, the 503 and the 500.
pub(super) async fn guard(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let sensitive = path.starts_with("/v1/")
        || path.starts_with("/l/")
        || path.starts_with("/oidc/")
        || path == "/mcp";
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut res = if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        // Two hosts: which one a proxy in front believed is anyone's guess.
        refused_head(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "more than one Host header",
        )
    } else if declared.is_some_and(|n| n > max_body(path) as u64) {
        Error::PayloadTooLarge.into_response()
    } else if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) || (req.method() == axum::http::Method::POST && path == "/mcp")
    {
        let waits = Waits::default();
        let answer = waits.scope(catching_panics(next.run(req)));
        within_deadline(REQUEST_DEADLINE, &waits, answer).await
    } else {
        let waits = Waits::default();
        let answer = waits.scope(catching_panics(next.run(req)));
        let task = tokio::spawn(answer.in_current_span());
        within_deadline(REQUEST_DEADLINE, &waits, async {
            task.await.unwrap_or_else(|e| {
                Error::internal_from("the request's task failed", e).into_response()
            })
        })
        .await
    };
    security_headers(sensitive, &mut res);
    res
}

/// The largest body a request to `path` may declare: [`MAX_BODY`], and
/// [`operator_writes::MAX_OPERATOR_BODY`] for an operator's team or channel
/// itself (not its key endpoints) (docs/api.md#errors).
fn max_body(path: &str) -> usize {
    if operator_writes::is_resource_path(path) {
        operator_writes::MAX_OPERATOR_BODY
    } else {
        MAX_BODY
    }
}

/// A panic while answering is a 500 (the panic hook has logged it).
async fn catching_panics(answer: impl std::future::Future<Output = Response>) -> Response {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(answer)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Error::internal("a panic while answering (logged above)").into_response()
        })
}

/// Longest a request may take; past it the answer is 503 problem+json,
/// or 502 while it waits on a provider ([`past_deadline`]). It bounds the
/// work until the answer's head: a streamed body (the live event stream,
/// `events.rs`) is sent after it and is not cut. A request running in its
/// own task goes on to its end.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// `answer`, or past `deadline` what [`past_deadline`] says of the
/// request's `waits`, read while the request still waits.
async fn within_deadline(
    deadline: Duration,
    waits: &Waits,
    answer: impl std::future::Future<Output = Response>,
) -> Response {
    let mut answer = std::pin::pin!(answer);
    tokio::select! {
        res = &mut answer => res,
        () = tokio::time::sleep(deadline) => past_deadline(waits),
    }
}

/// The answer to a request past its deadline: 502 `channel_error` while
/// it waits on a provider (logged naming it), else 503
/// `store_unavailable` (docs/decisions/0102-a-deadline-reached-on-a-provider.md).
fn past_deadline(waits: &Waits) -> Response {
    match waits.provider() {
        Some(p) => {
            tracing::warn!(provider_kind = p.kind, provider = %p.name,
                "the request's deadline passed while it waited on a provider");
            Error::Channel("a provider did not answer in time".into()).into_response()
        }
        None => Error::StoreUnavailable.into_response(),
    }
}

/// Headers by kind of answer, decided on the response, not per handler:
/// every answer `nosniff`; API answers (`/v1/...`) and short links
/// (`sensitive`) `Cache-Control: no-store` (they carry codes, tokens,
/// customer data); HTML answers also a strict CSP (unless the handler set
/// one of its own: the console loads its own script), no framing and no
/// referrer.
fn security_headers(sensitive: bool, res: &mut Response) {
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.trim_start().get(..9))
        .is_some_and(|ct| ct.eq_ignore_ascii_case("text/html"));
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if sensitive || html {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if html {
        // A page with a policy of its own (the console's) keeps it; the
        // others load nothing, run no script and submit nothing.
        if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
            h.insert(header::CONTENT_SECURITY_POLICY, pages::Csp::page().clone());
        }
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
}

/// The answer to a request head the server will not take (431 with a
/// duplicate `Host` or over 16 KiB, 400 malformed); it closes the
/// connection. The server writes it in place of hyper's own body-less
/// refusals, so it carries its headers itself.
pub(crate) fn refused_head(status: StatusCode, detail: &str) -> Response {
    let mut res = problem::response(status, "invalid_request", detail);
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The answer to a connection over `server.max_connections` (built outside
/// the router, so it carries its headers itself).
pub(crate) fn overloaded() -> Response {
    let mut res = problem::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many open connections; try again shortly",
    );
    let h = res.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose deadline passes: status and problem `code`.
    async fn past(
        answer: impl std::future::Future<Output = Response>,
        waits: &Waits,
    ) -> (u16, String) {
        let res = within_deadline(Duration::from_millis(50), waits, waits.scope(answer)).await;
        let status = res.status().as_u16();
        let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            status,
            problem["code"].as_str().unwrap_or_default().to_string(),
        )
    }

    #[tokio::test]
    async fn a_deadline_reached_on_a_provider_is_502_and_on_the_store_503() {
        let hung = std::future::pending::<Response>;
        let waits = Waits::default();
        let on_provider = crate::waits::on_provider("twilio", "sms", hung());
        assert_eq!(
            past(on_provider, &waits).await,
            (502, "channel_error".into())
        );
        let waits = Waits::default();
        assert_eq!(
            past(hung(), &waits).await,
            (503, "store_unavailable".into())
        );
        // The provider answered; then the store hung.
        let waits = Waits::default();
        let after = async {
            crate::waits::on_provider("twilio", "sms", async {}).await;
            hung().await
        };
        assert_eq!(past(after, &waits).await, (503, "store_unavailable".into()));
    }
}
