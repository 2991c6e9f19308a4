//! What a tool call of the MCP server costs (docs/performance.md#an-mcp-tool-call):
//! `get_verification` about an interaction whose answer the session has
//! already had (a model asking again) beside the status read it wraps;
//! what a thousand `get_verification` calls waiting for a change hold,
//! beside the same connections held by a bare axum handler; and the
//! connections a thousand such calls of one key hold of a gateway whose
//! waiting budget is as shipped.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::{json, Value};

use crate::bench::{status_read, Bench};
use crate::engine::{request, MakeReq};
use crate::gateway::{self, Running, Seeded};
use crate::report::{self, Row, Target};

/// How many `get_verification` calls wait at once in the memory row.
const WAITING: usize = 1000;

/// Sessions of the CPU rows: one per connection of the load.
const SESSIONS: usize = 64;

/// The MCP rows on one store.
pub async fn mcp_rows(
    b: &mut Bench,
    redis: bool,
    n: usize,
    ceiling: &'static str,
    report: &mut report::Report,
) {
    if !b.wants("MCP get_verification") {
        return;
    }
    let store = if redis { "redis" } else { "memory" };
    let g = Arc::new(Running::start(redis).await);
    let seeded = Arc::new(g.seed(0, n.clamp(SESSIONS, 5000), 32).await);
    g.settle().await;
    let client = reqwest::Client::new();
    let sessions = Arc::new(open_sessions(&client, &g, SESSIONS).await);
    // Each session's first answer about its interaction, so that the row
    // measures the steady call: the same answer again, nothing written.
    for (i, session) in sessions.iter().enumerate() {
        let body = get_verification(&seeded[i], 0);
        let answer = post(&client, &g, Some(session), &body).await;
        assert!(
            answer["result"]["structuredContent"].is_object(),
            "{answer}"
        );
    }
    let row = |name: &str, (o, c): (crate::engine::Outcome, report::Ceiling)| {
        Row::new(name, store, o, (ceiling, c), Target::none())
    };
    let own: Arc<Vec<Seeded>> = Arc::new(seeded[..SESSIONS].to_vec());
    let o = b.measure_on(&g, status_read(&g, own), None).await;
    b.rows
        .push(row("status read (the MCP row's interactions)", o));
    let o = b
        .measure_on(&g, tool_calls(&g, &seeded, &sessions), None)
        .await;
    b.rows.push(row(
        "MCP get_verification (tools/call, answer unchanged)",
        o,
    ));

    if !redis {
        let bytes = waiting_calls(&client, &g, &seeded).await;
        report.memory.push(report::Memory::new(
            "RSS per waiting MCP get_verification, less bare axum's (memory)",
            bytes,
            f64::NAN,
        ));
    }
    if let Ok(g) = Arc::try_unwrap(g) {
        g.stop().await;
    }
    report.held.push(connections_held(redis).await);
}

/// How many `get_verification` calls one key sends at once in the
/// connections-held row.
const FLOOD: usize = 1000;

/// What [`FLOOD`] `get_verification` calls of one bot key, sent at once,
/// hold of a gateway whose connections and waiting budget are as shipped
/// (docs/operations.md#waiting-calls): each in a session of its own that
/// has had the answer, so each would wait 25 s. Three seconds after they
/// were sent: `chatgate_waiting_calls` and `chatgate_connections_open`
/// (the reading's own connection among them), the calls answered by then
/// and how, and twenty `GET /healthz` meanwhile. The client keeps no idle
/// connection: an answered call's connection closes.
async fn connections_held(redis: bool) -> report::Held {
    let store = if redis { "redis" } else { "memory" };
    let g = Running::start_shipped(redis).await;
    let seeded = g.seed(0, FLOOD, 32).await;
    g.settle().await;
    let setup = reqwest::Client::new();
    let sessions = open_sessions(&setup, &g, FLOOD).await;
    for (i, session) in sessions.iter().enumerate() {
        post(&setup, &g, Some(session), &get_verification(&seeded[i], 0)).await;
    }
    drop(setup);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    let answered = Arc::new(Mutex::new(Vec::<u16>::new()));
    let calls: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (client, answered) = (client.clone(), answered.clone());
            let (url, bot) = (format!("http://{}/mcp", g.addr), g.bot.clone());
            let (session, body) = (sessions[i].clone(), get_verification(&seeded[i], 25));
            tokio::spawn(async move {
                let sent = client
                    .post(url)
                    .bearer_auth(bot)
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", session)
                    .json(&body)
                    .send()
                    .await;
                let status = sent.map_or(0, |r| r.status().as_u16());
                answered.lock().expect("answered").push(status);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = (client
        .get(format!("http://{}/metrics", g.addr))
        .send()
        .await)
        .expect("/metrics")
        .text()
        .await
        .expect("its text");
    let gauge = |name: &str| {
        let value = |line: &str| line.strip_prefix(name)?.trim().parse::<f64>().ok();
        metrics.lines().find_map(value).unwrap_or(f64::NAN)
    };
    let (mut ok, mut slowest) = (0, 0f64);
    for _ in 0..20 {
        let at = Instant::now();
        let res = client
            .get(format!("http://{}/healthz", g.addr))
            .send()
            .await;
        slowest = slowest.max(at.elapsed().as_secs_f64() * 1000.0);
        ok += usize::from(res.is_ok_and(|r| r.status() == 200));
    }
    let statuses = answered.lock().expect("answered").clone();
    for call in &calls {
        call.abort();
    }
    for call in calls {
        let _ = call.await;
    }
    g.stop().await;
    report::Held {
        name: format!(
            "{FLOOD} waiting get_verification calls of one key, budget as shipped ({store})"
        ),
        sent: FLOOD,
        waiting: gauge("chatgate_waiting_calls"),
        connections_open: gauge("chatgate_connections_open"),
        answered: statuses.len(),
        refused: statuses.iter().filter(|s| **s != 200).count(),
        healthz_ok: (ok, 20),
        healthz_max_ms: slowest,
    }
}

/// `tools/call` of `get_verification` about `s`, waiting `wait` seconds.
fn get_verification(s: &Seeded, wait: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_verification",
                   "arguments": {"interaction_id": s.id, "wait_seconds": wait}}})
}

/// Connection `conn` asks about its own interaction in its own session.
fn tool_calls(g: &Running, seeded: &[Seeded], sessions: &Arc<Vec<String>>) -> MakeReq {
    let auth = format!("Bearer {}", g.bot);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..sessions.len())
            .map(|i| get_verification(&seeded[i], 0).to_string().into_bytes())
            .collect(),
    );
    let sessions = sessions.clone();
    Arc::new(move |conn, _| {
        let i = conn % sessions.len();
        let headers = [
            ("authorization", auth.as_str()),
            ("accept", "application/json, text/event-stream"),
            ("mcp-session-id", sessions[i].as_str()),
        ];
        let r = request("POST", "/mcp", &headers, bodies[i].clone());
        async move { Some(r) }.boxed()
    })
}

async fn post(client: &reqwest::Client, g: &Running, session: Option<&str>, body: &Value) -> Value {
    let mut rb = client
        .post(format!("http://{}/mcp", g.addr))
        .bearer_auth(&g.bot)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(s) = session {
        rb = rb.header("mcp-session-id", s);
    }
    rb.send()
        .await
        .expect("the MCP server answers")
        .json()
        .await
        .expect("JSON")
}

/// `n` sessions of the bot key.
async fn open_sessions(client: &reqwest::Client, g: &Running, n: usize) -> Vec<String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "loadtest", "version": "1"}}});
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        let res = client
            .post(format!("http://{}/mcp", g.addr))
            .bearer_auth(&g.bot)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .expect("initialize");
        let id = res.headers()["mcp-session-id"]
            .to_str()
            .expect("a session id")
            .to_string();
        sessions.push(id);
    }
    sessions
}

/// What [`WAITING`] calls waiting for a change hold: this process's RSS
/// growth per call less that of the same connections held as long by a
/// bare axum handler (the client's side is in both); it prints the
/// gateway's tasks alive per call too.
async fn waiting_calls(client: &reqwest::Client, g: &Running, seeded: &[Seeded]) -> f64 {
    let waiting = seeded.len().min(WAITING);
    // One session per call, which has had the answer: each call waits.
    let sessions = open_sessions(client, g, waiting).await;
    for (i, session) in sessions.iter().enumerate() {
        post(client, g, Some(session), &get_verification(&seeded[i], 0)).await;
    }
    let tasks_before = g.alive_tasks();
    let sessions = Arc::new(sessions);
    let seeded = Arc::new(seeded[..waiting].to_vec());
    // The gateway's first: memory the bare run then reuses makes its
    // figure, subtracted, smaller if anything, so the difference errs high.
    let (bytes, tasks_now) = held(
        waiting,
        || g.alive_tasks(),
        |i| {
            let (client, sessions, seeded) = (client.clone(), sessions.clone(), seeded.clone());
            let (addr, bot) = (g.addr, g.bot.clone());
            async move {
                let _ = client
                    .post(format!("http://{addr}/mcp"))
                    .bearer_auth(bot)
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", &sessions[i])
                    .json(&get_verification(&seeded[i], 25))
                    .send()
                    .await;
            }
            .boxed()
        },
    )
    .await;
    let bare = holding_server().await;
    let (bare_bytes, _) = held(
        waiting,
        || 0,
        |i| {
            let client = client.clone();
            async move {
                let _ = client
                    .post(format!("http://{bare}/hold"))
                    .body(i.to_string())
                    .send()
                    .await;
            }
            .boxed()
        },
    )
    .await;
    let per_call = (bytes - bare_bytes) / waiting as f64;
    let tasks = tasks_now.saturating_sub(tasks_before) as f64 / waiting as f64;
    eprintln!(
        "[memory] {waiting} waiting get_verification calls: {per_call:.0} bytes and {tasks:.2} \
         gateway tasks each ({bytes:.0} B in all, bare axum holding as many: {bare_bytes:.0} B)"
    );
    per_call
}

/// Sends `n` requests made by `send` at once and, once they have all
/// been sent and are waiting, measures this process's RSS growth and
/// `count`; then drops them.
async fn held<F>(n: usize, count: impl Fn() -> usize, send: F) -> (f64, usize)
where
    F: Fn(usize) -> futures::future::BoxFuture<'static, ()>,
{
    let rss0 = gateway::rss_bytes();
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(send(i))).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss1, counted) = (gateway::rss_bytes(), count());
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let _ = h.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    (rss1.saturating_sub(rss0) as f64, counted)
}

/// A bare axum server whose `POST /hold` answers after 25 s.
async fn holding_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route(
        "/hold",
        axum::routing::post(|_body: String| async {
            tokio::time::sleep(Duration::from_secs(25)).await;
            "held"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}
