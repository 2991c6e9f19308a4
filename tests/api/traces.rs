//! Traces as an OpenTelemetry collector sees them (docs/operations.md#traces):
//! the built binary on a copy of the sample config exports to an OTLP/HTTP
//! receiver inside this test (protobuf decoded with the `opentelemetry-proto`
//! message types). A login flow is one set of named spans with their kinds,
//! attributes and parents; the caller's `traceparent` is continued and the
//! chat provider receives one naming its client span; no secret is in any
//! exported byte; every route is walked for the same; a dead or slow
//! collector changes no answer.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// The sample's demo keys (config/teams/acme.toml, channels/webchat.toml).
const BOT: &str = "cg_djRSRR9F41FRU8gFK4JrTzIA1JXE01jqi4-eFPhRuL0";
const ACME_SECURITY_KEY: &str = "whsec_6yMOl42yXWjpdtQC5cxtwpr47Y08xgEMAwKe1oMMbuQ=";
const WEBCHAT_SECRET: &str = "whsec_DU8MdjTcex0sy3SAMNC0X1CPt4xn/svdypJayVSMcJs=";

/// What the receiver does with an export.
#[derive(Clone, Copy)]
enum Answer {
    Take,
    /// Holds every export this long before answering.
    Hang(Duration),
}

/// An OTLP/HTTP receiver: every span it was sent, and every byte.
#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    raw: Arc<Mutex<Vec<u8>>>,
    exports: Arc<Mutex<usize>>,
}

struct Collector {
    endpoint: String,
    got: Received,
}

impl Collector {
    async fn start(answer: Answer) -> Collector {
        let got = Received::default();
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                post(move |State(got): State<Received>, body: Bytes| async move {
                    *got.exports.lock().unwrap() += 1;
                    if let Answer::Hang(d) = answer {
                        tokio::time::sleep(d).await;
                    }
                    got.raw.lock().unwrap().extend_from_slice(&body);
                    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let mut spans = got.spans.lock().unwrap();
                    for rs in req.resource_spans {
                        let service = rs
                            .resource
                            .as_ref()
                            .and_then(|r| text(&r.attributes, "service.name"))
                            .unwrap_or_default();
                        for ss in rs.scope_spans {
                            for span in ss.spans {
                                spans.push((service.clone(), span));
                            }
                        }
                    }
                    StatusCode::OK
                }),
            )
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector {
            endpoint: format!("http://{addr}"),
            got,
        }
    }

    /// Waits (up to 15 s) until `enough` holds of the spans received.
    async fn wait_for(&self, what: &str, enough: impl Fn(&[(String, Span)]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            {
                let spans = self.got.spans.lock().unwrap();
                if enough(&spans) {
                    return spans.iter().map(|(_, s)| s.clone()).collect();
                }
                if Instant::now() > deadline {
                    panic!(
                        "{what}: received {:#?}",
                        spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn value(attrs: &[KeyValue], key: &str) -> Option<AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match value(attrs, key) {
        Some(AnyValue::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match value(attrs, key) {
        Some(AnyValue::IntValue(i)) => Some(i),
        _ => None,
    }
}

fn keys(span: &Span) -> Vec<&str> {
    let mut k: Vec<&str> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
    k.sort();
    k
}

/// The spans as trees, one line each (`--nocapture` shows them).
fn print_tree(spans: &[Span]) {
    fn line(s: &Span, depth: usize) {
        let attrs: Vec<String> = s
            .attributes
            .iter()
            .map(|kv| {
                format!(
                    "{}={:?}",
                    kv.key,
                    kv.value.as_ref().and_then(|v| v.value.clone())
                )
            })
            .collect();
        let kind = SpanKind::try_from(s.kind).map_or("?", |k| k.as_str_name());
        eprintln!(
            "{}{} [{kind}] {}",
            "  ".repeat(depth),
            s.name,
            attrs.join(" ")
        );
    }
    fn walk(spans: &[Span], parent: &Span, depth: usize) {
        line(parent, depth);
        for s in spans.iter().filter(|s| s.parent_span_id == parent.span_id) {
            walk(spans, s, depth + 1);
        }
    }
    let ids: std::collections::HashSet<&[u8]> =
        spans.iter().map(|s| s.span_id.as_slice()).collect();
    for root in spans
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_slice()))
    {
        eprintln!(
            "trace {} (remote parent {:?})",
            hex::encode(&root.trace_id),
            hex::encode(&root.parent_span_id)
        );
        walk(spans, root, 1);
    }
}

/// The gateway binary on a copy of the sample config whose website chat
/// posts to `chat`, with `env`.
struct Gateway {
    child: std::process::Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
    _dir: std::path::PathBuf,
}

impl Gateway {
    async fn start(chat: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_edited(chat, env, |_, body| body).await
    }

    /// [`Gateway::start`] with each copied file's text passed through
    /// `edit` (its path in the sample, its text).
    async fn start_edited(
        chat: &str,
        env: &[(&str, &str)],
        edit: impl Fn(&std::path::Path, String) -> String,
    ) -> Gateway {
        let dir = std::env::temp_dir().join(format!("chatgate-traces-{}", uuid::Uuid::now_v7()));
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for sub in ["config", "config/teams", "channels"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for entry in std::fs::read_dir(root.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let mut body = std::fs::read_to_string(&path).unwrap();
                    if path.ends_with("channels/webchat.toml") {
                        body = body.replace("http://127.0.0.1:9000/chatgate", chat);
                    }
                    let body = edit(&path, body);
                    std::fs::write(dir.join(sub).join(path.file_name().unwrap()), body).unwrap();
                }
            }
        }
        // A port picked free can be taken by another test before the
        // gateway binds it: then another port, up to three.
        for _ in 0..3 {
            if let Some(gw) = Self::spawn(&dir, env).await {
                return gw;
            }
        }
        panic!("three ports picked free were taken before the gateway bound them");
    }

    /// The gateway on a port picked free, once it logs that it listens;
    /// `None` when the port was taken meanwhile.
    async fn spawn(dir: &std::path::Path, env: &[(&str, &str)]) -> Option<Gateway> {
        use std::io::BufRead;
        let listen = format!("127.0.0.1:{}", free_port());
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"));
        cmd.args(["serve", "--config"])
            .arg(dir.join("config/chatgate.toml"))
            .env("CHATGATE_SERVER__LISTEN", &listen)
            .env("CHATGATE_SERVER__SHUTDOWN_DRAIN", "0s")
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("CHATGATE_SERVER__LOG_FORMAT")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the built binary runs");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let gw = Gateway {
            child,
            base: format!("http://{listen}"),
            stderr,
            _dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !gw.lines().iter().any(|l| l.contains("chatgate listening")) {
            if gw
                .lines()
                .iter()
                .any(|l| l.contains("Address already in use"))
            {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "not listening: {:#?}",
                gw.lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(gw)
    }

    fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store of a run: memory, or Redis under a fresh prefix (`None` when
/// no Redis answers).
async fn store_env(backend: Backend) -> Option<Vec<(&'static str, String)>> {
    match backend {
        Backend::Memory => Some(vec![]),
        Backend::Redis => {
            if !redis_available().await {
                return None;
            }
            Some(vec![
                ("CHATGATE_STORE__BACKEND", "redis".into()),
                (
                    "CHATGATE_STORE__REDIS_URL",
                    crate::redis_support::redis_url(),
                ),
                (
                    "CHATGATE_STORE__KEY_PREFIX",
                    format!("chatgate-traces-{}", uuid::Uuid::now_v7()),
                ),
            ])
        }
    }
}

/// A signed login callback, as the login page sends it.
async fn callback(client: &reqwest::Client, gw: &Gateway, body: &Value) -> reqwest::Response {
    let key = base64::engine::general_purpose::STANDARD
        .decode(ACME_SECURITY_KEY.trim_start_matches("whsec_"))
        .unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let signature = chatgate::domain::webhook_sig::sign(&key, &id, ts, &bytes);
    client
        .post(gw.url("/v1/login/callback"))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn a_login_flow_is_one_traced_story(backend: Backend) {
    let Some(store) = store_env(backend).await else {
        return;
    };
    let collector = Collector::start(Answer::Take).await;
    let chat = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&chat)
        .await;
    let mut env: Vec<(&str, &str)> = store.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint));
    let gw = Gateway::start(&format!("{}/chatgate", chat.uri()), &env).await;
    let client = reqwest::Client::new();

    // The bot's own trace: its span is the parent of ours.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let conversation = "conv-4711-secret";
    let customer = "cust-0815-secret";
    let created: Value = client
        .post(gw.url("/v1/interactions"))
        .bearer_auth(BOT)
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&json!({"channel": "webchat", "conversation_id": conversation}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let link: Value = client
        .post(gw.url(&format!("/v1/interactions/{id}/login-links")))
        .bearer_auth(BOT)
        .json(&json!({"deliver": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(link["delivered"], true, "{link}");
    let token = link["token"].as_str().unwrap().to_string();
    let short = link["short_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let res = callback(
        &client,
        &gw,
        &json!({"token": token, "outcome": "success", "customer": {"id": customer}}),
    )
    .await;
    assert_eq!(res.status(), 200);

    // Three requests, two chat messages (the link, then the notice).
    let spans = collector
        .wait_for("the flow's spans", |s| {
            let named = |n: &str| s.iter().filter(|(_, sp)| sp.name == n).count();
            named("POST /v1/interactions") >= 1
                && named("POST /v1/interactions/{id}/login-links") >= 1
                && named("POST /v1/login/callback") >= 1
                && s.iter()
                    .filter(|(_, sp)| sp.kind == SpanKind::Client as i32)
                    .count()
                    >= 2
        })
        .await;
    print_tree(&spans);
    let services: Vec<String> = collector
        .got
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert!(services.iter().all(|s| s == "chatgate"), "{services:?}");
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    let one = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };

    // The create continues the bot's trace under the bot's span.
    let create = one("POST /v1/interactions");
    assert_eq!(create.kind, SpanKind::Server as i32);
    assert_eq!(hex::encode(&create.trace_id), caller_trace);
    assert_eq!(hex::encode(&create.parent_span_id), caller_span);
    assert_eq!(
        keys(create),
        [
            "chatgate.team",
            "http.request.method",
            "http.response.status_code",
            "http.route"
        ]
    );
    assert_eq!(
        text(&create.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        text(&create.attributes, "http.route").as_deref(),
        Some("/v1/interactions")
    );
    assert_eq!(
        int(&create.attributes, "http.response.status_code"),
        Some(201)
    );
    assert_eq!(
        text(&create.attributes, "chatgate.team").as_deref(),
        Some("acme")
    );

    // The link's delivery is a client span of the link's request, and the
    // chat got a traceparent naming that client span.
    let issue = one("POST /v1/interactions/{id}/login-links");
    assert_ne!(
        issue.trace_id, create.trace_id,
        "a request without traceparent starts a trace"
    );
    assert!(issue.parent_span_id.is_empty(), "a root span");
    assert_eq!(
        int(&issue.attributes, "http.response.status_code"),
        Some(201)
    );
    let clients: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    let link_send = clients
        .iter()
        .find(|c| c.parent_span_id == issue.span_id)
        .expect("the link's send is a child of its request");
    assert_eq!(link_send.trace_id, issue.trace_id);
    assert_eq!(link_send.name, "POST");
    assert_eq!(
        keys(link_send),
        [
            "http.request.method",
            "http.response.status_code",
            "server.address"
        ]
    );
    assert_eq!(
        text(&link_send.attributes, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        int(&link_send.attributes, "http.response.status_code"),
        Some(200)
    );

    // The callback: no caller's team, a store commit under it; the notice
    // goes out from the outbox, a client span under its delivery's span.
    let cb = one("POST /v1/login/callback");
    assert_eq!(
        keys(cb),
        [
            "http.request.method",
            "http.response.status_code",
            "http.route"
        ]
    );
    assert!(
        spans
            .iter()
            .any(|s| s.name == "store commit" && s.parent_span_id == cb.span_id),
        "the callback's commit is a span under it"
    );
    let notice_send = clients
        .iter()
        .find(|c| c.span_id != link_send.span_id)
        .expect("the notice's send");
    let delivery = by_id
        .get(&notice_send.parent_span_id)
        .expect("the notice's send has a parent span");
    assert_eq!(delivery.name, "outbox delivery");
    assert_eq!(delivery.kind, SpanKind::Internal as i32);

    // Every message the chat got names a client span in its traceparent.
    let sent = chat.received_requests().await.unwrap();
    assert_eq!(sent.len(), 2, "the link and the notice");
    for message in &sent {
        let tp = message
            .headers
            .get("traceparent")
            .expect("traceparent sent")
            .to_str()
            .unwrap();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert!(
            clients.iter().any(
                |c| hex::encode(&c.trace_id) == parts[1] && hex::encode(&c.span_id) == parts[2]
            ),
            "{tp} names a client span"
        );
        assert_eq!(parts[3], "01", "sampled");
    }

    // Nothing secret in any byte the collector got.
    let raw = collector.got.raw.lock().unwrap().clone();
    for secret in [
        token.as_str(),
        short.as_str(),
        BOT,
        &BOT[3..],
        ACME_SECURITY_KEY,
        WEBCHAT_SECRET,
        conversation,
        customer,
        id.as_str(),
    ] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} was exported"
        );
    }
    for left_out in ["url.path", "url.query", "url.full", "code.", "thread."] {
        assert!(
            !raw.windows(left_out.len())
                .any(|w| w == left_out.as_bytes()),
            "{left_out} was exported"
        );
    }

    // The request's log line carries its trace id.
    let lines = gw.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("route=\"/v1/interactions\"")
                && l.contains(&format!("trace_id={caller_trace}"))),
        "{lines:#?}"
    );
    if backend == Backend::Redis {
        delete_prefix(store[2].1.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flow_is_one_traced_story_memory() {
    a_login_flow_is_one_traced_story(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flow_is_one_traced_story_redis() {
    a_login_flow_is_one_traced_story(Backend::Redis).await;
}

/// A `traceparent` that says "not sampled" is obeyed, and `sample_ratio`
/// 0.0 samples no new trace; an unsampled call still carries a trace id in
/// its log line and sends its traceparent on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_follows_the_caller_then_the_ratio() {
    let collector = Collector::start(Answer::Take).await;
    let gw = Gateway::start(
        "http://127.0.0.1:9/chatgate",
        &[
            ("CHATGATE_TELEMETRY__OTLP_ENDPOINT", &collector.endpoint),
            ("CHATGATE_TELEMETRY__SAMPLE_RATIO", "0.0"),
            ("OTEL_SERVICE_NAME", "gateway-eu"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let sampled = "0af7651916cd43dd8448eb211c80319c";
    for (trace, flags) in [(sampled, "01"), ("1af7651916cd43dd8448eb211c80319c", "00")] {
        let res = client
            .get(gw.url("/v1/interactions/nope"))
            .bearer_auth(BOT)
            .header(
                "traceparent",
                format!("00-{trace}-b7ad6b7169203331-{flags}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    // Not sampled by the ratio (no traceparent).
    client.get(gw.url("/healthz")).send().await.unwrap();
    let spans = collector
        .wait_for("the sampled request", |s| !s.is_empty())
        .await;
    // Give the batch another second: nothing else may arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = collector.got.spans.lock().unwrap().clone();
    assert_eq!(
        all.len(),
        1,
        "{:#?}",
        all.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
    );
    assert_eq!(all[0].0, "gateway-eu");
    assert_eq!(hex::encode(&spans[0].trace_id), sampled);
    assert_eq!(spans[0].name, "GET /v1/interactions/{id}");
    assert_eq!(
        int(&spans[0].attributes, "http.response.status_code"),
        Some(404)
    );
}

/// A stranger's sampled `traceparent` forces nothing: with `sample_ratio`
/// 0.0, requests without a valid API key export no span under its trace
/// id, whatever it says; a request with a key continues its caller's
/// sampled trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_caller_with_a_key_makes_its_traceparent_count() {
    let collector = Collector::start(Answer::Take).await;
    let gw = Gateway::start(
        "http://127.0.0.1:9/chatgate",
        &[
            ("CHATGATE_TELEMETRY__OTLP_ENDPOINT", &collector.endpoint),
            ("CHATGATE_TELEMETRY__SAMPLE_RATIO", "0.0"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let stranger = "5bf92f3577b34da6a3ce929d0e0e4736";
    let header = |trace: &str| format!("00-{trace}-00f067aa0ba902b7-01");
    // No key, a wrong key, a route that takes none.
    let res = client
        .post(gw.url("/v1/interactions"))
        .header("traceparent", header(stranger))
        .json(&json!({"channel": "webchat", "conversation_id": "c-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(gw.url("/v1/interactions/nope"))
        .bearer_auth("cg_not_a_key_of_this_gateway")
        .header("traceparent", header(stranger))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(gw.url("/l/neverissued0000000000000000"))
        .header("traceparent", header(stranger))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // The bot's own trace.
    let keyed = "6bf92f3577b34da6a3ce929d0e0e4736";
    let res = client
        .get(gw.url("/v1/interactions/nope"))
        .bearer_auth(BOT)
        .header("traceparent", header(keyed))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    collector
        .wait_for("the keyed request", |s| !s.is_empty())
        .await;
    // Give the batch another second: nothing else may arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = collector.got.spans.lock().unwrap().clone();
    let traces: Vec<String> = all.iter().map(|(_, s)| hex::encode(&s.trace_id)).collect();
    assert_eq!(traces, [keyed], "only the keyed request's span");
    assert_eq!(hex::encode(&all[0].1.parent_span_id), "00f067aa0ba902b7");
}

#[tokio::test]
async fn a_sample_ratio_outside_zero_to_one_refuses_to_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["serve", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/chatgate.toml"))
        .env("CHATGATE_TELEMETRY__SAMPLE_RATIO", "1.5")
        .env(
            "CHATGATE_SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("telemetry.sample_ratio") && stderr.contains("between 0.0 and 1.0"),
        "{stderr}"
    );
}

/// Every route of the served document, with secrets in its path, query,
/// headers and body: no span carries any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_puts_a_secret_in_a_span() {
    let collector = Collector::start(Answer::Take).await;
    let gw = Gateway::start(
        "http://127.0.0.1:9/chatgate",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)],
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let doc: Value = client
        .get(gw.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let phone = "+14155550123";
    let email = "jane.doe@example.com";
    let code = "SECRETCODE123";
    let mut sent = 0usize;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .split('/')
            .enumerate()
            .map(|(i, seg)| {
                if seg.starts_with('{') {
                    [phone, email, code][i % 3].to_string()
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for verb in ops.as_object().unwrap().keys() {
            let Ok(m) = reqwest::Method::from_bytes(verb.to_uppercase().as_bytes()) else {
                continue;
            };
            if m == reqwest::Method::GET && path == "/v1/events" {
                continue; // a live stream never ends
            }
            let res = client
                .request(
                    m,
                    gw.url(&format!(
                        "{concrete}?token={code}&email={email}&phone={phone}"
                    )),
                )
                .bearer_auth(BOT)
                .header(
                    "traceparent",
                    "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .json(&json!({"customer_ref": phone, "email": email, "code": code, "token": code}))
                .send()
                .await
                .unwrap();
            assert!(
                res.status().as_u16() < 500 || res.status() == 503,
                "{path} {verb}"
            );
            sent += 1;
        }
    }
    assert!(sent > 20, "{sent} routes walked");
    collector
        .wait_for("a server span per request", |s| {
            s.iter()
                .filter(|(_, sp)| sp.kind == SpanKind::Server as i32)
                .count()
                >= sent
        })
        .await;
    let raw = collector.got.raw.lock().unwrap().clone();
    for secret in [
        phone,
        email,
        code,
        BOT,
        &BOT[3..],
        "14155550123",
        "jane.doe",
    ] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} was exported"
        );
    }
}

/// Requests answered with no collector behind the endpoint, or with one
/// that never answers: the same answers, the spans dropped and counted.
async fn answers_unchanged_with(endpoint: &str) -> Gateway {
    let gw = Gateway::start(
        "http://127.0.0.1:9/chatgate",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)],
    )
    .await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let url = gw.url("/v1/interactions/nope");
        tasks.push(tokio::spawn(async move {
            for _ in 0..400 {
                let res = client.get(&url).bearer_auth(BOT).send().await.unwrap();
                assert_eq!(res.status(), 404);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 3,200 requests answered while the collector held its first export.
    assert!(started.elapsed() < Duration::from_secs(60));
    let dropped = async {
        loop {
            let metrics = client
                .get(gw.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let n = metrics
                .lines()
                .find_map(|l| l.strip_prefix("chatgate_trace_spans_dropped_total "))
                .and_then(|n| n.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            if n > 0.0 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let n = tokio::time::timeout(Duration::from_secs(20), dropped)
        .await
        .expect("dropped spans are counted");
    assert!(n > 0.0);
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_changes_no_answer() {
    let gw = answers_unchanged_with(&format!("http://127.0.0.1:{}", free_port())).await;
    assert!(
        gw.lines()
            .iter()
            .any(|l| l.contains("the trace collector does not take spans")),
        "{:#?}",
        gw.lines()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_collector_changes_no_answer() {
    let collector = Collector::start(Answer::Hang(Duration::from_secs(120))).await;
    answers_unchanged_with(&collector.endpoint).await;
    assert!(
        *collector.got.exports.lock().unwrap() >= 1,
        "the collector was called"
    );
    assert!(
        collector.got.spans.lock().unwrap().is_empty(),
        "and never answered"
    );
}

/// An OTP by SMS whose number a Twilio Lookup checks, traced and logged at
/// debug: the check is a client span (method, host, status), and neither
/// an exported byte nor a log line holds the number in any form — the
/// lookup's URL holds it, and no span records a URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_check_puts_the_number_in_no_span_and_no_log_line() {
    use wiremock::matchers::path_regex;
    let collector = Collector::start(Answer::Take).await;
    let providers = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/v2/PhoneNumbers/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sim_swap": {
                "last_sim_swap": {"last_sim_swap_date": null, "swapped_in_period": false},
                "error_code": null
            }
        })))
        .mount(&providers)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1", "status": "queued"})),
        )
        .mount(&providers)
        .await;
    let base = providers.uri();
    let checks = format!(
        "\n[number_checks]\nkind = \"twilio_lookup\"\naccount_sid = \"AC1\"\nauth_token = \"lookup-token\"\nbase_url = \"{base}\"\n"
    );
    let gw = Gateway::start_edited(
        &base,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint),
            ("TWILIO_BASE_URL", &base),
            ("RUST_LOG", "info,chatgate=debug"),
        ],
        |path, body| {
            if path.ends_with("teams/acme.toml") {
                body + &checks
            } else {
                body
            }
        },
    )
    .await;
    let client = reqwest::Client::new();
    let phone = "+14155550187";
    let res = client
        .post(gw.url("/v1/interactions"))
        .bearer_auth(BOT)
        .json(
            &json!({"channel": "webchat", "conversation_id": "nc-trace-1",
            "contact": {"phone": phone}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = client
        .post(gw.url(&format!("/v1/interactions/{id}/challenges")))
        .bearer_auth(BOT)
        .json(&json!({"method": "otp", "delivery": "sms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["number_check"]["sim_swap"], false, "{challenge}");
    assert_eq!(challenge["number_check"]["source"], "twilio_lookup");
    let asked = providers.received_requests().await.unwrap();
    assert!(
        asked
            .iter()
            .any(|r| r.url.path().starts_with("/v2/PhoneNumbers/")),
        "the lookup was asked"
    );
    let spans = collector
        .wait_for("the lookup's client span", |s| {
            s.iter().any(|(_, sp)| {
                sp.kind == SpanKind::Client as i32
                    && text(&sp.attributes, "http.request.method").as_deref() == Some("GET")
            })
        })
        .await;
    let lookup = spans
        .iter()
        .find(|sp| {
            sp.kind == SpanKind::Client as i32
                && text(&sp.attributes, "http.request.method").as_deref() == Some("GET")
        })
        .unwrap();
    assert_eq!(
        keys(lookup),
        [
            "http.request.method",
            "http.response.status_code",
            "server.address"
        ],
        "a client span records no URL"
    );
    let raw = collector.got.raw.lock().unwrap().clone();
    let lines = gw.lines().join("\n");
    for form in [
        phone,
        "14155550187",
        "4155550187",
        "%2B14155550187",
        "555-0187",
        "5550187",
    ] {
        assert!(
            !raw.windows(form.len()).any(|w| w == form.as_bytes()),
            "{form} was exported"
        );
        assert!(!lines.contains(form), "{form} was logged: {lines}");
    }
}
