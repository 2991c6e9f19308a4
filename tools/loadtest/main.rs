//! The committed load benchmark (docs/performance.md): ceilings and chatgate in one
//! process, on loopback, 64 keep-alive connections, a warm-up and a fixed
//! duration per scenario; one table of req/s, p50/p99, the ratio to the
//! matching ceiling (measured again, for 1 s, right before and right after
//! each scenario: the ratio is to their mean, marked `~` when they differ by
//! more than 15 %),
//! the issue's target and pass/fail; JSON in
//! `target/loadtest/<unix time>.json`.
//!
//! ```sh
//! cargo run --release --example loadtest -- --quick      # ~2 min
//! cargo run --release --example loadtest                 # full, see docs/performance.md
//! ```
//! Redis must run on 127.0.0.1:6379, or at `LOADTEST_REDIS_URL` (else
//! `--memory-only`); the run uses
//! its own key prefixes and deletes its keys at the end (never FLUSHALL).
//! The gateway's log runs at `info` into a sink (formatted, then dropped).
mod bench;
mod ceilings;
mod costs;
mod engine;

/// The allocator of the `chatgate` binary (`src/main.rs`), so that the
/// gateway measured here runs as it does in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod gateway;
mod machine;
mod mcp;
mod report;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::{get, rand_index, status_read, Bench};
use clap::Parser;
use engine::{request, MakeReq, OnAnswer, Outcome, Plan};
use futures::{FutureExt, StreamExt};
use gateway::{Running, Seeded};
use report::{Row, Target};

#[derive(Parser, Debug, Clone)]
#[command(about = "chatgate load benchmark")]
struct Args {
    /// Short run: 2 s per scenario, 0.5 s warm-up, 20k live for scaling.
    #[arg(long)]
    quick: bool,
    /// Seconds measured per scenario.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of warm-up per scenario (not measured).
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Distinct interactions of the main scenarios (half authenticated).
    #[arg(long, default_value_t = 50_000)]
    interactions: usize,
    /// Live interactions of the scaling run (compared with 1k).
    #[arg(long)]
    live: Option<usize>,
    /// Skip Redis (no Redis on this machine).
    #[arg(long, conflicts_with = "redis_only")]
    memory_only: bool,
    /// Skip the memory store's runs (the ceilings still run).
    #[arg(long)]
    redis_only: bool,
    /// Skip the scaling run.
    #[arg(long)]
    no_scaling: bool,
    /// Interactions each store grows to in the growing-store rows
    /// (from empty, while measured); 0 skips them.
    #[arg(long, default_value_t = 500_000)]
    grow_to: usize,
    /// Requests per second of the growing-store rows (0: as fast as they
    /// are answered). Paced below either store's capacity, their tails
    /// show the store's own stalls, not the queue of a saturated loop.
    #[arg(long, default_value_t = 0.0)]
    grow_rate: f64,
    /// Seconds of the saturating login-callback row (callbacks on 64
    /// connections, then the outbox backlog they leave, in seconds; target
    /// docs/performance.md#targets); 0 skips it. Default: 10, and 0 with
    /// `--quick`.
    #[arg(long)]
    saturate: Option<f64>,
    /// Run only the main scenarios whose name contains this text
    /// (case-insensitive; for example `hot`, `callback`), for profiling.
    #[arg(long)]
    only: Option<String>,
    /// Also measure the status read and login callback rows with traces
    /// on (`sample_ratio` 1.0, exported to a receiver in this process),
    /// each right after its untraced row (docs/performance.md#traces).
    #[arg(long)]
    traces: bool,
}

/// Link issue, round robin over the seeded interactions (so no link is
/// pushed out by a 17th); the tokens go to `tokens`.
fn link_issue(
    g: &Running,
    seeded: Arc<Vec<Seeded>>,
    tokens: Arc<Mutex<Vec<String>>>,
) -> (MakeReq, OnAnswer) {
    let auth = format!("Bearer {}", g.bot);
    let next = Arc::new(AtomicU64::new(0));
    let make: MakeReq = Arc::new(move |_, _| {
        let i = next.fetch_add(1, Ordering::Relaxed) as usize % seeded.len();
        let path = format!("/v1/interactions/{}/login-links", seeded[i].id);
        let r = request("POST", &path, &[("authorization", &auth)], b"{}".to_vec());
        async move { Some(r) }.boxed()
    });
    let on: OnAnswer = Arc::new(move |status, body| {
        if status == 201 {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                if let Some(t) = v["token"].as_str() {
                    tokens.lock().expect("tokens").push(t.to_string());
                }
            }
        }
    });
    (make, on)
}

fn callback_req(g: &Running, token: &str, customer: &str) -> engine::Req {
    gateway::callback_request(&g.signed_callback(token, customer))
}

/// Callbacks, each with a fresh token from `tokens` (none left: dry).
fn callbacks(g: Arc<Running>, tokens: Arc<Mutex<Vec<String>>>) -> MakeReq {
    Arc::new(move |conn, seq| {
        let t = tokens.lock().expect("tokens").pop();
        let r = t.map(|t| callback_req(&g, &t, &format!("cust-{conn}-{seq}")));
        async move { r }.boxed()
    })
}

/// Wrong codes on the given (interaction, challenge) pairs.
fn wrong_codes(g: &Running, challenges: Arc<Vec<(uuid::Uuid, uuid::Uuid)>>) -> MakeReq {
    let auth = format!("Bearer {}", g.bot);
    Arc::new(move |_, _| {
        let (id, cid) = challenges[rand_index(challenges.len())];
        let r = gateway::wrong_code_request(&gateway::verify_path(id, cid), &auth);
        async move { Some(r) }.boxed()
    })
}

/// Callbacks on random seeded interactions, each first issuing its link
/// in-process (untimed): every callback finds its link live.
fn fresh_callbacks(g: Arc<Running>, seeded: Arc<Vec<Seeded>>) -> MakeReq {
    Arc::new(move |conn, seq| {
        let g = g.clone();
        let id = seeded[rand_index(seeded.len())].id;
        async move {
            let token = g.issue(id).await;
            Some(callback_req(&g, &token, &format!("cust-{conn}-{seq}")))
        }
        .boxed()
    })
}

/// The main scenarios on one store.
async fn scenarios(b: &mut Bench, redis: bool, n: usize, ceiling: &'static str) {
    let store = if redis { "redis" } else { "memory" };
    let g = Arc::new(Running::start(redis).await);
    let t0 = Instant::now();
    let seeded = Arc::new(g.seed(0, n, 32).await);
    g.settle().await;
    eprintln!(
        "[{store}] seeded {n} interactions (half authenticated) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let row = |name: &str, (o, c): (Outcome, report::Ceiling), target: Target| {
        Row::new(name, store, o, (ceiling, c), target)
    };
    let (fast, write, heavy) = if redis {
        (
            Target::ratio(0.70),
            Target::ratio(0.40),
            Target::ratio(0.30),
        )
    } else {
        (
            Target::ratio(0.60),
            Target::ratio(0.30),
            Target::ratio(0.30),
        )
    };

    if !redis && b.wants("GET /healthz") {
        let o = b
            .measure_on(&g, get("/healthz".into(), &g.agent), None)
            .await;
        b.rows.push(row("GET /healthz", o, Target::ratio(0.85)));
    }
    if b.wants("status read") {
        let o = b
            .measure_on(&g, status_read(&g, seeded.clone()), None)
            .await;
        b.rows.push(row("status read", o, fast));
        if b.traced {
            chatgate::spans::turn_on();
            let o = b
                .measure_on(&g, status_read(&g, seeded.clone()), None)
                .await;
            chatgate::spans::turn_off();
            b.rows.push(row("status read, traced", o, fast));
        }
    }

    let auth = format!("Bearer {}", g.bot);
    let space = 2 * n;
    let create: MakeReq = Arc::new(move |_, _| {
        let body = format!(
            r#"{{"channel":"webchat","conversation_id":"c{}"}}"#,
            rand_index(space)
        );
        let r = request(
            "POST",
            "/v1/interactions",
            &[("authorization", &auth)],
            body.into_bytes(),
        );
        async move { Some(r) }.boxed()
    });
    if b.wants("create-or-get (half new)") {
        let o = b.measure_on(&g, create, None).await;
        b.rows.push(row("create-or-get (half new)", o, write));
    }

    let tokens = Arc::new(Mutex::new(Vec::new()));
    let callback = b.wants("login callback (fresh token)");
    if b.wants("login link issue") || callback {
        // The callbacks' tokens come from this run.
        let (make, on) = link_issue(&g, seeded.clone(), tokens.clone());
        let o = b.measure_on(&g, make, Some(on)).await;
        b.rows.push(row("login link issue", o, write));
    }
    if callback {
        let o = b
            .measure_on(&g, callbacks(g.clone(), tokens.clone()), None)
            .await;
        b.rows.push(row("login callback (fresh token)", o, heavy));
        if b.traced {
            chatgate::spans::turn_on();
            let o = b
                .measure_on(&g, callbacks(g.clone(), tokens.clone()), None)
                .await;
            chatgate::spans::turn_off();
            b.rows
                .push(row("login callback (fresh token), traced", o, heavy));
        }
    }

    if !b.saturate.is_zero() && b.wants(SATURATED) {
        saturated_callbacks(b, &g, &seeded, store, ceiling).await;
    }

    if b.wants("OTP verify, wrong code") {
        let m = (n / 2).clamp(1, 5000);
        let challenges: Vec<_> =
            futures::future::join_all(seeded.iter().step_by(2).take(m).map(|s| {
                let g = g.clone();
                async move { (s.id, g.start_otp(s.id).await) }
            }))
            .await;
        let o = b
            .measure_on(&g, wrong_codes(&g, Arc::new(challenges)), None)
            .await;
        b.rows.push(row("OTP verify, wrong code", o, heavy));
    }

    if b.wants("Twilio receipt") {
        // Half the receipts move a status (sent, then delivered), the rest
        // repeat one: a provider's retries and duplicates.
        let m = (n / 2).clamp(1, 5000);
        let sids = Arc::new(g.seed_sms(m, 32).await);
        g.settle().await;
        let make: MakeReq = Arc::new(move |_, seq| {
            let sid = &sids[rand_index(sids.len())];
            let status = if seq % 2 == 0 { "sent" } else { "delivered" };
            let r = gateway::receipt_request(sid, status);
            async move { Some(r) }.boxed()
        });
        let o = b.measure_on(&g, make, None).await;
        b.rows
            .push(row("Twilio receipt (status callback)", o, Target::none()));
    }

    if b.wants("list page (50)") {
        let o = b
            .measure_on(&g, get("/v1/interactions?limit=50".into(), &g.agent), None)
            .await;
        b.rows.push(row("list page (50)", o, Target::none()));
    }

    if b.wants("HOT: 64 wrong codes, one challenge") {
        let hot = g.seed(n, 1, 1).await[0].id;
        let cid = g.start_otp(hot).await;
        let o = b
            .measure_on(&g, wrong_codes(&g, Arc::new(vec![(hot, cid)])), None)
            .await;
        b.rows
            .push(row("HOT: 64 wrong codes, one challenge", o, Target::hot()));
    }

    if b.wants("HOT: 64 callbacks, one interaction") {
        // Every callback on one interaction, each with a link of its own.
        let hot = Arc::new(g.seed(n + 1, 1, 1).await);
        let o = b
            .measure_on(&g, fresh_callbacks(g.clone(), hot), None)
            .await;
        b.rows
            .push(row("HOT: 64 callbacks, one interaction", o, Target::hot()));
    }

    if let Ok(g) = Arc::try_unwrap(g) {
        g.stop().await;
    }
}

/// The name of the saturating callback row.
const SATURATED: &str = "SATURATED: login callbacks";

/// The outbox backlog a saturating row may leave, in seconds of delivering
/// it after the row ends (docs/performance.md#targets).
const MAX_BACKLOG_S: f64 = 0.3;

/// Login callbacks on all connections for [`Bench::saturate`], each with a
/// token issued beforehand in-process (untimed), then how long the outbox
/// takes to deliver what they left: each callback's `authenticated` event
/// and chat notice. At a rate no faster than its own the outbox would keep
/// up by design; at the gateway's highest rate it shows whether the
/// dispatcher falls behind the requests.
async fn saturated_callbacks(
    b: &mut Bench,
    g: &Arc<Running>,
    seeded: &Arc<Vec<Seeded>>,
    store: &str,
    ceiling: &'static str,
) {
    // Enough tokens for the fastest callback rate seen on this store, with
    // room to spare (a row that runs dry says so).
    let rate = b
        .rows
        .iter()
        .filter(|r| r.store == store && r.name.contains("callback"))
        .map(|r| r.outcome.req_per_s)
        .fold(3000.0, f64::max);
    let wanted = ((rate * 1.5 * (b.saturate + b.plan.warmup).as_secs_f64()) as usize).min(400_000);
    let t0 = Instant::now();
    let issued: Vec<String> = futures::stream::iter(0..wanted)
        .map(|i| {
            let g = g.clone();
            let id = seeded[i % seeded.len()].id;
            async move { g.issue(id).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    g.settle().await;
    eprintln!(
        "[{store}] issued {wanted} links for the saturating row in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let tokens = Arc::new(Mutex::new(issued));
    let plan = Plan {
        duration: b.saturate,
        ..b.plan
    };
    let saved = std::mem::replace(&mut b.plan, plan);
    let o = b.measure_on(g, callbacks(g.clone(), tokens), None).await;
    b.plan = saved;
    let name = format!("{SATURATED}, {:.0} s", b.saturate.as_secs_f64());
    b.rows.push(Row::new(
        &name,
        store,
        o.0,
        (ceiling, o.1),
        Target::backlog(MAX_BACKLOG_S),
    ));
}

/// A store growing while measured: a gateway started empty takes `to`
/// creates of new interactions, then `to` link issues over them (one link
/// each), every request timed. A cost that grows with the store (a map
/// doubling under the memory store's one lock, Redis' rehash or a trim of
/// the event history) shows as p99 here, where a row on a store seeded
/// beforehand does not see it.
async fn growing(b: &mut Bench, redis: bool, to: usize, rate: f64, ceiling: &'static str) {
    let store = if redis { "redis" } else { "memory" };
    let g = Arc::new(Running::start(redis).await);
    let plan = Plan {
        warmup: Duration::ZERO,
        // Long enough to reach `to` on a slow machine; a row that does not
        // get there says so (`ran_dry` false).
        duration: Duration::from_secs_f64(if rate > 0.0 {
            300f64.max(1.5 * to as f64 / rate)
        } else {
            300.0
        }),
        rate: (rate > 0.0).then_some(rate),
        ..b.plan
    };
    let auth = format!("Bearer {}", g.bot);
    let next = Arc::new(AtomicU64::new(0));
    let create: MakeReq = {
        let next = next.clone();
        Arc::new(move |_, _| {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize;
            let r = (i < to).then(|| {
                let body = format!(r#"{{"channel":"webchat","conversation_id":"grow-{i}"}}"#);
                request(
                    "POST",
                    "/v1/interactions",
                    &[("authorization", &auth)],
                    body.into_bytes(),
                )
            });
            async move { r }.boxed()
        })
    };
    let ids = Arc::new(Mutex::new(Vec::with_capacity(to)));
    let keep: OnAnswer = {
        let ids = ids.clone();
        Arc::new(move |status, body| {
            if status == 201 {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                    if let Some(id) = v["id"].as_str() {
                        ids.lock().expect("ids").push(id.to_string());
                    }
                }
            }
        })
    };
    let saved = std::mem::replace(&mut b.plan, plan);
    let t0 = Instant::now();
    let (o, c) = b.measure_on(&g, create, Some(keep)).await;
    eprintln!(
        "[{store}] grew to {} interactions in {:.1} s",
        ids.lock().expect("ids").len(),
        t0.elapsed().as_secs_f64()
    );
    eprintln!(
        "[{store}] growing creates: p99.9 {:.2} ms, max {:.2} ms",
        o.p999_ms, o.max_ms
    );
    let name = format!("GROWING create (new), 0 -> {to}");
    b.rows
        .push(Row::new(&name, store, o, (ceiling, c), Target::p99(10.0)));

    let ids = Arc::new(std::mem::take(&mut *ids.lock().expect("ids")));
    let auth = format!("Bearer {}", g.bot);
    let next = Arc::new(AtomicU64::new(0));
    let issue: MakeReq = Arc::new(move |_, _| {
        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
        let r = ids.get(i).map(|id| {
            let path = format!("/v1/interactions/{id}/login-links");
            request("POST", &path, &[("authorization", &auth)], b"{}".to_vec())
        });
        async move { r }.boxed()
    });
    let (o, c) = b.measure_on(&g, issue, None).await;
    eprintln!(
        "[{store}] growing link issues: p99.9 {:.2} ms, max {:.2} ms",
        o.p999_ms, o.max_ms
    );
    let name = format!("GROWING link issue, links 0 -> {to}");
    b.rows
        .push(Row::new(&name, store, o, (ceiling, c), Target::p99(10.0)));
    b.plan = saved;
    if let Ok(g) = Arc::try_unwrap(g) {
        g.stop().await;
    }
}

/// Status read and callback at 1k live, then at `live`; memory per live
/// interaction.
async fn scaling(
    b: &mut Bench,
    redis: bool,
    live: usize,
    ceiling: &'static str,
    report: &mut report::Report,
) {
    let store = if redis { "redis" } else { "memory" };
    let g = Arc::new(Running::start(redis).await);
    let mut seeded = g.seed(0, 1000, 32).await;
    g.settle().await;
    let mut at_1k = Vec::new();
    for (label, count) in [("1k", 1000usize), ("many", live)] {
        if count > seeded.len() {
            let rss0 = gateway::rss_bytes();
            let t0 = Instant::now();
            let more = g.seed(seeded.len(), count - seeded.len(), 64).await;
            let secs = t0.elapsed().as_secs_f64();
            g.settle().await;
            let added = more.len();
            seeded.extend(more);
            let rss1 = gateway::rss_bytes();
            eprintln!("[{store}] seeded to {count} live in {secs:.1} s");
            report.seed_seconds.push((store.to_string(), count, secs));
            if !redis {
                let per = rss1.saturating_sub(rss0) as f64 / added as f64;
                report.memory.push(report::Memory::new(
                    "RSS per live interaction (memory)",
                    per,
                    2048.0,
                ));
            }
        }
        let shared = Arc::new(seeded.clone());
        let o = b
            .measure_on(&g, status_read(&g, shared.clone()), None)
            .await;
        let name = format!("status read @ {label} live ({})", shared.len());
        let read = Row::new(
            &name,
            store,
            o.0,
            (ceiling, o.1),
            Target::scaling(at_1k.first().copied()),
        );
        // Each callback's link is issued in-process just before it
        // (untimed), on a random live interaction: at 1 k live, links
        // issued in advance would mostly be pushed out (16 live links per
        // interaction) and answer 409, so 1 k and N live would measure
        // different work.
        let o = b
            .measure_on(&g, fresh_callbacks(g.clone(), shared.clone()), None)
            .await;
        let name = format!("login callback @ {label} live ({})", shared.len());
        let cb = Row::new(
            &name,
            store,
            o.0,
            (ceiling, o.1),
            Target::scaling(at_1k.get(1).copied()),
        );
        if at_1k.is_empty() {
            at_1k = vec![read.outcome.req_per_s, cb.outcome.req_per_s];
        }
        b.rows.push(read);
        b.rows.push(cb);
    }
    if redis {
        let mut conn = gateway::redis_conn().await;
        // One authenticated interaction's own keys: its record, its
        // conversation key, its customer's subject and index entries. A
        // fresh one, seeded after the rows (an odd index: authenticated
        // once): the callback rows leave the interactions they reach with
        // up to 16 used links each, a load test's pattern, not a
        // conversation's.
        let k = seeded.len() | 1;
        let fresh = g.seed(k, 1, 1).await;
        g.settle().await;
        let s = &fresh[0];
        let team = "acme";
        let customer = &format!("cust-{k}");
        let own = vec![
            format!(
                "{}:{}",
                g.prefix,
                chatgate::store::keys::interaction(team, s.id)
            ),
            format!(
                "{}:{}",
                g.prefix,
                chatgate::store::keys::conversation(team, "webchat", &s.conversation)
            ),
            format!(
                "{}:{}",
                g.prefix,
                chatgate::store::keys::subject(team, customer)
            ),
            format!(
                "{}:{}",
                g.prefix,
                chatgate::store::keys::customer_index(team, customer)
            ),
            format!(
                "{}:{}",
                g.prefix,
                chatgate::store::keys::customer_index(team, customer)
            ) + ":exp",
        ];
        let mut one = 0;
        for k in &own {
            let n = gateway::memory_usage(&mut conn, std::slice::from_ref(k)).await;
            eprintln!("[redis] MEMORY USAGE {k}: {n} B");
            one += n;
        }
        report.memory.push(report::Memory::new(
            "Redis MEMORY USAGE, one authenticated interaction's keys (fresh)",
            one as f64,
            1024.0,
        ));
        let all = gateway::keys_of(&mut conn, &format!("{}:*", g.prefix)).await;
        let total = gateway::memory_usage(&mut conn, &all).await;
        report.memory.push(report::Memory::new(
            &format!(
                "Redis MEMORY USAGE, all {} keys / {} live (links, indexes, outbox, streams)",
                all.len(),
                seeded.len()
            ),
            total as f64 / seeded.len() as f64,
            f64::NAN,
        ));
    }
    if let Ok(g) = Arc::try_unwrap(g) {
        g.stop().await;
    }
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    // The log an operator runs (`RUST_LOG`, else info), formatted and
    // dropped: text as `chatgate` writes it to a file or journald.
    // With --traces, spans go to a receiver in this process; they are
    // made only while a traced row runs.
    let traces = if args.traces {
        let traces = otlp_receiver().await;
        chatgate::telemetry::init_to_traced(
            chatgate::telemetry::LogFormat::Text,
            std::io::sink,
            false,
            &traces,
        );
        chatgate::spans::turn_off();
        Some(traces)
    } else {
        chatgate::telemetry::init_to(chatgate::telemetry::LogFormat::Text, std::io::sink, false);
        None
    };
    let (duration, warmup, live) = if args.quick {
        (2.0, 0.5, 20_000)
    } else {
        (5.0, 1.0, 200_000)
    };
    let plan = Plan {
        conns: args.conns,
        warmup: Duration::from_secs_f64(args.warmup.unwrap_or(warmup)),
        duration: Duration::from_secs_f64(args.duration.unwrap_or(duration)),
        rate: None,
    };
    let live = args.live.unwrap_or(live);
    let started = Instant::now();
    let mut report = report::Report::new(&args_text(), plan, live);
    let mut b = Bench {
        plan,
        rows: Vec::new(),
        only: args.only.clone(),
        saturate: Duration::from_secs_f64(args.saturate.unwrap_or(if args.quick {
            0.0
        } else {
            10.0
        })),
        ceiling: None,
        traced: traces.is_some(),
    };

    let bare = ceilings::bare().await;
    let o = b.measure(false, bare, get("/".into(), "-"), None).await;
    b.rows
        .push(Row::ceiling("CEILING bare axum, 80-byte JSON", "-", o));
    let redis = !args.memory_only;
    let mut redis_get = None;
    let ceiling_prefix = format!(
        "chatgate-loadtest-ceiling-{}",
        uuid::Uuid::now_v7().simple()
    );
    if redis {
        let addr = ceilings::redis_get(gateway::redis_url(), &ceiling_prefix).await;
        let o = b.measure(true, addr, get("/".into(), "-"), None).await;
        redis_get = Some(addr);
        b.rows
            .push(Row::ceiling("CEILING axum + one Redis GET", "redis", o));
    }
    let (bare_c, redis_c) = ("bare axum", "axum + Redis GET");

    // Scaling first: the RSS growth of seeding is only meaningful while
    // the allocator has no freed memory to hand out again.
    let memory = !args.redis_only;
    if !args.no_scaling {
        if memory {
            b.ceiling = Some(bare);
            scaling(&mut b, false, live, bare_c, &mut report).await;
        }
        if redis {
            b.ceiling = redis_get;
            scaling(&mut b, true, live, redis_c, &mut report).await;
        }
    }
    if args.grow_to > 0 && b.wants("GROWING") {
        if memory {
            b.ceiling = Some(bare);
            growing(&mut b, false, args.grow_to, args.grow_rate, bare_c).await;
        }
        if redis {
            b.ceiling = redis_get;
            growing(&mut b, true, args.grow_to, args.grow_rate, redis_c).await;
        }
    }
    if memory
        && !b
            .only
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("growing"))
    {
        b.ceiling = Some(bare);
        scenarios(&mut b, false, args.interactions, bare_c).await;
        costs::audit_rows(&mut b, false, args.interactions, bare_c).await;
        costs::number_check_rows(&mut b, false, args.interactions, bare_c).await;
        costs::network_rows(&mut b, false, args.interactions, bare_c).await;
        mcp::mcp_rows(&mut b, false, args.interactions, bare_c, &mut report).await;
    }
    if redis {
        b.ceiling = redis_get;
        scenarios(&mut b, true, args.interactions, redis_c).await;
        costs::audit_rows(&mut b, true, args.interactions, redis_c).await;
        costs::number_check_rows(&mut b, true, args.interactions, redis_c).await;
        costs::network_rows(&mut b, true, args.interactions, redis_c).await;
        mcp::mcp_rows(&mut b, true, args.interactions, redis_c, &mut report).await;
    }
    if redis {
        gateway::delete_prefix(&ceiling_prefix).await;
    }
    if let Some(traces) = traces {
        traces.shutdown();
    }
    report.rows = b.rows;
    report.total_seconds = started.elapsed().as_secs_f64();
    report.print();
    match report.write() {
        Ok(path) => println!("\nJSON: {}", path.display()),
        Err(e) => eprintln!("could not write the JSON report: {e}"),
    }
}

/// A collector for the traced rows (`POST /v1/traces` taken and dropped)
/// and the trace pipeline exporting to it at `sample_ratio` 1.0.
async fn otlp_receiver() -> chatgate::telemetry::Traces {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(|_: axum::body::Bytes| async { "" }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let config = chatgate::config::TelemetryConfig {
        otlp_endpoint: Some(format!("http://{addr}")),
        sample_ratio: 1.0,
        service_name: "chatgate-loadtest".into(),
    };
    chatgate::telemetry::Traces::start(&config)
        .expect("the exporter starts")
        .expect("an endpoint is set")
}

fn args_text() -> String {
    std::env::args().skip(1).collect::<Vec<_>>().join(" ")
}
