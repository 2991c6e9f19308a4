//! A wallet challenge's endpoints (docs/wallet.md): the link's page
//! `GET /w/{code}`, the signed request object a wallet fetches
//! (`/w/{code}/request/{rid}`), the wallet's answer (`POST /w/response`,
//! form-encoded) or the page's (`POST /w/{code}/response`, the Digital
//! Credentials API's result as JSON), and the page's poll and end page
//! (`/w/{code}/status`, `/w/{code}/done`). Pages are `no-store` and
//! `no-referrer`; no answer shows a key, a claim value or the link's code
//! beyond the page's own links.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{JsonBody, Now, PathParam};
use super::openapi::JsonBodyErrors;
use super::pages::{
    self, cookie_value, gone_key, no_store, sane_secret, set_cookie, state_cookie, LinkCode, Said,
};
use super::AppState;
use crate::domain::browser::WALLET_BROWSER_COOKIE as BROWSER_COOKIE;
use crate::domain::settings::TextKey;
use crate::error::Error;
use crate::gateway::wallet::{
    AnswerRefusal, Answered, DonePage, LinkState, WalletLinkTarget, WalletPost,
};

mod page;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(wallet_page))
        .routes(routes!(wallet_request_get, wallet_request_post))
        .routes(routes!(wallet_response))
        .routes(routes!(wallet_page_response))
        .routes(routes!(wallet_status))
        .routes(routes!(wallet_done))
}

/// The longest link code or request id taken.
const MAX_ID: usize = 128;

/// The `{code}` of a wallet link's path.
struct LinkCodeParam;

impl utoipa::IntoParams for LinkCodeParam {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![pages::answers::code_param(
            "the code of a wallet challenge's link",
        )]
    }
}

/// A wallet challenge's link: 200, the page that asks the customer's
/// wallet for the credential.
///
/// Every fetch makes a new request (its `rid`, `state`, `nonce` and
/// encryption key; the challenge keeps its five newest, and the store
/// nothing of an older one) and uses nothing up; more than 10 fetches of
/// one link within a minute are 429 and make nothing; while a verified answer awaits its binding code, a fetch makes
/// none and shows `page_wallet_elsewhere` (never the code). The page
/// names the team and the conversation's channel once, and offers the Digital Credentials API where the browser has
/// it (`page_wallet_here`), a button with the `openid4vp://` link (`page_wallet_open`), the same link as a QR code,
/// and polls `/w/{code}/status`. Its policy allows its own script only.
/// Every answer is a page.
#[utoipa::path(get, path = "/w/{code}", operation_id = "wallet_page", tag = "challenges", security(),
    params(LinkCodeParam),
    responses(
        (status = 200, description = "the page (`page_wallet_start`) with a fresh request; while a verified answer awaits its binding code, `page_wallet_elsewhere`", content_type = "text/html", body = String),
        pages::LinkUnknown,
        (status = 410, description = "the challenge was used, expired, replaced or failed (`page_link_used`, `page_link_expired`)", content_type = "text/html", body = String),
        (status = 429, description = "more than 10 fetches of this link within a minute: nothing made (`page_try_again`, `Retry-After`)", content_type = "text/html", body = String),
        pages::LinkUnchecked))]
async fn wallet_page(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
    headers: HeaderMap,
) -> Response {
    let code = match code {
        Ok(code) => code,
        Err(e) => return error_page(&st, &headers, e),
    };
    let opened = crate::gateway::wallet::open_wallet_link(&st.gateway, &code, now).await;
    match opened {
        Ok(WalletLinkTarget::Page(p)) => {
            let config = st.gateway.config();
            let said = Said::of(config, Some(&p.speaks), &headers, TextKey::PageWalletStart);
            let bound = Said::of(config, Some(&p.speaks), &headers, TextKey::PageWalletCode);
            let open = Said::of(config, Some(&p.speaks), &headers, TextKey::PageWalletOpen);
            let here = Said::of(config, Some(&p.speaks), &headers, TextKey::PageWalletHere);
            let buttons = (&open, &here);
            no_store(page::wallet_page(&said, &p, (&code, &bound.text), buttons))
        }
        Ok(WalletLinkTarget::Limited(speaks)) => {
            pages::limited(st.gateway.config(), speaks.as_ref(), &headers)
        }
        Ok(WalletLinkTarget::Elsewhere(speaks)) => text_page(
            &st,
            Some(&speaks),
            &headers,
            StatusCode::OK,
            TextKey::PageWalletElsewhere,
        ),
        Ok(WalletLinkTarget::Gone(used, speaks)) => text_page(
            &st,
            speaks.as_ref(),
            &headers,
            StatusCode::GONE,
            gone_key(used),
        ),
        Err(e) => error_page(&st, &headers, e),
    }
}

/// The form a wallet may POST for the request object (OpenID4VP
/// `request_uri_method=post`).
fn wallet_nonce(body: &[u8]) -> std::result::Result<Option<String>, Error> {
    let mut nonces = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == "wallet_nonce")
        .map(|(_, v)| v.into_owned());
    let nonce = nonces.next();
    let sane = |n: &String| (1..=256).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_graphic());
    match (nonce, nonces.next()) {
        (None, _) => Ok(None),
        (Some(n), None) if sane(&n) => Ok(Some(n)),
        _ => Err(Error::BadRequest(
            "wallet_nonce: one of 1 to 256 visible ASCII characters".into(),
        )),
    }
}

/// The signed request object of request `rid`, for `wallet_nonce`.
async fn request_answer(
    st: &AppState,
    ids: std::result::Result<PathParam<(String, String)>, Error>,
    wallet_nonce: Option<&str>,
    now: crate::time::Timestamp,
) -> Response {
    let no_request =
        || Error::BadRequest(crate::gateway::wallet::NO_REQUEST.into()).into_response();
    let Ok(PathParam((code, rid))) = ids else {
        return no_request();
    };
    if code.len() > MAX_ID || rid.len() > MAX_ID {
        return no_request();
    }
    let made =
        crate::gateway::wallet::request_object(&st.gateway, (&code, &rid), wallet_nonce, now);
    match made.await {
        Ok(jwt) => no_store(
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/oauth-authz-req+jwt"),
                )],
                jwt,
            )
                .into_response(),
        ),
        Err(e) => e.into_response(),
    }
}

/// A request's signed request object (`direct_post.jwt`).
///
/// `application/oauth-authz-req+jwt`: ES256 by the team's `[wallet]
/// signing_key`, `x5c` its `certificate_chain`, for the credential and
/// claims the challenge asks; it may be fetched again until its request
/// is answered. An answered, expired, replaced or unknown request is 400.
#[utoipa::path(get, path = "/w/{code}/request/{rid}", operation_id = "wallet_request", tag = "challenges", security(),
    params(LinkCodeParam,
           ("rid" = String, Path, max_length = 128, description = "the request's id, from the page's `request_uri`")),
    responses(
        (status = 200, description = "the signed request object", content_type = "application/oauth-authz-req+jwt", body = String),
        (status = 400, description = "`invalid_request`: no open request of this link by this id", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn wallet_request_get(
    State(st): State<AppState>,
    Now(now): Now,
    ids: std::result::Result<PathParam<(String, String)>, Error>,
) -> Response {
    request_answer(&st, ids, None, now).await
}

/// A request's signed request object, asked with OpenID4VP's
/// `request_uri_method=post`.
///
/// As the `GET`, with the wallet's form (`wallet_metadata`,
/// `wallet_nonce`): a `wallet_nonce` is then a claim of the object; one
/// that is not 1..256 visible ASCII characters is 400.
#[utoipa::path(post, path = "/w/{code}/request/{rid}", operation_id = "wallet_request_post", tag = "challenges", security(),
    params(LinkCodeParam,
           ("rid" = String, Path, max_length = 128, description = "the request's id, from the page's `request_uri`")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`wallet_metadata`, `wallet_nonce`, both optional"),
    responses(
        (status = 200, description = "the signed request object, with `wallet_nonce` when one was posted", content_type = "application/oauth-authz-req+jwt", body = String),
        (status = 400, description = "`invalid_request`: no open request of this link by this id, or a bad `wallet_nonce`", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: a body over 64 KiB", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn wallet_request_post(
    State(st): State<AppState>,
    Now(now): Now,
    ids: std::result::Result<PathParam<(String, String)>, Error>,
    body: Bytes,
) -> Response {
    match wallet_nonce(&body) {
        Ok(nonce) => request_answer(&st, ids, nonce.as_deref(), now).await,
        Err(e) => e.into_response(),
    }
}

/// The `response` or the `error` of a wallet's form.
fn wallet_form(body: &[u8]) -> std::result::Result<Option<String>, Error> {
    let mut response = Vec::new();
    let mut error = Vec::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "response" => response.push(v.into_owned()),
            "error" => error.push(v.into_owned()),
            _ => {}
        }
    }
    match (response.len(), error.len()) {
        (1, 0) => Ok(response.pop()),
        (0, 1) => Ok(None),
        _ => Err(Error::BadRequest(
            "the form carries one response (a JWE) or one error".into(),
        )),
    }
}

/// What an answer's poster is told: the wallet its `redirect_uri`; the
/// page where the challenge stands and, for a verified answer, the
/// binding code it shows.
fn posted(answer: std::result::Result<Answered, AnswerRefusal>) -> Response {
    match answer {
        // A failed presentation of a team whose `invalid_answer` is
        // `error`: OpenID4VP's error answer, which says nothing of why.
        Ok(Answered {
            invalid_request: true,
            ..
        }) => no_store(
            (
                StatusCode::BAD_REQUEST,
                super::json::Json(json!({"error": "invalid_request"})),
            )
                .into_response(),
        ),
        Ok(Answered {
            redirect_uri: Some(uri),
            ..
        }) => no_store(super::json::Json(json!({"redirect_uri": uri})).into_response()),
        Ok(Answered {
            state,
            code: Some(code),
            ..
        }) => no_store(
            super::json::Json(json!({"state": state_name(state), "code": code.expose()}))
                .into_response(),
        ),
        Ok(Answered { state, .. }) => {
            no_store(super::json::Json(json!({"state": state_name(state)})).into_response())
        }
        Err(AnswerRefusal::BadRequest(why)) => Error::BadRequest(why.into()).into_response(),
        Err(AnswerRefusal::StatusList) => {
            Error::Channel("the credential's status list cannot be read".into()).into_response()
        }
        Err(AnswerRefusal::Busy) => super::team_gate::Full::answer(super::problem::response(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many answers of this team wait on status lists; try again shortly",
        )),
        Err(AnswerRefusal::Store(e)) => e.into_response(),
    }
}

/// A place at `team`'s gate for an answer that may wait on a status
/// list: `None` when the gate is full (503 `overloaded`, `Retry-After`).
fn admit(st: &AppState, team: &str) -> Option<Option<super::team_gate::Place>> {
    st.team_gates.enter(st.gateway.config(), team).ok()
}

/// The wallet's answer (`direct_post.jwt`).
///
/// Form-encoded: `response`, the compact JWE (`ECDH-ES`, `A128GCM` or
/// `A256GCM`, `kid` the request's key), or `error` (OpenID4VP's, such as
/// `access_denied`: nothing counts, the challenge stays open). Whatever the
/// presentation's result, 200 with `redirect_uri` for the wallet to open;
/// the result is on the challenge (docs/wallet.md#results) — except that
/// with the team's `[wallet] invalid_answer = "error"` a presentation that
/// fails is 400 `{"error": "invalid_request"}` with no `redirect_uri`
/// (the challenge failed and counted alike; neither answer says why). A JWE of no
/// open request (unknown, replaced, expired, or answered already: a
/// second response), one that does not open, or a malformed form is 400
/// and changes nothing.
#[utoipa::path(post, path = "/w/response", operation_id = "wallet_response", tag = "challenges", security(),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`response` (a compact JWE) or `error`"),
    responses(
        (status = 200, description = "taken: `{\"redirect_uri\": \"{public_url}/w/{code}/done?response_code=…\"}`, the only place a verified answer's binding code is shown (an `error`: `{\"state\": \"open\"}`)", body = Object),
        (status = 400, description = "`invalid_request` (problem+json): a JWE of no open request, a second response, one that does not open, or a malformed form; nothing changes. With the team's `[wallet] invalid_answer = \"error\"`, a presentation that fails is answered `{\"error\": \"invalid_request\"}` (application/json, no `redirect_uri`): the challenge failed and counted as with the default",
         content((super::problem::Problem = "application/problem+json"), (Object = "application/json"))),
        (status = 413, description = "`payload_too_large`: a body over 64 KiB", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 502, description = "`channel_error`: the credential's status list cannot be read; the challenge stays open", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`; or `overloaded` with `Retry-After`: 32 answers of this team (or a quarter of `max_connections` of all teams) wait on status lists already, and nothing changes", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn wallet_response(State(st): State<AppState>, Now(now): Now, body: Bytes) -> Response {
    let response = match wallet_form(&body) {
        Ok(response) => response,
        Err(e) => return e.into_response(),
    };
    let post = WalletPost::DirectPost {
        response: response.as_deref(),
    };
    let admit = |team: &str| admit(&st, team);
    posted(crate::gateway::wallet::take_answer(&st.gateway, post, now, admit).await)
}

/// What the page posts: the Digital Credentials API's result, or that the
/// browser's call was refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageAnswer {
    /// `openid4vp-v1-signed`.
    pub protocol: Option<String>,
    /// `{"response": "<JWE>"}`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// The browser's call was refused (`access_denied`, …): nothing counts.
    pub error: Option<String>,
}

/// The page's answer from the Digital Credentials API.
///
/// `{"protocol": "openid4vp-v1-signed", "data": {"response": "<JWE>"}}`,
/// verified as the wallet's own answer (no `state`; the key binding's
/// `aud` the `client_id`); or `{"error": "…"}` when the call was refused:
/// nothing counts. 200 `{"state": "open" | "answered" | "failed"}`, and
/// for a verified answer (`answered`) `code`, the binding code the page
/// shows (`page_wallet_code`) to be typed into the chat; a JWE of no open
/// request of this link, a second response or a malformed body is 400 and
/// changes nothing.
#[utoipa::path(post, path = "/w/{code}/response", operation_id = "wallet_page_response", tag = "challenges", security(),
    params(LinkCodeParam),
    request_body = PageAnswer,
    responses(
        (status = 200, description = "taken: where the challenge now stands", body = Object),
        JsonBodyErrors,
        (status = 502, description = "`channel_error`: the credential's status list cannot be read; the challenge stays open", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`; or `overloaded` with `Retry-After`: 32 answers of this team (or a quarter of `max_connections` of all teams) wait on status lists already, and nothing changes", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn wallet_page_response(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
    body: JsonBody<PageAnswer>,
) -> Response {
    let Ok(code) = code else {
        return Error::BadRequest("no open request of this link".into()).into_response();
    };
    let answer = &body.value;
    let jwe = answer
        .data
        .as_ref()
        .and_then(|d| d.get("response"))
        .and_then(serde_json::Value::as_str);
    let response = match (jwe, &answer.error, answer.protocol.as_deref()) {
        (Some(jwe), None, Some("openid4vp-v1-signed")) => Some(jwe),
        // A refusal carries nothing else of the API's result.
        (None, Some(_), _) if answer.data.is_none() => None,
        _ => {
            let why = "one of {\"protocol\": \"openid4vp-v1-signed\", \"data\": {\"response\"}} or {\"error\"}";
            return Error::BadRequest(why.into()).into_response();
        }
    };
    let post = WalletPost::DcApi {
        code: &code,
        response,
    };
    let admit = |team: &str| admit(&st, team);
    posted(crate::gateway::wallet::take_answer(&st.gateway, post, now, admit).await)
}

/// The name of a link's state.
fn state_name(state: LinkState) -> &'static str {
    match state {
        LinkState::Open => "open",
        LinkState::Answered => "answered",
        LinkState::Done => "done",
        LinkState::Failed => "failed",
        LinkState::Gone => "gone",
    }
}

/// Where a wallet link's challenge stands: the page polls it.
///
/// `{"state": "open" | "answered" | "done" | "failed"}` (`answered`
/// while a verified answer awaits its binding code; it never carries the
/// code); an expired or replaced challenge is 410, a code never issued
/// 404.
#[utoipa::path(get, path = "/w/{code}/status", operation_id = "wallet_status", tag = "challenges", security(),
    params(LinkCodeParam),
    responses(
        (status = 200, description = "`{\"state\": \"open\" | \"answered\" | \"done\" | \"failed\"}`", body = Object),
        (status = 404, description = "`not_found`: a code that was never issued", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 410, description = "`token_expired`: the challenge expired or was replaced", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`", body = super::problem::Problem, content_type = "application/problem+json")))]
async fn wallet_status(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
) -> Response {
    let code = match code {
        Ok(code) => code,
        Err(e) => return e.into_response(),
    };
    match crate::gateway::wallet::link_state(&st.gateway, &code, now).await {
        Ok((LinkState::Gone, _)) => Error::TokenExpired.into_response(),
        Ok((state, _)) => {
            no_store(super::json::Json(json!({"state": state_name(state)})).into_response())
        }
        Err(e) => e.into_response(),
    }
}

/// Where the wallet sends the customer back: the result's page.
///
/// While a verified answer awaits its binding code: the first open with
/// that answer's `response_code` shows `page_wallet_code` with the code
/// and ties it to this browser by a cookie (`Path=/w/`, `HttpOnly`,
/// `SameSite=Lax`); later opens show it again in that browser only; any
/// other open (no, another or a used `response_code`, another browser)
/// shows `page_wallet_elsewhere`, never the code. 200 `page_wallet_done`
/// once the binding code was typed into the chat, 200
/// `page_wallet_failed` once the credential did not confirm the customer
/// (naming no claim); 303 to the link's page while the challenge is
/// open; 410 once it expired or was replaced; 404 for a code never
/// issued.
#[utoipa::path(get, path = "/w/{code}/done", operation_id = "wallet_done", tag = "challenges", security(),
    params(LinkCodeParam,
           ("response_code" = Option<String>, Query, max_length = 128, description = "the `response_code` of the answer's `redirect_uri`")),
    responses(
        (status = 200, description = "`page_wallet_code` (where the answer came back), `page_wallet_elsewhere`, `page_wallet_done` or `page_wallet_failed`", content_type = "text/html", body = String,
         headers(("Set-Cookie" = String, description = "on the first open with its `response_code`: the browser cookie the code is shown again for (HttpOnly, SameSite=Lax, Path=/w/)"))),
        (status = 303, description = "to the link's page: the challenge is still open", headers(("Location" = String))),
        pages::LinkUnknown,
        (status = 410, description = "the challenge expired or was replaced (`page_link_expired`)", content_type = "text/html", body = String),
        (status = 503, description = "`page_try_again`", content_type = "text/html", body = String)))]
async fn wallet_done(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
    query: axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let code = match code {
        Ok(code) => code,
        Err(e) => return error_page(&st, &headers, e),
    };
    let response_code = response_code(query.0.as_deref());
    let browser = cookie_value(&headers, BROWSER_COOKIE).filter(|b| sane_secret(b));
    let given = (response_code.as_deref(), browser.as_deref());
    let shown = match crate::gateway::wallet::done_page(&st.gateway, &code, given, now).await {
        Ok(shown) => shown,
        Err(e) => return error_page(&st, &headers, e),
    };
    let (state, speaks) = match shown {
        DonePage::Code(speaks, bind, secret) => {
            let said = Said::of(
                st.gateway.config(),
                Some(&speaks),
                &headers,
                TextKey::PageWalletCode,
            );
            let mut res = no_store(pages::render_said(
                StatusCode::OK,
                &said,
                Some(bind.expose()),
            ));
            if let Some(secret) = secret {
                let public_url = &st.gateway.config().server.public_url;
                let cookie = state_cookie(public_url, "/w/", BROWSER_COOKIE, &secret, COOKIE_LIFE);
                set_cookie(res.headers_mut(), &cookie);
            }
            return res;
        }
        DonePage::Elsewhere(speaks) => (LinkState::Answered, Some(speaks)),
        DonePage::State(state, speaks) => (state, speaks),
    };
    let (status, key) = match state {
        LinkState::Answered => (StatusCode::OK, TextKey::PageWalletElsewhere),
        LinkState::Done => (StatusCode::OK, TextKey::PageWalletDone),
        LinkState::Failed => (StatusCode::OK, TextKey::PageWalletFailed),
        LinkState::Gone => (StatusCode::GONE, TextKey::PageLinkExpired),
        LinkState::Open => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            if let Ok(to) = HeaderValue::from_str(&format!("/w/{code}")) {
                res.headers_mut().insert(header::LOCATION, to);
            }
            return no_store(res);
        }
    };
    text_page(&st, speaks.as_ref(), &headers, status, key)
}

/// How long the cookie that keeps the secret of the browser a verified
/// answer's binding code is shown to lives (the longest a binding code
/// may, `otp.ttl` at most 30 minutes, and more).
const COOKIE_LIFE: u64 = 3600;

/// The `response_code` of a `/done` query: one, of at most [`MAX_ID`]
/// characters; `None` otherwise.
fn response_code(query: Option<&str>) -> Option<String> {
    let form = query.unwrap_or_default().as_bytes();
    pages::only_value(form, "response_code").filter(|rc| !rc.is_empty() && rc.len() <= MAX_ID)
}

/// An error as a page ([`pages::link_error`]), `no-store`.
fn error_page(st: &AppState, headers: &HeaderMap, e: Error) -> Response {
    pages::link_error(st.gateway.config(), headers, e)
}

/// Template `key` as a page of `status`, `no-store`.
fn text_page(
    st: &AppState,
    speaks: Option<&crate::gateway::Speaks>,
    headers: &HeaderMap,
    status: StatusCode,
    key: TextKey,
) -> Response {
    pages::text_page(st.gateway.config(), speaks, headers, status, key)
}
