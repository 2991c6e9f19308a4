//! The browser's side of silent network authentication
//! (docs/network-authentication.md): `GET /n/{code}` asks the customer to
//! confirm that they are chatting with the team now, its button's `POST
//! /n/{code}` sends the phone to its mobile operator, `GET /n/callback`
//! takes the operator's answer, and `GET|POST /n/landing` that of a
//! provider that answers in a URL's fragment ([`landing`]). Every answer is a page for the customer,
//! `no-store`, showing no state, token or number (the code to type into
//! the chat only to the phone the operator verified). The confirm page's
//! form token is tied to the browser by a cookie of its own; each started
//! check has its own cookie, named after its state (a provider's landing:
//! one cookie of a fixed name, `chatgate_landing`); all under `Path=/n/`,
//! and only the answer that uses a state up clears that state's cookie.
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::RefOr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Now;
use super::pages::answers;
use super::pages::{
    self, browser_secret, cookie_value, gone_key, no_store, provider_answer, set_cookie,
    state_cookie, LinkCode, Said,
};
use super::team_gate::Full;
use super::AppState;
use crate::domain::browser::{state_cookie_name, NETWORK_BROWSER_COOKIE as BROWSER_COOKIE};
use crate::domain::network_auth::NetworkResult;
use crate::domain::settings::TextKey;
use crate::error::Error;
use crate::gateway::network::{NetworkFinish, NetworkLinkTarget, NetworkRefusal};
use crate::gateway::Speaks;
use crate::oidc::flow::STATE_TTL;

mod landing;
mod page;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(network_link, network_confirm))
        .routes(routes!(network_callback))
        .routes(routes!(landing::landing_page, landing::landing_answer))
}

/// The cookie path of a network check's state and of the confirm page's
/// browser cookie.
const COOKIE_PATH: &str = "/n/";

/// 404 and 410 of the link and its button, problem+json or a page.
struct LinkGone;

impl utoipa::IntoResponses for LinkGone {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([
            ("404".to_string(), answers::problem_or_page("`not_found`: a code that was never issued (a page when `text/html` is accepted)")),
            ("410".to_string(), answers::problem_or_page("`token_expired`: the challenge was used, expired, replaced or failed (a page when `text/html` is accepted)")),
        ])
    }
}

/// A network challenge's link: 200, the page asking the customer to
/// confirm that they are chatting with the team right now.
///
/// It names the team (its `display_name`) and the conversation's channel,
/// and has one button, a form that posts back here with a form token
/// tied to this browser by a cookie. Fetching it uses nothing up and
/// writes nothing (chat apps fetch previews). Query parameters are
/// ignored. A browser (`Accept` naming `text/html`) gets every other
/// answer as a page; other clients get problem+json.
#[utoipa::path(get, path = "/n/{code}", operation_id = "network_link", tag = "challenges", security(),
    params(("code" = String, Path, max_length = 128, description = "the code of a network challenge's link")),
    responses(
        (status = 200, description = "the confirm page (`page_network_confirm`): one button, its form token tied to this browser by a cookie",
         content_type = "text/html", body = String,
         headers(("Set-Cookie" = String, description = "the browser cookie of the form token: HttpOnly, SameSite=Lax, Path=/n/"))),
        LinkGone,
        (status = 503, description = "`store_unavailable`: the link cannot be checked now (a page when `text/html` is accepted)",
         content((super::problem::Problem = "application/problem+json"), (String = "text/html")))))]
async fn network_link(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
    headers: HeaderMap,
) -> Response {
    let browser = browser_secret(&headers, BROWSER_COOKIE);
    let target = match code {
        Ok(code) => {
            let open = crate::gateway::network::open_network_link;
            open(&st.gateway, &code, &browser, now).await
        }
        Err(e) => Err(e),
    };
    let config = st.gateway.config();
    match target {
        Ok(NetworkLinkTarget::Confirm(confirm)) => {
            let said = Said::of(
                config,
                Some(&confirm.speaks),
                &headers,
                TextKey::PageNetworkConfirm,
            );
            let mut res = page::confirm(&said, &confirm);
            let max_age = confirm.left.as_secs().max(1);
            let cookie = state_cookie(
                &config.server.public_url,
                COOKIE_PATH,
                BROWSER_COOKIE,
                &browser,
                max_age,
            );
            set_cookie(res.headers_mut(), &cookie);
            no_store(res)
        }
        other => answered(&st, other, &headers),
    }
}

/// The confirm page's button: 302 to the mobile operator.
///
/// Only with the form token of this browser's page (another browser's,
/// or none: 403, nothing changes). Each confirmation starts a new check
/// (`state`, PKCE S256, `prompt=none`, no `login_hint`) tied to this
/// browser by a cookie, and the link keeps its five newest. With
/// `provider = "vonage"` the button first starts Vonage's verification
/// (one per challenge: a later press while it runs goes to the same
/// `check_url`) and goes to its `check_url`; Vonage failing is the retry
/// page, 502. A link that can no longer answer answers as its page does.
#[utoipa::path(post, path = "/n/{code}", operation_id = "network_confirm", tag = "challenges", security(),
    params(("code" = String, Path, max_length = 128, description = "the code of a network challenge's link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`form_token`: the confirm page's form token"),
    responses(
        (status = 302, description = "to the operator's authorization endpoint (Vonage: its `check_url`), with a cookie tying the new state to this browser",
         headers(("Location" = String, description = "the operator's authorization request, or Vonage's `check_url`"),
                 ("Set-Cookie" = String, description = "the state's cookie, HttpOnly, SameSite=Lax, Path=/n/ (Vonage: `chatgate_landing`, one of a fixed name)"))),
        (status = 403, description = "`forbidden`: no form token of this browser's page; nothing changes (a page when `text/html` is accepted)",
         content((super::problem::Problem = "application/problem+json"), (String = "text/html"))),
        LinkGone,
        (status = 413, description = "`payload_too_large`: a body over the limit", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 502, description = "`channel_error`: Vonage did not start its verification (`page_network_retry` when `text/html` is accepted); the challenge stays open",
         content((super::problem::Problem = "application/problem+json"), (String = "text/html"))),
        (status = 503, description = "`store_unavailable`: the link cannot be checked now, or 32 requests of this team wait on providers (a page when `text/html` is accepted)",
         content((super::problem::Problem = "application/problem+json"), (String = "text/html")))))]
async fn network_confirm(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let browser = cookie_value(&headers, BROWSER_COOKIE);
    let token = pages::form_token(&body);
    let code = match code {
        Ok(code) => code,
        Err(e) => return answered(&st, Err(e), &headers),
    };
    // A provider asked at the button that hangs holds only its own team's
    // requests.
    let team = crate::gateway::network::network_link_team(&st.gateway, &code).await;
    let _place = match gate(&st, team.as_deref(), &headers) {
        Ok(place) => place,
        Err(full) => return *full,
    };
    let given = (browser.as_deref(), token.as_deref());
    let target =
        crate::gateway::network::confirm_network_link(&st.gateway, &code, given, now).await;
    match target {
        Ok(NetworkLinkTarget::Operator(started)) => {
            let config = st.gateway.config();
            let mut res = StatusCode::FOUND.into_response();
            let h = res.headers_mut();
            if let Ok(location) = HeaderValue::from_str(&started.location) {
                h.insert(header::LOCATION, location);
            }
            let cookie = state_cookie(
                &config.server.public_url,
                COOKIE_PATH,
                &started.cookie,
                &started.secret,
                STATE_TTL.as_secs(),
            );
            set_cookie(h, &cookie);
            no_store(res)
        }
        other => answered(&st, other, &headers),
    }
}

/// Every answer of the link and its button but the confirm page and the
/// operator: a page for a browser, problem+json for other clients.
fn answered(
    st: &AppState,
    target: crate::error::Result<NetworkLinkTarget>,
    headers: &HeaderMap,
) -> Response {
    let html = pages::wants_html(headers);
    let config = st.gateway.config();
    match target {
        Ok(NetworkLinkTarget::Gone(used, speaks)) if html => page(
            st,
            speaks.as_ref(),
            headers,
            StatusCode::GONE,
            gone_key(used),
        ),
        Ok(NetworkLinkTarget::Gone(..)) => Error::TokenExpired.into_response(),
        Ok(NetworkLinkTarget::Refused(speaks)) if html => page(
            st,
            Some(&speaks),
            headers,
            StatusCode::FORBIDDEN,
            TextKey::PageSignInFailed,
        ),
        Ok(NetworkLinkTarget::Refused(_)) => {
            Error::Forbidden("no form token of this browser's page").into_response()
        }
        Ok(NetworkLinkTarget::Failed(speaks)) if html => page(
            st,
            Some(&speaks),
            headers,
            StatusCode::BAD_GATEWAY,
            TextKey::PageNetworkRetry,
        ),
        Ok(NetworkLinkTarget::Failed(_)) => {
            Error::Channel("the network-verification provider failed".into()).into_response()
        }
        // Answered by their own handlers.
        Ok(NetworkLinkTarget::Confirm(_) | NetworkLinkTarget::Operator(_)) => {
            Error::internal("a network link's answer out of place").into_response()
        }
        Err(e) if html => pages::link_error(config, headers, e),
        Err(e) => e.into_response(),
    }
}

/// The mobile operator sends the customer back here,
/// `{public_url}/n/callback`.
///
/// Answers a page: 200 confirmed (in the number's own SMS conversation
/// the interaction is authenticated with method `network`; in any other
/// the page shows the code to type into the chat), 200 another number (the challenge ended), 200 not
/// on the mobile network (the challenge stays open: turn Wi-Fi off and
/// open the link again); 502 the operator failed (the same page; the
/// challenge stays open); 400 an unknown, old, answered or other
/// browser's state (nothing changes); 410 the challenge was used, expired
/// or replaced; 503 the store, or 32 requests of the team wait on
/// providers.
#[utoipa::path(get, path = "/n/callback", operation_id = "network_callback", tag = "challenges", security(),
    params(
        ("code" = Option<String>, Query, description = "the operator's authorization code"),
        ("state" = Option<String>, Query, description = "the state sent with the authorization request"),
        ("error" = Option<String>, Query, description = "the operator's error: the phone was not on its mobile network")),
    responses(
        (status = 200, description = "confirmed (in a conversation that is not the number's own SMS conversation, with the code to type into the chat); another number; or not on the mobile network (turn Wi-Fi off and open the link again)", content_type = "text/html", body = String),
        (status = 400, description = "an unknown, old, answered or other browser's state: nothing changes", content_type = "text/html", body = String),
        (status = 410, description = "the challenge was used, expired, replaced or failed", content_type = "text/html", body = String),
        (status = 502, description = "the operator failed (token endpoint, verify call, an unexpected answer, no answer within 5 s): the challenge stays open", content_type = "text/html", body = String),
        (status = 503, description = "the store cannot be reached, or 32 requests of this team wait on providers (`Retry-After`)", content_type = "text/html", body = String)))]
async fn network_callback(
    State(st): State<AppState>,
    Now(now): Now,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let answer = match provider_answer(query.as_deref()) {
        Ok(answer) => answer,
        Err(_) => {
            return page(
                &st,
                None,
                &headers,
                StatusCode::BAD_REQUEST,
                TextKey::PageSignInFailed,
            )
        }
    };
    let read = crate::gateway::network::read_state(&st.gateway, answer.state.as_deref()).await;
    // An operator that hangs holds only its own team's requests.
    let _place = match gate(&st, read.team(), &headers) {
        Ok(place) => place,
        Err(full) => return *full,
    };
    let named = answer.state.as_deref().map(state_cookie_name);
    let secret = named.as_deref().and_then(|c| cookie_value(&headers, c));
    let finish =
        crate::gateway::network::finish_network(&st.gateway, read, answer, secret.as_deref(), now);
    let finish = finish.await;
    let answered = finish.answered;
    let mut res = finished(&st, finish, &headers);
    if let (true, Some(name)) = (answered, named) {
        let public_url = &st.gateway.config().server.public_url;
        let clear = state_cookie(public_url, COOKIE_PATH, &name, "", 0);
        set_cookie(res.headers_mut(), &clear);
    }
    res
}

/// A place at `team`'s gate, for a request that may wait on its
/// provider; `Err`: the answer when 32 of the team's requests wait
/// already (503, `Retry-After`).
fn gate(
    st: &AppState,
    team: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<super::team_gate::Place>, Box<Response>> {
    match team.map(|t| st.team_gates.enter(st.gateway.config(), t)) {
        Some(Err(_)) => {
            let res = page(
                st,
                None,
                headers,
                StatusCode::SERVICE_UNAVAILABLE,
                TextKey::PageTryAgain,
            );
            Err(Box::new(Full::answer(res)))
        }
        Some(Ok(place)) => Ok(place),
        None => Ok(None),
    }
}

/// The page of a finished answer.
fn finished(st: &AppState, finish: NetworkFinish, headers: &HeaderMap) -> Response {
    let speaks = finish.speaks.as_ref();
    let code = finish.code.as_ref().map(|c| c.expose());
    let (status, key) = match &finish.outcome {
        Ok(NetworkResult::Verified) if code.is_some() => (StatusCode::OK, TextKey::PageNetworkCode),
        Ok(NetworkResult::Verified) => (StatusCode::OK, TextKey::PageNetworkDone),
        // A code the browser posted, refused with tries left: open.
        Ok(NetworkResult::Mismatch) if finish.try_again => {
            (StatusCode::OK, TextKey::PageNetworkRetry)
        }
        Ok(NetworkResult::Mismatch) => (StatusCode::OK, TextKey::PageNetworkMismatch),
        Ok(NetworkResult::NotOnMobileNetwork) => (StatusCode::OK, TextKey::PageNetworkRetry),
        Ok(NetworkResult::Error) => (StatusCode::BAD_GATEWAY, TextKey::PageNetworkRetry),
        Err(NetworkRefusal::BadState(_)) => (StatusCode::BAD_REQUEST, TextKey::PageSignInFailed),
        Err(NetworkRefusal::Gone(used)) => (StatusCode::GONE, gone_key(*used)),
        Err(NetworkRefusal::Store(_)) => (StatusCode::SERVICE_UNAVAILABLE, TextKey::PageTryAgain),
    };
    let said = Said::of(st.gateway.config(), speaks, headers, key);
    let mut res = no_store(pages::render_said(status, &said, code));
    if let Err(NetworkRefusal::Store(e)) = finish.outcome {
        // The error's own answer logs an internal error and labels the
        // request's log line.
        let problem = e.into_response();
        *res.status_mut() = problem.status();
        if let Some(label) = problem.extensions().get::<super::ProblemLabel>() {
            res.extensions_mut().insert(*label);
        }
    }
    res
}

/// Template `key` as a page of `status`, `no-store`.
fn page(
    st: &AppState,
    speaks: Option<&Speaks>,
    headers: &HeaderMap,
    status: StatusCode,
    key: TextKey,
) -> Response {
    pages::text_page(st.gateway.config(), speaks, headers, status, key)
}
