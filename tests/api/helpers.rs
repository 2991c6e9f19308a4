//! `spawn_app()`: the real gateway on port 0, with a randomised config in a
//! temp folder, a manual clock, the chosen store (memory, or Redis under a
//! fresh key prefix) and a wiremock server standing in for the chat webhook.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chatgate::app::{App, Options};
use chatgate::domain::audit_keys::new_signing_key_pem;
use chatgate::domain::secrets::{generate_api_key, generate_whsec, ApiKeyHash};
use chatgate::events::Event;
use chatgate::time::{Clock, ManualClock, Timestamp};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// What a test may change in the generated config.
#[derive(Default, Clone)]
pub struct Setup {
    /// TOML lines added to `[server]` (e.g. `max_connections = 2`).
    pub server: String,
    /// TOML lines added to `[defaults]` (e.g. `idle_timeout = "5m"`).
    pub defaults: String,
    /// TOML appended to the acme team file (e.g. `[settings]` tables).
    pub team_extra: String,
    /// Top-level keys of the acme team file, after its `id` (e.g.
    /// `display_name = "Acme Bank"`).
    pub team_top: String,
    /// TOML appended to the globex team file (e.g. an `[oidc]` section).
    pub globex_extra: String,
    /// Extra `[store]` lines or overrides, e.g. a bad redis_url.
    pub redis_url: Option<String>,
    /// `[store] cluster_nodes` (a Redis Cluster); empty: one Redis.
    pub cluster_nodes: Vec<String>,
    /// Reuse this key prefix (restart tests); else a fresh one.
    pub key_prefix: Option<String>,
    /// Reuse these keys (restart / second instance); else fresh ones.
    pub keys: Option<Keys>,
    /// Use this store instead of the one the config names.
    pub store: Option<chatgate::store::SharedStore>,
    /// Extra channel files `(name, toml)`: written to `channels/<name>.toml`
    /// and added to the acme team's channels.
    pub extra_channels: Vec<(String, String)>,
    /// Channel files `(name, toml)` written to `channels/<name>.toml` but
    /// in no team's channels (a `telegram_gateway` ladder step). In the
    /// TOML of these and of `extra_channels`, `{CHAT_URL}` is the fake
    /// providers' base URL (the chat mock's).
    pub unlisted_channels: Vec<(String, String)>,
    /// Keep-alive interval of `GET /v1/events` (default 15 s).
    pub sse_keep_alive: Option<Duration>,
    /// How long a start on a store without its node markers waits before
    /// its first audit entries (default none: every test starts on a new
    /// store).
    pub fresh_store_wait: Option<Duration>,
    /// Channels (of the files written, e.g. `"sms"`) the globex team has
    /// besides `webchat`.
    pub globex_channels: Vec<String>,
    /// `server.public_url` (default `http://gateway.test`), for a browser
    /// that must follow the gateway's own links.
    pub public_url: Option<String>,
    /// The acme team's `sms_channel` (default `"sms"`, the twilio channel).
    pub sms_channel: Option<String>,
    /// How many teams besides acme and globex (`aaa-00000`, … with keys
    /// nobody holds, sorted before both): a gateway of many teams.
    pub extra_teams: usize,
    /// The acme team's `voice_channel` (default: none).
    pub voice_channel: Option<String>,
    /// TOML appended to the system file (e.g. an `[audit]` section).
    pub system_extra: String,
    /// The system file's `[approvals]` section; `None`: one whose
    /// `signing_key` is the keys' `approvals_pem`, so payments can be
    /// approved (docs/api.md#the-approval-token); `Some("")`: none.
    pub approvals: Option<String>,
}

/// The secrets of a test config.
#[derive(Clone)]
pub struct Keys {
    pub acme_security: String,
    pub globex_security: String,
    pub bot: String,
    pub agent: String,
    pub admin: String,
    pub globex_bot: String,
    pub globex_agent: String,
    pub webchat_secret: String,
    /// `[approvals] signing_key`: an Ed25519 private key, PKCS#8 PEM.
    pub approvals_pem: String,
}

impl Keys {
    pub fn fresh() -> Self {
        Keys {
            acme_security: generate_whsec(),
            globex_security: generate_whsec(),
            bot: generate_api_key(),
            agent: generate_api_key(),
            admin: generate_api_key(),
            globex_bot: generate_api_key(),
            globex_agent: generate_api_key(),
            webchat_secret: generate_whsec(),
            approvals_pem: new_signing_key_pem().unwrap(),
        }
    }
    /// The decoded HMAC key of acme's security key.
    pub fn acme_key_bytes(&self) -> Vec<u8> {
        B64.decode(self.acme_security.trim_start_matches("whsec_"))
            .unwrap()
    }
}

/// A request signed by Standard Webhooks, to be sent once or again.
#[derive(Clone)]
pub struct Signed {
    pub bytes: Vec<u8>,
    pub id: String,
    pub ts: i64,
    pub signature: String,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub keys: Keys,
    pub chat: MockServer,
    pub events: broadcast::Receiver<Arc<Event>>,
    pub key_prefix: String,
    pub backend: Backend,
    pub dir: PathBuf,
    /// The gateway the app serves: its store and event log.
    pub gateway: Arc<chatgate::gateway::Core>,
    /// Puts the files under `dir` in force again, as SIGHUP does.
    pub reloader: chatgate::app::Reloader,
    /// The waiting calls' budget: how many calls hold a place now.
    pub waiting: Arc<chatgate::http::Waiting>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Leave the Redis keys when dropped: another instance on the same
    /// prefix still uses them (and deletes them when it goes).
    keep_keys: bool,
}

/// Redis is mandatory in CI; elsewhere a private one is started, or its
/// tests skip (see `redis_support`).
pub use crate::redis_support::redis_up as redis_available;

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, Setup::default()).await
}

/// Another instance on `a`'s store, key prefix and keys, with `setup`
/// (stop it with `stop_keeping_keys`: the keys are `a`'s).
pub async fn spawn_beside(a: &TestApp, setup: Setup) -> TestApp {
    let setup = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..setup
    };
    spawn_with(a.backend, setup)
        .await
        .expect("an instance beside the first")
}

pub async fn spawn_with(backend: Backend, setup: Setup) -> Option<TestApp> {
    let own_redis = setup.redis_url.is_some() || !setup.cluster_nodes.is_empty();
    if backend == Backend::Redis && !own_redis && !redis_available().await {
        return None;
    }
    if std::env::var("TEST_LOG").is_ok() {
        chatgate::telemetry::init(chatgate::telemetry::LogFormat::Text);
    }
    let keys = setup.keys.clone().unwrap_or_else(Keys::fresh);
    let chat = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&chat)
        .await;
    let key_prefix = setup
        .key_prefix
        .clone()
        .unwrap_or_else(|| format!("chatgate-test-{}", Uuid::now_v7()));
    let dir = std::env::temp_dir().join(format!("chatgate-test-{}", Uuid::now_v7()));
    write_config(&dir, backend, &setup, &keys, &chat.uri(), &key_prefix);

    let config =
        chatgate::config::load(&dir.join("config/chatgate.toml")).expect("test config loads");
    let clock = Arc::new(ManualClock::starting_now());
    let opts = Options {
        clock: Some(clock.clone() as Arc<dyn Clock>),
        store: setup.store.clone(),
        sse_keep_alive: setup.sse_keep_alive,
        fresh_store_wait: Some(setup.fresh_store_wait.unwrap_or_default()),
        ..Options::default()
    };
    let app = App::build(config, opts).await.expect("app builds");
    let addr = app.local_addr().unwrap();
    let gateway = app.gateway();
    let reloader = app.reloader();
    let waiting = app.waiting();
    let events = gateway.events().subscribe();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Some(TestApp {
        base: format!("http://{addr}"),
        client,
        clock,
        keys,
        chat,
        events,
        key_prefix,
        backend,
        dir,
        gateway,
        reloader,
        waiting,
        shutdown: Some(tx),
        server: Some(server),
        keep_keys: false,
    })
}

fn write_config(
    dir: &std::path::Path,
    backend: Backend,
    setup: &Setup,
    keys: &Keys,
    chat_url: &str,
    prefix: &str,
) {
    std::fs::create_dir_all(dir.join("config/teams")).unwrap();
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    let backend_name = match backend {
        Backend::Memory => "memory",
        Backend::Redis => "redis",
    };
    let redis_url = setup
        .redis_url
        .clone()
        .unwrap_or_else(crate::redis_support::redis_url);
    let system = format!(
        r#"[server]
listen = "127.0.0.1:0"
public_url = "{public_url}"
issuer = "chatgate-test"
pepper = "test-pepper-0123456789abcdef"
{server}

[store]
backend = "{backend_name}"
redis_url = "{redis_url}"
cluster_nodes = {cluster_nodes:?}
key_prefix = "{prefix}"

[defaults]
{defaults}

{approvals}
{system_extra}
"#,
        approvals = setup.approvals.clone().unwrap_or_else(|| format!(
            "[approvals]\nsigning_key = \"\"\"\n{}\"\"\"\n",
            keys.approvals_pem
        )),
        system_extra = setup.system_extra,
        // Tests stop at once unless they test the drain.
        server = if setup.server.contains("shutdown_drain") {
            setup.server.clone()
        } else {
            format!("shutdown_drain = \"0s\"\n{}", setup.server)
        },
        defaults = setup.defaults,
        cluster_nodes = setup.cluster_nodes,
        public_url = setup.public_url.as_deref().unwrap_or("http://gateway.test"),
    );
    std::fs::write(dir.join("config/chatgate.toml"), system).unwrap();
    let mut acme_channels = vec!["webchat".to_string(), "sms".to_string()];
    for (name, toml) in &setup.extra_channels {
        let toml = toml.replace("{CHAT_URL}", chat_url);
        std::fs::write(dir.join(format!("channels/{name}.toml")), toml).unwrap();
        acme_channels.push(name.clone());
    }
    for (name, toml) in &setup.unlisted_channels {
        let toml = toml.replace("{CHAT_URL}", chat_url);
        std::fs::write(dir.join(format!("channels/{name}.toml")), toml).unwrap();
    }
    let acme = format!(
        r#"id = "acme"
{team_top}
login_url = "https://login.acme.test/chat?lang=en"
channels = {acme_channels:?}
sms_channel = "{sms_channel}"
{voice_channel}

[[security_keys]]
kid = "2026-11"
secret = "{sec}"
primary = true

[[security_keys]]
kid = "2026-10"
secret = "{old}"

[[api_keys]]
id = "acme-bot"
role = "bot"
sha256 = "{bot}"

[[api_keys]]
id = "acme-agent"
role = "agent"
sha256 = "{agent}"

[[api_keys]]
id = "acme-admin"
role = "admin"
sha256 = "{admin}"

{extra}
"#,
        sec = keys.acme_security,
        old = generate_whsec(),
        bot = ApiKeyHash::of_key(&keys.bot).to_hex(),
        agent = ApiKeyHash::of_key(&keys.agent).to_hex(),
        admin = ApiKeyHash::of_key(&keys.admin).to_hex(),
        extra = setup.team_extra,
        team_top = setup.team_top,
        sms_channel = setup.sms_channel.as_deref().unwrap_or("sms"),
        voice_channel = setup
            .voice_channel
            .as_deref()
            .map(|v| format!("voice_channel = \"{v}\""))
            .unwrap_or_default(),
    );
    std::fs::write(dir.join("config/teams/acme.toml"), acme).unwrap();
    let globex_channels: Vec<String> = std::iter::once("webchat".to_string())
        .chain(setup.globex_channels.iter().cloned())
        .collect();
    let globex = format!(
        r#"id = "globex"
login_url = "https://login.globex.test/"
channels = {globex_channels:?}

[[security_keys]]
kid = "g1"
secret = "{sec}"
primary = true

[[api_keys]]
id = "globex-bot"
role = "bot"
sha256 = "{bot}"

[[api_keys]]
id = "globex-agent"
role = "agent"
sha256 = "{agent}"

{extra}
"#,
        extra = setup.globex_extra,
        sec = keys.globex_security,
        bot = ApiKeyHash::of_key(&keys.globex_bot).to_hex(),
        agent = ApiKeyHash::of_key(&keys.globex_agent).to_hex(),
    );
    std::fs::write(dir.join("config/teams/globex.toml"), globex).unwrap();
    for i in 0..setup.extra_teams {
        let team = format!(
            "id = \"aaa-{i:05}\"\nlogin_url = \"https://login.test/\"\nchannels = [\"webchat\"]\n\n\
             [[security_keys]]\nkid = \"aaa-{i:05}\"\nsecret = \"{sec}\"\nprimary = true\n\n\
             [[api_keys]]\nid = \"aaa-{i:05}-bot\"\nrole = \"bot\"\nsha256 = \"{hash}\"\n",
            sec = keys.globex_security,
            hash = ApiKeyHash::of_key(&format!("nobody-holds-{i}-{prefix}")).to_hex(),
        );
        std::fs::write(dir.join(format!("config/teams/aaa-{i:05}.toml")), team).unwrap();
    }
    // The tests' chat is a bot's webhook in front of a messenger that
    // proves who writes (`vouches_for_sender`): the code it shows proves
    // who typed it back (docs/api.md#what-a-code-proves). An anonymous web
    // chat is [`anonymous_chat`].
    let webchat = format!(
        "name = \"webchat\"\nkind = \"webhook\"\nvouches_for_sender = true\nurl = \"{chat_url}/messages\"\nsecret = \"${{CG_TEST_UNSET_WEBCHAT_SECRET:-{}}}\"\n",
        keys.webchat_secret
    );
    std::fs::write(dir.join("channels/webchat.toml"), webchat).unwrap();
    let sms = format!(
        "name = \"sms\"\nkind = \"twilio\"\nbase_url = \"{chat_url}\"\naccount_sid = \"AC123\"\nauth_token = \"${{CG_TEST_UNSET_TWILIO:-twilio-test-token}}\"\nfrom = \"+15550006666\"\n"
    );
    std::fs::write(dir.join("channels/sms.toml"), sms).unwrap();
}

/// A channel file `(name, toml)` for [`Setup::extra_channels`]: a web chat
/// that does not vouch for who writes in it (the webhook kind's default),
/// posting to the chat mock like `webchat`.
pub fn anonymous_chat(name: &str) -> (String, String) {
    let toml = format!(
        "name = \"{name}\"\nkind = \"webhook\"\nurl = \"{{CHAT_URL}}/messages\"\nsecret = \"${{CG_TEST_UNSET_ANON:-{}}}\"\n",
        generate_whsec()
    );
    (name.to_string(), toml)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The value `/metrics` serves for one series, written as it is there
    /// (its name and labels), if it serves it. The metrics recorder is the
    /// test process's, shared by every test running beside this one: a
    /// series with no label of this test's own team moves with their calls
    /// too, so assert that it rose by at least yours, never by exactly them.
    pub async fn metric_value(&self, series: &str) -> Option<f64> {
        let res = self.request(Method::GET, "/metrics", None).send().await;
        let text = res.unwrap().text().await.unwrap();
        let prefix = format!("{series} ");
        let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        line.map(|v| v.trim().parse().unwrap())
    }

    pub fn request(&self, m: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let rb = self.client.request(m, self.url(path));
        match key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// GET `path` as `key` and parse the JSON answer (any status).
    pub async fn get_json(&self, path: &str, key: Option<&str>) -> Value {
        self.request(Method::GET, path, key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POST a JSON body to `path` as `key`.
    pub async fn post_json(&self, path: &str, key: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Creates an interaction as the bot; returns its JSON.
    pub async fn create(&self, body: Value) -> Value {
        self.create_as(&self.keys.bot, body).await
    }

    /// Creates (or finds) an interaction with API key `key`; returns its JSON.
    pub async fn create_as(&self, key: &str, body: Value) -> Value {
        let res = self
            .request(Method::POST, "/v1/interactions", Some(key))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "create: {}", res.status());
        res.json().await.unwrap()
    }

    /// A new webchat interaction with a fresh conversation id.
    pub async fn new_interaction(&self) -> String {
        let v = self
            .create(json!({"channel": "webchat", "conversation_id": Uuid::now_v7().to_string()}))
            .await;
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, id: &str) -> Value {
        let res = self
            .request(
                Method::GET,
                &format!("/v1/interactions/{id}"),
                Some(&self.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn issue_link(&self, id: &str, body: Value) -> Value {
        let res = self
            .request(
                Method::POST,
                &format!("/v1/interactions/{id}/login-links"),
                Some(&self.keys.bot),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    /// Posts a callback body signed with `key` (acme's security key by default).
    pub async fn post_signed(&self, path: &str, body: &Value, key: Option<&[u8]>) -> Response {
        let signed = self.sign(body, key);
        self.send_signed(path, &signed).await
    }

    /// Signs `body` once, as a login page or website would (a fresh
    /// `webhook-id`, the test clock's time), with `key` or acme's key.
    pub fn sign(&self, body: &Value, key: Option<&[u8]>) -> Signed {
        let bytes = serde_json::to_vec(body).unwrap();
        let default_key = self.keys.acme_key_bytes();
        let key = key.unwrap_or(&default_key);
        let ts = self.now().unix_seconds();
        let id = format!("msg_{}", Uuid::now_v7().simple());
        let signature = chatgate::domain::webhook_sig::sign(key, &id, ts, &bytes);
        Signed {
            bytes,
            id,
            ts,
            signature,
        }
    }

    /// Sends a signed request exactly as signed (a retry or a replay sends
    /// the same bytes again).
    pub async fn send_signed(&self, path: &str, s: &Signed) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("webhook-id", &s.id)
            .header("webhook-timestamp", s.ts.to_string())
            .header("webhook-signature", &s.signature)
            .body(s.bytes.clone())
            .send()
            .await
            .unwrap()
    }

    pub async fn callback(&self, token: &str, outcome: &str, customer: Value) -> Response {
        let body = json!({"token": token, "outcome": outcome, "customer": customer});
        self.post_signed("/v1/login/callback", &body, None).await
    }

    /// Issues a link and completes a successful callback for `customer_id`.
    pub async fn authenticate(&self, id: &str, customer_id: &str) -> Value {
        let link = self.issue_link(id, json!({})).await;
        let res = self
            .callback(
                link["token"].as_str().unwrap(),
                "success",
                json!({"id": customer_id, "name": "Ada"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Calls back a successful login of customer `customer_id` with `link`
    /// (as issued): the answer, unchecked.
    pub async fn succeed(&self, link: &Value, customer_id: &str) -> Response {
        let token = link["token"].as_str().unwrap();
        self.callback(token, "success", json!({"id": customer_id}))
            .await
    }

    /// A [`Setup`] for another instance on this one's store: the same key
    /// prefix and keys.
    pub fn same_store(&self) -> Setup {
        Setup {
            key_prefix: Some(self.key_prefix.clone()),
            keys: Some(self.keys.clone()),
            ..Setup::default()
        }
    }

    /// Starts an OTP the agent reads, as the bot: its challenge id.
    pub async fn agent_challenge(&self, id: &str) -> String {
        let res = self
            .post_json(
                &format!("/v1/interactions/{id}/challenges"),
                Some(&self.keys.bot),
                &json!({"method": "otp", "delivery": "agent"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        c["challenge_id"].as_str().unwrap().to_string()
    }

    /// Starts an OTP the agent reads, as the bot, and reads its code as the
    /// agent: (challenge id, code).
    pub async fn agent_otp(&self, id: &str) -> (String, String) {
        let cid = self.agent_challenge(id).await;
        let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
        let code = self.get_json(&path, Some(&self.keys.agent)).await["code"]
            .as_str()
            .unwrap()
            .to_string();
        (cid, code)
    }

    /// A pre-chat assertion signed as acme's website would.
    pub fn assertion(&self, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("2026-11".into());
        let key = jsonwebtoken::EncodingKey::from_secret(&self.keys.acme_key_bytes());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    /// Standard claims for a valid assertion about `sub`, issued now.
    pub fn assertion_claims(&self, sub: &str) -> Value {
        let now = self.now().unix_seconds();
        json!({"iss": "acme", "aud": "chatgate-test", "sub": sub, "iat": now, "exp": now + 300,
               "jti": Uuid::now_v7().to_string(), "name": "Ada"})
    }

    /// Waits (real time, up to 5 s each) for the next `n`
    /// `interaction.expired` events, and answers their interactions' ids,
    /// sorted.
    pub async fn next_expired(&mut self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let e = self
                .next_event("interaction.expired", Duration::from_secs(5))
                .await
                .expect("interaction.expired within 5 s");
            ids.push(
                event_data(&e)["interaction"]["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        ids.sort();
        ids
    }

    /// Waits (real time) for the next event of `kind`.
    pub async fn next_event(&mut self, kind: &str, within: Duration) -> Option<Arc<Event>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Ok(e)) if e.kind.as_str() == kind => return Some(e),
                Ok(Ok(_)) => continue,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Sends `request` as raw bytes on a fresh connection and reads the
    /// answer until the server closes (or 10 s pass). A write the server cut
    /// short (it may answer and close before reading everything) is not an
    /// error: the answer is what the test is about. Returns the status and
    /// the whole answer text.
    pub async fn raw(&self, request: &[u8]) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(request).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    /// The code in the last `otp` message the chat received.
    pub async fn last_code(&self) -> String {
        let msgs = self.chat_messages().await;
        let text = msgs
            .iter()
            .rev()
            .find(|m| m["purpose"] == "otp")
            .expect("an otp message")["text"]
            .as_str()
            .unwrap()
            .to_string();
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() >= 4)
            .unwrap()
            .to_string()
    }

    /// Starts an OTP into the chat as the bot: (challenge id, code).
    pub async fn start_otp(&self, id: &str) -> (String, String) {
        let res = self
            .post_json(
                &format!("/v1/interactions/{id}/challenges"),
                Some(&self.keys.bot),
                &json!({"method": "otp"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        (cid, self.last_code().await)
    }

    /// Answers challenge `cid` of `id` with `code`, as the bot.
    pub async fn verify_code(&self, id: &str, cid: &str, code: &str) -> Response {
        self.post_json(
            &format!("/v1/interactions/{id}/challenges/{cid}/verify"),
            Some(&self.keys.bot),
            &json!({"code": code}),
        )
        .await
    }

    /// Requests the chat webhook received, as JSON bodies.
    pub async fn chat_messages(&self) -> Vec<Value> {
        self.chat
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect()
    }

    /// Sends the shutdown signal (as SIGTERM would) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server and waits for it to finish, leaving what it stored
    /// to another instance on the same key prefix.
    pub async fn stop_keeping_keys(mut self) {
        self.keep_keys = true;
        self.stop().await;
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.backend == Backend::Redis && !self.keep_keys {
            delete_prefix(&self.key_prefix);
        }
    }
}

/// The built binary serving `dir`'s configuration on a free port; killed
/// when dropped.
pub struct Instance {
    child: std::process::Child,
    pub base: String,
}

impl Instance {
    /// Starts it and waits (up to 20 s) for `/readyz` 200.
    pub async fn start(dir: &std::path::Path) -> Instance {
        let listen = format!("127.0.0.1:{}", free_port());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
            .args(["serve", "--config"])
            .arg(dir.join("config/chatgate.toml"))
            .env("CHATGATE_SERVER__LISTEN", &listen)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the built binary runs");
        let instance = Instance {
            child,
            base: format!("http://{listen}"),
        };
        for _ in 0..200 {
            let ready = reqwest::get(format!("{}/readyz", instance.base)).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return instance;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the instance did not become ready");
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        res.json().await.unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deletes every Redis key under `prefix` (tests only; never FLUSHALL).
pub fn delete_prefix(prefix: &str) {
    drop(crate::redis_support::TestPrefix::for_prefix(prefix));
}

/// Runs an async test body on both stores (optionally with a [`Setup`]:
/// `both_stores!(name, setup: Setup { .. }, |app| ...)`).
macro_rules! both_stores {
    ($name:ident, setup: $setup:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some(app) = spawn_with(Backend::Memory, $setup).await {
                    ($body)(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some(app) = spawn_with(Backend::Redis, $setup).await {
                    ($body)(app).await;
                }
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some(app) = spawn_app(Backend::Memory).await {
                    ($body)(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some(app) = spawn_app(Backend::Redis).await {
                    ($body)(app).await;
                }
            }
        }
    };
}

/// A loopback port nothing listens on, for a process or listener a test
/// starts later. Taken from below Linux's ephemeral range (32768–60999),
/// where no `bind(0)` of another test lands between this pick and the
/// test's own bind, each port at most once in this process (a counter
/// from an offset of the process id, so that two test processes rarely
/// start on one), and one that binds now.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A code of the same length as `code` that differs from it in every digit.
pub fn wrong_code(code: &str) -> String {
    code.chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect()
}

/// The ids of a list page, in order.
pub fn page_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// The path of the last code page link (`/c/…`) of `purpose`
/// (`code_entry_link`, `pin_entry_link`) sent into the chat.
pub async fn last_code_page_link(app: &TestApp, purpose: &str) -> String {
    let msgs = app.chat_messages().await;
    let msg = msgs
        .iter()
        .rev()
        .find(|m| m["purpose"] == purpose)
        .unwrap_or_else(|| panic!("a {purpose} message"));
    let text = msg["text"].as_str().unwrap();
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://gateway.test/c/"))
        .expect("the link");
    let code = url.trim_start_matches("http://gateway.test/c/");
    // At least 128 random bits: 256 here, base64url.
    assert!(code.len() >= 22, "{code}");
    url.trim_start_matches("http://gateway.test").to_string()
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "expected {status} {code}");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        ct.starts_with("application/problem+json"),
        "content-type {ct}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    body
}

/// An event's `data` as a JSON tree (the gateway keeps it as text).
pub fn event_data(e: &chatgate::events::Event) -> Value {
    serde_json::from_str(e.data.get()).unwrap()
}
