//! The load generator: a fixed pool of keep-alive HTTP/1.1 connections, each
//! driven by one task that sends a request, waits for the whole answer and
//! sends the next (closed loop). Latencies after the warm-up go into an HDR
//! histogram (µs, 3 significant digits); req/s is completed requests over
//! the measured time.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;

pub type Req = Request<Full<Bytes>>;

/// The name of the gateway's threads (`gateway.rs` names its runtime's
/// threads so): the runtime it runs in is its own, so the CPU of these
/// threads is the gateway's alone (`gateway_cpu_seconds`).
pub const SERVER_THREADS: &str = "cg-gateway";

/// Makes the next request of connection `conn` (its `seq`-th). May do
/// untimed work first (the hot callback issues its link here).
pub type MakeReq = Arc<dyn Fn(usize, u64) -> BoxFuture<'static, Option<Req>> + Send + Sync>;

/// Sees each answer's status and body (the link-issue run keeps its tokens).
pub type OnAnswer = Arc<dyn Fn(u16, &Bytes) + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub conns: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Requests per second over all connections, paced evenly; `None`
    /// sends the next request as soon as the last is answered (a closed
    /// loop, whose latency is mostly queueing at saturation). A paced
    /// request's latency counts from when it was due, so a stall also
    /// counts for the requests it held up.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub requests: u64,
    pub req_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Answers by status code (measured phase only).
    pub statuses: BTreeMap<u16, u64>,
    /// The request maker ran dry before the end (e.g. out of tokens).
    pub ran_dry: bool,
    /// CPU this whole process (gateway, load generator, the ceilings'
    /// servers, the Redis client) spent per request while this was
    /// measured, in µs (user + system, from `/proc/self/stat`; `None`
    /// where there is none). With Redis' own CPU beside it, it shows where
    /// a row's time goes: the two cores are shared by both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_cpu_us: Option<f64>,
    /// Of that, what the gateway's own threads spent per request, in µs:
    /// the server runs in a runtime of its own (`SERVER_THREADS`
    /// names its threads), read from `/proc/self/task/*/stat`; the load
    /// generator, the fake chat provider and the ceilings' servers are
    /// not in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_cpu_us: Option<f64>,
    /// What Redis spent per request while this was measured (Redis runs
    /// only; see `gateway::RedisCounters`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisCost>,
    /// Seconds the gateway's outbox took, after the measured time, to
    /// deliver the events and notices the row left behind: work of the
    /// row's requests that its req/s and CPU do not include; 900 or more:
    /// not drained (`gateway::SETTLE_LIMIT_S`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_after_s: Option<f64>,
}

/// Redis' own work per completed request over the measured time: its CPU
/// (user + system) and the commands it ran — a script's own commands
/// included, `EVALSHA` itself counted once more in `scripts`. Whatever
/// else runs on that Redis meanwhile (the outbox, the sweeper, another
/// client) counts too.
#[derive(Debug, Clone, Serialize)]
pub struct RedisCost {
    pub cpu_us: f64,
    pub commands: f64,
    pub scripts: f64,
    /// Commands per request by name (`zadd`, `pexpireat`, …), most first.
    pub by_command: Vec<(String, f64)>,
    /// µs per request Redis spent executing each command, most first (a
    /// script's includes its own commands', which count under their names
    /// too). What `cpu_us` has beyond the top-level commands' is reading,
    /// parsing and answering requests, and Redis' own housekeeping.
    pub us_by_command: Vec<(String, f64)>,
}

/// CPU time (user + system) of this process so far, in seconds: fields 14
/// and 15 of `/proc/self/stat`, in ticks of 1/100 s (Linux's `USER_HZ`).
/// `None` off Linux.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// CPU time (user + system) so far of this process's threads whose name
/// is `SERVER_THREADS` (the gateway's runtime), in
/// seconds: fields 14 and 15 of each `/proc/self/task/<tid>/stat`. A
/// thread that ended takes its time with it: the gateway's runtime keeps
/// its workers for its whole life, and its blocking threads for 10 s idle.
/// `None` off Linux, or with no gateway running.
pub fn gateway_cpu_seconds() -> Option<f64> {
    let (mut ticks, mut threads) = (0u64, 0usize);
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(stat) = std::fs::read_to_string(task.ok()?.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != SERVER_THREADS {
            continue;
        }
        let mut fields = stat[close + 2..].split(' ').skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        ticks += user + system;
        threads += 1;
    }
    // No gateway running (a ceiling's row): no figure.
    (threads > 0).then_some(ticks as f64 / 100.0)
}

/// A request to `path` with the given method, headers and body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Req {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(Bytes::from(body)))
        .expect("a valid request")
}

/// Runs `make` on `plan.conns` connections to `addr`.
pub async fn run(addr: SocketAddr, plan: Plan, make: MakeReq, on: Option<OnAnswer>) -> Outcome {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let stop_at = measure_from + plan.duration;
    let dry = Arc::new(AtomicBool::new(false));
    // A connection that failed before the end: the CPU of the whole window
    // over fewer requests would read too high.
    let cut = Arc::new(AtomicBool::new(false));
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let start = (process_cpu_seconds(), gateway_cpu_seconds());
        tokio::time::sleep_until(stop_at.into()).await;
        let gateway = gateway_cpu_seconds().zip(start.1).map(|(b, a)| b - a);
        Some((process_cpu_seconds()? - start.0?, gateway))
    });
    let mut tasks = Vec::new();
    for conn in 0..plan.conns {
        let (make, on, dry, cut) = (make.clone(), on.clone(), dry.clone(), cut.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut seq = 0u64;
            // With a rate, connection `conn` sends its n-th request at
            // `start + (n * conns + conn) / rate`.
            let due = |seq: u64| {
                plan.rate.map(|rate| {
                    let slot = seq * plan.conns as u64 + conn as u64;
                    start + Duration::from_secs_f64(slot as f64 / rate)
                })
            };
            loop {
                if Instant::now() >= stop_at || dry.load(Ordering::Relaxed) {
                    break;
                }
                let Some(req) = make(conn, seq).await else {
                    dry.store(true, Ordering::Relaxed);
                    break;
                };
                let due = due(seq);
                seq += 1;
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                if sender.ready().await.is_err() {
                    cut.store(true, Ordering::Relaxed);
                    break;
                }
                let t0 = due.unwrap_or_else(Instant::now);
                let Ok(res) = sender.send_request(req).await else {
                    cut.store(true, Ordering::Relaxed);
                    break;
                };
                let status = res.status().as_u16();
                let body = match res.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        cut.store(true, Ordering::Relaxed);
                        break;
                    }
                };
                let t1 = Instant::now();
                if let Some(on) = &on {
                    on(status, &body);
                }
                if t0 >= measure_from && t1 <= stop_at {
                    let us = u64::try_from(t1.duration_since(t0).as_micros()).unwrap_or(u64::MAX);
                    let _ = hist.record(us.max(1));
                    *statuses.entry(status).or_default() += 1;
                }
            }
            (hist, statuses)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for t in tasks {
        if let Ok((h, s)) = t.await {
            let _ = hist.add(&h);
            for (k, v) in s {
                *statuses.entry(k).or_default() += v;
            }
        }
    }
    let measured = Instant::now()
        .min(stop_at)
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-3);
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    // A run cut short (out of tokens, a connection failed) has no figure.
    let cpu = if dry.load(Ordering::Relaxed) || cut.load(Ordering::Relaxed) {
        cpu.abort();
        None
    } else {
        cpu.await.ok().flatten()
    };
    Outcome {
        process_cpu_us: cpu.map(|(s, _)| s * 1e6 / (hist.len().max(1) as f64)),
        gateway_cpu_us: cpu
            .and_then(|(_, g)| g)
            .map(|s| s * 1e6 / (hist.len().max(1) as f64)),
        requests: hist.len(),
        req_per_s: hist.len() as f64 / measured,
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
        statuses,
        ran_dry: dry.load(Ordering::Relaxed),
        redis: None,
        outbox_after_s: None,
    }
}
