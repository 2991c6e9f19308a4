//! The page kit: everything a page the gateway shows a customer is made
//! of (docs/architecture.md#the-pages). Pages are small, mobile-first,
//! accessible, in the visitor's words; they echo nothing the visitor sent
//! and load nothing: their stylesheets and scripts are inline, allowed by
//! their hashes in the page's policy.
//!
//! - `frame.rs`: the document every page is drawn in, its stylesheet,
//!   escaping;
//! - `said.rs`: a template text in the visitor's language, drawn as a
//!   page;
//! - `form.rs`: the one-form page and its form token's field;
//! - `browser.rs`: cookies, a browser's secret, a provider's answer;
//! - `csp.rs`: the one builder of the pages' policies;
//! - `answers.rs`: the pages' answers as the OpenAPI document says them;
//! - here: whether a client wants a page, `no-store`, a link's code in
//!   its path, and the answers every link's page shares (an error, 410,
//!   429).
//!
//! A page module (a link's or a sign-in's) imports this kit, never
//! another page module; `tools/door_rules.py` counts it.
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::extract::PathParam;
use crate::domain::settings::TextKey;
use crate::error::Error;
use crate::gateway::Speaks;

pub mod answers;
mod browser;
mod csp;
mod form;
mod frame;
mod said;

pub use answers::{LinkUnchecked, LinkUnknown};
pub use browser::{
    browser_secret, cookie_value, provider_answer, sane_secret, set_cookie, state_cookie,
    strict_cookie,
};
#[cfg(test)]
pub use csp::hash as csp_hash;
pub use csp::Csp;
pub use form::{form_token, one_form, only_value};
pub use frame::{escape, html_answer, with_names, Frame};
pub use said::{render, render_said, Page, Said};

/// The longest code of a link's path that a page takes.
pub const MAX_LINK_CODE: usize = 128;

/// The `{code}` of a link's path (`/c/{code}`, `/n/{code}`,
/// `/w/{code}/…`): `Err`, 404 "no such link", for a code longer than
/// [`MAX_LINK_CODE`] or one that does not decode, which the page answers
/// as a code never issued.
pub struct LinkCode(pub Result<String, Error>);

impl<S: Send + Sync> FromRequestParts<S> for LinkCode {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Self, std::convert::Infallible> {
        let code = PathParam::<String>::from_request_parts(parts, state).await;
        Ok(LinkCode(match code {
            Ok(PathParam(code)) if code.len() <= MAX_LINK_CODE => Ok(code),
            _ => Err(Error::NotFound("no such link")),
        }))
    }
}

/// Whether the client asked for a page (a browser's `Accept` names
/// `text/html`); API clients (`*/*`, `application/json`) get problem+json.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or_default().trim();
            // `text/html;q=0` means "not HTML".
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            range.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// `res` kept by no cache, and its address sent to no other site.
pub fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Template `key` as a page of `status`, in the language of `speaks`
/// (else the visitor's), `no-store`.
pub fn text_page(
    config: &crate::config::Config,
    speaks: Option<&Speaks>,
    headers: &HeaderMap,
    status: StatusCode,
    key: TextKey,
) -> Response {
    let said = Said::of(config, speaks, headers, key);
    no_store(render_said(status, &said, None))
}

/// An error of a link's page, as a page in the visitor's words: 404
/// `page_link_unknown`, else `page_try_again` with the error's status;
/// the problem's log label kept for the request's log line. The link
/// pages (code entry, network, wallet) all answer their errors so.
pub fn link_error(config: &crate::config::Config, headers: &HeaderMap, e: Error) -> Response {
    let problem = e.into_response();
    let key = match problem.status() {
        StatusCode::NOT_FOUND => TextKey::PageLinkUnknown,
        _ => TextKey::PageTryAgain,
    };
    let said = Said::of(config, None, headers, key);
    let mut res = render_said(problem.status(), &said, None);
    if let Some(label) = problem.extensions().get::<super::ProblemLabel>() {
        res.extensions_mut().insert(*label);
    }
    no_store(res)
}

/// The 410 page's text of a link: used, or one that can no longer answer.
pub fn gone_key(used: bool) -> TextKey {
    if used {
        TextKey::PageLinkUsed
    } else {
        TextKey::PageLinkExpired
    }
}

/// The 429 page of a link used more than a minute takes
/// (`page_try_again`, `Retry-After: 60`), `no-store`.
pub fn limited(
    config: &crate::config::Config,
    speaks: Option<&Speaks>,
    headers: &HeaderMap,
) -> Response {
    let status = StatusCode::TOO_MANY_REQUESTS;
    let mut res = text_page(config, speaks, headers, status, TextKey::PageTryAgain);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    res
}

/// The text of a drawn page, for the pages' tests.
#[cfg(test)]
pub fn drawn(res: Response) -> String {
    let b = futures::executor::block_on(axum::body::to_bytes(res.into_body(), 1 << 20));
    String::from_utf8(b.unwrap().to_vec()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accept_naming_html_gets_a_page() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            wants_html(&h)
        };
        assert!(accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(accept("TEXT/HTML"));
        assert!(!accept("*/*"));
        assert!(!accept("application/json"));
        assert!(!accept("application/problem+json, text/html;q=0"));
        assert!(!wants_html(&HeaderMap::new()));
    }
}
