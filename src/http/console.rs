//! The agent console (docs/api.md#the-agent-console): `GET /console`, one page whose HTML,
//! style sheet and script are compiled into the binary and served from this
//! origin (`/console/console.css`, `/console/console.js`), so the page needs
//! no inline script or style and runs under its own strict CSP.
//!
//! The page holds the agent's API key in `sessionStorage` and sends it only
//! in `Authorization: Bearer`, or works from the session cookie of a person
//! signed in at the team's workforce provider (docs/console-sign-in.md):
//! `GET /console/{team}/sign-in` and `/console/{team}/callback` sign in,
//! `POST /console/sign-out` signs out, `GET /console/session` says who is
//! signed in. Everything it shows comes from the public API
//! (`GET /v1/interactions`, `GET /v1/events` read with `fetch`, the reveal,
//! logout and unlock endpoints). The test hooks of the key field live in
//! the script.
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{session_cookie, session_cookie_name, Agent};
use super::extract::{empty_body, NoQuery, Now, PathParam, RequestVia};
use super::openapi::{ApiKeyErrors, E429SignIn, EmptyBody, JsonBodyErrors, E403, E422};
use super::pages::{self, cookie_value, provider_answer, state_cookie, Page};
use super::AppState;
use crate::domain::browser::state_cookie_name;
use crate::domain::console_session::StartBudget;
use crate::error::Error;
use crate::gateway::console::{SignInFinish, SignInRefusal};
use crate::gateway::ProviderAnswer;
use crate::oidc::flow::STATE_TTL;
use crate::oidc::OidcError;

const HTML: &str = include_str!("console/console.html");
const CSS: &str = include_str!("console/console.css");
const JS: &str = include_str!("console/console.js");

/// The console's policy: its own script and style only, API calls to this
/// origin only, never framed, no `<base>`, no form submission (the key form
/// is handled by the script and must never be submitted into a URL).
fn policy() -> String {
    pages::Csp::new()
        .allow("script-src", "'self'")
        .allow("style-src", "'self'")
        .allow("connect-src", "'self'")
        .allow("img-src", "'self' data:")
        .form_action("'none'")
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(console))
        .routes(routes!(console_of_team))
        .routes(routes!(console_css))
        .routes(routes!(console_js))
        .routes(routes!(sign_in))
        .routes(routes!(callback))
        .routes(routes!(sign_out))
        .routes(routes!(session))
}

/// Where the page offers a team's sign-in link.
const SIGN_IN_LINKS: &str = "<!--sign-in-links-->";

/// The agent console page; it asks for an agent API key itself. It names
/// no team: teams cannot be listed from outside
/// (docs/console-sign-in.md#signing-in).
#[utoipa::path(get, path = "/console", tag = "operations", security(),
    responses((status = 200, body = String, content_type = "text/html",
               description = "the agent console web page (HTML)"), E422))]
async fn console(_: NoQuery) -> Response {
    page("")
}

/// The agent console page of one team: the same page, offering that
/// team's sign-in when it has `[console.oidc]`. An unknown team's page is
/// the same as a team's without it, so no answer tells which teams exist.
#[utoipa::path(get, path = "/console/{team}", operation_id = "console_of_team", tag = "operations", security(),
    params(("team" = String, Path, description = "the team whose sign-in the page offers, if it has `[console.oidc]`")),
    responses((status = 200, body = String, content_type = "text/html",
               description = "the agent console web page (HTML), with the team's sign-in link when it has one"), E422))]
async fn console_of_team(
    State(st): State<AppState>,
    PathParam(team): PathParam<String>,
    _: NoQuery,
) -> Response {
    let signs_in = st
        .gateway
        .config()
        .team(&team)
        .filter(|t| t.console.oidc.is_some());
    let link = signs_in.map(|t| {
        let id = pages::escape(&t.id);
        format!("<li><a class=\"sign-in\" data-team=\"{id}\" href=\"/console/{id}/sign-in\">Sign in to {id}</a></li>")
    });
    page(link.as_deref().unwrap_or(""))
}

/// The console page with `links` (none, or one team's sign-in link).
fn page(links: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_SECURITY_POLICY, policy()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        HTML.replace(SIGN_IN_LINKS, links),
    )
        .into_response()
}

/// A refused console sign-in's page: its status says why; the page says
/// no more than the person needs.
fn refusal_page(refusal: &SignInRefusal) -> Page {
    const FAILED: &str = "This sign-in could not be finished";
    let (status, heading, advice) = match refusal {
        SignInRefusal::NoConsole => (
            StatusCode::NOT_FOUND,
            "No console sign-in here",
            "This team does not sign agents in here. Use an API key, or ask your administrator.",
        ),
        SignInRefusal::Stranger(_)
        | SignInRefusal::State(_)
        | SignInRefusal::Provider(OidcError::Cancelled) => (
            StatusCode::BAD_REQUEST,
            FAILED,
            "Open the console and sign in again.",
        ),
        SignInRefusal::Provider(_) => (
            StatusCode::BAD_GATEWAY,
            "The sign-in service could not be reached",
            "Please try again in a minute.",
        ),
        SignInRefusal::Token(_) => (
            StatusCode::UNAUTHORIZED,
            FAILED,
            "Open the console and sign in again. If this keeps happening, tell your administrator.",
        ),
        SignInRefusal::NoRole => (
            StatusCode::FORBIDDEN,
            "You have no role at this console",
            "You signed in, but your account is in none of the groups this console admits. Ask your administrator.",
        ),
        SignInRefusal::Store(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The console is not available",
            "Please try again in a minute.",
        ),
    };
    Page {
        status,
        title: heading,
        heading,
        advice,
    }
}

/// The page of a refused sign-in (the store's failure keeps its own
/// label and `Retry-After`).
fn refused(refusal: SignInRefusal) -> Response {
    let mut res = pages::render(&refusal_page(&refusal));
    if let SignInRefusal::Store(e) = refusal {
        let problem = e.into_response();
        if let Some(v) = problem.headers().get(header::RETRY_AFTER) {
            res.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
        if let Some(label) = problem.extensions().get::<super::ProblemLabel>() {
            res.extensions_mut().insert(*label);
        }
    }
    res
}

/// Each team's sign-in starts, counted in this instance against its
/// `[console] sign_in_rate` (docs/console-sign-in.md#signing-in): only
/// teams with `[console.oidc]` have a budget, so a stranger naming teams
/// cannot grow it; it outlives a reload.
#[derive(Default)]
pub struct SignInStarts(std::sync::Mutex<std::collections::HashMap<String, StartBudget>>);

impl SignInStarts {
    /// One start of `team` at `now`, or the seconds until one is allowed.
    fn take(&self, team: &str, rate: u32, now: crate::time::Timestamp) -> Result<(), u64> {
        let mut budgets = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        budgets
            .entry(team.to_string())
            .or_insert_with(|| StartBudget::full(rate, now))
            .take(rate, now)
    }
}

/// 429 `rate_limited`: the team's `[console] sign_in_rate` is reached.
fn too_many_starts(retry_after: u64) -> Response {
    let detail = "this team's console sign-ins started reached [console] sign_in_rate";
    let mut res = super::problem::response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The state cookies of the console's sign-in are sent back only to its
/// callbacks.
const STATE_PATH: &str = "/console/";

/// Sign a person in to the console at the team's workforce provider: 302
/// to its authorization endpoint (PKCE S256, `state`, `nonce`), with the
/// cookie that ties the state to this browser.
#[utoipa::path(get, path = "/console/{team}/sign-in", operation_id = "console_sign_in", tag = "operations", security(),
    params(("team" = String, Path, description = "the team whose `[console.oidc]` signs the person in")),
    responses(
        (status = 302, description = "to the workforce provider; `Set-Cookie` ties the state to this browser"),
        (status = 404, description = "no such team, or it has no `[console.oidc]`", content_type = "text/html", body = String),
        (status = 502, description = "the workforce provider could not be reached", content_type = "text/html", body = String),
        (status = 503, description = "the store cannot be reached", content_type = "text/html", body = String),
        E422, E429SignIn))]
async fn sign_in(
    State(st): State<AppState>,
    Now(now): Now,
    PathParam(team): PathParam<String>,
    _: NoQuery,
) -> Response {
    let config = st.gateway.config().team(&team);
    if let Some(console) = config.map(|t| &t.console).filter(|c| c.oidc.is_some()) {
        if let Err(retry_after) = st.sign_in_starts.take(&team, console.sign_in_rate, now) {
            return too_many_starts(retry_after);
        }
    }
    let started = crate::gateway::console::start_sign_in(&st.gateway, &team, now).await;
    let started = match started {
        Ok(started) => started,
        Err(refusal) => return refused(refusal),
    };
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&started.location) {
        h.insert(header::LOCATION, location);
    }
    let public_url = &st.gateway.config().server.public_url;
    let name = state_cookie_name(&started.state);
    let cookie = state_cookie(
        public_url,
        STATE_PATH,
        &name,
        &started.browser_secret,
        STATE_TTL.as_secs(),
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, cookie);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `Set-Cookie` of the console session `value` for `max_age` seconds (0
/// removes it): `HttpOnly`, `SameSite=Strict`, `Path=/`, no `Domain`,
/// `Secure` and `__Host-` on https.
fn session_set_cookie(public_url: &str, value: &str, max_age: u64) -> String {
    let name = session_cookie_name(public_url);
    let secure = if public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// The workforce provider sends the person back here; each team registers
/// `{public_url}/console/{team}/callback`.
///
/// 303 to `/console` with the session cookie when the ID token holds and
/// its role claim names an agent or admin value. Every refusal is an HTML
/// page that sets no session cookie, recorded as `console.sign_in_failed`;
/// but a state this gateway did not issue for the team, or no longer holds
/// open, is refused and recorded nowhere (docs/console-sign-in.md#refused-sign-ins).
#[utoipa::path(get, path = "/console/{team}/callback", operation_id = "console_callback", tag = "operations", security(),
    params(
        ("team" = String, Path, description = "the team whose sign-in this is"),
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("state" = Option<String>, Query, description = "the state sent with the authorization request"),
        ("iss" = Option<String>, Query, description = "the provider's issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "the provider's error (the person cancelled)")),
    responses(
        (status = 303, description = "signed in: to `/console`, with the session cookie"),
        (status = 400, description = "unknown, stale, answered or another team's state (recorded nowhere); another browser's state; the provider's error; another provider's iss", content_type = "text/html", body = String),
        (status = 401, description = "the ID token failed a check", content_type = "text/html", body = String),
        (status = 403, description = "the role claim names no agent or admin value", content_type = "text/html", body = String),
        (status = 404, description = "no such team, or it has no `[console.oidc]`", content_type = "text/html", body = String),
        (status = 502, description = "the workforce provider could not be reached or refused the code", content_type = "text/html", body = String),
        (status = 503, description = "the store cannot be reached", content_type = "text/html", body = String)))]
async fn callback(
    State(st): State<AppState>,
    Now(now): Now,
    PathParam(team): PathParam<String>,
    RawQuery(query): RawQuery,
    RequestVia(via): RequestVia,
    headers: HeaderMap,
) -> Response {
    // A parameter sent twice is no answer: refused as a state that
    // matches nothing.
    let answer = provider_answer(query.as_deref()).unwrap_or_else(|_| ProviderAnswer::default());
    let named = answer.state.as_deref().map(state_cookie_name);
    let secret = named.as_deref().and_then(|c| cookie_value(&headers, c));
    let SignInFinish { outcome, answered } = crate::gateway::console::finish_sign_in(
        &st.gateway,
        &team,
        answer,
        secret.as_deref(),
        &via,
        now,
    )
    .await;
    let public_url = &st.gateway.config().server.public_url;
    let mut res = match outcome {
        Ok(signed_in) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            let h = res.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/console"));
            let cookie = session_set_cookie(
                public_url,
                &signed_in.session_id,
                signed_in.max_age.as_secs(),
            );
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                h.append(header::SET_COOKIE, cookie);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(refusal) => refused(refusal),
    };
    // The state it named is answered: its cookie has served.
    if let (true, Some(name)) = (answered, named) {
        let clear = state_cookie(public_url, STATE_PATH, &name, "", 0);
        if let Ok(clear) = HeaderValue::from_str(&clear) {
            res.headers_mut().append(header::SET_COOKIE, clear);
        }
    }
    res
}

/// End the console session the cookie names (`console.signed_out`,
/// `ended` `logout`), and remove the cookie. Needs `Chatgate-Console: 1`.
#[utoipa::path(post, path = "/console/sign-out", operation_id = "console_sign_out", tag = "operations",
    security(("console_session" = [])),
    params(("Chatgate-Console" = String, Header, description = "`1`: a cross-site form cannot send it")),
    request_body(content = Option<EmptyBody>, description = "empty, or `{}`"),
    responses(
        (status = 204, description = "signed out; the cookie is removed"),
        ApiKeyErrors, E403, JsonBodyErrors))]
async fn sign_out(
    State(st): State<AppState>,
    Now(now): Now,
    RequestVia(via): RequestVia,
    _: NoQuery,
    // The session, live, and the header checked (a 403 is recorded).
    person: Agent,
    req: axum::extract::Request,
) -> Result<Response, Error> {
    let id = session_cookie(req.headers(), &st)
        .filter(|_| person.by_session())
        .ok_or(Error::Unauthorized)?;
    empty_body(req, &st).await?;
    crate::gateway::console::sign_out(&st.gateway, &id, &via, now).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    let clear = session_set_cookie(&st.gateway.config().server.public_url, "", 0);
    if let Ok(clear) = HeaderValue::from_str(&clear) {
        res.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(res)
}

/// Who is signed in to the console: the page asks before it offers the
/// team's interactions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsoleSession {
    /// The team signed in to.
    pub team: String,
    /// The person's `sub` at the workforce provider.
    pub sub: String,
    /// `preferred_username`, else `email`, else `name` of the ID token.
    pub name: Option<String>,
    /// `agent` or `admin`.
    pub role: String,
}

/// The person signed in to the console (or 401): its idle time restarts.
#[utoipa::path(get, path = "/console/session", operation_id = "console_session", tag = "operations",
    security(("console_session" = [])),
    responses(
        (status = 200, body = ConsoleSession),
        ApiKeyErrors, E422))]
async fn session(agent: Agent, _: NoQuery) -> Result<Json<ConsoleSession>, Error> {
    let person = agent.person.clone().filter(|_| agent.by_session());
    let person = person.ok_or(Error::Unauthorized)?;
    Ok(Json(ConsoleSession {
        team: agent.team_id.to_string(),
        sub: person.sub,
        name: person.name,
        role: agent.role.as_str().to_string(),
    }))
}

/// The console's style sheet.
#[utoipa::path(get, path = "/console/console.css", tag = "operations", security(),
    responses((status = 200, body = String, content_type = "text/css"), E422))]
async fn console_css(_: NoQuery) -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// The console's script.
#[utoipa::path(get, path = "/console/console.js", tag = "operations", security(),
    responses((status = 200, body = String, content_type = "text/javascript"), E422))]
async fn console_js(_: NoQuery) -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// A static file of the console: `no-store`, like the page, so a gateway
/// upgrade never pairs an old script with a new page.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_console_s_policy_is_its_own_to_the_byte() {
        assert_eq!(
            super::policy(),
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        );
    }
}
