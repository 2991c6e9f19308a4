//! One middleware for what an operator sees of each request: its
//! `x-request-id` (a client's own kept when sane, else a new one), one log
//! line, and the two HTTP metric families. It runs outermost, so the line
//! and the metrics also cover the deadline's 503 and a panic's 500.
//!
//! Per request it allocates little: the route label is the router's
//! template (`MatchedPath`, borrowed), the method and status labels come
//! from fixed tables, and the metric handles of each (route, method,
//! status) are made once and kept. A `tracing` span is made only when
//! traces are on (the request's server span, `crate::spans::server`) or
//! `debug` is; the log line carries its fields itself.
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram, SharedString};
use tracing::{Instrument, Level};

use super::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-chosen request id kept.
const MAX_REQUEST_ID: usize = 128;

/// The route label of a request no route matched.
pub(super) const UNMATCHED: &str = "unmatched";

/// The problem `code` of an error answer, put there by `problem.rs`.
#[derive(Clone, Copy, Debug)]
pub struct ProblemLabel(pub &'static str);

/// The team an API key named, set by the `Caller` extractor.
#[derive(Clone, Default)]
pub struct TeamSlot(Arc<OnceLock<Arc<str>>>);

impl TeamSlot {
    pub fn set(&self, team: &Arc<str>) {
        let _ = self.0.set(Arc::clone(team));
    }
}

/// What the middleware keeps between requests.
#[derive(Default)]
pub struct Observer {
    series: RwLock<HashMap<Box<str>, ByMethodAndStatus>>,
}

/// The metric handles of one route.
type ByMethodAndStatus = HashMap<(&'static str, u16), Series>;

/// The metric handles of one (route, method, status).
#[derive(Clone)]
struct Series {
    requests: Counter,
    duration: Histogram,
}

impl Observer {
    pub fn new() -> Self {
        Observer::default()
    }

    /// 128 random bits in hex: unique, and unlike a counter they tell
    /// nothing of how many requests the gateway answers.
    fn new_request_id(&self) -> HeaderValue {
        let mut id = [0u8; 32];
        let _ = hex::encode_to_slice(rand::random::<u128>().to_be_bytes(), &mut id);
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
    }

    fn record(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        let key = (method, status);
        if let Ok(series) = self.series.read() {
            if let Some(s) = series.get(route).and_then(|by| by.get(&key)) {
                s.requests.increment(1);
                s.duration.record(seconds);
                return;
            }
        }
        let s = Series::new(route, method, status);
        s.requests.increment(1);
        s.duration.record(seconds);
        if let Ok(mut series) = self.series.write() {
            series.entry(route.into()).or_default().insert(key, s);
        }
    }
}

impl Series {
    fn new(route: &str, method: &'static str, status: u16) -> Self {
        let route = SharedString::from(route.to_owned());
        let status = SharedString::const_str(status_label(status));
        Series {
            requests: metrics::counter!("chatgate_http_requests_total",
                "route" => route.clone(), "method" => method, "status" => status.clone()),
            duration: metrics::histogram!("chatgate_http_request_duration_seconds",
                "route" => route, "method" => method, "status" => status),
        }
    }
}

/// A request id from a client is kept when it is 1 to 128 visible ASCII
/// characters (it goes into our log lines as is).
fn sane(id: &HeaderValue) -> bool {
    let b = id.as_bytes();
    !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(|c| c.is_ascii_graphic())
}

/// Probes and scrapes log at `debug`: they would flood `info`.
fn is_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// The request's id: the caller's when sane, else a new one, set on the
/// request.
fn request_id_of(st: &AppState, req: &mut Request) -> HeaderValue {
    match req.headers().get(REQUEST_ID) {
        Some(v) if sane(v) => v.clone(),
        _ => {
            let v = st.observer.new_request_id();
            req.headers_mut().insert(REQUEST_ID, v.clone());
            v
        }
    }
}

pub(super) async fn observe(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id_of(&st, &mut req);
    let team = TeamSlot::default();
    req.extensions_mut().insert(team.clone());
    let caller = super::denials::CallerSlot::default();
    req.extensions_mut().insert(caller.clone());
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let method = method_label(req.method());
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let request_id = id.to_str().unwrap_or("-");

    // With traces on, the request is a server span (`crate::spans`);
    // `guard` runs inside this middleware rather than as a layer of its own
    // (a layer boxes the rest of the stack again per request).
    let traced = crate::spans::on().then(|| {
        crate::spans::server(
            method,
            matched.as_ref().map(MatchedPath::as_str),
            req.headers(),
        )
    });
    if let Some((_, remote)) = &traced {
        req.extensions_mut().insert(remote.clone());
    }
    let path_team = traced
        .as_ref()
        .and_then(|_| team_in_path(&st, route, req.uri().path()));
    let res = if let Some((span, _)) = &traced {
        super::guard(req, next).instrument(span.clone()).await
    } else if tracing::enabled!(Level::DEBUG) {
        let span = tracing::debug_span!("request", method, route, request_id);
        super::guard(req, next).instrument(span).await
    } else {
        super::guard(req, next).await
    };
    let mut res = super::denials::record_denial(&st, &caller, (peer, request_id), route, res).await;

    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    st.observer
        .record(route, method, status, elapsed.as_secs_f64());
    let code = res.extensions().get::<ProblemLabel>().map(|c| c.0);
    let team = team.0.get().map(|t| &**t).or(path_team);
    let latency_ms = elapsed.as_micros() as f64 / 1000.0;
    // The bot an OAuth access token acted as is named: no key id is.
    let actor = caller.oauth_actor();
    // The line is written inside the span, so that it carries the trace id.
    let _inside = traced.as_ref().map(|(span, remote)| {
        remote.link_unadopted();
        crate::spans::record_status(span, status);
        if let Some(team) = team {
            crate::spans::record_team(span, team);
        }
        span.enter()
    });
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level, method, route, status, latency_ms, request_id, team, code, actor, "request"
            )
        };
    }
    if is_probe(route) {
        line!(Level::DEBUG);
    } else {
        line!(Level::INFO);
    }
    drop(_inside);
    res.headers_mut().insert(REQUEST_ID, id);
    res
}

/// The team a route names in its path (`{team}`), when it is one the
/// gateway serves: nothing a caller made up reaches a span or a line.
fn team_in_path<'a>(st: &'a AppState, route: &str, path: &str) -> Option<&'a str> {
    let at = route.split('/').position(|s| s == "{team}")?;
    let named = path.split('/').nth(at)?;
    st.gateway.team(named).ok().map(|t| t.id.as_str())
}

/// The label of a request's method: the standard ones by name, any other
/// token (the client chooses it, of any length) as `OTHER`.
pub(super) fn method_label(m: &Method) -> &'static str {
    crate::spans::standard_method(m).unwrap_or("OTHER")
}

/// The status label without formatting: the codes the gateway answers by
/// name, any other as its class.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        301 => "301",
        302 => "302",
        303 => "303",
        304 => "304",
        307 => "307",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        408 => "408",
        409 => "409",
        410 => "410",
        413 => "413",
        415 => "415",
        422 => "422",
        423 => "423",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_codes_or_classes() {
        assert_eq!(status_label(401), "401");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
    }

    #[test]
    fn request_ids_are_unique_and_a_clients_is_kept_only_when_sane() {
        let o = Observer::new();
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| o.new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        // Random, not counted: two in a row share no running prefix.
        let (a, b) = (o.new_request_id(), o.new_request_id());
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a[..16], b[..16]);
        assert!(sane(&HeaderValue::from_static("abc-123")));
        assert!(!sane(&HeaderValue::from_static("")));
        assert!(!sane(&HeaderValue::from_static("a b")));
        assert!(!sane(&HeaderValue::from_str(&"x".repeat(129)).unwrap()));
    }
}
