//! The example login page, as a company would run beside chatgate: shared by
//! `examples/login_page.rs` (standalone) and `examples/demo.rs` (and the
//! demo's browser test). AN EXAMPLE, not a product: it accepts any password.
//!
//! It verifies the login token with a standard JWT library and the team's
//! security key, "logs in" the customer, and posts the signed callback back
//! to the gateway (Standard Webhooks).
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the login page knows: the team's keys and where the gateway is.
pub struct LoginPage {
    pub team: String,
    pub issuer: String,
    pub gateway: String,
    /// (kid, key bytes) of the team's security keys, the primary first.
    pub keys: Vec<(String, Vec<u8>)>,
    pub http: reqwest::Client,
}

impl LoginPage {
    /// Reads team `team_id`'s keys and the gateway's issuer and public URL
    /// from the gateway's config. A real login page keeps the shared key in
    /// its own secret store.
    pub fn from_config(config: &chatgate::config::Config, team_id: &str) -> Result<Self, String> {
        let team = config
            .teams
            .get(team_id)
            .ok_or_else(|| format!("the config has no team {team_id}"))?;
        let mut keys: Vec<(String, Vec<u8>)> = team
            .security_keys
            .iter()
            .map(|k| (k.kid.clone(), k.secret.expose().to_vec()))
            .collect();
        // The primary key signs; put it first.
        keys.sort_by_key(|(kid, _)| team.primary_key().is_none_or(|p| p.kid != *kid));
        Ok(LoginPage {
            team: team.id.clone(),
            issuer: config.server.issuer.clone(),
            gateway: config.server.public_url.clone(),
            keys,
            http: reqwest::Client::new(),
        })
    }
}

/// `GET /login?token=…` (the form), `POST /login` (the callback) and the
/// page's style sheet (a file of its own, so the CSP allows no inline style).
pub fn router(page: Arc<LoginPage>) -> Router {
    Router::new()
        .route("/login", get(show).post(login))
        .route("/login.css", get(style))
        .with_state(page)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        STYLE,
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    customer_id: String,
    #[serde(default)]
    name: String,
    /// Not checked: this is an example.
    #[serde(default)]
    #[allow(dead_code)]
    password: String,
    outcome: String,
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Verifies the token exactly as any login page would: HS256, the key named
/// by `kid`, `aud` = team, `iss` = the gateway's issuer, `exp`.
fn verify(page: &LoginPage, token: &str) -> Result<Value, String> {
    let header = decode_header(token).map_err(|_| "the link is damaged".to_string())?;
    let kid = header.kid.ok_or("the link is damaged")?;
    let (_, key) = page
        .keys
        .iter()
        .find(|(k, _)| *k == kid)
        .ok_or("the link was not issued for this site")?;
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
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                "the link has expired; ask in the chat for a new one".to_string()
            }
            _ => "the link is not valid".to_string(),
        })
}

/// A full page around `body`, with the page's own small style sheet.
fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <meta name=referrer content=no-referrer><title>{title} · Acme Bank</title>\
         <link rel=stylesheet href=/login.css></head><body><header class=brand><span class=logo aria-hidden=true>A</span>\
         Acme Bank</header><main>{body}</main>\
         <footer>Example login page shipped with chatgate, for trying it out. Not for real customers.</footer>\
         </body></html>",
        title = escape(title),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        html,
    )
        .into_response()
}

async fn show(State(p): State<Arc<LoginPage>>, Query(q): Query<TokenQuery>) -> Response {
    let Some(token) = q.token else {
        return page(
            "Sign in",
            "<h1>Sign in from your chat</h1><p>Open the sign-in link the chat sent you.</p>",
        );
    };
    match verify(&p, &token) {
        Err(e) => page(
            "Cannot sign in",
            &format!(
                "<h1>We cannot sign you in</h1><p class=lead>Sorry, {}.</p>",
                escape(&e)
            ),
        ),
        Ok(claims) => {
            let expected = claims["expected_customer"].as_str().unwrap_or("cust-42");
            let purpose = match claims["scope"].as_str() {
                Some(s) => format!(
                    " so that we can help you with <strong>{}</strong>",
                    escape(&s.replace('_', " "))
                ),
                None => String::new(),
            };
            page(
                "Sign in",
                &format!(
                    "<h1>Sign in to continue your chat</h1>\
                     <p class=lead>Our assistant asked you to sign in{purpose}. You return to the chat afterwards.</p>\
                     <form method=post action=/login class=card>\
                     <input type=hidden name=token value=\"{token}\">\
                     <label for=customer_id>Customer number</label>\
                     <input id=customer_id name=customer_id value=\"{cid}\" autocomplete=username required>\
                     <label for=name>Name</label>\
                     <input id=name name=name value=\"Ada Lovelace\" autocomplete=name>\
                     <label for=password>Password</label>\
                     <input id=password name=password type=password autocomplete=current-password placeholder=\"any password (example)\">\
                     <button name=outcome value=success class=primary>Sign in</button>\
                     <fieldset class=demo><legend>For trying it out</legend>\
                     <button name=outcome value=failure class=secondary>Simulate a failed login</button>\
                     <p class=hint>Counts as a failed attempt; enough of them lock the customer out.</p></fieldset>\
                     </form>",
                    token = escape(&token),
                    cid = escape(expected),
                ),
            )
        }
    }
}

async fn login(State(p): State<Arc<LoginPage>>, Form(f): Form<LoginForm>) -> Response {
    let name = if f.name.trim().is_empty() {
        f.customer_id.clone()
    } else {
        f.name.clone()
    };
    let body = json!({"token": f.token, "outcome": f.outcome, "customer": {"id": f.customer_id, "name": name}});
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let Some((_, key)) = p.keys.first() else {
        return page("Error", "<h1>This login page has no key</h1>");
    };
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let ts = chrono::Utc::now().timestamp();
    let sig = chatgate::domain::webhook_sig::sign(key, &id, ts, &bytes);
    let res = p
        .http
        .post(format!("{}/v1/login/callback", p.gateway))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(bytes)
        .send()
        .await;
    let Ok(r) = res else {
        return page("Try again", "<h1>Something went wrong</h1><p class=lead>We could not reach the chat service. Please try again in a moment.</p>");
    };
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or_default();
    // With `login_binding = "chat_code"` the login finishes only when the
    // customer types this code into the chat they came from.
    if let Some(code) = answer["binding_code"].as_str() {
        return page(
            "One more step",
            &format!(
                "<h1>One more step</h1><p class=lead>Type this code into the chat to finish signing in:</p>\
                 <p class=code>{}</p><p>If you did not start this sign-in from a chat, close this page.</p>",
                escape(code)
            ),
        );
    }
    if answer["authenticated"] == true {
        return page(
            "Signed in",
            "<h1 class=ok>You are signed in</h1><p class=lead>Go back to the chat: our assistant can now help you with your account. You can close this page.</p>",
        );
    }
    let why = match answer["code"].as_str() {
        _ if status.is_success() => "The sign-in did not succeed.",
        Some("token_used") => "This link was already used. Ask in the chat for a new one.",
        Some("token_expired") => "This link has expired. Ask in the chat for a new one.",
        Some("locked") | Some("banned") => {
            "Too many failed attempts: signing in is blocked for now."
        }
        Some("customer_mismatch") => "This link was meant for another customer.",
        _ => "We could not sign you in.",
    };
    page(
        "Not signed in",
        &format!(
            "<h1>Not signed in</h1><p class=lead>{why}</p><p>Go back to the chat to try again.</p>"
        ),
    )
}

const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f4f6f9;--card:#fff;--fg:#16202c;--muted:#5a6573;--line:#cfd6df;--brand:#0b4f8a;--brand-fg:#fff;--ok:#12703f;--focus:#f0a800}\
@media (prefers-color-scheme:dark){:root{--bg:#10151b;--card:#1a212a;--fg:#e6ebf0;--muted:#a5b0bd;--line:#344050;--brand:#6fb1ff;--brand-fg:#06182b;--ok:#63d49a}}\
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
.brand{display:flex;align-items:center;gap:.6rem;padding:.9rem 1.25rem;background:var(--brand);color:var(--brand-fg);font-weight:700;font-size:1.1rem}\
.logo{display:inline-grid;place-items:center;width:2rem;height:2rem;border-radius:50%;background:var(--brand-fg);color:var(--brand);font-weight:800}\
main{max-width:26rem;margin:0 auto;padding:1.25rem}h1{font-size:1.4rem;margin:.5rem 0}.lead{color:var(--muted)}\
.card{display:grid;gap:.4rem;background:var(--card);border:1px solid var(--line);border-radius:.75rem;padding:1.25rem}\
label{font-weight:600;font-size:.95rem;margin-top:.4rem}input{font:inherit;padding:.7rem .75rem;border:1px solid var(--line);border-radius:.5rem;background:var(--bg);color:var(--fg);width:100%}\
button{font:inherit;min-height:2.75rem;border-radius:.5rem;cursor:pointer;padding:.6rem 1rem}\
.primary{margin-top:.9rem;background:var(--brand);color:var(--brand-fg);border:1px solid var(--brand);font-weight:700}\
.secondary{background:transparent;color:var(--fg);border:1px dashed var(--muted);width:100%}\
.demo{margin-top:1rem;border:1px dashed var(--line);border-radius:.5rem;padding:.5rem .75rem .25rem}.demo legend{font-size:.8rem;color:var(--muted);padding:0 .3rem}\
.hint{font-size:.8rem;color:var(--muted);margin:.4rem 0}.ok{color:var(--ok)}\
.code{font:700 2rem ui-monospace,Menlo,Consolas,monospace;letter-spacing:.2em}\
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}\
footer{max-width:26rem;margin:1rem auto;padding:0 1.25rem 2rem;font-size:.8rem;color:var(--muted)}";
