//! Replays the connection attacks of docs/operations.md#hostile-clients against a
//! gateway on this machine, and measures what a legitimate client gets
//! meanwhile (a fresh connection every 200 ms, `GET /healthz`); and the
//! attacks of a team's hostile identity provider (`provider.rs`).
//!
//! ```text
//! cargo run --release --example attack -- SCENARIO [--target 127.0.0.1:8080]
//!     [--seconds 40] [--sockets 780] [--rate 190] [--pipeline 1000] [--path /healthz]
//!     [--key AGENT_KEY] [--other-key AGENT_KEY]
//!     [--listen 127.0.0.1:9100] [--mib 400] [--pid GATEWAY_PID] [--public-url URL]
//!     [--moves 10] [--hold-ms 500] [--max-sends 5] [--phone +447400123456]
//! ```
//!
//! - `slow-readers`: `--sockets` connections, each with a small receive
//!   window, pipeline `--pipeline` `GET --path` and never read an answer
//!   (to hold a gateway without a write timeout, the answers must exceed
//!   what the kernel buffers per connection: up to `tcp_wmem`'s maximum).
//! - `crowd`: `--rate` new connections a second, half idle, half sending a
//!   request head one byte a second; each kept until the gateway closes it.
//! - `streams`: `--sockets` `GET /v1/events` streams with one agent key
//!   (`--key`, read normally); the legitimate client also opens a stream
//!   with another team's key (`--other-key`) every 2 s.
//! - `team-flood`: the tool is a hung identity provider (`--listen`: it
//!   takes every connection and never answers) of team `--path` (`/acme`: its
//!   `[oidc] issuer`, with `backchannel_logout = true`), and keeps
//!   `--sockets` junk logout tokens in flight at that team's
//!   `/oidc/backchannel-logout/{team}`, counting the answers by status
//!   (docs/operations.md#one-team-never-holds-another); meanwhile the
//!   legitimate client's `GET /healthz` must still be answered at once.
//! - `link-flood`: the tool is a hung identity provider (`--listen`) of the
//!   team of a hosted login's short link `--path` (`/l/CODE` of a link
//!   issued with `"provider": "oidc"`; the team's `[oidc] issuer` is the
//!   tool), and keeps `--sockets` browser fetches of that one link in
//!   flight, counting the answers by status.
//! - `teams-flood`: the same for many teams on one provider (a bank's
//!   brands): `--path` is a comma-separated list of short links, one per
//!   team, each team's `[oidc] issuer` the tool; the fetches go round the
//!   links. With the cap of all teams, at most a quarter of the gateway's
//!   `max_connections` wait on the provider, whatever the number of teams.
//!
//! - `oversized-provider`: the tool is the provider (`--listen`) of the
//!   team whose bot key is `--key`; its token answer is `--mib` MiB.
//! - `mix-up`: `--key` is a bot key of the victim's team (whose provider
//!   must sign in at once), `--other-key` one of the attacker's team, whose
//!   provider is this tool (`--listen`).
//! - `stand-in-provider`: only serves, for `--seconds`, a provider that
//!   signs anyone in at once (its codes are refused at its token endpoint):
//!   a victim team's provider for a local `mix-up`.
//! - `ladder-race`: the tool is every ladder step's provider (`--listen`);
//!   `--moves` moves of one ladder at once with the code's use among them,
//!   counting the sends against `--max-sends` (`ladder_race.rs`).
//!
//! For both, the attacker's team file names the tool as its provider:
//! `[oidc] issuer = "http://127.0.0.1:9100"` (any `client_id` and
//! `client_secret`), and the team has a `webchat` channel.
//!
//! Loopback targets only; at most 300 s, 5000 sockets, 1000 a second; it
//! stops by itself and prints the legitimate client's answers per 5 s and
//! in all.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep, timeout, Instant};

mod ladder_race;
mod provider;
mod provider_attacks;

const MAX_SECONDS: u64 = 300;
const MAX_SOCKETS: usize = 5000;
const MAX_RATE: u64 = 1000;
const MAX_PIPELINE: usize = 20_000;
/// The largest token answer the hostile provider sends.
const MAX_MIB: usize = 2048;

struct Args {
    scenario: String,
    target: SocketAddr,
    seconds: u64,
    sockets: usize,
    rate: u64,
    pipeline: usize,
    path: String,
    key: String,
    other_key: String,
    listen: SocketAddr,
    mib: usize,
    pid: Option<u32>,
    public_url: Option<String>,
    /// `ladder-race`: moves at once, how long the provider holds a send,
    /// the team's `otp.max_sends`, the contact's phone.
    moves: usize,
    hold_ms: u64,
    max_sends: usize,
    phone: String,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let scenario = it
        .next()
        .ok_or("a scenario: slow-readers, crowd or streams")?;
    let mut a = Args {
        scenario,
        target: "127.0.0.1:8080".parse().map_err(|_| "target")?,
        seconds: 40,
        sockets: 780,
        rate: 190,
        pipeline: 1000,
        path: "/healthz".into(),
        key: String::new(),
        other_key: String::new(),
        listen: "127.0.0.1:9100".parse().map_err(|_| "listen")?,
        mib: 400,
        pid: None,
        public_url: None,
        moves: 10,
        hold_ms: 500,
        max_sends: 5,
        phone: "+447400123456".into(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("{flag}: {value} is not valid");
        match flag.as_str() {
            "--target" => a.target = value.parse().map_err(|_| format!("{flag}: {value}"))?,
            "--seconds" => a.seconds = value.parse().map_err(bad)?,
            "--sockets" => a.sockets = value.parse().map_err(|_| format!("{flag}: {value}"))?,
            "--rate" => a.rate = value.parse().map_err(|_| format!("{flag}: {value}"))?,
            "--pipeline" => a.pipeline = value.parse().map_err(|_| format!("{flag}: {value}"))?,
            "--path"
                if value.starts_with('/')
                    && !value.contains(char::is_whitespace)
                    && value.split(',').all(|p| p.starts_with('/')) =>
            {
                a.path = value
            }
            "--path" => return Err("--path: a path such as /healthz".into()),
            "--key" => a.key = value,
            "--other-key" => a.other_key = value,
            "--listen" => a.listen = value.parse().map_err(|_| format!("{flag}: {value}"))?,
            "--mib" => a.mib = value.parse().map_err(|_| format!("{flag}: {value}"))?,
            "--pid" => a.pid = Some(value.parse().map_err(|_| format!("{flag}: {value}"))?),
            "--public-url" => a.public_url = Some(value.trim_end_matches('/').to_string()),
            "--moves" => a.moves = value.parse().map_err(bad)?,
            "--hold-ms" => a.hold_ms = value.parse().map_err(bad)?,
            "--max-sends" => a.max_sends = value.parse().map_err(bad)?,
            "--phone" => a.phone = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !a.target.ip().is_loopback() || !a.listen.ip().is_loopback() {
        return Err("only a loopback target and provider (127.0.0.0/8, ::1)".into());
    }
    if a.mib > MAX_MIB {
        return Err(format!("bounds: at most {MAX_MIB} MiB"));
    }
    if a.seconds == 0
        || a.seconds > MAX_SECONDS
        || a.sockets > MAX_SOCKETS
        || a.rate > MAX_RATE
        || a.pipeline > MAX_PIPELINE
    {
        return Err(format!(
            "bounds: 1..={MAX_SECONDS} s, at most {MAX_SOCKETS} sockets, {MAX_RATE} a second, {MAX_PIPELINE} pipelined"
        ));
    }
    if matches!(a.scenario.as_str(), "streams" | "mix-up")
        && (a.key.is_empty() || a.other_key.is_empty())
    {
        return Err(format!("{} needs --key and --other-key", a.scenario));
    }
    if matches!(a.scenario.as_str(), "oversized-provider" | "ladder-race") && a.key.is_empty() {
        return Err(format!("{} needs --key", a.scenario));
    }
    if a.moves == 0 || a.moves > 1000 || a.hold_ms > 10_000 {
        return Err("bounds: 1..=1000 moves, a send held at most 10000 ms".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("attack: {e}");
            return ExitCode::from(2);
        }
    };
    if args.scenario == "ladder-race" {
        let run = timeout(Duration::from_secs(args.seconds), ladder_race::run(&args)).await;
        return match run {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("attack: {e}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!("attack: not done within {} s", args.seconds);
                ExitCode::FAILURE
            }
        };
    }
    if matches!(
        args.scenario.as_str(),
        "oversized-provider" | "mix-up" | "stand-in-provider"
    ) {
        let run = timeout(
            Duration::from_secs(args.seconds),
            provider_attacks::run(&args),
        )
        .await;
        return match run {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("attack: {e}");
                ExitCode::FAILURE
            }
            Err(_) if args.scenario == "stand-in-provider" => ExitCode::SUCCESS,
            Err(_) => {
                eprintln!("attack: not done within {} s", args.seconds);
                ExitCode::FAILURE
            }
        };
    }
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let open = Arc::new(AtomicUsize::new(0));
    let args = Arc::new(args);
    let task = {
        let (a, open) = (Arc::clone(&args), Arc::clone(&open));
        tokio::spawn(async move {
            match a.scenario.as_str() {
                "slow-readers" => slow_readers(&a, end, open).await,
                "crowd" => crowd(&a, end, open).await,
                "streams" => streams(&a, end, open).await,
                "team-flood" => team_flood(&a, end, open).await,
                "link-flood" | "teams-flood" => links_flood(&a, end, open).await,
                other => eprintln!("attack: unknown scenario {other}"),
            }
        })
    };
    sleep(Duration::from_millis(500)).await;
    legit(&args, end, &open).await;
    task.abort();
    ExitCode::SUCCESS
}

/// One request on a fresh connection; the status (0: no answer in 5 s).
async fn probe(target: SocketAddr, request: &[u8]) -> u16 {
    let run = async {
        let mut s = TcpStream::connect(target).await.ok()?;
        s.write_all(request).await.ok()?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head).lines().next()?.to_string();
        line.split(' ').nth(1)?.parse().ok()
    };
    timeout(Duration::from_secs(5), run)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// The legitimate client until `end`: a report per 5 s and in all.
async fn legit(args: &Args, end: Instant, open: &AtomicUsize) {
    let start = Instant::now();
    let mut all: BTreeMap<u16, usize> = BTreeMap::new();
    let mut window: BTreeMap<u16, usize> = BTreeMap::new();
    let mut streams: BTreeMap<u16, usize> = BTreeMap::new();
    let mut next_report = start + Duration::from_secs(5);
    let mut next_stream = start;
    let stream_req = format!(
        "GET /v1/events HTTP/1.1\r\nHost: legit\r\nAuthorization: Bearer {}\r\n\r\n",
        args.other_key
    );
    while Instant::now() < end {
        let status = probe(
            args.target,
            b"GET /healthz HTTP/1.1\r\nHost: legit\r\nConnection: close\r\n\r\n",
        )
        .await;
        *all.entry(status).or_default() += 1;
        *window.entry(status).or_default() += 1;
        if args.scenario == "streams" && Instant::now() >= next_stream {
            let s = probe(args.target, stream_req.as_bytes()).await;
            *streams.entry(s).or_default() += 1;
            next_stream += Duration::from_secs(2);
        }
        if Instant::now() >= next_report {
            println!(
                "t={:>3}s  legit {}  attacker sockets open {}",
                start.elapsed().as_secs(),
                summary(&window),
                open.load(Ordering::Relaxed)
            );
            window.clear();
            next_report += Duration::from_secs(5);
        }
        sleep(Duration::from_millis(200)).await;
    }
    println!("legit in all: {}", summary(&all));
    if !streams.is_empty() {
        println!("legit streams (other team): {}", summary(&streams));
    }
    println!(
        "attacker sockets still open at the end: {}",
        open.load(Ordering::Relaxed)
    );
}

/// `200: 9/10 (90%), 503: 1` — statuses, 0 = no answer.
fn summary(counts: &BTreeMap<u16, usize>) -> String {
    let total: usize = counts.values().sum();
    let ok = counts.get(&200).copied().unwrap_or(0);
    let rest: Vec<String> = counts
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    let pct = if total == 0 {
        0.0
    } else {
        100.0 * ok as f64 / total as f64
    };
    format!("200: {ok}/{total} ({pct:.0}%) {}", rest.join(", "))
}

/// Counts a socket as open until dropped.
struct Held(Arc<AtomicUsize>);

impl Held {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Held(Arc::clone(open))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits until the gateway closes `s` (seen by writing, never reading) or `end`.
async fn hold_unread(s: TcpStream, end: Instant, open: Arc<AtomicUsize>) {
    let _held = Held::new(&open);
    while Instant::now() < end {
        match s.try_write(b"\r\n") {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
            Ok(_) => {}
        }
        sleep(Duration::from_millis(500)).await;
    }
}

async fn slow_readers(a: &Args, end: Instant, open: Arc<AtomicUsize>) {
    let one = format!("GET {} HTTP/1.1\r\nHost: attack\r\n\r\n", a.path);
    let pipelined = Arc::new(one.as_bytes().repeat(a.pipeline));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..a.sockets {
        let Ok(sock) = TcpSocket::new_v4() else {
            continue;
        };
        let _ = sock.set_recv_buffer_size(2048);
        let Ok(Ok(mut s)) = timeout(Duration::from_secs(2), sock.connect(a.target)).await else {
            continue;
        };
        let (p, open) = (Arc::clone(&pipelined), Arc::clone(&open));
        set.spawn(async move {
            let _ = timeout(Duration::from_secs(2), s.write_all(&p)).await;
            hold_unread(s, end, open).await;
        });
    }
    tokio::time::sleep_until(end).await;
}

async fn crowd(a: &Args, end: Instant, open: Arc<AtomicUsize>) {
    let mut set = tokio::task::JoinSet::new();
    let every = Duration::from_micros(1_000_000 / a.rate.max(1));
    let mut n = 0u64;
    while Instant::now() < end {
        if open.load(Ordering::Relaxed) < MAX_SOCKETS {
            let (target, open) = (a.target, Arc::clone(&open));
            let trickle = n % 2 == 1;
            set.spawn(async move {
                let Ok(Ok(s)) = timeout(Duration::from_secs(2), TcpStream::connect(target)).await
                else {
                    return;
                };
                let _held = Held::new(&open);
                let _ = s.try_write(if trickle {
                    b"GET /healthz HTTP/1.1\r\nX-A: "
                } else {
                    b""
                });
                while Instant::now() < end {
                    // Idle ones write nothing, but notice the close the same way.
                    let byte: &[u8] = if trickle { b"a" } else { b"" };
                    let closed = match s.try_write(byte) {
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                        Ok(_) => peer_closed(&s),
                    };
                    if closed {
                        return;
                    }
                    sleep(Duration::from_secs(1)).await;
                }
            });
        }
        n += 1;
        sleep(every).await;
        while set.try_join_next().is_some() {}
    }
}

/// Whether the peer has closed `s` (a read would see the end or an error).
fn peer_closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

async fn streams(a: &Args, end: Instant, open: Arc<AtomicUsize>) {
    let req = Arc::new(format!(
        "GET /v1/events HTTP/1.1\r\nHost: attack\r\nAuthorization: Bearer {}\r\n\r\n",
        a.key
    ));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..a.sockets {
        let (target, open, req) = (a.target, Arc::clone(&open), Arc::clone(&req));
        set.spawn(async move {
            let Ok(Ok(mut s)) = timeout(Duration::from_secs(2), TcpStream::connect(target)).await
            else {
                return;
            };
            if s.write_all(req.as_bytes()).await.is_err() {
                return;
            }
            let _held = Held::new(&open);
            let mut buf = [0u8; 4096];
            // A normal reader: takes everything until the stream ends.
            while let Ok(Ok(n)) = timeout(
                end.saturating_duration_since(Instant::now()),
                s.read(&mut buf),
            )
            .await
            {
                if n == 0 {
                    return;
                }
            }
        });
        sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep_until(end).await;
}

/// `team-flood`: a hung provider at `--listen`, and `--sockets` junk
/// logout tokens always in flight at team `--path`'s back-channel logout;
/// prints how many were answered with each status.
async fn team_flood(a: &Args, end: Instant, open: Arc<AtomicUsize>) {
    let Ok(hung) = tokio::net::TcpListener::bind(a.listen).await else {
        eprintln!("attack: cannot listen on {}", a.listen);
        return;
    };
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let team = a.path.trim_start_matches('/').to_string();
    let body = "logout_token=eyJhbGciOiJSUzI1NiIsImtpZCI6Imp1bmsifQ.eyJzdWIiOiJ4In0.c2ln";
    let req = Arc::new(format!(
        "POST /oidc/backchannel-logout/{team} HTTP/1.1\r\nHost: attack\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let statuses = probe_round(a, std::slice::from_ref(&req), end, open).await;
    println!("team-flood answers by status (0: none within 5 s): {statuses:?}");
}

/// `link-flood` and `teams-flood`: a hung provider at `--listen`, and
/// `--sockets` browser fetches always in flight of the short links in
/// `--path` (comma-separated), going round them; prints how many were
/// answered with each status (docs/operations.md#one-team-never-holds-another).
async fn links_flood(a: &Args, end: Instant, open: Arc<AtomicUsize>) {
    let Ok(hung) = tokio::net::TcpListener::bind(a.listen).await else {
        eprintln!("attack: cannot listen on {}", a.listen);
        return;
    };
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let requests: Vec<Arc<String>> = a
        .path
        .split(',')
        .map(|path| {
            Arc::new(format!(
                "GET {path} HTTP/1.1\r\nHost: attack\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
            ))
        })
        .collect();
    let statuses = probe_round(a, &requests, end, open).await;
    println!(
        "{} over {} link(s): answers by status (0: none within 5 s): {statuses:?}",
        a.scenario,
        requests.len()
    );
}

/// `--sockets` requests always in flight until `end`, socket `i` sending
/// `requests[i % len]` again and again; how many were answered with each
/// status (0: none within 5 s).
async fn probe_round(
    a: &Args,
    requests: &[Arc<String>],
    end: Instant,
    open: Arc<AtomicUsize>,
) -> BTreeMap<u16, u64> {
    let statuses = Arc::new(std::sync::Mutex::new(BTreeMap::<u16, u64>::new()));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..a.sockets.min(MAX_SOCKETS) {
        let req = Arc::clone(&requests[i % requests.len()]);
        let (target, open, statuses) = (a.target, Arc::clone(&open), Arc::clone(&statuses));
        set.spawn(async move {
            while Instant::now() < end {
                let _held = Held::new(&open);
                let status = probe(target, req.as_bytes()).await;
                *statuses
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(status)
                    .or_default() += 1;
            }
        });
    }
    tokio::time::sleep_until(end).await;
    set.abort_all();
    let statuses = statuses.lock().unwrap_or_else(|p| p.into_inner()).clone();
    statuses
}
