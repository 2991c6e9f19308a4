//! What a tool call of the MCP server costs (docs/performance.md#an-mcp-tool-call):
//! `get_verification` about an interaction whose answer the caller has
//! already had (a model asking again, in its session, or with the
//! answer's `cursor` as `after`) beside the status read it wraps; what a
//! thousand `get_verification` calls waiting for a change hold, beside the
//! same connections held by a bare axum handler; how soon a thousand
//! waits answer once their interactions change; and the connections a
//! thousand such calls of one key hold of a gateway whose waiting budget
//! is as shipped.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};

use crate::bench::{status_read, Bench};
use crate::engine::{request, MakeReq};
use crate::gateway::{self, Running, Seeded};
use crate::report::{self, Row, Target};

/// How many `get_verification` calls wait at once.
const WAITING: usize = 1000;

/// Sessions of the CPU rows: one per connection of the load.
const SESSIONS: usize = 64;

/// The most a waiting call may hold beyond a bare axum handler holding
/// its connection.
const WAIT_BYTES: f64 = 8192.0;

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
    let seeded = Arc::new(g.seed(0, n.clamp(WAITING + 1, 5000), 32).await);
    g.settle().await;
    let client = reqwest::Client::new();
    let sessions = Arc::new(open_sessions(&client, &g, SESSIONS).await);
    // Each session's first answer about its interaction, so that the rows
    // measure the steady call: the same answer again, nothing written.
    let cursors = Arc::new(first_answers(&client, &g, &seeded, &sessions).await);
    let row = |name: &str, (o, c): (crate::engine::Outcome, report::Ceiling)| {
        Row::new(name, store, o, (ceiling, c), Target::none())
    };
    let own: Arc<Vec<Seeded>> = Arc::new(seeded[..SESSIONS].to_vec());
    let o = b.measure_on(&g, status_read(&g, own), None).await;
    b.rows
        .push(row("status read (the MCP row's interactions)", o));
    let calls = tool_calls(&g, &seeded, &sessions, None);
    let o = b.measure_on(&g, calls, None).await;
    b.rows.push(row(
        "MCP get_verification (tools/call, answer unchanged)",
        o,
    ));
    let calls = tool_calls(&g, &seeded, &sessions, Some(&cursors));
    let o = b.measure_on(&g, calls, None).await;
    b.rows.push(row(
        "MCP get_verification (tools/call, after its cursor)",
        o,
    ));
    let calls = stateless_calls(&g, &seeded, &cursors);
    let o = b.measure_on(&g, calls, None).await;
    b.rows.push(row(
        "MCP get_verification (2026-07-28 stateless, after its cursor)",
        o,
    ));

    let waiting = seeded.len().min(WAITING);
    let sessions = Arc::new(open_sessions(&client, &g, waiting).await);
    let cursors = Arc::new(first_answers(&client, &g, &seeded, &sessions).await);
    let (bytes, tasks) = waiting_calls(&client, &g, &seeded, &sessions, &cursors).await;
    report.memory.push(report::Memory::new(
        &format!("RSS per waiting MCP get_verification, less bare axum's ({store})"),
        bytes,
        WAIT_BYTES,
    ));
    report.figures.push(report::Figure {
        name: format!("gateway tasks per waiting MCP get_verification ({store}; a bare axum handler's connection holds 1)"),
        value: tasks,
        unit: "tasks",
        target: Some(2.0),
    });
    let (p50, p99, max) = wake_latency(&client, &g, &seeded, &sessions, &cursors).await;
    for (what, ms, target) in [
        ("p50", p50, None),
        ("p99", p99, Some(1000.0)),
        ("max", max, Some(1000.0)),
    ] {
        report.figures.push(report::Figure {
            name: format!("{waiting} waiting MCP get_verification: {what} from their interactions' change to their answer ({store})"),
            value: ms,
            unit: "ms",
            target,
        });
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
        post(
            &setup,
            &g,
            Some(session),
            &get_verification(&seeded[i], 0, None),
        )
        .await;
    }
    drop(setup);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let calls: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (client, answered) = (client.clone(), answered.clone());
            let (url, bot) = (format!("http://{}/mcp", g.addr), g.bot.clone());
            let (session, body) = (sessions[i].clone(), get_verification(&seeded[i], 25, None));
            tokio::spawn(async move {
                let sent = client
                    .post(url)
                    .bearer_auth(bot)
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", session)
                    .json(&body)
                    .send()
                    .await;
                // What a call was answered: its status, or why none came.
                let status = match sent {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) => format!(
                        "no answer ({})",
                        std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string())
                    ),
                };
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
        refused: statuses.iter().filter(|s| *s != "200").count(),
        refused_as: tally(statuses.iter().filter(|s| *s != "200")),
        healthz_ok: (ok, 20),
        healthz_max_ms: slowest,
    }
}

/// How many times each of `answers` came, most first: `503 ×5, no
/// answer (…) ×2`.
fn tally<'a>(answers: impl Iterator<Item = &'a String>) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for a in answers {
        *counts.entry(a).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let said: Vec<String> = counts.iter().map(|(a, n)| format!("{a} ×{n}")).collect();
    said.join(", ")
}

/// Each session's first answer about its own interaction (`seeded[i]`):
/// its cursor.
async fn first_answers(
    client: &reqwest::Client,
    g: &Running,
    seeded: &[Seeded],
    sessions: &[String],
) -> Vec<String> {
    let mut cursors = Vec::with_capacity(sessions.len());
    for (i, session) in sessions.iter().enumerate() {
        let body = get_verification(&seeded[i], 0, None);
        let answer = post(client, g, Some(session), &body).await;
        let cursor = answer["result"]["structuredContent"]["cursor"].as_str();
        cursors.push(cursor.expect("an answer with its cursor").to_string());
    }
    cursors
}

/// `tools/call` of `get_verification` about `s`, waiting `wait` seconds
/// for a change from the answer `after` names, if any.
fn get_verification(s: &Seeded, wait: u64, after: Option<&str>) -> Value {
    let mut args = json!({"interaction_id": s.id, "wait_seconds": wait});
    if let Some(after) = after {
        args["after"] = json!(after);
    }
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_verification", "arguments": args}})
}

/// Connection `conn` asks about its own interaction in its own session,
/// with the cursor of its first answer when `cursors` are given.
fn tool_calls(
    g: &Running,
    seeded: &[Seeded],
    sessions: &Arc<Vec<String>>,
    cursors: Option<&Arc<Vec<String>>>,
) -> MakeReq {
    let auth = format!("Bearer {}", g.bot);
    let after = |i: usize| cursors.map(|c| c[i].as_str());
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..sessions.len())
            .map(|i| {
                get_verification(&seeded[i], 0, after(i))
                    .to_string()
                    .into_bytes()
            })
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

/// The stateless version (docs/agents.md#protocol-versions).
const MODERN: &str = "2026-07-28";

/// Connection `conn` asks about its own interaction in no session, under
/// the stateless version, with the cursor of its first answer as `after`
/// (a cursor is the answer's, whatever session it was had in).
fn stateless_calls(g: &Running, seeded: &[Seeded], cursors: &Arc<Vec<String>>) -> MakeReq {
    let auth = format!("Bearer {}", g.bot);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..cursors.len())
            .map(|i| {
                let mut body = get_verification(&seeded[i], 0, Some(&cursors[i]));
                body["params"]["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": MODERN,
                    "io.modelcontextprotocol/clientInfo": {"name": "loadtest", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {}});
                body.to_string().into_bytes()
            })
            .collect(),
    );
    Arc::new(move |conn, _| {
        let i = conn % bodies.len();
        let headers = [
            ("authorization", auth.as_str()),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_verification"),
        ];
        let r = request("POST", "/mcp", &headers, bodies[i].clone());
        async move { Some(r) }.boxed()
    })
}

/// A `POST /mcp` of the bot key with `body`, in `session` if any.
fn to_mcp(
    client: &reqwest::Client,
    g: &Running,
    session: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let rb = client
        .post(format!("http://{}/mcp", g.addr))
        .bearer_auth(&g.bot)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    match session {
        Some(s) => rb.header("mcp-session-id", s),
        None => rb,
    }
}

/// Call `i` of the waiting ones: `get_verification` of `seeded[i]` in
/// `sessions[i]`, waiting for a change from `cursors[i]`.
fn waiting_call(
    client: &reqwest::Client,
    g: &Running,
    (seeded, sessions, cursors): (&[Seeded], &[String], &[String]),
    i: usize,
) -> reqwest::RequestBuilder {
    let body = get_verification(&seeded[i], 25, Some(&cursors[i]));
    to_mcp(client, g, Some(&sessions[i]), &body)
}

async fn post(client: &reqwest::Client, g: &Running, session: Option<&str>, body: &Value) -> Value {
    to_mcp(client, g, session, body)
        .send()
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

/// What the calls of `sessions` waiting for a change (each with its
/// cursor) hold: this process's RSS growth per call less that of the same
/// connections held as long by a bare axum handler (the client's side is
/// in both), and the gateway's tasks alive per call.
async fn waiting_calls(
    client: &reqwest::Client,
    g: &Running,
    seeded: &Arc<Vec<Seeded>>,
    sessions: &Arc<Vec<String>>,
    cursors: &Arc<Vec<String>>,
) -> (f64, f64) {
    let waiting = sessions.len();
    let tasks_before = g.alive_tasks();
    // The gateway's first: memory the bare run then reuses makes its
    // figure, subtracted, smaller if anything, so the difference errs high.
    let (bytes, tasks_now) = held(
        waiting,
        || g.alive_tasks(),
        |i| {
            let call = waiting_call(client, g, (seeded, sessions, cursors), i).send();
            async move {
                let _ = call.await;
            }
            .boxed()
        },
    )
    .await;
    let bare = gateway::holding_server().await;
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
    let store = if g.redis { "redis" } else { "memory" };
    eprintln!(
        "[{store}] {waiting} waiting get_verification calls: {per_call:.0} bytes and {tasks:.2} \
         gateway tasks each ({bytes:.0} B in all, bare axum holding as many: {bare_bytes:.0} B)"
    );
    (per_call, tasks)
}

/// The calls of `sessions` wait for a change (each with its cursor);
/// then each one's interaction changes (a login link issued through the
/// HTTP API, 32 at a time): the time from each change's answer to its
/// wait's, in ms: p50, p99 and the largest.
async fn wake_latency(
    client: &reqwest::Client,
    g: &Running,
    seeded: &Arc<Vec<Seeded>>,
    sessions: &Arc<Vec<String>>,
    cursors: &Arc<Vec<String>>,
) -> (f64, f64, f64) {
    // The calls of the memory row still hold their places (a call's
    // handler runs on once its client has left, to the wait's end): the
    // waits here would be answered at once.
    no_waits_left(client, g).await;
    let waits: Vec<_> = (0..sessions.len())
        .map(|i| {
            let call = waiting_call(client, g, (seeded, sessions, cursors), i).send();
            let before = cursors[i].clone();
            tokio::spawn(async move {
                let res = call.await;
                let answer: Value = res.expect("the wait answers").json().await.expect("JSON");
                let at = Instant::now();
                // Woken by its change: its answer is not the one it had.
                let cursor = &answer["result"]["structuredContent"]["cursor"];
                (at, cursor.as_str() != Some(before.as_str()))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let changed: Vec<Instant> = futures::stream::iter(0..sessions.len())
        .map(|i| {
            let path = format!(
                "http://{}/v1/interactions/{}/login-links",
                g.addr, seeded[i].id
            );
            let issue = client
                .post(path)
                .bearer_auth(&g.bot)
                .json(&json!({}))
                .send();
            async move {
                let res = issue.await.expect("a link");
                assert_eq!(res.status(), 201, "a link issued");
                Instant::now()
            }
        })
        .buffered(32)
        .collect()
        .await;
    let (mut ms, mut unchanged) = (Vec::with_capacity(waits.len()), 0);
    for (wait, changed) in waits.into_iter().zip(changed) {
        let (answered, moved) = wait.await.expect("the wait");
        // A link issued for an authenticated interaction (the seeded odd
        // ones) leaves its answer as it was: that wait runs to its end,
        // and is not a wake's latency.
        if !moved {
            unchanged += 1;
            continue;
        }
        ms.push(answered.saturating_duration_since(changed).as_secs_f64() * 1000.0);
    }
    if unchanged > 0 {
        eprintln!(
            "{unchanged} waits answered with the answer they had (their change left it as it was)"
        );
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
    eprintln!(
        "{} waits woke after their change: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        ms.len()
    );
    (p50, p99, max)
}

/// Until the gateway holds no waiting call (`chatgate_waiting_calls` 0),
/// 30 s at most.
async fn no_waits_left(client: &reqwest::Client, g: &Running) {
    for _ in 0..60 {
        let metrics = client
            .get(format!("http://{}/metrics", g.addr))
            .send()
            .await;
        let text = match metrics {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let waiting = text.lines().find_map(|l| {
            let v = l.strip_prefix("chatgate_waiting_calls")?.trim();
            v.parse::<f64>().ok()
        });
        if waiting == Some(0.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
