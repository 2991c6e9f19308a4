//! The page where the customer types a code or PIN instead of the chat
//! (docs/api.md#codes-typed-on-the-gateways-page): `GET /c/{code}` shows
//! the one-field form, its `POST` answers the code. Every answer is a page
//! for the customer, `no-store`, `no-referrer`, showing no state, token or
//! code. The form token is tied to the browser by a cookie of its own
//! (`Path=/c/`, `HttpOnly`, `SameSite=Strict`), good until the challenge
//! ends.
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use utoipa::openapi::RefOr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Now;
use super::pages::answers;
use super::pages::{
    self, browser_secret, cookie_value, form_token, no_store, set_cookie, strict_cookie, LinkCode,
    Said,
};
use super::AppState;
use crate::domain::browser::CODE_ENTRY_BROWSER_COOKIE as BROWSER_COOKIE;
use crate::domain::settings::{
    TextKey, PAGE_CODE_CHECK, PAGE_CODE_ENTRY, PAGE_CODE_FIELD, PAGE_PIN_CHECK, PAGE_PIN_ENTRY,
    PAGE_PIN_FIELD,
};
use crate::gateway::code_entry::{Ended, EntryAnswer, EntryForm};
use crate::gateway::Speaks;

mod page;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(code_page, code_typed))
}

/// The cookie path of the page's browser cookie.
const COOKIE_PATH: &str = "/c/";

/// 410 of the link and its form: a page.
struct LinkEnded;

impl utoipa::IntoResponses for LinkEnded {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let ended = answers::page("the right code was typed already (`page_link_used`), the binding code was typed into the chat (`page_code_done`), or the challenge expired, was replaced or failed (`page_code_ended`)");
        BTreeMap::from([("410".to_string(), ended)])
    }
}

/// A page-entry challenge's link: 200, the form where the customer types
/// the code they received (or their session PIN).
///
/// One field (`autocomplete="one-time-code"`, `inputmode="numeric"`),
/// the team and the conversation's channel named with a warning
/// (`page_code_entry`), in the conversation's language, and a form token
/// tied to this browser by a cookie. Fetching it uses nothing up and
/// writes nothing (chat apps fetch previews). Once the right code was
/// typed, the link answers 410 (`page_link_used`: the binding code is
/// shown once), and once the binding code was typed into the chat 410
/// `page_code_done`. Every answer is a page.
#[utoipa::path(get, path = "/c/{code}", operation_id = "code_entry_page", tag = "challenges", security(),
    params(("code" = String, Path, max_length = 128, description = "the code of a page-entry challenge's link")),
    responses(
        (status = 200, description = "the form (`page_code_entry`): one field, its form token tied to this browser by a cookie",
         content_type = "text/html", body = String,
         headers(("Set-Cookie" = String, description = "the browser cookie of the form token: HttpOnly, SameSite=Strict, Path=/c/"))),
        pages::LinkUnknown,
        LinkEnded,
        pages::LinkUnchecked))]
async fn code_page(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
    headers: HeaderMap,
) -> Response {
    let browser = browser_secret(&headers, BROWSER_COOKIE);
    let answer = match code {
        Ok(code) => crate::gateway::code_entry::open_entry(&st.gateway, &code, &browser, now).await,
        Err(e) => Err(e),
    };
    let mut res = answered(&st, answer, &headers);
    if let Some(left) = res.extensions().get::<FormShown>().map(|f| f.0) {
        let public_url = &st.gateway.config().server.public_url;
        let max_age = left.as_secs().max(1);
        let cookie = strict_cookie(public_url, COOKIE_PATH, BROWSER_COOKIE, &browser, max_age);
        set_cookie(res.headers_mut(), &cookie);
    }
    res
}

/// The form's button: the typed code, answered as `verify` would.
///
/// Right: 200 `page_code_bind` with a fresh binding code of `otp.length`
/// digits (never the code typed); the challenge stays open (`"entry":
/// "page", "awaiting_code": true`) until the bot's `verify` takes that
/// code from the chat, which authenticates (method `otp` or `pin`). Wrong: counted as any wrong code (attempts, lockout,
/// ban), 200, the form again with `page_code_wrong` (`#LEFT#` tries
/// left), or `page_code_ended` once none are left (the link then answers
/// 410). Without the form token of this browser's page, or with one of
/// another link: 403, nothing counted. More than 10 POSTs a minute to one
/// link: 429, nothing counted.
#[utoipa::path(post, path = "/c/{code}", operation_id = "code_entry_submit", tag = "challenges", security(),
    params(("code" = String, Path, max_length = 128, description = "the code of a page-entry challenge's link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`code`: what the customer typed; `form_token`: the page's form token"),
    responses(
        (status = 200, description = "`page_code_bind` with the binding code to type into the chat (right), the form with `page_code_wrong` (wrong), or `page_code_ended` (no tries left)", content_type = "text/html", body = String),
        (status = 403, description = "no form token of this browser's page: nothing counted (`page_sign_in_failed`)", content_type = "text/html", body = String),
        pages::LinkUnknown,
        LinkEnded,
        (status = 413, description = "`payload_too_large`: a body over the limit", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "more than 10 POSTs to this link within a minute: nothing counted (`page_try_again`)", content_type = "text/html", body = String),
        (status = 503, description = "the store cannot be reached (`page_try_again`)", content_type = "text/html", body = String)))]
async fn code_typed(
    State(st): State<AppState>,
    Now(now): Now,
    LinkCode(code): LinkCode,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let browser = cookie_value(&headers, BROWSER_COOKIE);
    let token = form_token(&body);
    let typed = page::typed_code(&body);
    let given = (browser.as_deref(), token.as_deref());
    let answer = match code {
        Ok(code) => {
            let entry = crate::gateway::code_entry::post_entry;
            entry(&st.gateway, &code, given, typed.as_deref(), now).await
        }
        Err(e) => Err(e),
    };
    answered(&st, answer, &headers)
}

/// Marks an answer that shows the form: the browser cookie lives as long
/// as the challenge.
#[derive(Clone, Copy)]
struct FormShown(std::time::Duration);

/// The page of every answer.
fn answered(
    st: &AppState,
    answer: crate::error::Result<EntryAnswer>,
    headers: &HeaderMap,
) -> Response {
    let page = |speaks: Option<&Speaks>, status, key| {
        let said = Said::of(st.gateway.config(), speaks, headers, key);
        pages::render_said(status, &said, None)
    };
    let res = match answer {
        Ok(EntryAnswer::Form(form)) => shown(st, headers, &form, None),
        Ok(EntryAnswer::Wrong(form, left)) => shown(st, headers, &form, Some(left)),
        Ok(EntryAnswer::Bind(s, bind)) => {
            let said = Said::of(
                st.gateway.config(),
                Some(&s),
                headers,
                TextKey::PageCodeBind,
            );
            pages::render_said(StatusCode::OK, &said, Some(bind.expose()))
        }
        Ok(EntryAnswer::Ended(s)) => page(Some(&s), StatusCode::OK, TextKey::PageCodeEnded),
        Ok(EntryAnswer::Refused(s)) => {
            page(Some(&s), StatusCode::FORBIDDEN, TextKey::PageSignInFailed)
        }
        Ok(EntryAnswer::Limited(s)) => pages::limited(st.gateway.config(), Some(&s), headers),
        Ok(EntryAnswer::Gone(s, ended)) => {
            let key = match ended {
                Ended::Verified => TextKey::PageCodeDone,
                Ended::Typed => TextKey::PageLinkUsed,
                Ended::Over => TextKey::PageCodeEnded,
            };
            page(s.as_ref(), StatusCode::GONE, key)
        }
        Err(e) => pages::link_error(st.gateway.config(), headers, e),
    };
    no_store(res)
}

/// The form of `form`: `page_code_entry` (for a PIN, while the team kept
/// the default, "Type your PIN"), or after a wrong code `page_code_wrong`
/// with the tries `left`; its field labelled `page_code_field`, its button
/// `page_code_check` ("PIN" and "Check PIN" for a PIN while the team kept
/// the defaults).
fn shown(st: &AppState, headers: &HeaderMap, form: &EntryForm, left: Option<u32>) -> Response {
    let config = st.gateway.config();
    let mut said = match left {
        None => Said::of(config, Some(&form.speaks), headers, TextKey::PageCodeEntry),
        Some(_) => Said::of(config, Some(&form.speaks), headers, TextKey::PageCodeWrong),
    };
    if form.pin && said.text == PAGE_CODE_ENTRY {
        said.text = PAGE_PIN_ENTRY.to_string();
    }
    if let Some(left) = left {
        said.text = said.text.replace("#LEFT#", &left.to_string());
    }
    let words = |key, pin_default: (&str, &str)| {
        let text = Said::of(config, Some(&form.speaks), headers, key).text;
        match (form.pin, text == pin_default.0) {
            (true, true) => pin_default.1.to_string(),
            _ => text,
        }
    };
    let field = words(TextKey::PageCodeField, (PAGE_CODE_FIELD, PAGE_PIN_FIELD));
    let check = words(TextKey::PageCodeCheck, (PAGE_CODE_CHECK, PAGE_PIN_CHECK));
    let token = &form.form_token;
    let mut res = page::form(StatusCode::OK, &said, &form.named, token, (&field, &check));
    res.extensions_mut().insert(FormShown(form.left));
    res
}
