//! How long a Shared Signals `session-revoked` takes to end a chat
//! (docs/performance.md#revocation-latency): two gateway instances on one
//! Redis, the event pushed to instance A, the `interaction.logged_out`
//! awaited on instance B's `GET /v1/events`. Prints the time to A's 202
//! and to B's event, p50/p95/max over the rounds.
//!
//! ```sh
//! cargo run --release --example revocation_latency -- 200
//! ```
//! Redis must run on 127.0.0.1:6379 (or at `LOADTEST_REDIS_URL`); the run
//! uses its own key prefix and deletes nothing but what expires. The
//! transmitter's key is the test-only key `a` of `tests/api/oidc_keys/`.
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chatgate::app::{App, Options};
use chatgate::domain::secrets::{generate_api_key, generate_whsec, ApiKeyHash};
use chatgate::domain::webhook_sig;
use chatgate::time::{Clock, SystemClock};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

const KEY_A: &str = include_str!("../tests/api/oidc_keys/a.pem");
const PUBLIC: &str = include_str!("../tests/api/oidc_keys/public.json");
const AUDIENCE: &str = "https://gateway.bench/ssf/acme";

/// Serves the transmitter's key set and a chat provider that accepts all.
async fn transmitter_and_chat() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let keys: Value = serde_json::from_str(PUBLIC).expect("keys");
    let set = json!({"keys": [keys["a"].clone()]});
    let router = Router::new()
        .route("/jwks", get(move || async move { axum::Json(set) }))
        .route("/messages", axum::routing::post(|| async { "" }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn write_config(dir: &Path, helper: SocketAddr, prefix: &str, keys: (&str, &str, &str)) {
    std::fs::create_dir_all(dir.join("config/teams")).expect("dir");
    std::fs::create_dir_all(dir.join("channels")).expect("dir");
    let redis_url =
        std::env::var("LOADTEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let system = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://gateway.bench\"\nissuer = \"chatgate-bench\"\npepper = \"bench-pepper-0123456789abcdef\"\nshutdown_drain = \"0s\"\n\n[store]\nbackend = \"redis\"\nredis_url = \"{redis_url}\"\nkey_prefix = \"{prefix}\"\n"
    );
    std::fs::write(dir.join("config/chatgate.toml"), system).expect("write");
    let (security, bot, agent) = keys;
    let team = format!(
        "id = \"acme\"\nlogin_url = \"https://login.acme.bench/chat\"\nchannels = [\"webchat\"]\n\n[[security_keys]]\nkid = \"k1\"\nsecret = \"{security}\"\nprimary = true\n\n[[api_keys]]\nid = \"bot\"\nrole = \"bot\"\nsha256 = \"{bot}\"\n\n[[api_keys]]\nid = \"agent\"\nrole = \"agent\"\nsha256 = \"{agent}\"\n\n[ssf]\nissuer = \"http://{helper}\"\njwks_uri = \"http://{helper}/jwks\"\naudience = \"{AUDIENCE}\"\n",
        bot = ApiKeyHash::of_key(bot).to_hex(),
        agent = ApiKeyHash::of_key(agent).to_hex(),
    );
    std::fs::write(dir.join("config/teams/acme.toml"), team).expect("write");
    let webchat = format!(
        "name = \"webchat\"\nkind = \"webhook\"\nurl = \"http://{helper}/messages\"\nsecret = \"${{CG_REVOCATION_UNSET_SECRET:-{}}}\"\n",
        generate_whsec()
    );
    std::fs::write(dir.join("channels/webchat.toml"), webchat).expect("write");
}

/// One instance on the config in `dir`: its address.
async fn instance(dir: &Path) -> SocketAddr {
    let config = chatgate::config::load(&dir.join("config/chatgate.toml")).expect("config");
    let app = App::build(config, Options::default()).await.expect("app");
    let addr = app.local_addr().expect("addr");
    tokio::spawn(app.serve(std::future::pending::<()>()));
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let helper = transmitter_and_chat().await;
    let run = Uuid::now_v7().simple().to_string();
    let prefix = format!("rl{}", &run[run.len() - 6..]);
    let dir = std::env::temp_dir().join(format!("chatgate-revocation-{run}"));
    let (security, bot, agent) = (generate_whsec(), generate_api_key(), generate_api_key());
    write_config(&dir, helper, &prefix, (&security, &bot, &agent));
    let (a, b) = (instance(&dir).await, instance(&dir).await);
    let key = B64
        .decode(security.trim_start_matches("whsec_"))
        .expect("key");
    let http = reqwest::Client::new();

    // B's live stream: (interaction id, when its logged_out arrived).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut stream = http
        .get(format!("http://{b}/v1/events"))
        .bearer_auth(&agent)
        .send()
        .await
        .expect("stream");
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                if !frame.contains("event: interaction.logged_out") {
                    continue;
                }
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .and_then(|d| serde_json::from_str::<Value>(d.trim()).ok());
                if let Some(id) = data
                    .as_ref()
                    .and_then(|d| d["data"]["interaction"]["id"].as_str())
                {
                    let _ = tx.send((id.to_string(), Instant::now()));
                }
            }
        }
    });

    let encoding = {
        let body: String = KEY_A.lines().filter(|l| !l.starts_with("-----")).collect();
        EncodingKey::from_rsa_der(&B64.decode(body).expect("pem"))
    };
    let (mut answered, mut seen) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let customer = format!("lat-{run}-{i}");
        let created: Value = http
            .post(format!("http://{a}/v1/interactions"))
            .bearer_auth(&bot)
            .json(&json!({"channel": "webchat", "conversation_id": customer, "customer_ref": customer}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("created");
        let id = created["id"].as_str().expect("id").to_string();
        let link: Value = http
            .post(format!("http://{a}/v1/interactions/{id}/login-links"))
            .bearer_auth(&bot)
            .json(&json!({}))
            .send()
            .await
            .expect("link")
            .json()
            .await
            .expect("link body");
        let body = serde_json::to_vec(&json!({"token": link["token"], "outcome": "success",
            "customer": {"id": customer}}))
        .expect("body");
        let (msg_id, ts, sig) = webhook_sig::headers(&key, &body, SystemClock.now());
        let res = http
            .post(format!("http://{a}/v1/login/callback"))
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", ts)
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await
            .expect("callback");
        assert_eq!(res.status(), 200, "login callback");
        let claims = json!({"iss": format!("http://{helper}"), "aud": AUDIENCE,
            "iat": SystemClock.now().unix_seconds(), "jti": Uuid::now_v7().to_string(),
            "events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                "subject": {"format": "opaque", "id": customer}}}});
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("a".into());
        let set = jsonwebtoken::encode(&header, &claims, &encoding).expect("sign");
        let t0 = Instant::now();
        let res = http
            .post(format!("http://{a}/ssf/acme/events"))
            .header("content-type", "application/secevent+jwt")
            .body(set)
            .send()
            .await
            .expect("push");
        assert_eq!(res.status(), 202, "push");
        answered.push(t0.elapsed());
        loop {
            let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the logged_out event within 10 s")
                .expect("stream open");
            if got == id {
                seen.push(at.duration_since(t0));
                break;
            }
        }
    }
    answered.sort();
    seen.sort();
    println!("rounds: {rounds} (two instances, one Redis)");
    println!("| measured | p50 ms | p95 ms | max ms |\n|---|---|---|---|");
    for (what, v) in [
        ("push to A's 202 (logged out, event committed)", &answered),
        ("push to the event on B's /v1/events", &seen),
    ] {
        println!(
            "| {what} | {:.1} | {:.1} | {:.1} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.95)),
            ms(*v.last().expect("rounds"))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
