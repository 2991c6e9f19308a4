//! A tiny external login page, as a company would run beside chatgate.
//!
//! It verifies the login token with a standard JWT library and the team's
//! security key, "logs in" a demo customer, and posts the signed callback
//! back to the gateway (Standard Webhooks).
//!
//! ```sh
//! cargo run --example login_page            # listens on 127.0.0.1:8090
//! ```
//! It also stands in for the sample `webchat` channel on 127.0.0.1:9000 and
//! prints every message the gateway sends into the chat (links, codes,
//! confirmations), so the whole flow can be followed in one terminal.
//! It reads the gateway's sample config (`config/chatgate.toml`, team `acme`)
//! only to learn the key, the issuer and where the gateway is; a real login
//! page would keep the shared key in its own secret store.
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

struct Page {
    team: String,
    issuer: String,
    gateway: String,
    /// (kid, key bytes) of the team's security keys.
    keys: Vec<(String, Vec<u8>)>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    customer_id: String,
    name: String,
    outcome: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Verifies the token exactly as any login page would: HS256, the key named
/// by `kid`, `aud` = team, `iss` = the gateway's issuer, `exp`.
fn verify(page: &Page, token: &str) -> Result<Value, String> {
    let header = decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let (_, key) = page
        .keys
        .iter()
        .find(|(k, _)| *k == kid)
        .ok_or("unknown kid")?;
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[&page.team]);
    v.set_issuer(&[&page.issuer]);
    v.leeway = 5;
    v.required_spec_claims = ["iss", "aud", "sub", "jti"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    decode::<Value>(token, &DecodingKey::from_secret(key), &v)
        .map(|d| d.claims)
        .map_err(|e| format!("invalid token: {e}"))
}

async fn show(State(page): State<Arc<Page>>, Query(q): Query<TokenQuery>) -> Html<String> {
    match verify(&page, &q.token) {
        Err(e) => Html(format!("<h1>Cannot sign in</h1><p>{}</p>", escape(&e))),
        Ok(claims) => {
            let expected = claims["expected_customer"].as_str().unwrap_or("cust-42");
            Html(format!(
                "<h1>Sign in to {team}</h1><p>Conversation {sub} on {channel} asks you to sign in (scope: {scope}).</p>\
                 <form method=post action=/login><input type=hidden name=token value=\"{token}\">\
                 <label>Customer id <input name=customer_id value=\"{cid}\"></label>\
                 <label>Name <input name=name value=\"Ada\"></label>\
                 <button name=outcome value=success>Sign in</button> <button name=outcome value=failure>Wrong password</button></form>",
                team = escape(&page.team),
                sub = escape(claims["sub"].as_str().unwrap_or("")),
                channel = escape(claims["channel"].as_str().unwrap_or("")),
                scope = escape(claims["scope"].as_str().unwrap_or("-")),
                token = escape(&q.token),
                cid = escape(expected),
            ))
        }
    }
}

async fn login(State(page): State<Arc<Page>>, Form(f): Form<LoginForm>) -> Html<String> {
    let body = json!({"token": f.token, "outcome": f.outcome, "customer": {"id": f.customer_id, "name": f.name}});
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let (kid, key) = &page.keys[0];
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let ts = chrono::Utc::now().timestamp();
    let sig = chatgate::domain::webhook_sig::sign(key, &id, ts, &bytes);
    let res = page
        .http
        .post(format!("{}/v1/login/callback", page.gateway))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(bytes)
        .send()
        .await;
    match res {
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            // With `login_binding = "chat_code"` the login finishes only when
            // the customer types this code into the chat they came from.
            let answer: Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(code) = answer["binding_code"].as_str() {
                return Html(format!(
                    "<h1>One more step</h1><p>Type <strong>{}</strong> into the chat to finish signing in.</p>\
                     <p>If you did not start this sign-in from a chat, close this page.</p>",
                    escape(code)
                ));
            }
            Html(format!(
                "<h1>Gateway answered {status}</h1><pre>{}</pre><p>(signed with key {kid})</p>",
                escape(&text)
            ))
        }
        Err(e) => Html(format!(
            "<h1>Gateway unreachable</h1><p>{}</p>",
            escape(&e.to_string())
        )),
    }
}

/// The sample `webchat` channel posts here; a real chat widget would show it
/// to the customer (after checking the Standard Webhooks signature).
async fn chat_message(axum::Json(m): axum::Json<Value>) -> &'static str {
    println!(
        "[chat {}] {}: {}",
        m["conversation_id"].as_str().unwrap_or("?"),
        m["purpose"].as_str().unwrap_or("?"),
        m["text"].as_str().unwrap_or("")
    );
    "ok"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "config/chatgate.toml".into());
    let config = chatgate::config::load(std::path::Path::new(&path))?;
    let team = config
        .teams
        .get("acme")
        .ok_or("the sample config has no team acme")?;
    let mut keys: Vec<(String, Vec<u8>)> = team
        .security_keys
        .iter()
        .map(|k| (k.kid.clone(), k.secret.expose().to_vec()))
        .collect();
    // The primary key signs; put it first.
    keys.sort_by_key(|(kid, _)| team.primary_key().is_none_or(|p| p.kid != *kid));
    let page = Arc::new(Page {
        team: team.id.clone(),
        issuer: config.server.issuer.clone(),
        gateway: config.server.public_url.clone(),
        keys,
        http: reqwest::Client::new(),
    });
    let app = Router::new()
        .route("/login", get(show).post(login))
        .with_state(page);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    println!("login page on http://127.0.0.1:8090/login?token=...");
    let chat = Router::new().route("/chatgate/messages", axum::routing::post(chat_message));
    let chat_listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    println!("webchat stand-in on http://127.0.0.1:9000/chatgate/messages");
    tokio::try_join!(axum::serve(listener, app), axum::serve(chat_listener, chat))?;
    Ok(())
}
