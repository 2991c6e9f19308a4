//! The browser's side of hosted login with the team's identity provider
//! (docs/api.md#hosted-login-openid-connect): `GET /l/{code}` of a provider
//! link starts it ([`start`], called by `login.rs`), `GET /oidc/callback`
//! finishes it. Every answer is a page for the customer, `no-store`,
//! showing no code, state or token (only a binding code to type into the
//! chat).
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Now;
use super::pages::{self, Page};
use super::AppState;
use crate::error::Error;
use crate::gateway::{CallbackOutcome, ProviderAnswer, ProviderLink, ProviderRefusal};
use crate::oidc::flow::{COOKIE, STATE_TTL};
use crate::oidc::OidcError;
use crate::time::Timestamp;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

const SIGNED_IN: Page = Page {
    status: StatusCode::OK,
    title: "Signed in",
    heading: "You\u{2019}re signed in",
    advice: "You can go back to the chat now.",
};

const TYPE_CODE: Page = Page {
    status: StatusCode::OK,
    title: "One more step",
    heading: "Type this code into the chat",
    advice: "Go back to the chat and send this code to finish signing in.",
};

const START_AGAIN: Page = Page {
    status: StatusCode::BAD_REQUEST,
    title: "Sign-in not finished",
    heading: "This sign-in could not be finished",
    advice: "Open the link from the chat again, in this browser.",
};

const CANCELLED: Page = Page {
    status: StatusCode::BAD_REQUEST,
    title: "Sign-in cancelled",
    heading: "Sign-in was cancelled",
    advice: "To try again, open the link from the chat again.",
};

const NOT_VERIFIED: Page = Page {
    status: StatusCode::UNAUTHORIZED,
    title: "Sign-in not verified",
    heading: "We couldn\u{2019}t verify your sign-in",
    advice: "Open the link from the chat again.",
};

const MISMATCH: Page = Page {
    status: StatusCode::FORBIDDEN,
    title: "Another account",
    heading: "This is not the account we expected",
    advice: "Sign in with the account you use with us, or ask in the chat for a new link.",
};

const BLOCKED: Page = Page {
    status: StatusCode::LOCKED,
    title: "Sign-in blocked",
    heading: "Sign-in is blocked for now",
    advice: "Too many attempts failed. Please try again later.",
};

const BANNED: Page = Page {
    status: StatusCode::FORBIDDEN,
    title: "Sign-in not possible",
    heading: "Sign-in is not possible",
    advice: "Please ask in the chat for help.",
};

const USED: Page = Page {
    status: StatusCode::CONFLICT,
    ..pages::USED_LINK
};

const PROVIDER_DOWN: Page = Page {
    status: StatusCode::BAD_GATEWAY,
    title: "Please try again",
    heading: "We can\u{2019}t reach the sign-in service right now",
    advice: "Please try again in a minute.",
};

/// `GET /l/{code}` of a live provider link: 302 to the provider's
/// authorization endpoint, with the cookie that ties the new state to this
/// browser. Nothing is used up.
pub(super) async fn start(st: &AppState, link: ProviderLink, now: Timestamp) -> Response {
    match st.gateway.start_provider_login(&link, now).await {
        Ok(started) => {
            let mut res = StatusCode::FOUND.into_response();
            let h = res.headers_mut();
            if let Ok(location) = HeaderValue::from_str(&started.location) {
                h.insert(header::LOCATION, location);
            }
            if let Ok(cookie) = HeaderValue::from_str(&cookie(
                &st.gateway.config.server.public_url,
                &started.browser_secret,
                STATE_TTL.as_secs(),
            )) {
                h.insert(header::SET_COOKIE, cookie);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            res
        }
        Err(ProviderRefusal::Login(Error::TokenExpired)) => pages::render(&pages::EXPIRED_LINK),
        Err(refusal) => refused(refusal),
    }
}

/// `Set-Cookie` for the browser secret (`max_age` 0 removes it).
fn cookie(public_url: &str, value: &str, max_age: u64) -> String {
    let secure = if public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; Path=/oidc/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// The browser secret from the request's cookies.
fn browser_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_string())
        })
}

/// The provider's answer from the query; a parameter sent twice is refused
/// (RFC 6749 4.1.2), other parameters are ignored.
fn provider_answer(query: Option<&str>) -> Result<ProviderAnswer, OidcError> {
    let mut answer = ProviderAnswer::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match k.as_ref() {
            "code" => &mut answer.code,
            "state" => &mut answer.state,
            "error" => &mut answer.error,
            "iss" => &mut answer.iss,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(OidcError::BadState("a parameter sent twice"));
        }
    }
    Ok(answer)
}

/// The page for a login that stopped.
fn refused(refusal: ProviderRefusal) -> Response {
    let page = match &refusal {
        ProviderRefusal::Oidc(OidcError::BadState(_) | OidcError::WrongIssuer) => &START_AGAIN,
        ProviderRefusal::Oidc(OidcError::Cancelled) => &CANCELLED,
        ProviderRefusal::Oidc(OidcError::Provider(_)) => &PROVIDER_DOWN,
        ProviderRefusal::Oidc(OidcError::InvalidIdToken(_)) => &NOT_VERIFIED,
        ProviderRefusal::Login(Error::TokenUsed) => &USED,
        ProviderRefusal::Login(Error::TokenExpired) => &pages::EXPIRED_LINK,
        ProviderRefusal::Login(Error::CustomerMismatch) => &MISMATCH,
        ProviderRefusal::Login(Error::Banned) => &BANNED,
        ProviderRefusal::Login(Error::Locked { .. }) => &BLOCKED,
        ProviderRefusal::Login(_) => &pages::UNAVAILABLE,
    };
    let mut res = pages::render(page);
    if let ProviderRefusal::Login(e) = refusal {
        // The error's own answer logs an internal error, labels the
        // request's log line and gives the status and `Retry-After`.
        let problem = e.into_response();
        *res.status_mut() = problem.status();
        if let Some(v) = problem.headers().get(header::RETRY_AFTER) {
            res.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
        if let Some(label) = problem.extensions().get::<super::ProblemLabel>() {
            res.extensions_mut().insert(*label);
        }
    }
    res
}

/// The identity provider sends the customer back here.
///
/// Answers a page: 200 signed in (or the binding code to type into the
/// chat); 400 an unknown, stale, answered or other browser's state, the
/// provider's `error`, or an `iss` of another provider; 401 an ID token
/// that fails a check; 409 the link was used; 403 `expected_customer` not
/// met (a counted failure) or banned; 423 locked; 502 the provider failed;
/// 503 the store cannot be reached. Only the login rules after the ID token
/// use the link up.
#[utoipa::path(get, path = "/oidc/callback", operation_id = "oidc_callback", tag = "login", security(),
    params(
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("state" = Option<String>, Query, description = "the state sent with the authorization request"),
        ("iss" = Option<String>, Query, description = "the provider's issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "the provider's error (the customer cancelled)")),
    responses(
        (status = 200, description = "signed in, or the binding code to type into the chat", content_type = "text/html", body = String),
        (status = 400, description = "unknown, stale, answered or another browser's state; the provider's error; another provider's iss", content_type = "text/html", body = String),
        (status = 401, description = "the ID token failed a check", content_type = "text/html", body = String),
        (status = 403, description = "not the expected customer (a counted failure), or the subject is banned", content_type = "text/html", body = String),
        (status = 409, description = "the link was already used", content_type = "text/html", body = String),
        (status = 423, description = "the subject is locked out", content_type = "text/html", body = String),
        (status = 502, description = "the identity provider could not be reached or refused the code", content_type = "text/html", body = String),
        (status = 503, description = "the store cannot be reached", content_type = "text/html", body = String)))]
async fn callback(
    State(st): State<AppState>,
    Now(now): Now,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let secret = browser_secret(&headers);
    let outcome = match provider_answer(query.as_deref()) {
        Ok(answer) => {
            st.gateway
                .finish_provider_login(answer, secret.as_deref(), now)
                .await
        }
        Err(e) => Err(ProviderRefusal::Oidc(e)),
    };
    let mut res = match outcome {
        Ok(CallbackOutcome::Authenticated { .. }) => pages::render(&SIGNED_IN),
        Ok(CallbackOutcome::Bound { binding_code, .. }) => {
            pages::render_code(&TYPE_CODE, &binding_code)
        }
        Ok(CallbackOutcome::Failed { .. }) => pages::render(&NOT_VERIFIED),
        Err(refusal) => refused(refusal),
    };
    // The state it held is answered (or was never this browser's).
    if secret.is_some() {
        if let Ok(clear) =
            HeaderValue::from_str(&cookie(&st.gateway.config.server.public_url, "", 0))
        {
            res.headers_mut().insert(header::SET_COOKIE, clear);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_lax_on_the_callback_path_and_secure_on_https() {
        let c = cookie("https://gw.example", "v", 600);
        assert_eq!(
            c,
            "chatgate_oidc=v; Path=/oidc/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!cookie("http://127.0.0.1:8080", "v", 600).contains("Secure"));
    }

    #[test]
    fn the_browser_secret_is_read_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chatgate_oidc=s3cr3t; b=2"),
        );
        assert_eq!(browser_secret(&h).as_deref(), Some("s3cr3t"));
        assert_eq!(browser_secret(&HeaderMap::new()), None);
    }

    #[test]
    fn a_parameter_sent_twice_is_refused() {
        assert!(provider_answer(Some("code=a&state=b&state=c")).is_err());
        let a = provider_answer(Some("code=a&state=b&session_state=x")).unwrap();
        assert_eq!(
            (a.code.as_deref(), a.state.as_deref()),
            (Some("a"), Some("b"))
        );
    }
}
