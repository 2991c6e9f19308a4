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
    /// The language of the page the form was on (the login token's
    /// `locale`), for the page that answers it.
    #[serde(default)]
    lang: String,
}

/// The page's words in one language: the login token's `locale` claim
/// (docs/api.md#languages) picks English or Spanish, so the page speaks
/// the conversation's language.
struct Words {
    lang: &'static str,
    sign_in: &'static str,
    from_chat: &'static str,
    open_link: &'static str,
    cannot_title: &'static str,
    cannot: &'static str,
    heading: &'static str,
    lead: &'static str,
    purpose: &'static str,
    customer: &'static str,
    name: &'static str,
    password: &'static str,
    any_password: &'static str,
    trying: &'static str,
    fail: &'static str,
    fail_hint: &'static str,
    footer: &'static str,
    one_more: &'static str,
    type_code: &'static str,
    not_from_chat: &'static str,
    signed_in: &'static str,
    go_back: &'static str,
    not_signed_in: &'static str,
    try_again: &'static str,
    did_not: &'static str,
    used: &'static str,
    expired: &'static str,
    blocked: &'static str,
    blocked_until: &'static str,
    mismatch: &'static str,
    could_not: &'static str,
    unreachable: &'static str,
}

const ENGLISH: Words = Words {
    lang: "en",
    sign_in: "Sign in",
    from_chat: "Sign in from your chat",
    open_link: "Open the sign-in link the chat sent you.",
    cannot_title: "Cannot sign in",
    cannot: "We cannot sign you in",
    heading: "Sign in to continue your chat",
    lead: "Our assistant asked you to sign in{purpose}. You return to the chat afterwards.",
    purpose: " so that we can help you with <strong>{scope}</strong>",
    customer: "Customer number",
    name: "Name",
    password: "Password",
    any_password: "any password (example)",
    trying: "For trying it out",
    fail: "Simulate a failed login",
    fail_hint: "Counts as a failed attempt; enough of them lock the customer out.",
    footer: "Example login page shipped with chatgate, for trying it out. Not for real customers.",
    one_more: "One more step",
    type_code: "Type this code into the chat to finish signing in:",
    not_from_chat: "If you did not start this sign-in from a chat, close this page.",
    signed_in: "You are signed in",
    go_back: "Go back to the chat: our assistant can now help you with your account. You can close this page.",
    not_signed_in: "Not signed in",
    try_again: "Go back to the chat to try again.",
    did_not: "The sign-in did not succeed.",
    used: "This link was already used. Ask in the chat for a new one.",
    expired: "This link has expired. Ask in the chat for a new one.",
    blocked: "Too many failed attempts: signing in is blocked for now.",
    blocked_until: "Too many failed attempts: signing in is blocked until {until}.",
    mismatch: "This link was meant for another customer.",
    could_not: "We could not sign you in.",
    unreachable: "We could not reach the chat service. Please try again in a moment.",
};

const SPANISH: Words = Words {
    lang: "es",
    sign_in: "Iniciar sesión",
    from_chat: "Inicia sesión desde tu chat",
    open_link: "Abre el enlace para iniciar sesión que te envió el chat.",
    cannot_title: "No se puede iniciar sesión",
    cannot: "No podemos iniciar tu sesión",
    heading: "Inicia sesión para seguir con tu chat",
    lead: "Nuestro asistente te pidió que iniciaras sesión{purpose}. Después vuelves al chat.",
    purpose: " para poder ayudarte con <strong>{scope}</strong>",
    customer: "Número de cliente",
    name: "Nombre",
    password: "Contraseña",
    any_password: "cualquier contraseña (ejemplo)",
    trying: "Para probarlo",
    fail: "Simular un inicio de sesión fallido",
    fail_hint: "Cuenta como un intento fallido; con suficientes, el cliente queda bloqueado.",
    footer: "Página de inicio de sesión de ejemplo incluida con chatgate, para probarlo. No es para clientes reales.",
    one_more: "Un paso más",
    type_code: "Escribe este código en el chat para terminar de iniciar sesión:",
    not_from_chat: "Si no iniciaste esta sesión desde un chat, cierra esta página.",
    signed_in: "Has iniciado sesión",
    go_back: "Vuelve al chat: nuestro asistente ya puede ayudarte con tu cuenta. Puedes cerrar esta página.",
    not_signed_in: "No has iniciado sesión",
    try_again: "Vuelve al chat para intentarlo de nuevo.",
    did_not: "El inicio de sesión no se completó.",
    used: "Este enlace ya se usó. Pide uno nuevo en el chat.",
    expired: "Este enlace ha caducado. Pide uno nuevo en el chat.",
    blocked: "Demasiados intentos fallidos: el inicio de sesión está bloqueado por ahora.",
    blocked_until: "Demasiados intentos fallidos: el inicio de sesión está bloqueado hasta las {until}.",
    mismatch: "Este enlace era para otro cliente.",
    could_not: "No hemos podido iniciar tu sesión.",
    unreachable: "No hemos podido contactar con el servicio de chat. Inténtalo de nuevo en un momento.",
};

/// The words of language `tag` (a BCP 47 tag): Spanish for `es` and its
/// regions, else English.
fn words(tag: &str) -> &'static Words {
    let lower = tag.to_ascii_lowercase();
    if lower == "es" || lower.starts_with("es-") {
        &SPANISH
    } else {
        &ENGLISH
    }
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

/// A full page around `body`, in `w`'s language, with the page's own
/// small style sheet.
fn page(w: &Words, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang={lang}><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <meta name=referrer content=no-referrer><title>{title} · Acme Bank</title>\
         <link rel=stylesheet href=/login.css></head><body><header class=brand><span class=logo aria-hidden=true>A</span>\
         Acme Bank</header><main>{body}</main>\
         <footer>{footer}</footer>\
         </body></html>",
        lang = w.lang,
        title = escape(title),
        footer = w.footer,
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
        let w = &ENGLISH;
        let body = format!("<h1>{}</h1><p>{}</p>", w.from_chat, w.open_link);
        return page(w, w.sign_in, &body);
    };
    match verify(&p, &token) {
        Err(e) => page(
            &ENGLISH,
            ENGLISH.cannot_title,
            &format!(
                "<h1>{}</h1><p class=lead>Sorry, {}.</p>",
                ENGLISH.cannot,
                escape(&e)
            ),
        ),
        Ok(claims) => {
            let w = words(claims["locale"].as_str().unwrap_or_default());
            let expected = claims["expected_customer"].as_str().unwrap_or("cust-42");
            let purpose = match claims["scope"].as_str() {
                Some(s) => w.purpose.replace("{scope}", &escape(&s.replace('_', " "))),
                None => String::new(),
            };
            page(w, w.sign_in, &form(w, &token, expected, &purpose))
        }
    }
}

/// The sign-in form in `w`'s words, for `token`, its customer number
/// `expected` filled in.
fn form(w: &Words, token: &str, expected: &str, purpose: &str) -> String {
    format!(
        "<h1>{heading}</h1>\
         <p class=lead>{lead}</p>\
         <form method=post action=/login class=card>\
         <input type=hidden name=token value=\"{token}\">\
         <input type=hidden name=lang value=\"{lang}\">\
         <label for=customer_id>{customer}</label>\
         <input id=customer_id name=customer_id value=\"{cid}\" autocomplete=username required>\
         <label for=name>{name}</label>\
         <input id=name name=name value=\"Ada Lovelace\" autocomplete=name>\
         <label for=password>{password}</label>\
         <input id=password name=password type=password autocomplete=current-password placeholder=\"{any}\">\
         <button name=outcome value=success class=primary>{sign_in}</button>\
         <fieldset class=demo><legend>{trying}</legend>\
         <button name=outcome value=failure class=secondary>{fail}</button>\
         <p class=hint>{hint}</p></fieldset>\
         </form>",
        heading = w.heading,
        lead = w.lead.replace("{purpose}", purpose),
        token = escape(token),
        lang = w.lang,
        customer = w.customer,
        cid = escape(expected),
        name = w.name,
        password = w.password,
        any = w.any_password,
        sign_in = w.sign_in,
        trying = w.trying,
        fail = w.fail,
        hint = w.fail_hint,
    )
}

async fn login(State(p): State<Arc<LoginPage>>, Form(f): Form<LoginForm>) -> Response {
    let w = words(&f.lang);
    let name = if f.name.trim().is_empty() {
        f.customer_id.clone()
    } else {
        f.name.clone()
    };
    let body = json!({"token": f.token, "outcome": f.outcome, "customer": {"id": f.customer_id, "name": name}});
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let Some((_, key)) = p.keys.first() else {
        return page(w, "Error", "<h1>This login page has no key</h1>");
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
        let body = format!(
            "<h1>{}</h1><p class=lead>{}</p>",
            w.could_not, w.unreachable
        );
        return page(w, w.not_signed_in, &body);
    };
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or_default();
    // With `login_binding = "chat_code"` the login finishes only when the
    // customer types this code into the chat they came from.
    if let Some(code) = answer["binding_code"].as_str() {
        return page(
            w,
            w.one_more,
            &format!(
                "<h1>{}</h1><p class=lead>{}</p><p class=code>{}</p><p>{}</p>",
                w.one_more,
                w.type_code,
                escape(code),
                w.not_from_chat
            ),
        );
    }
    if answer["authenticated"] == true {
        let body = format!(
            "<h1 class=ok>{}</h1><p class=lead>{}</p>",
            w.signed_in, w.go_back
        );
        return page(w, w.signed_in, &body);
    }
    let why = refusal(w, status.is_success(), &answer);
    page(
        w,
        w.not_signed_in,
        &format!(
            "<h1>{}</h1><p class=lead>{why}</p><p>{}</p>",
            w.not_signed_in, w.try_again
        ),
    )
}

/// Why the gateway did not sign the customer in, in `w`'s words; a block
/// says when it ends (`locked_until`, rounded up to the minute, UTC).
fn refusal(w: &Words, success: bool, answer: &Value) -> String {
    let until = answer["locked_until"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            (t + chrono::Duration::seconds(59))
                .format("%H:%M UTC")
                .to_string()
        });
    match (answer["code"].as_str(), until) {
        _ if success => w.did_not.into(),
        (Some("token_used"), _) => w.used.into(),
        (Some("token_expired"), _) => w.expired.into(),
        (Some("locked" | "banned"), Some(until)) => w.blocked_until.replace("{until}", &until),
        (Some("locked" | "banned"), None) => w.blocked.into(),
        (Some("customer_mismatch"), _) => w.mismatch.into(),
        _ => w.could_not.into(),
    }
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
