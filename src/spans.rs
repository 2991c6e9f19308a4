//! The spans the gateway makes for traces (docs/operations.md#traces): the
//! server span of a request, the client span of every outbound HTTP call
//! ([`send`], which every provider, identity-provider and webhook client
//! uses), the store commit; and the W3C `traceparent` read in and sent out.
//! While traces are off (no collector configured) nothing here makes a
//! span: [`on`] is one atomic load. What a span may carry is decided in one
//! place, `telemetry::traces::ALLOWED`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::trace::TraceContextExt;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every span meant for traces: only these reach
/// the exporter, and the log lines leave them out.
pub const TARGET: &str = "chatgate::trace";

static ON: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported (set once at start-up by `telemetry`).
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Turns span making on; called when the exporter is installed.
pub fn turn_on() {
    ON.store(true, Ordering::Relaxed);
}

/// The trace id (32 hex digits) of the current span, while traces are on
/// and a span of this module is current.
pub fn trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    if !on() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

/// Turns span making off again (the load test's untraced rows).
pub fn turn_off() {
    ON.store(false, Ordering::Relaxed);
}

/// The server span of one request, named `{METHOD} {route}` (`{METHOD}`
/// alone when no route matched), and the caller's `traceparent`, kept
/// aside: the span continues the caller's trace only once a valid API key
/// vouches for the caller ([`RemoteParent::adopt`]); otherwise it is a
/// root, sampled by the ratio, that links the caller's span
/// ([`RemoteParent::link_unadopted`]), so that a stranger's header cannot
/// force a trace to be exported
/// (docs/decisions/0214-a-stranger-s-traceparent-is-a-link.md).
/// `http.response.status_code` and `chatgate.team` are recorded at the end.
pub fn server(
    method: &'static str,
    route: Option<&str>,
    headers: &HeaderMap,
) -> (tracing::Span, RemoteParent) {
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(target: TARGET, "request",
        otel.name = name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        chatgate.team = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // A `traceparent` that does not parse leaves a fresh root, and nothing
    // to adopt or link.
    let valid = parent.span().span_context().is_valid();
    let remote = RemoteParent(Arc::new(Mutex::new(valid.then(|| (span.clone(), parent)))));
    (span, remote)
}

/// A request's `traceparent`, until its caller is known: adopted as the
/// parent of the request's span when a valid API key vouches for the
/// caller, else a link of it. The request's span starts only when
/// something needs it (a child span, its context for a log line, its end;
/// the trace layer does not start a span when it is entered), so a key
/// checked before anything else is in time to name its parent.
#[derive(Clone, Default)]
pub struct RemoteParent(Arc<Mutex<Option<(tracing::Span, opentelemetry::Context)>>>);

impl RemoteParent {
    fn take(&self) -> Option<(tracing::Span, opentelemetry::Context)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The caller presented a valid API key: the request's span continues
    /// its trace (same trace id, its span as parent, its sampled flag
    /// obeyed), unless the span has started already (it then stays a root
    /// that links the caller's span).
    pub fn adopt(&self) {
        if let Some((span, parent)) = self.take() {
            let linked = parent.span().span_context().clone();
            if span.set_parent(parent).is_err() {
                span.add_link(linked);
            }
        }
    }

    /// At the request's end: a `traceparent` no key vouched for is only a
    /// link of the request's span, which is a root of its own trace.
    pub fn link_unadopted(&self) {
        if let Some((span, parent)) = self.take() {
            span.add_link(parent.span().span_context().clone());
        }
    }
}

/// Records the answer's status on a server or client span.
pub fn record_status(span: &tracing::Span, status: u16) {
    // An i64: the OpenTelemetry layer writes a u64 as text.
    span.record("http.response.status_code", i64::from(status));
}

/// Records the team on a server span.
pub fn record_team(span: &tracing::Span, team: &str) {
    span.record("chatgate.team", team);
}

/// The span of one store commit (a unit of work's compare-and-set).
pub fn commit() -> tracing::Span {
    if on() {
        tracing::info_span!(target: TARGET, "store commit", otel.kind = "internal")
    } else {
        tracing::Span::none()
    }
}

/// The span of background work (an outbox delivery, a sweep), the parent
/// of the client spans it makes. `name` is a fixed text.
pub fn background(name: &'static str) -> tracing::Span {
    if on() {
        tracing::info_span!(target: TARGET, "background", otel.name = name, otel.kind = "internal")
    } else {
        tracing::Span::none()
    }
}

/// Sends `request` as [`reqwest::RequestBuilder::send`] does; while traces
/// are on, inside a client span (`{METHOD}`, with `http.request.method`,
/// `server.address` and `http.response.status_code`) whose context goes
/// out as the `traceparent` header. Every outbound HTTP call goes through
/// here, and is a wait on its host for the request it is made in
/// ([`crate::waits::on_provider`]).
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let (client, request) = request.build_split();
    let request = request?;
    let host = request.url().host_str().unwrap_or_default().to_string();
    crate::waits::on_provider("http", &host, execute(client, request)).await
}

async fn execute(
    client: reqwest::Client,
    mut request: reqwest::Request,
) -> reqwest::Result<reqwest::Response> {
    if !on() {
        return client.execute(request).await;
    }
    let method = method_name(request.method());
    let span = tracing::info_span!(target: TARGET, "client",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        server.address = request.url().host_str().unwrap_or(""),
        http.response.status_code = Empty,
    );
    TraceContextPropagator::new()
        .inject_context(&span.context(), &mut Headers(request.headers_mut()));
    let answer = client.execute(request).instrument(span.clone()).await;
    if let Ok(response) = &answer {
        record_status(&span, response.status().as_u16());
    }
    answer
}

/// [`send`] as a method: `request.send_traced()` where it was `.send()`.
pub trait SendTraced {
    fn send_traced(
        self,
    ) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send;
}

impl SendTraced for reqwest::RequestBuilder {
    fn send_traced(
        self,
    ) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send {
        send(self)
    }
}

/// A standard HTTP method's name (`None`: any other token, which a client
/// may choose freely): the one list the request spans, the client spans and
/// the request metrics label methods by.
pub fn standard_method(m: &reqwest::Method) -> Option<&'static str> {
    Some(match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => return None,
    })
}

/// A client span's method: the standard ones by name, any other as
/// `_OTHER` (semantic conventions).
fn method_name(m: &reqwest::Method) -> &'static str {
    standard_method(m).unwrap_or("_OTHER")
}

/// Header access for the W3C propagator, both ways.
struct Headers<H>(H);

impl Extractor for Headers<&HeaderMap> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

impl Injector for Headers<&mut HeaderMap> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
