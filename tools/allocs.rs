//! Allocations per status read, beside the load benchmark (docs/performance.md): a
//! figure that does not move with the machine's speed, as req/s on a
//! shared 2-core machine does (±10 % between runs minutes apart).
//!
//! One thread, one keep-alive connection, requests one after another:
//! 200 to warm up, then 2 000 counted. The count is of this whole process
//! (the client's and the server's allocations and reallocations), so each
//! row also shows what it allocates beyond its ceiling (bare axum; axum and
//! one Redis GET), whose client and server are the same: roughly the
//! gateway's own (the client's request and answer are a little larger, and
//! the gateway's background tasks run meanwhile).
//!
//! ```sh
//! cargo run --release --example allocs                 # memory and Redis
//! cargo run --release --example allocs -- --memory-only
//! cargo run --release --example allocs -- --redis-only
//! cargo run --release --example allocs -- --memory-only --verify     # and wrong codes
//! cargo run --release --example allocs -- --memory-only --callback   # and login callbacks
//! cargo run --release --example allocs -- --memory-only --callback --sign-late   # each signed as sent
//! cargo run --release --example allocs -- --memory-only --mcp   # and MCP get_verification
//! ```
//! With `--mcp`, also a stateless `get_verification` whose answer did not
//! change (its `cursor` as `after`), and what a waiting one holds
//! (docs/performance.md#an-mcp-tool-call): the heap bytes still allocated
//! per call while 200 of them wait, each on a connection of its own, less
//! those of as many connections held by a bare axum handler; the
//! allocator's own count, which neither the load nor the allocator's
//! pages move; and the tasks of its server each holds. Each server is held once first and the heap left to free
//! when a round's connections close is freed before the next is counted:
//! otherwise what the first round grows for good (the runtimes' slabs)
//! is counted as the first server's, and a round's frees fall within the
//! next. With the `system-allocator` feature the count is over the
//! system's allocator, so that `heaptrack` sees each allocation's place.
//! `--count N` sends N requests a row instead of 2 000.
//! For instruction counts, run it under
//! `valgrind --tool=callgrind` (`--memory-only` keeps Redis' timing out),
//! or for the servers' threads alone through
//! `tools/loadtest/server_instructions.py`.
#[path = "loadtest/ceilings.rs"]
mod ceilings;
#[path = "loadtest/engine.rs"]
#[allow(dead_code)]
mod engine;
#[path = "loadtest/gateway.rs"]
#[allow(dead_code)]
mod gateway;

use std::alloc::{GlobalAlloc, Layout};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// The gateway's allocator, counted: mimalloc, or with the
/// `system-allocator` feature the system's, so that heaptrack (which
/// replaces `malloc`) sees where each allocation was made.
struct Counting;

#[cfg(not(feature = "system-allocator"))]
use mimalloc::MiMalloc as Inner;
#[cfg(feature = "system-allocator")]
use std::alloc::System as Inner;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// The bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed on to the inner allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size() as u64, Relaxed);
        LIVE.fetch_add(l.size() as i64, Relaxed);
        Inner.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size() as u64, Relaxed);
        LIVE.fetch_add(l.size() as i64, Relaxed);
        Inner.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Relaxed);
        Inner.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(n as u64, Relaxed);
        LIVE.fetch_add(n as i64 - l.size() as i64, Relaxed);
        Inner.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM: usize = 200;

/// Requests counted a row (`--count N`; 2 000 unless told).
static COUNTED: AtomicUsize = AtomicUsize::new(2_000);

fn counted() -> usize {
    COUNTED.load(Relaxed)
}

/// `GET paths[i]` (round robin) with `auth`.
fn gets<'a>(paths: &'a [String], auth: &'a str) -> impl FnMut(usize) -> engine::Req + 'a {
    move |i| {
        engine::request(
            "GET",
            &paths[i % paths.len()],
            &[("authorization", auth)],
            Vec::new(),
        )
    }
}

/// Sends `n` requests made by `make` (from its `from`th), one after
/// another, each answered `status`.
async fn send(
    s: &mut SendRequest<Full<Bytes>>,
    (from, n): (usize, usize),
    make: &mut impl FnMut(usize) -> engine::Req,
    status: u16,
) {
    for i in from..from + n {
        let req = make(i);
        s.ready().await.expect("connection");
        let res = s.send_request(req).await.expect("answer");
        assert_eq!(res.status(), status, "request {i}");
        res.into_body().collect().await.expect("body");
    }
}

/// Allocations and bytes per request of the requests `make` makes, at
/// `addr`, and the CPU per request (µs) of this process and of the
/// gateway's threads (`None` where there is none, as for a ceiling).
async fn per_request(
    addr: SocketAddr,
    mut make: impl FnMut(usize) -> engine::Req,
    status: u16,
) -> Counted {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send(&mut s, (0, WARM), &mut make, status).await;
    counting_starts();
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    let cpu0 = (engine::process_cpu_seconds(), engine::gateway_cpu_seconds());
    send(&mut s, (WARM, counted()), &mut make, status).await;
    let cpu1 = (engine::process_cpu_seconds(), engine::gateway_cpu_seconds());
    let (a1, b1) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    counting_ends();
    let n = counted() as f64;
    let us = |a: Option<f64>, b: Option<f64>| Some((b? - a?) * 1e6 / n);
    Counted {
        allocs: (a1 - a0) as f64 / n,
        bytes: (b1 - b0) as f64 / n,
        process_us: us(cpu0.0, cpu1.0),
        gateway_us: us(cpu0.1, cpu1.1),
    }
}

/// Where a row's counted requests start, a mark for callgrind's
/// `--zero-before` (`tools/loadtest/server_instructions.py` counts the
/// servers' threads alone).
#[inline(never)]
fn counting_starts() {
    // Not the same code as `counting_ends`, which the linker would fold
    // into one function (then both marks would zero and dump).
    std::hint::black_box(1u8);
}

/// Where they end, a mark for `--dump-before`.
#[inline(never)]
fn counting_ends() {
    std::hint::black_box(2u8);
}

/// What [`per_request`] counted, per request.
#[derive(Clone, Copy)]
struct Counted {
    allocs: f64,
    bytes: f64,
    process_us: Option<f64>,
    gateway_us: Option<f64>,
}

fn row(name: &str, c: Counted, ceiling: Option<Counted>) {
    let beyond = ceiling.map_or("-".into(), |b| format!("{:+.1}", c.allocs - b.allocs));
    let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    println!(
        "| {name:<28} | {:>10.1} | {:>9.0} | {beyond:>15} | {:>10} | {:>10} |",
        c.allocs,
        c.bytes,
        us(c.process_us),
        us(c.gateway_us)
    );
}

fn main() {
    let memory_only = std::env::args().any(|a| a == "--memory-only");
    let redis_only = std::env::args().any(|a| a == "--redis-only");
    let verify = std::env::args().any(|a| a == "--verify");
    let callback = std::env::args().any(|a| a == "--callback");
    let sign_late = std::env::args().any(|a| a == "--sign-late");
    let mcp = std::env::args().any(|a| a == "--mcp");
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1))
    {
        COUNTED.store(n.parse().expect("--count N"), Relaxed);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The ceilings are served in a multi-thread runtime of their own, as
    // the gateway is: a count of the servers' threads alone
    // (`tools/loadtest/server_instructions.py`) counts theirs the same way.
    let ceilings_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(gateway::SERVER_WORKERS)
        .thread_name("ceiling")
        .enable_all()
        .build()
        .expect("the ceilings' runtime");
    let servers = ceilings_runtime.handle().clone();
    runtime.block_on(async {
        chatgate::telemetry::init_to(chatgate::telemetry::LogFormat::Text, std::io::sink, false);
        println!(
            "| {:<28} | {:>10} | {:>9} | {:>15} | {:>10} | {:>10} |",
            "figure", "allocs/req", "bytes/req", "beyond ceiling", "process µs", "gateway µs"
        );
        println!(
            "|{:-<30}|{:->12}|{:->11}|{:->17}|{:->12}|{:->12}|",
            "", "", "", "", "", ""
        );
        let root = ["/".to_string()];
        let bare = if redis_only {
            None
        } else {
            let c = per_request(
                served(&servers, ceilings::bare()).await,
                gets(&root, "-"),
                200,
            )
            .await;
            row("CEILING bare axum", c, None);
            Some(c)
        };
        let prefix = format!("chatgate-allocs-{}", uuid::Uuid::now_v7().simple());
        let redis_get = if memory_only {
            None
        } else {
            let ours = prefix.clone();
            let ceiling = async move { ceilings::redis_get(gateway::redis_url(), &ours).await };
            let addr = served(&servers, ceiling).await;
            let c = per_request(addr, gets(&root, "-"), 200).await;
            row("CEILING axum + one Redis GET", c, None);
            Some(c)
        };
        for (redis, ceiling) in [(false, bare), (true, redis_get)] {
            let Some(ceiling) = ceiling else { continue };
            let g = gateway::Running::start(redis).await;
            let seeded = g.seed(0, 20, 4).await;
            g.settle().await;
            let paths: Vec<String> = seeded
                .iter()
                .map(|s| format!("/v1/interactions/{}", s.id))
                .collect();
            let auth = format!("Bearer {}", g.agent);
            let store = if redis { "redis" } else { "memory" };
            let n = per_request(g.addr, gets(&paths, &auth), 200).await;
            row(&format!("status read ({store})"), n, Some(ceiling));
            if mcp {
                mcp_rows(&g, &seeded, store, ceiling).await;
            }
            if verify {
                // Wrong codes (7 digits: never a 6-digit OTP) on an open
                // challenge on every second one of 2 000 more interactions,
                // as the load test's row: 1 000 challenges keep each
                // subject's failures as few as its 5 000 do (its lockout
                // threshold counts, never refuses).
                let more = g.seed(20, 2_000, 4).await;
                g.settle().await;
                let mut paths = Vec::new();
                for s in more.iter().step_by(2) {
                    let cid = g.start_otp(s.id).await;
                    paths.push(gateway::verify_path(s.id, cid));
                }
                let auth = format!("Bearer {}", g.bot);
                let wrong = |i: usize| gateway::wrong_code_request(&paths[i % paths.len()], &auth);
                let n = per_request(g.addr, wrong, 401).await;
                row(&format!("wrong code ({store})"), n, Some(ceiling));
            }
            if callback {
                // Login callbacks, each on an interaction of its own and a
                // link issued before (as the load test's row), signed
                // before: the signing is the login page's work, not the
                // gateway's.
                // With `--sign-late` each is signed as it is sent: under
                // callgrind the run outlasts a signature's five minutes
                // (the allocations counted then include the signing).
                let fresh = g.seed(10_000, WARM + counted(), 4).await;
                let mut tokens = Vec::new();
                for s in &fresh {
                    let token = g.issue(s.id).await;
                    tokens.push((token, format!("cust-{}", s.id)));
                }
                let sign =
                    |(token, customer): &(String, String)| g.signed_callback(token, customer);
                let signed: Vec<_> = if sign_late {
                    Vec::new()
                } else {
                    tokens.iter().map(sign).collect()
                };
                g.settle().await;
                let callbacks = |i: usize| match signed.get(i) {
                    Some(signed) => gateway::callback_request(signed),
                    None => gateway::callback_request(&sign(&tokens[i])),
                };
                let n = per_request(g.addr, callbacks, 200).await;
                row(&format!("login callback ({store})"), n, Some(ceiling));
            }
            g.stop().await;
        }
        if !memory_only {
            gateway::delete_prefix(&prefix).await;
        }
    });
}

/// The address of the ceiling `ceiling` serves, served on `servers`.
async fn served(
    servers: &tokio::runtime::Handle,
    ceiling: impl std::future::Future<Output = SocketAddr> + Send + 'static,
) -> SocketAddr {
    servers.spawn(ceiling).await.expect("a ceiling served")
}

/// The stateless protocol version (docs/agents.md#protocol-versions).
const MODERN: &str = "2026-07-28";

/// A stateless `tools/call` of `get_verification` about `id`, waiting
/// `wait` seconds for a change from `after`, if given.
fn get_verification(id: uuid::Uuid, wait: u64, after: Option<&str>, auth: &str) -> engine::Req {
    let mut args = serde_json::json!({"interaction_id": id, "wait_seconds": wait});
    if let Some(after) = after {
        args["after"] = after.into();
    }
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_verification", "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "allocs", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("authorization", auth),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "get_verification"),
    ];
    engine::request("POST", "/mcp", &headers, body.to_string().into_bytes())
}

/// One request on a connection of its own: its answer's body.
async fn once(addr: SocketAddr, req: engine::Req) -> Bytes {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let res = s.send_request(req).await.expect("answer");
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.expect("body").to_bytes()
}

/// The MCP rows: `get_verification` with its cursor, and what a waiting
/// one holds.
async fn mcp_rows(g: &gateway::Running, seeded: &[gateway::Seeded], store: &str, ceiling: Counted) {
    let auth = format!("Bearer {}", g.bot);
    let mut cursors = Vec::new();
    for s in seeded {
        let body = once(g.addr, get_verification(s.id, 0, None, &auth)).await;
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let cursor = answer["result"]["structuredContent"]["cursor"].as_str();
        cursors.push(cursor.expect("a cursor").to_string());
    }
    let calls = |i: usize| {
        let i = i % seeded.len();
        get_verification(seeded[i].id, 0, Some(&cursors[i]), &auth)
    };
    let n = per_request(g.addr, calls, 200).await;
    row(&format!("MCP get_verification ({store})"), n, Some(ceiling));
    let waits = |wait: u64| {
        let auth = &auth;
        let cursors = &cursors;
        move |i: usize| {
            let i = i % seeded.len();
            get_verification(seeded[i].id, wait, Some(&cursors[i]), auth)
        }
    };
    let hold = |i: usize| engine::request("POST", "/hold", &[], i.to_string().into_bytes());
    let bare_addr = gateway::holding_server().await;
    // Each server is held once before it is measured: what as many
    // connections at once grow and keep (the runtimes' slabs of sockets,
    // tasks and timers, the client's) is not counted as either's. The
    // gateway's first round waits a second: each call has answered when
    // its client hangs up (and one that had not would end with its
    // client, docs/decisions/0860-an-mcp-call-that-only-reads-ends-with-its-client.md),
    // so none is still held when the second is counted. The bare server first: heaptrack's peak is then
    // the gateway's waits.
    // The bare server runs in this runtime, beside each call's two client
    // tasks (the call and its connection); the gateway in one of its own.
    let here = tokio::runtime::Handle::current();
    let clients = || here.metrics().num_alive_tasks();
    held_per_call(bare_addr, hold, &clients).await;
    let bare = held_per_call(bare_addr, hold, &clients).await;
    let gateway = || g.alive_tasks();
    held_per_call(g.addr, waits(1), &gateway).await;
    let held = held_per_call(g.addr, waits(25), &gateway).await;
    println!(
        "heap held per waiting MCP get_verification ({store}): {:.0} bytes, bare axum {:.0}: {:.0} beyond",
        held.bytes,
        bare.bytes,
        held.bytes - bare.bytes
    );
    println!(
        "tasks per waiting MCP get_verification ({store}): {:.2}, bare axum {:.2}",
        held.tasks,
        bare.tasks - 2.0
    );
}

/// How many calls wait at once.
const WAITING: usize = 200;

/// What each of [`WAITING`] requests made by `make`, sent at once on
/// connections of their own, holds once they all wait: heap bytes, and
/// tasks as `tasks` counts those of its server.
async fn held_per_call(
    addr: SocketAddr,
    make: impl Fn(usize) -> engine::Req,
    tasks: &dyn Fn() -> usize,
) -> Held {
    let (live0, tasks0) = (LIVE.load(Relaxed), tasks());
    let mut calls = Vec::with_capacity(WAITING);
    for i in 0..WAITING {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        let req = make(i);
        calls.push(tokio::spawn(async move {
            let _conn = tokio::spawn(conn);
            let _ = s.send_request(req).await;
        }));
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (live1, tasks1) = (LIVE.load(Relaxed), tasks());
    for c in &calls {
        c.abort();
    }
    for c in calls {
        let _ = c.await;
    }
    // What the calls leave to free as their connections close is freed
    // before the next count starts, not within it.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let n = WAITING as f64;
    Held {
        bytes: (live1 - live0) as f64 / n,
        tasks: (tasks1 as f64 - tasks0 as f64) / n,
    }
}

/// What a waiting call holds ([`held_per_call`]).
struct Held {
    bytes: f64,
    tasks: f64,
}
