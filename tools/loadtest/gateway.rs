//! chatgate in this process (the library API, as `main` and the tests start
//! it), on memory or on Redis under its own key prefix, with a fake chat
//! provider beside it; and the seeding of real records through the use
//! cases themselves (no HTTP: much quicker, same records).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chatgate::app::{App, Options};
use chatgate::domain::secrets::{generate_api_key, generate_whsec, ApiKeyHash};
use chatgate::domain::start_challenge::ChallengeRequest;
use chatgate::domain::webhook_sig;
use chatgate::gateway::{Callback, Core, LinkRequest, NewInteraction, SignatureHeaders};
use chatgate::time::{Clock, SystemClock, Timestamp};
use futures::StreamExt;
use uuid::Uuid;

use crate::engine::{self, RedisCost, SERVER_THREADS};

/// The Redis the run uses: `LOADTEST_REDIS_URL`, else the one on
/// `127.0.0.1:6379`. A Redis of its own keeps other clients' commands out
/// of the per-request counts.
pub fn redis_url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("LOADTEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    })
}

/// A running gateway and what a client needs to call it.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Core>,
    pub bot: String,
    pub agent: String,
    pub security_key: Vec<u8>,
    pub prefix: String,
    pub redis: bool,
    dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The runtime the gateway runs in (its server, its outbox and
    /// sweeper, its Redis connection), apart from the load generator's.
    runtime: Option<tokio::runtime::Runtime>,
}

/// Worker threads of the gateway's runtime: one per core of the 2-core
/// machine the figures are taken on, as a deployment would run it.
pub const SERVER_WORKERS: usize = 2;

/// A seeded interaction.
#[derive(Clone)]
pub struct Seeded {
    pub id: Uuid,
    pub conversation: String,
}

/// The `auth_token` of the fake Twilio channel `sms`.
pub const TWILIO_TOKEN: &str = "bench-twilio-token";

/// The URL Twilio signs for the `sms` channel's receipts.
const TWILIO_STATUS: &str = "http://gateway.bench/v1/providers/twilio/sms/status";

/// The `sid` the fake Twilio answers a message to `phone` with.
pub fn message_sid(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    format!("SM{digits}")
}

/// The fake Twilio's answer to a send: the message's `sid`, from its `To`.
/// The codes of the network links the fake Twilio was asked to send, in
/// the order it was asked (`costs::network_rows` opens them).
pub static NETWORK_LINKS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

async fn twilio_send(body: axum::body::Bytes) -> axum::Json<serde_json::Value> {
    let to = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let text = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "Body")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if let Some(code) = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://gateway.bench/n/"))
    {
        let mut links = NETWORK_LINKS.lock().unwrap_or_else(|p| p.into_inner());
        links.push(code.to_string());
    }
    axum::Json(serde_json::json!({"sid": message_sid(&to), "status": "queued"}))
}

/// A Twilio status callback for `sid`, signed as Twilio signs.
pub fn receipt_request(sid: &str, status: &str) -> engine::Req {
    let fields = vec![
        ("MessageSid".to_string(), sid.to_string()),
        ("MessageStatus".to_string(), status.to_string()),
    ];
    let sig = chatgate::channels::twilio::twilio_signature(
        TWILIO_TOKEN.as_bytes(),
        TWILIO_STATUS,
        &fields,
    );
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    engine::request(
        "POST",
        "/v1/providers/twilio/sms/status",
        &[("x-twilio-signature", &sig)],
        body.into_bytes(),
    )
}

/// The fake chat provider: every webhook delivery succeeds, and the fake
/// Twilio answers every message with a `sid`.
async fn chat_sink() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new()
        .route("/messages", post(|| async { "" }))
        .route("/2010-04-01/Accounts/AC1/Messages.json", post(twilio_send));
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The `[server]` limits of the runs: connections beyond the default
/// 768, and the MCP rows hold a thousand waits, and sessions, of one bot
/// key.
const BENCH_LIMITS: &str =
    "max_connections = 4096\nmax_waits_per_key = 1024\nmax_mcp_sessions_per_key = 4096\n";

/// The `[server]` limits as shipped (connections, waits), but for the
/// sessions a run of a thousand waiting calls opens, one a call.
const SHIPPED_LIMITS: &str = "max_mcp_sessions_per_key = 4096\n";

fn write_config(
    dir: &Path,
    redis: bool,
    prefix: &str,
    chat: SocketAddr,
    keys: (&str, &str, &str),
    (team_extra, limits): (&str, &str),
) {
    std::fs::create_dir_all(dir.join("config/teams")).expect("dir");
    std::fs::create_dir_all(dir.join("channels")).expect("dir");
    let backend = if redis { "redis" } else { "memory" };
    let redis_url = redis_url();
    // Attempt limits high enough that a run of wrong codes is counted, not
    // refused (the OTP-verify scenario), and failures forgotten after 1 s so
    // a subject's record stays small under the hot-record brute force.
    let system = format!(
        r#"[server]
listen = "127.0.0.1:0"
public_url = "http://gateway.bench"
issuer = "chatgate-bench"
pepper = "bench-pepper-0123456789abcdef"
shutdown_drain = "0s"
{limits}

[store]
backend = "{backend}"
redis_url = "{redis_url}"
key_prefix = "{prefix}"

[defaults]
interaction_ttl = "24h"

[defaults.otp]
max_attempts = 1000000000
show_to_agents = true

[defaults.lockout]
threshold = 1000000000
window = "1s"
"#
    );
    std::fs::write(dir.join("config/chatgate.toml"), system).expect("write");
    let (security, bot, agent) = keys;
    let team = format!(
        r#"id = "acme"
login_url = "https://login.acme.bench/chat"
channels = ["webchat", "sms"]
sms_channel = "sms"

[[security_keys]]
kid = "k1"
secret = "{security}"
primary = true

[[api_keys]]
id = "bench-bot"
role = "bot"
sha256 = "{bot}"

[[api_keys]]
id = "bench-agent"
role = "agent"
sha256 = "{agent}"

{team_extra}
"#,
        bot = ApiKeyHash::of_key(bot).to_hex(),
        agent = ApiKeyHash::of_key(agent).to_hex(),
    );
    std::fs::write(dir.join("config/teams/acme.toml"), team).expect("write");
    let webchat = format!(
        "name = \"webchat\"\nkind = \"webhook\"\nurl = \"http://{chat}/messages\"\nsecret = \"${{CG_LOADTEST_UNSET_WEBCHAT_SECRET:-{}}}\"\n",
        generate_whsec()
    );
    std::fs::write(dir.join("channels/webchat.toml"), webchat).expect("write");
    let sms = format!(
        "name = \"sms\"\nkind = \"twilio\"\nbase_url = \"http://{chat}\"\naccount_sid = \"AC1\"\nauth_token = \"${{CG_LOADTEST_UNSET_TWILIO:-{TWILIO_TOKEN}}}\"\nfrom = \"+15550006666\"\n"
    );
    std::fs::write(dir.join("channels/sms.toml"), sms).expect("write");
}

/// How long [`Running::settle`] waits for the outbox to empty, at most.
pub const SETTLE_LIMIT_S: f64 = 900.0;

/// The request of a signed login callback ([`Running::signed_callback`]).
pub fn callback_request((body, id, ts, sig): &(Vec<u8>, String, i64, String)) -> engine::Req {
    let ts = ts.to_string();
    let headers = [
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    engine::request("POST", "/v1/login/callback", &headers, body.clone())
}

/// Where a code for challenge `challenge` of interaction `id` is verified.
pub fn verify_path(id: Uuid, challenge: Uuid) -> String {
    format!("/v1/interactions/{id}/challenges/{challenge}/verify")
}

/// A wrong code sent to `path` ([`verify_path`]) as the bot `auth`
/// (`Bearer …`): 7 digits can never be a 6-digit OTP.
pub fn wrong_code_request(path: &str, auth: &str) -> engine::Req {
    let body = br#"{"code":"0000000"}"#.to_vec();
    engine::request("POST", path, &[("authorization", auth)], body)
}

impl Running {
    /// Starts chatgate on memory or on Redis (a fresh key prefix).
    pub async fn start(redis: bool) -> Running {
        Self::start_with(redis, "").await
    }

    /// [`Running::start`] with `team_extra` (TOML) appended to the team's
    /// file.
    pub async fn start_with(redis: bool, team_extra: &str) -> Running {
        Self::start_configured(redis, (team_extra, BENCH_LIMITS)).await
    }

    /// [`Running::start`] with the connections and waiting budget as
    /// shipped (`max_connections` 768, `max_waits` a quarter of it,
    /// `max_waits_per_key` 64).
    pub async fn start_shipped(redis: bool) -> Running {
        Self::start_configured(redis, ("", SHIPPED_LIMITS)).await
    }

    async fn start_configured(redis: bool, (team_extra, limits): (&str, &str)) -> Running {
        let chat = chat_sink().await;
        // As long as the sample configuration's `chatgate` (every Redis key
        // carries it, so its length is part of the bytes per interaction),
        // and still this run's own: `lt` and six random hex digits.
        // (A v7 id ends in random bits.)
        let run = Uuid::now_v7().simple().to_string();
        let prefix = format!("lt{}", &run[run.len() - 6..]);
        let dir = std::env::temp_dir().join(format!("chatgate-loadtest-{run}"));
        let (security, bot, agent) = (generate_whsec(), generate_api_key(), generate_api_key());
        write_config(
            &dir,
            redis,
            &prefix,
            chat,
            (&security, &bot, &agent),
            (team_extra, limits),
        );
        let config = chatgate::config::load(&dir.join("config/chatgate.toml")).expect("config");
        // Built and served in a runtime of its own: what the gateway spawns
        // (its server's connections, outbox, sweeper, Redis connection)
        // runs on its threads, which the load generator's work never does.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SERVER_WORKERS)
            .thread_name(SERVER_THREADS)
            .enable_all()
            .build()
            .expect("the gateway's runtime");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, gateway) = runtime
            .spawn(async move {
                let app = App::build(config, Options::default()).await.expect("app");
                let addr = app.local_addr().expect("addr");
                let gateway = app.gateway();
                tokio::spawn(app.serve(async move {
                    let _ = rx.await;
                }));
                (addr, gateway)
            })
            .await
            .expect("the gateway started");
        Running {
            addr,
            gateway,
            bot,
            agent,
            security_key: B64
                .decode(security.trim_start_matches("whsec_"))
                .expect("key"),
            prefix,
            redis,
            dir,
            stop: Some(tx),
            runtime: Some(runtime),
        }
    }

    /// The tasks alive in the gateway's runtime: its server's connections
    /// and what they wait on, its outbox, sweeper and listeners.
    pub fn alive_tasks(&self) -> usize {
        self.runtime
            .as_ref()
            .map_or(0, |r| r.metrics().num_alive_tasks())
    }

    pub fn now() -> Timestamp {
        SystemClock.now()
    }

    /// Creates `n` interactions (conversations `c{from}`..), `parallel` at a
    /// time; every second one is authenticated by a real login link and
    /// callback.
    pub async fn seed(&self, from: usize, n: usize, parallel: usize) -> Vec<Seeded> {
        let made = futures::stream::iter(from..from + n)
            .map(|i| async move {
                let team = self.gateway.team("acme").expect("team");
                let conversation = format!("c{i}");
                let req = NewInteraction {
                    channel: "webchat".into(),
                    conversation_id: conversation.clone(),
                    ..NewInteraction::default()
                };
                let (view, _) = chatgate::gateway::interactions::create_interaction(
                    &self.gateway,
                    team,
                    req,
                    Self::now(),
                )
                .await
                .expect("create");
                let id = view.id;
                if i % 2 == 1 {
                    let token = self.issue(id).await;
                    self.callback_in_process(&token, &format!("cust-{i}")).await;
                }
                Seeded { id, conversation }
            })
            .buffer_unordered(parallel);
        made.collect().await
    }

    /// Waits (at most 15 min: seeding 1 M live on Redis leaves ~1.5 M items)
    /// until the outbox is empty, the items born claimed by the dispatcher
    /// and waiting in the due queue included: seeding leaves an event per interaction
    /// and a notice per login to deliver, work that would otherwise run
    /// during the first scenarios. Answers how long it waited, in seconds
    /// (looking every 10 ms, so to within 0.01 s): [`SETTLE_LIMIT_S`] or more
    /// if the outbox never emptied.
    pub async fn settle(&self) -> f64 {
        let store = self.gateway.store();
        let t0 = std::time::Instant::now();
        while t0.elapsed().as_secs_f64() < SETTLE_LIMIT_S {
            let left = chatgate::gateway::outbox_left(store.as_ref(), "acme", Self::now(), 1).await;
            if left.is_ok_and(|l| l == 0) {
                let took = t0.elapsed().as_secs_f64();
                eprintln!("outbox drained in {took:.2} s");
                return took;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        eprintln!("outbox NOT drained after 900 s: the next figures carry its backlog");
        t0.elapsed().as_secs_f64()
    }

    /// A fresh login link's token for interaction `id`.
    pub async fn issue(&self, id: Uuid) -> String {
        let team = self.gateway.team("acme").expect("team");
        chatgate::gateway::login::issue_link(
            &self.gateway,
            team,
            id,
            LinkRequest::default(),
            Self::now(),
        )
        .await
        .expect("issue")
        .token
        .expect("a login-page link has a token")
    }

    /// A successful callback straight into the use case.
    async fn callback_in_process(&self, token: &str, customer: &str) {
        let (body, id, ts, sig) = self.signed_callback(token, customer);
        let mut c = chatgate::domain::interaction::Customer::new();
        c.insert("id".into(), customer.into());
        let cb = Callback {
            token: token.into(),
            success: true,
            customer: c,
        };
        let ts = ts.to_string();
        let headers = SignatureHeaders {
            id: Some(&id),
            timestamp: Some(&ts),
            signature: Some(&sig),
        };
        chatgate::gateway::login::login_callback(&self.gateway, cb, headers, &body, Self::now())
            .await
            .expect("callback");
    }

    /// A callback body for `token` and its Standard Webhooks headers
    /// (body, webhook-id, webhook-timestamp, webhook-signature).
    pub fn signed_callback(&self, token: &str, customer: &str) -> (Vec<u8>, String, i64, String) {
        let body = serde_json::to_vec(&serde_json::json!({
            "token": token, "outcome": "success", "customer": {"id": customer}
        }))
        .expect("json");
        let id = format!("msg_{}", Uuid::now_v7().simple());
        let ts = Self::now().unix_seconds();
        let sig = webhook_sig::sign(&self.security_key, &id, ts, &body);
        (body, id, ts, sig)
    }

    /// Starts an OTP challenge shown to agents (no chat message): its id.
    pub async fn start_otp(&self, id: Uuid) -> Uuid {
        let team = self.gateway.team("acme").expect("team");
        let req = ChallengeRequest::parse("otp", Some("agent"), None).expect("request");
        chatgate::gateway::challenges::start_challenge(&self.gateway, team, id, req, &SystemClock)
            .await
            .expect("challenge")
            .challenge_id
    }

    /// Creates `n` interactions with a phone each and sends each an OTP
    /// by SMS through the fake Twilio, `parallel` at a time: the `sid`s of
    /// their messages.
    pub async fn seed_sms(&self, n: usize, parallel: usize) -> Vec<String> {
        let sent = futures::stream::iter(0..n)
            .map(|i| async move {
                let team = self.gateway.team("acme").expect("team");
                let phone = format!("+1555{:07}", 2_000_000 + i);
                let req = NewInteraction {
                    channel: "webchat".into(),
                    conversation_id: format!("sms{i}"),
                    contact: Some(chatgate::domain::interaction::Contact {
                        phone: Some(phone.clone()),
                        email: None,
                    }),
                    ..NewInteraction::default()
                };
                let (view, _) = chatgate::gateway::interactions::create_interaction(
                    &self.gateway,
                    team,
                    req,
                    Self::now(),
                )
                .await
                .expect("create");
                let req = ChallengeRequest::parse("otp", Some("sms"), None).expect("request");
                chatgate::gateway::challenges::start_challenge(
                    &self.gateway,
                    team,
                    view.id,
                    req,
                    &SystemClock,
                )
                .await
                .expect("sms challenge");
                message_sid(&phone)
            })
            .buffer_unordered(parallel);
        sent.collect().await
    }

    /// Stops the server; on Redis deletes every key of its prefix (never FLUSHALL).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if self.redis {
            delete_prefix(&self.prefix).await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Running {
    /// A runtime dropped inside another would block it: let it go.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Every key under `prefix:`, through SCAN.
pub async fn keys_of(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("scan");
        out.extend(batch);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

/// Deletes the keys of one prefix, in batches.
pub async fn delete_prefix(prefix: &str) {
    let mut conn = redis_conn().await;
    let keys = keys_of(&mut conn, &format!("{prefix}:*")).await;
    for chunk in keys.chunks(500) {
        let _: Result<i64, _> = redis::cmd("UNLINK").arg(chunk).query_async(&mut conn).await;
    }
}

/// Redis' running totals: CPU seconds (user + system, `INFO cpu`) and the
/// calls of each command and the µs spent in them (`INFO commandstats`;
/// Redis counts a script's own commands under their names too, and their
/// time in the script's as well).
#[derive(Debug, Clone, Default)]
pub struct RedisCounters {
    cpu_s: f64,
    calls: std::collections::BTreeMap<String, (u64, u64)>,
}

/// The commands that run a script.
const SCRIPTS: [&str; 5] = ["evalsha", "eval", "evalsha_ro", "eval_ro", "fcall"];

impl RedisCounters {
    pub async fn read(conn: &mut redis::aio::MultiplexedConnection) -> Option<Self> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .arg("commandstats")
            .query_async(conn)
            .await
            .ok()?;
        let mut c = RedisCounters::default();
        for line in info.lines() {
            if let Some(v) = line
                .strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
            {
                c.cpu_s += v.trim().parse::<f64>().ok()?;
            } else if let Some(stat) = line.strip_prefix("cmdstat_") {
                let (name, fields) = stat.split_once(':')?;
                let field = |key: &str| -> Option<u64> {
                    fields
                        .split(',')
                        .find_map(|f| f.strip_prefix(key))?
                        .parse()
                        .ok()
                };
                c.calls
                    .insert(name.to_owned(), (field("calls=")?, field("usec=")?));
            }
        }
        Some(c)
    }

    /// From `self` to `later`, per one of `requests`.
    pub fn per_request(&self, later: &Self, requests: u64) -> RedisCost {
        let n = requests.max(1) as f64;
        let per_request = |pick: fn(&(u64, u64)) -> u64| {
            let mut per: Vec<(String, f64)> = later
                .calls
                .iter()
                .map(|(name, now)| {
                    let before = self.calls.get(name).map_or(0, pick);
                    (name.clone(), pick(now).saturating_sub(before) as f64 / n)
                })
                .filter(|(_, per)| *per > 0.0)
                .collect();
            per.sort_by(|a, b| b.1.total_cmp(&a.1));
            per
        };
        let by_command = per_request(|&(calls, _)| calls);
        RedisCost {
            cpu_us: (later.cpu_s - self.cpu_s) * 1e6 / n,
            commands: by_command.iter().map(|(_, per)| per).sum(),
            scripts: by_command
                .iter()
                .filter(|(name, _)| SCRIPTS.contains(&name.as_str()))
                .map(|(_, per)| per)
                .sum(),
            by_command,
            us_by_command: per_request(|&(_, usec)| usec),
        }
    }
}

/// Sum of `MEMORY USAGE` over `keys`.
pub async fn memory_usage(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) -> u64 {
    let mut total = 0u64;
    for k in keys {
        let n: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .arg("SAMPLES")
            .arg(0)
            .query_async(conn)
            .await
            .unwrap_or(None);
        total += n.unwrap_or(0);
    }
    total
}

/// Resident set size of this process, bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A bare axum server whose `POST /hold` answers after 25 s.
pub async fn holding_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route(
        "/hold",
        axum::routing::post(|_body: String| async {
            tokio::time::sleep(std::time::Duration::from_secs(25)).await;
            "held"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}
