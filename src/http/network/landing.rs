//! `/n/landing` (docs/network-authentication.md#providers): where a
//! provider that answers in a URL's fragment (Vonage's `silent_auth`)
//! ends its redirects. No server sees a fragment, so the `GET` is a page
//! whose own script (its only one, allowed by its hash) reads it and
//! posts it as JSON to the `POST`, with the state cookie the button set
//! (`chatgate_landing`, `Path=/n/`, so this path gets it), and shows the
//! page that answer carries; the `POST` answers pages and statuses as
//! `/n/callback` does. The code is checked with the provider, never
//! trusted as it came; a landing without a code ends nothing.
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::extract::{json_bytes, parse_json, Now};
use super::super::openapi::E413;
use super::super::pages::{
    cookie_value, escape, html_answer, no_store, set_cookie, state_cookie, Csp, Frame, Said,
};
use super::super::AppState;
use super::{finished, gate, page, COOKIE_PATH};
use crate::domain::browser::LANDING_COOKIE;
use crate::domain::settings::TextKey;
use crate::error::Error;
use crate::gateway::network::Landing;

/// The landing page's script: the fragment read (and taken off the
/// address, so that the code stays in no history), posted to this path
/// as JSON, and the page it answers shown in place of this one.
const SCRIPT: &str = "(function(){\
var f=new URLSearchParams(location.hash.slice(1)),p=location.pathname;\
history.replaceState(null,'',p);\
var b={request_id:f.get('request_id')||''};\
if(f.has('code')){b.code=f.get('code')}else{b.error_description=f.get('error_description')||''}\
fetch(p,{method:'POST',credentials:'same-origin',\
headers:{'content-type':'application/json','accept':'text/html'},body:JSON.stringify(b)})\
.then(function(r){return r.text()})\
.then(function(h){document.open();document.write(h);document.close()})\
.catch(function(){document.getElementById('failed').hidden=false});\
})();";

/// The longest request id, code and error description a landing takes.
const MAX_ID: usize = 128;
const MAX_CODE: usize = 2048;
const MAX_ERROR: usize = 1024;

/// What the landing page posts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LandingBody {
    request_id: String,
    code: Option<String>,
    error_description: Option<String>,
}

impl LandingBody {
    /// The landing, if it is one: a request id of printable ASCII, and a
    /// code or an error description, not both, within their lengths.
    fn landing(self) -> Option<Landing> {
        let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        let id = (1..=MAX_ID).contains(&self.request_id.len()) && printable(&self.request_id);
        let said = match (&self.code, &self.error_description) {
            (Some(code), None) => (1..=MAX_CODE).contains(&code.len()) && printable(code),
            (None, Some(error)) => error.len() <= MAX_ERROR,
            _ => false,
        };
        (id && said).then_some(Landing {
            request_id: self.request_id,
            code: self.code,
            error_description: self.error_description,
        })
    }
}

/// The page Vonage's redirects end at: 200, a page whose own script reads
/// the URL's fragment (`request_id` and `code`, or `error_description`)
/// and posts it as JSON to `POST /n/landing`, then shows the page that
/// answers.
///
/// The script is the page's only one, allowed by its hash; without
/// scripts the page says to try again.
#[utoipa::path(get, path = "/n/landing", operation_id = "network_landing", tag = "challenges", security(),
    responses(
        (status = 200, description = "the landing page: its script posts the fragment to `POST /n/landing` and shows the page that answers",
         content_type = "text/html", body = String),
        E413))]
pub(super) async fn landing_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let said = Said::of(st.gateway.config(), None, &headers, TextKey::PageTryAgain);
    let text = escape(&said.text);
    let (heading, advice) = text.split_once('\n').unwrap_or((&text, ""));
    let advice: String = advice.lines().map(|l| format!("<p>{l}</p>")).collect();
    let main = format!(
        "<div id=\"failed\" hidden><h1>{heading}</h1>\n{advice}</div>\n\
         <noscript><h1>{heading}</h1>\n{advice}</noscript>\n"
    );
    let html = Frame {
        lang: &said.lang,
        main: &main,
        script: SCRIPT,
        ..Frame::default()
    }
    .html();
    no_store(html_answer(StatusCode::OK, html, Some(&policy())))
}

/// The landing page's content security policy: its script and the
/// pages' stylesheet by their hashes, the post to the gateway, nothing
/// else (the pages it shows in its place are the gateway's own).
pub(super) fn policy() -> String {
    Csp::new()
        .scripts(&[SCRIPT])
        .styles(&[])
        .allow("connect-src", "'self'")
        .form_action("'none'")
}

/// What the landing page posts: Vonage's result from the URL's fragment.
///
/// The request must be this browser's (the state in the `chatgate_landing`
/// cookie the confirm button set must be of that request): another
/// browser's, an unknown, answered or old one is 400 and nothing changes.
/// The code is checked with Vonage (`POST {api_url}/v2/verify/{request_id}`):
/// the answers and their pages are `/n/callback`'s (200 confirmed, with
/// the code to type into the chat in a conversation that is not the
/// number's own SMS conversation; 200 when Vonage refuses the code, one
/// wrong try: the retry page while tries are left, the mismatch page once
/// `otp.max_attempts` are spent; 502 Vonage failed, the challenge open; 410 the challenge was
/// used, expired or replaced). A landing without a code (an
/// `error_description`, whatever it says) is 200 not on the mobile
/// network: the challenge stays open, nothing counts, a ladder moves on
/// at its time-out only; a browser can post any text. A body that is not
/// one landing: 400 (415 not JSON, 422 a member it does not define, 413
/// over the limit), nothing changes.
#[utoipa::path(post, path = "/n/landing", operation_id = "network_landing_answer", tag = "challenges", security(),
    request_body(content = String, content_type = "application/json",
        description = "`{\"request_id\", \"code\"}` or `{\"request_id\", \"error_description\"}`, from the URL's fragment"),
    responses(
        (status = 200, description = "confirmed (in a conversation that is not the number's own SMS conversation, with the code to type into the chat); a code Vonage refused, one wrong try (the retry page, the challenge open, while `otp.max_attempts` tries are left; on the last, another number and the challenge ends); or not on the mobile network (any landing without a code: the challenge stays open)", content_type = "text/html", body = String),
        (status = 400, description = "a body that is not one landing, or an unknown, old, answered or other browser's request: nothing changes", content_type = "text/html", body = String),
        (status = 410, description = "the challenge was used, expired, replaced or failed", content_type = "text/html", body = String),
        (status = 413, description = "a body over the limit: nothing changes", content_type = "text/html", body = String),
        (status = 415, description = "a body not declared `application/json`: nothing changes", content_type = "text/html", body = String),
        (status = 422, description = "a member the landing does not define: nothing changes", content_type = "text/html", body = String),
        (status = 502, description = "Vonage failed (an unexpected answer, no answer within 5 s): the challenge stays open", content_type = "text/html", body = String),
        (status = 503, description = "the store cannot be reached, or 32 requests of this team wait on providers (`Retry-After`)", content_type = "text/html", body = String)))]
pub(super) async fn landing_answer(
    State(st): State<AppState>,
    Now(now): Now,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let read = json_bytes(req, &st).await.and_then(|body| {
        let body = body.ok_or(Error::BadRequest("no body".into()))?;
        let landing = parse_json::<LandingBody>(&body)?.landing();
        landing.ok_or(Error::BadRequest("not one landing".into()))
    });
    let landing = match read {
        Ok(landing) => landing,
        // 400, 413, 415 or 422 as the error says, as a page.
        Err(e) => {
            let status = e.into_response().status();
            return page(&st, None, &headers, status, TextKey::PageSignInFailed);
        }
    };
    let name = LANDING_COOKIE;
    let state = cookie_value(&headers, name).filter(|s| s.len() <= 256);
    let read = crate::gateway::network::read_state(&st.gateway, state.as_deref()).await;
    // A provider that hangs holds only its own team's requests.
    let _place = match gate(&st, read.team(), &headers) {
        Ok(place) => place,
        Err(full) => return *full,
    };
    let finish =
        crate::gateway::network::finish_landing(&st.gateway, read, &landing, state.as_deref(), now);
    let finish = finish.await;
    let answered = finish.answered;
    let mut res = finished(&st, finish, &headers);
    if answered {
        let public_url = &st.gateway.config().server.public_url;
        let clear = state_cookie(public_url, COOKIE_PATH, name, "", 0);
        set_cookie(res.headers_mut(), &clear);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Option<Landing> {
        serde_json::from_str::<LandingBody>(json).ok()?.landing()
    }

    #[test]
    fn a_landing_is_a_request_and_a_code_or_an_error() {
        let l = body(r#"{"request_id":"r-1","code":"c0de"}"#).unwrap();
        assert_eq!(
            (l.request_id.as_str(), l.code.as_deref()),
            ("r-1", Some("c0de"))
        );
        let l = body(r#"{"request_id":"r-1","error_description":"does not match"}"#).unwrap();
        assert_eq!(l.error_description.as_deref(), Some("does not match"));
        assert!(body(r#"{"request_id":"r-1"}"#).is_none());
        assert!(body(r#"{"request_id":"","code":"c"}"#).is_none());
        assert!(body(r#"{"request_id":"r 1","code":"c"}"#).is_none());
        assert!(body(r#"{"request_id":"r-1","code":""}"#).is_none());
        assert!(body(r#"{"request_id":"r-1","code":"c","error_description":"x"}"#).is_none());
        let long = format!(r#"{{"request_id":"r-1","code":"{}"}}"#, "c".repeat(2049));
        assert!(body(&long).is_none());
        assert!(body(r#"{"request_id":"r-1","code":"c","surprise":1}"#).is_none());
    }

    #[test]
    fn the_page_allows_its_own_script_and_posts_only_to_the_gateway() {
        let csp = policy();
        assert!(
            csp.contains(&format!(
                "script-src {};",
                crate::http::pages::csp_hash(SCRIPT)
            )),
            "{csp}"
        );
        assert!(csp.contains("connect-src 'self'"));
        assert!(!csp.contains("unsafe"));
    }
}
