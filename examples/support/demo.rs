//! The demo (`cargo run --example demo`): in one process, the gateway on the
//! memory store with the sample config, the example login page, and a small
//! web chat whose scripted bot asks the customer to sign in (a login link
//! into the chat), to type a code it sends by text message to the
//! customer's phone (OTP; typed into the chat, or on the gateway's code
//! page whose link comes into the chat), or to prove it with their wallet
//! (a wallet link into the chat, then the binding code the wallet's
//! answer shows), then answers "verified ✓" after the gateway's own
//! notice, and offers no way to verify any more. Each chat (each browser
//! tab) is a customer of its own; a block says when it ends. A
//! conversation speaks one language, English or Spanish (`texts.rs`): the
//! bot, the suggestions, the login page and the gateway's texts. The agent
//! console (`/console`) shows the check mark.
//!
//! The chat server is also the sample `webchat` channel: the gateway POSTs
//! its messages (signed, docs/channels.md) to `/chatgate/messages`; the chat
//! page polls `/api/messages` for them. The web chat is anonymous: a code
//! shown in it would prove nothing about who reads it
//! (docs/api.md#what-a-code-proves), so the code goes by SMS. The chat
//! server plays Twilio for the sample `sms` channel too, and shows each
//! text message beside the chat, as the customer's phone would. It plays
//! the customer's wallet too (`demo/wallet.rs`), with team acme's
//! `[wallet]` and its demo certificates made at each start. [`start`] is
//! what both the example and the browser test (`tests/api/browser/demo.rs`)
//! call.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chatgate::app::{App, Options};
use chatgate::config::{ChannelKind, Config, WalletConfig};
use chatgate::domain::secrets::ApiKeyHash;
use chatgate::time::{Clock, SystemClock};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::login::{self, LoginPage};

pub mod texts;
pub mod wallet;

use texts::{Lang, Say};

/// The sample config's demo bot key (`config/teams/acme.toml`, DEMO ONLY).
pub const SAMPLE_BOT_KEY: &str = "cg_djRSRR9F41FRU8gFK4JrTzIA1JXE01jqi4-eFPhRuL0";
/// The sample config's demo agent key, printed for the console.
pub const SAMPLE_AGENT_KEY: &str = "cg_i11i6t5j_LwdZ8XJ2I-Ar0dAvHbEIorf8HPBINk-DNk";
/// The sample config's demo admin key, printed for the console: it
/// unlocks a customer that too many wrong codes blocked.
pub const SAMPLE_ADMIN_KEY: &str = "cg_BZR6VDQ3MCyfg70if1S30ecTH_h1JGi3JVXpcc-614c";
const TEAM: &str = "acme";
/// What the bank knows of each demo customer (all of them Ada), compared
/// with the PID the wallet presents (docs/wallet.md#matching).
const CUSTOMER_RECORD: [(&str, &str); 2] =
    [("family_name", "Lovelace"), ("birthdate", "1815-12-10")];

/// Where the three servers listen; port 0 picks a free one.
pub struct Ports {
    pub gateway: u16,
    pub login: u16,
    pub chat: u16,
}

/// The running demo; dropping it stops nothing, [`Running::stop`] does.
pub struct Running {
    pub gateway_url: String,
    pub login_url: String,
    pub chat_url: String,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// One message of a chat, as the page shows it.
#[derive(Clone, serde::Serialize)]
struct Line {
    from: &'static str,
    text: String,
}

#[derive(Default)]
struct Conversation {
    interaction: String,
    /// The customer of this chat: each chat (each browser tab) its own,
    /// so that one tab's wrong codes and sends block no other tab.
    customer: String,
    /// The conversation's one language: the bot's, the suggestions', the
    /// login page's and the gateway's texts.
    lang: Lang,
    /// The customer's phone (the interaction's contact), a number of
    /// Ofcom's range for drama (+447700900000 to +447700900999).
    phone: String,
    challenge: Option<String>,
    verified: bool,
    /// The code was right: "verified ✓" follows the gateway's own
    /// notice, or a moment later if that notice does not come.
    verifying: bool,
    lines: Vec<Line>,
}

struct Chat {
    gateway: String,
    bot_key: String,
    webchat_secret: Vec<u8>,
    http: reqwest::Client,
    conversations: Mutex<HashMap<String, Conversation>>,
    /// The conversation of each customer's phone.
    phones: Mutex<HashMap<String, String>>,
    /// `webhook-id`s received: a retried message is shown once.
    seen: Mutex<HashSet<String>>,
}

/// Starts the gateway, the login page and the chat on `ports`, with
/// `config` (the sample config) pointed at each other.
pub async fn start(mut config: Config, ports: Ports, bot_key: String) -> Result<Running, String> {
    let team = config
        .teams
        .get(TEAM)
        .ok_or("the config has no team acme")?;
    let hash = ApiKeyHash::of_key(&bot_key);
    if !team.api_keys.iter().any(|k| k.sha256.matches(&hash)) {
        return Err(
            "the bot key is not one of team acme's keys (set CHATGATE_DEMO_BOT_KEY)".into(),
        );
    }
    let bind = |port: u16| async move {
        TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))
    };
    let login_listener = bind(ports.login).await?;
    let chat_listener = bind(ports.chat).await?;
    let gateway_port = match ports.gateway {
        0 => bind(0)
            .await?
            .local_addr()
            .map_err(|e| e.to_string())?
            .port(),
        p => p,
    };
    let port_of = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_default();
    let login_url = format!("http://127.0.0.1:{}", port_of(&login_listener));
    let chat_url = format!("http://127.0.0.1:{}", port_of(&chat_listener));
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    // Point the sample config's parts at each other.
    config.server.listen = format!("127.0.0.1:{gateway_port}");
    config.server.public_url = gateway_url.clone();
    let acme = config
        .teams
        .get_mut(TEAM)
        .and_then(std::sync::Arc::get_mut)
        .ok_or("no team acme")?;
    acme.login_url = format!("{login_url}/login")
        .parse()
        .map_err(|e| format!("{e}"))?;
    // The demo's wallet, and team acme's `[wallet]` that trusts it,
    // checked as a team file's would be.
    let wallet = Arc::new(wallet::Wallet::new(
        &gateway_url,
        &format!("{chat_url}/wallet"),
    )?);
    let section = WalletConfig::from_table(wallet.section(), &gateway_url);
    acme.wallet = Some(section.map_err(|e| format!("the demo's [wallet]: {e}"))?);
    let channels = Arc::get_mut(&mut config.channels).ok_or("the channels are shared")?;
    let webchat = channels.get_mut("webchat").ok_or("no webchat channel")?;
    let ChannelKind::Webhook(webhook) = &mut webchat.kind else {
        return Err("the webchat channel is not a webhook channel".into());
    };
    webhook.url = format!("{chat_url}/chatgate/messages")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let webchat_secret = webhook.secret.get().expose().to_vec();
    let sms = channels.get_mut("sms").ok_or("no sms channel")?;
    let ChannelKind::Twilio(twilio) = &mut sms.kind else {
        return Err("the sms channel is not a twilio channel".into());
    };
    twilio.base_url = chat_url.parse().map_err(|e| format!("{e}"))?;

    let page = Arc::new(LoginPage::from_config(&config, TEAM)?);
    let chat = Arc::new(Chat {
        gateway: gateway_url.clone(),
        bot_key,
        webchat_secret,
        http: reqwest::Client::new(),
        conversations: Mutex::new(HashMap::new()),
        phones: Mutex::new(HashMap::new()),
        seen: Mutex::new(HashSet::new()),
    });
    let app = App::build(config, Options::default())
        .await
        .map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let gateway_stop = until_stopped();
    let login_stop = until_stopped();
    let chat_stop = until_stopped();
    let tasks = vec![
        tokio::spawn(async move {
            if let Err(e) = app.serve(gateway_stop).await {
                eprintln!("gateway: {e}");
            }
        }),
        tokio::spawn(async move {
            let _ = axum::serve(login_listener, login::router(page))
                .with_graceful_shutdown(login_stop)
                .await;
        }),
        tokio::spawn(async move {
            let _ = axum::serve(chat_listener, router(chat).merge(wallet::router(wallet)))
                .with_graceful_shutdown(chat_stop)
                .await;
        }),
    ];
    Ok(Running {
        gateway_url,
        login_url,
        chat_url,
        stop,
        tasks,
    })
}

fn router(chat: Arc<Chat>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", include_str!("demo/chat.html")) }),
        )
        .route(
            "/chat.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("demo/chat.css")) }),
        )
        .route(
            "/chat.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("demo/chat.js"),
                )
            }),
        )
        .route("/api/start", post(start_chat))
        .route("/api/say", post(say))
        .route("/api/messages", get(messages))
        .route("/chatgate/messages", post(from_gateway))
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(text_message),
        )
        .with_state(chat)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

/// What the gateway answered a bot call: its status, its JSON body and
/// its `Retry-After` (seconds), if any.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
}

impl Chat {
    fn push(&self, conversation: &str, from: &'static str, text: &str) {
        if let Ok(mut all) = self.conversations.lock() {
            if let Some(c) = all.get_mut(conversation) {
                c.lines.push(Line {
                    from,
                    text: text.to_string(),
                });
            }
        }
    }

    fn with<T>(&self, conversation: &str, f: impl FnOnce(&mut Conversation) -> T) -> Option<T> {
        self.conversations.lock().ok()?.get_mut(conversation).map(f)
    }

    /// The bot says `what` in the conversation's language.
    fn bot(&self, conversation: &str, what: Say) {
        let lang = self.lang(conversation);
        self.push(conversation, "bot", texts::say(lang, what));
    }

    fn lang(&self, conversation: &str) -> Lang {
        self.with(conversation, |c| c.lang).unwrap_or_default()
    }

    /// A bot call to the gateway.
    async fn call(&self, path: &str, body: Value) -> Answer {
        let res = self
            .http
            .post(format!("{}{path}", self.gateway))
            .bearer_auth(&self.bot_key)
            .json(&body)
            .send()
            .await;
        let Ok(r) = res else {
            return Answer {
                status: 0,
                body: Value::Null,
                retry_after: None,
            };
        };
        let retry_after = r
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        Answer {
            status: r.status().as_u16(),
            body: r.json().await.unwrap_or_default(),
            retry_after,
        }
    }

    /// Starts the challenge `body` on the conversation's interaction `id`
    /// and keeps its id for the code the customer types; what to tell the
    /// customer when the gateway refuses (a block with its end).
    async fn challenge(&self, conversation: &str, id: &str, body: Value) -> Result<(), String> {
        let path = format!("/v1/interactions/{id}/challenges");
        let a = self.call(&path, body).await;
        if a.status != 201 {
            return Err(self.refused(conversation, &a));
        }
        let cid = a.body["challenge_id"].as_str().map(str::to_string);
        self.with(conversation, |conv| conv.challenge = cid);
        Ok(())
    }

    /// What to tell the customer of the gateway's refusal `a`: a lockout
    /// or a rate limit with the time it ends, else the gateway's words.
    fn refused(&self, conversation: &str, a: &Answer) -> String {
        let lang = self.lang(conversation);
        match block_end(a) {
            Some(until) => texts::blocked(lang, until.as_deref()),
            None => {
                let why = a.body["detail"].as_str().unwrap_or("the gateway refused");
                texts::cannot(lang, why)
            }
        }
    }

    /// "verified ✓", once per conversation.
    fn verified(&self, conversation: &str) {
        let first = self
            .with(conversation, |c| !std::mem::replace(&mut c.verified, true))
            .unwrap_or(false);
        if first {
            self.bot(conversation, Say::Verified);
        }
    }
}

/// Whether the gateway's answer `a` is a block (a lockout, 423 or 403
/// `locked`/`banned`, or a rate limit, 429) and, if it says, when it ends
/// (`HH:MM UTC`, rounded up to the minute).
fn block_end(a: &Answer) -> Option<Option<String>> {
    let code = a.body["code"].as_str().unwrap_or_default();
    if a.status != 429 && !matches!(code, "locked" | "banned") {
        return None;
    }
    let at = a.body["locked_until"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|| {
            let secs = i64::try_from(a.retry_after?).ok()?;
            Some(chrono::Utc::now() + chrono::Duration::seconds(secs))
        });
    Some(at.map(|t| {
        let up = t + chrono::Duration::seconds(59);
        up.format("%H:%M UTC").to_string()
    }))
}

#[derive(Deserialize)]
struct Said {
    conversation: String,
    text: String,
}

#[derive(Deserialize)]
struct After {
    conversation: String,
    #[serde(default)]
    after: usize,
}

/// A new conversation, with a customer and a phone of its own: the bot
/// creates its interaction and greets.
async fn start_chat(State(chat): State<Arc<Chat>>) -> Response {
    let conversation = format!("web-{}", uuid::Uuid::now_v7().simple());
    let (customer, phone) = match chat.phones.lock() {
        Ok(mut phones) => {
            let n = phones.len();
            let phone = format!("+447700900{:03}", n % 1000);
            phones.insert(phone.clone(), conversation.clone());
            (format!("cust-{}", 42 + n), phone)
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "poisoned").into_response(),
    };
    let a = chat
        .call(
            "/v1/interactions",
            json!({"channel": "webchat", "conversation_id": conversation, "customer_ref": customer,
                   "contact": {"phone": phone}}),
        )
        .await;
    let Some(id) = a.body["id"].as_str().filter(|_| a.status < 300) else {
        return (StatusCode::BAD_GATEWAY, "the gateway is not answering").into_response();
    };
    if let Ok(mut all) = chat.conversations.lock() {
        all.insert(
            conversation.clone(),
            Conversation {
                interaction: id.to_string(),
                customer,
                phone,
                ..Conversation::default()
            },
        );
    }
    chat.bot(&conversation, Say::Greeting);
    Json(json!({"conversation": conversation})).into_response()
}

/// What the customer asked for, in either language.
#[derive(Debug, PartialEq)]
enum Asked {
    Language(Lang),
    SignIn,
    Wallet,
    CodeOnPage,
    Code,
    Digits(String),
    Other,
}

impl Asked {
    fn of(text: &str) -> Asked {
        let lower = text.trim().to_lowercase();
        let digits: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if let Some(lang) = Lang::asked(&lower) {
            Asked::Language(lang)
        } else if has(&["sign in", "log in", "iniciar sesión", "iniciar sesion"]) {
            Asked::SignIn
        } else if has(&["wallet", "cartera"]) {
            Asked::Wallet
        } else if has(&["on a page", "en una página", "en una pagina"]) {
            Asked::CodeOnPage
        } else if has(&["code", "código", "codigo"]) {
            Asked::Code
        } else if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            Asked::Digits(digits)
        } else {
            Asked::Other
        }
    }
}

/// The customer typed (or pressed a suggestion): the scripted bot answers.
async fn say(State(chat): State<Arc<Chat>>, Json(s): Json<Said>) -> Response {
    let text = s.text.trim().to_string();
    let conv = &s.conversation;
    let Some((id, verified)) = chat.with(conv, |c| (c.interaction.clone(), c.verified)) else {
        return (StatusCode::NOT_FOUND, "no such conversation").into_response();
    };
    chat.push(conv, "customer", &text);
    match Asked::of(&text) {
        Asked::Language(lang) => switch_language(&chat, conv, lang).await,
        Asked::SignIn | Asked::Wallet | Asked::CodeOnPage | Asked::Code if verified => {
            chat.bot(conv, Say::AlreadyVerified)
        }
        Asked::SignIn => sign_in(&chat, conv, &id).await,
        Asked::Wallet => {
            let expected: serde_json::Map<String, Value> = CUSTOMER_RECORD
                .iter()
                .map(|(name, value)| (name.to_string(), json!(value)))
                .collect();
            let body = json!({"method": "wallet", "match": expected});
            prove(&chat, conv, &id, body, Say::WalletAsked).await
        }
        Asked::CodeOnPage => {
            let body = json!({"method": "otp", "delivery": "sms", "entry": "page"});
            prove(&chat, conv, &id, body, Say::PageSent).await
        }
        Asked::Code => {
            let body = json!({"method": "otp", "delivery": "sms"});
            prove(&chat, conv, &id, body, Say::CodeSent).await
        }
        Asked::Digits(code) => typed_code(&chat, conv, &id, &code).await,
        Asked::Other if verified => chat.bot(conv, Say::AlreadyVerified),
        Asked::Other => chat.bot(conv, Say::Help),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// "español" or "english": the conversation switches language, and the
/// gateway's code, notices and pages follow (docs/api.md#languages), and
/// so do the bot, the suggestions and the login page.
async fn switch_language(chat: &Chat, conv: &str, lang: Lang) {
    let body = json!({"channel": "webchat", "conversation_id": conv, "locale": lang.tag()});
    let a = chat.call("/v1/interactions", body).await;
    if a.status == 200 {
        chat.with(conv, |c| c.lang = lang);
        chat.bot(conv, Say::Switched);
    } else {
        chat.bot(conv, Say::CannotSwitch);
    }
}

async fn sign_in(chat: &Chat, conv: &str, id: &str) {
    let customer = chat.with(conv, |c| c.customer.clone()).unwrap_or_default();
    let path = format!("/v1/interactions/{id}/login-links");
    let body = json!({"deliver": true, "expected_customer": customer, "scope": "account_overview"});
    let a = chat.call(&path, body).await;
    if a.status != 201 {
        match block_end(&a) {
            Some(until) => chat.push(
                conv,
                "bot",
                &texts::blocked(chat.lang(conv), until.as_deref()),
            ),
            None => chat.bot(conv, Say::CannotSignIn),
        }
    }
}

/// Starts a proof (`body`); the bot says `sent`, or why it cannot.
async fn prove(chat: &Chat, conv: &str, id: &str, body: Value, sent: Say) {
    match chat.challenge(conv, id, body).await {
        Ok(()) => chat.bot(conv, sent),
        Err(why) => chat.push(conv, "bot", &why),
    }
}

/// A code typed into the chat: the challenge's code, or the binding code
/// a page showed.
async fn typed_code(chat: &Arc<Chat>, conv: &str, id: &str, code: &str) {
    let Some(cid) = chat.with(conv, |c| c.challenge.clone()).flatten() else {
        return chat.bot(conv, Say::AskFirst);
    };
    let path = format!("/v1/interactions/{id}/challenges/{cid}/verify");
    let a = chat.call(&path, json!({"code": code})).await;
    if a.status == 200 {
        return verifying(chat, conv);
    }
    let lang = chat.lang(conv);
    let left = a.body["attempts_remaining"].as_u64();
    let msg = match (a.body["code"].as_str(), left) {
        (Some("invalid_code"), Some(n)) if n > 0 => texts::wrong_code(lang, n),
        _ => match block_end(&a) {
            Some(until) => texts::blocked(lang, until.as_deref()),
            None => texts::say(lang, Say::CodeUsedUp).to_string(),
        },
    };
    chat.push(conv, "bot", &msg);
}

/// The code was right: the gateway's own notice ("Thank you, you are now
/// verified") comes into the chat, and "verified ✓" after it; if that
/// notice is not there within two seconds, "verified ✓" all the same.
fn verifying(chat: &Arc<Chat>, conv: &str) {
    chat.with(conv, |c| c.verifying = true);
    let (chat, conv) = (chat.clone(), conv.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if chat.with(&conv, |c| c.verifying).unwrap_or(false) {
            chat.verified(&conv);
        }
    });
}

/// The messages of a conversation after the `after`-th, its language and
/// whether it is verified (the page then offers no way to verify).
async fn messages(State(chat): State<Arc<Chat>>, Query(q): Query<After>) -> Response {
    match chat.with(&q.conversation, |c| {
        let lines = c.lines.iter().skip(q.after).cloned().collect::<Vec<_>>();
        json!({"lines": lines, "lang": c.lang.tag(), "verified": c.verified})
    }) {
        Some(answer) => Json(answer).into_response(),
        None => (StatusCode::NOT_FOUND, "no such conversation").into_response(),
    }
}

/// The `webchat` channel: the gateway's signed messages into a chat.
async fn from_gateway(State(chat): State<Arc<Chat>>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let signed = chatgate::domain::webhook_sig::verify(
        &[&chat.webchat_secret],
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        &body,
        SystemClock.now(),
    );
    if signed.is_err() {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let id = h("webhook-id").unwrap_or_default().to_string();
    if !chat.seen.lock().is_ok_and(|mut seen| seen.insert(id)) {
        return StatusCode::OK.into_response();
    }
    let Ok(m) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let conversation = m["conversation_id"].as_str().unwrap_or_default();
    chat.push(conversation, "bot", m["text"].as_str().unwrap_or_default());
    if m["purpose"] == "authenticated" {
        chat.with(conversation, |c| c.verifying = false);
        chat.verified(conversation);
    }
    StatusCode::OK.into_response()
}

#[derive(Deserialize)]
struct TextMessage {
    #[serde(rename = "To")]
    to: String,
    #[serde(rename = "Body", default)]
    body: String,
}

/// The sample `sms` channel's Twilio: a text message to the customer's
/// phone, shown beside the conversation whose contact it is.
async fn text_message(
    State(chat): State<Arc<Chat>>,
    axum::Form(m): axum::Form<TextMessage>,
) -> Response {
    let conversation = chat
        .phones
        .lock()
        .ok()
        .and_then(|phones| phones.get(&m.to).cloned());
    let Some(conversation) = conversation else {
        return (StatusCode::BAD_REQUEST, "no such phone").into_response();
    };
    let phone = chat
        .with(&conversation, |c| c.phone.clone())
        .unwrap_or_default();
    chat.push(
        &conversation,
        "phone",
        &format!("Text message to your phone {phone}: {}", m.body),
    );
    let sid = format!("SM{}", uuid::Uuid::now_v7().simple());
    (
        StatusCode::CREATED,
        Json(json!({"sid": sid, "status": "queued"})),
    )
        .into_response()
}
