//! The browser's side of hosted login with the team's identity provider
//! (docs/api.md#hosted-login-openid-connect), the page a provider's short
//! link leads to: `GET /l/{code}` of a provider link starts it
//! ([`start`], called by its parent, `login.rs`), `GET
//! /oidc/callback/{team}` finishes it (one address per team, so that no
//! team's provider is sent another team's answer). Every answer is a page
//! for the customer, `no-store`, showing no code, state or token (only a
//! binding code to type into the chat). Each started login has its own
//! cookie, named after its state; only the answer that uses a state up
//! clears that state's cookie.
use super::super::team_gate::Full;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::extract::{Now, PathParam};
use super::super::pages::{self, cookie_value, provider_answer, set_cookie, state_cookie, Page};
use super::super::AppState;
use crate::domain::browser::state_cookie_name;
use crate::domain::settings::TextKey;
use crate::error::Error;
use crate::gateway::{CallbackOutcome, ProviderFinish, ProviderLink, ProviderRefusal};
use crate::oidc::flow::STATE_TTL;
use crate::oidc::OidcError;
use crate::time::Timestamp;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(callback))
        .route("/oidc/callback", axum::routing::get(retired))
}

const RETIRED: Page = Page {
    status: StatusCode::NOT_FOUND,
    title: "Sign-in address no longer used",
    heading: "This sign-in address is no longer used",
    advice:
        "Open the link from the chat again. If this keeps happening, please tell us in the chat.",
};

/// What a refused sign-in answers: its status, and the template key of
/// the page, said in the interaction's language (docs/api.md#languages;
/// decisions/0105-a-refused-sign-in-says-one-text.md). The reason is in
/// the status, the log and the events, not on the page.
fn refusal_page(refusal: &ProviderRefusal) -> (StatusCode, TextKey) {
    const FAILED: TextKey = TextKey::PageSignInFailed;
    const AGAIN: TextKey = TextKey::PageTryAgain;
    match refusal {
        ProviderRefusal::Oidc(OidcError::BadState(_) | OidcError::WrongIssuer) => {
            (StatusCode::BAD_REQUEST, FAILED)
        }
        ProviderRefusal::Oidc(OidcError::Cancelled) => (StatusCode::BAD_REQUEST, FAILED),
        ProviderRefusal::Oidc(OidcError::Provider(_)) => (StatusCode::BAD_GATEWAY, AGAIN),
        ProviderRefusal::Oidc(OidcError::InvalidIdToken(_) | OidcError::Unverified(_))
        | ProviderRefusal::Login(Error::InvalidToken(_)) => (StatusCode::UNAUTHORIZED, FAILED),
        ProviderRefusal::Login(Error::TokenUsed) => (StatusCode::CONFLICT, TextKey::PageLinkUsed),
        ProviderRefusal::Login(Error::TokenExpired) => (StatusCode::GONE, TextKey::PageLinkExpired),
        ProviderRefusal::Login(Error::CustomerMismatch | Error::Banned) => {
            (StatusCode::FORBIDDEN, FAILED)
        }
        ProviderRefusal::Login(Error::Locked { .. }) => (StatusCode::LOCKED, FAILED),
        ProviderRefusal::Login(_) => (StatusCode::SERVICE_UNAVAILABLE, AGAIN),
    }
}

/// `GET /l/{code}` of a live provider link: 302 to the provider's
/// authorization endpoint, with the cookie that ties the new state to this
/// browser. Nothing is used up. It may wait on the team's provider, so it
/// takes a place at the team's gate: when none is free, 503 at once with
/// the try-again page.
pub(super) async fn start(
    st: &AppState,
    link: ProviderLink,
    headers: &HeaderMap,
    now: Timestamp,
) -> Response {
    let Ok(_place) = st.team_gates.enter(st.gateway.config(), &link.team) else {
        let id = Some(link.interaction_id);
        let said = said(st, &link.team, id, headers, TextKey::PageTryAgain, now).await;
        return Full::answer(pages::render_said(
            StatusCode::SERVICE_UNAVAILABLE,
            &said,
            None,
        ));
    };
    match crate::gateway::oidc::start_provider_login(&st.gateway, &link, now).await {
        Ok(started) => {
            let mut res = StatusCode::FOUND.into_response();
            let h = res.headers_mut();
            if let Ok(location) = HeaderValue::from_str(&started.location) {
                h.insert(header::LOCATION, location);
            }
            let cookie = cookie(
                &st.gateway.config().server.public_url,
                &state_cookie_name(&started.state),
                &started.browser_secret,
                STATE_TTL.as_secs(),
            );
            set_cookie(h, &cookie);
            pages::no_store(res)
        }
        Err(refusal) => {
            let (_, key) = refusal_page(&refusal);
            let id = Some(link.interaction_id);
            let said = said(st, &link.team, id, headers, key, now).await;
            refused(refusal, &said)
        }
    }
}

/// `Set-Cookie` for a state's browser secret (`max_age` 0 removes it),
/// sent back only to the callbacks under `/oidc/`.
fn cookie(public_url: &str, name: &str, value: &str, max_age: u64) -> String {
    state_cookie(public_url, "/oidc/", name, value, max_age)
}

/// The page for a login that stopped, as `said` says its key.
fn refused(refusal: ProviderRefusal, said: &pages::Said) -> Response {
    let (status, _) = refusal_page(&refusal);
    let mut res = pages::render_said(status, said, None);
    if let ProviderRefusal::Login(e) = refusal {
        // The error's own answer logs an internal error, labels the
        // request's log line and gives the status and `Retry-After`.
        let problem = e.into_response();
        *res.status_mut() = problem.status();
        if let Some(v) = problem.headers().get(header::RETRY_AFTER) {
            res.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
        if let Some(label) = problem.extensions().get::<super::super::ProblemLabel>() {
            res.extensions_mut().insert(*label);
        }
    }
    res
}

/// Template `key` in the language of interaction `id` of `team` (as the
/// visitor's `Accept-Language` asks when there is none, or it cannot be
/// read).
async fn said(
    st: &AppState,
    team: &str,
    id: Option<uuid::Uuid>,
    headers: &HeaderMap,
    key: TextKey,
    now: Timestamp,
) -> pages::Said {
    let config = st.gateway.config();
    let read = match (config.team(team), id) {
        (Some(t), Some(id)) => {
            let read = crate::gateway::interactions::get_interaction(&st.gateway, t, id, now);
            read.await.ok()
        }
        _ => None,
    };
    let speaks = read.map(|v| crate::gateway::Speaks {
        team: team.to_string(),
        channel: v.channel,
        locale: v.locale,
    });
    pages::Said::of(config, speaks.as_ref(), headers, key)
}

/// The identity provider sends the customer back here; each team
/// registers its own address, `{public_url}/oidc/callback/{team}`.
///
/// Answers a page: 200 signed in (or the binding code to type into the
/// chat); 400 an unknown, stale, answered, dropped, another team's or
/// another browser's state (the code goes nowhere), the provider's `error`,
/// or an `iss` of another provider; 401 an ID token that fails a check, or
/// names a provider session a back-channel logout ended; 409
/// the link was used; 403 `expected_customer` not met (a counted failure)
/// or banned; 423 locked; 502 the provider failed (unreachable, an answer
/// over 1 MiB, an endpoint neither https nor loopback http); 503 the store
/// cannot be reached. Only the login rules after the ID token use the link
/// up. Only an answer that uses its state up clears that state's cookie.
#[utoipa::path(get, path = "/oidc/callback/{team}", operation_id = "oidc_callback", tag = "login", security(),
    params(
        ("team" = String, Path, description = "the team whose login this is (each team registers its own redirect URI)"),
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("state" = Option<String>, Query, description = "the state sent with the authorization request"),
        ("iss" = Option<String>, Query, description = "the provider's issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "the provider's error (the customer cancelled)")),
    responses(
        (status = 200, description = "signed in, or the binding code to type into the chat", content_type = "text/html", body = String),
        (status = 400, description = "unknown, stale, answered, dropped, another team's or another browser's state (the code goes nowhere); the provider's error; another provider's iss", content_type = "text/html", body = String),
        (status = 401, description = "the ID token failed a check, or names a provider session a back-channel logout ended", content_type = "text/html", body = String),
        (status = 403, description = "not the expected customer (a counted failure), or the subject is banned", content_type = "text/html", body = String),
        (status = 409, description = "the link was already used", content_type = "text/html", body = String),
        (status = 423, description = "the subject is locked out", content_type = "text/html", body = String),
        (status = 502, description = "the identity provider could not be reached, refused the code, answered more than 1 MiB, or named an endpoint that is neither https nor http on a loopback address", content_type = "text/html", body = String),
        (status = 503, description = "the store cannot be reached, or 32 callbacks of this team are in flight (`Retry-After`)", content_type = "text/html", body = String)))]
async fn callback(
    State(st): State<AppState>,
    Now(now): Now,
    PathParam(team): PathParam<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(_place) = st.team_gates.enter(st.gateway.config(), &team) else {
        let said = pages::Said::of(st.gateway.config(), None, &headers, TextKey::PageTryAgain);
        return Full::answer(pages::render_said(
            StatusCode::SERVICE_UNAVAILABLE,
            &said,
            None,
        ));
    };
    let (finish, named) = match provider_answer(query.as_deref()) {
        Ok(answer) => {
            let named = answer.state.as_deref().map(state_cookie_name);
            let secret = named.as_deref().and_then(|c| cookie_value(&headers, c));
            let finish = crate::gateway::oidc::finish_provider_login(
                &st.gateway,
                &team,
                answer,
                secret.as_deref(),
                now,
            )
            .await;
            (finish, named)
        }
        Err(e) => (
            ProviderFinish {
                outcome: Err(ProviderRefusal::Oidc(e)),
                answered: false,
                interaction_id: None,
            },
            None,
        ),
    };
    let mut res = match finish.outcome {
        Ok(CallbackOutcome::Authenticated { interaction_id, .. }) => {
            let id = Some(interaction_id);
            let said = said(&st, &team, id, &headers, TextKey::PageSignedIn, now).await;
            pages::render_said(StatusCode::OK, &said, None)
        }
        Ok(CallbackOutcome::Bound {
            interaction_id,
            binding_code,
            ..
        }) => {
            let key = TextKey::PageBindingCode;
            let said = said(&st, &team, Some(interaction_id), &headers, key, now).await;
            pages::render_said(StatusCode::OK, &said, Some(&binding_code))
        }
        Ok(CallbackOutcome::Failed { .. }) => {
            let key = TextKey::PageSignInFailed;
            let said = said(&st, &team, finish.interaction_id, &headers, key, now).await;
            pages::render_said(StatusCode::UNAUTHORIZED, &said, None)
        }
        Err(refusal) => {
            let (_, key) = refusal_page(&refusal);
            let said = said(&st, &team, finish.interaction_id, &headers, key, now).await;
            refused(refusal, &said)
        }
    };
    // The state it named is answered: its cookie has served. Any other
    // cookie, and this one for an answer that used nothing up, stay.
    if let (true, Some(name)) = (finish.answered, named) {
        let public_url = &st.gateway.config().server.public_url;
        set_cookie(res.headers_mut(), &cookie(public_url, &name, "", 0));
    }
    res
}

/// `GET /oidc/callback`, the one address all teams shared before each got
/// its own: a page saying it is no longer used; nothing is read or used
/// up (docs/decisions/0042-one-callback-address-per-team.md).
/// Its warning is written at most once a minute: anyone can call it.
async fn retired(Now(now): Now) -> Response {
    static LAST_WARNED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
    let second = now.unix_seconds();
    let last = LAST_WARNED.load(std::sync::atomic::Ordering::Relaxed);
    if second.saturating_sub(last) >= 60
        && LAST_WARNED
            .compare_exchange(
                last,
                second,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!(
            "a browser came back to the retired /oidc/callback: a provider still has it registered; each team registers {{public_url}}/oidc/callback/{{team}} (said at most once a minute)"
        );
    }
    pages::render(&RETIRED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_lax_on_the_callback_path_and_secure_on_https() {
        let c = cookie("https://gw.example", "chatgate_oidc_ab", "v", 600);
        assert_eq!(
            c,
            "chatgate_oidc_ab=v; Path=/oidc/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!cookie("http://127.0.0.1:8080", "n", "v", 600).contains("Secure"));
    }
}
