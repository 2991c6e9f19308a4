//! The frame every page of the gateway's own is drawn in: the document
//! (`lang`, `dir`, the viewport, `noindex`), the pages' one stylesheet
//! ([`STYLE`]) and a page's own stylesheet and script beside it, each
//! allowed by its hash in the page's policy (`csp.rs`); and escaping.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The pages' stylesheet: readable on a phone first (system font, large
/// type, one column), light or dark as the visitor's system prefers.
/// Every page's policy allows it by its hash ([`super::Csp`]).
pub const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1a1a1a;--bg:#f6f7f9;--card:#fff;--muted:#4a4f57;--accent:#0b5fff}\
@media (prefers-color-scheme:dark){:root{--fg:#f2f2f2;--bg:#15171a;--card:#202328;--muted:#c4c8ce;--accent:#7aa7ff}}\
*{box-sizing:border-box}\
html{font-size:100%;-webkit-text-size-adjust:100%}\
body{margin:0;min-height:100vh;display:flex;align-items:flex-start;justify-content:center;\
padding:12vh 1rem 2rem;background:var(--bg);color:var(--fg);\
font:1.125rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
main{width:100%;max-width:30rem;background:var(--card);border-radius:1rem;padding:2rem 1.5rem;\
border-top:.375rem solid var(--accent);box-shadow:0 .25rem 1.5rem rgb(0 0 0 / .08)}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 .75rem}\
p{margin:0;color:var(--muted)}";

/// A page's document, the one frame every page of the gateway's own is
/// drawn in: `lang` (right to left where it is written so), `title`, the
/// pages' stylesheet ([`STYLE`]) and the page's own `style` beside it,
/// `main` the page's content, `script` its one script. Each part but
/// `main` is written as it is: escaping it is the caller's.
#[derive(Default)]
pub struct Frame<'a> {
    pub lang: &'a str,
    pub title: &'a str,
    /// The page's own stylesheet, if any (allowed by its hash in the
    /// page's policy).
    pub style: &'a str,
    pub main: &'a str,
    /// The page's own script, if any (allowed by its hash in the page's
    /// policy).
    pub script: &'a str,
}

impl Frame<'_> {
    /// The document.
    pub fn html(&self) -> String {
        let dir = if crate::domain::locale::is_rtl(self.lang) {
            " dir=\"rtl\""
        } else {
            ""
        };
        let style = match self.style {
            "" => String::new(),
            own => format!("<style>{own}</style>\n"),
        };
        let script = match self.script {
            "" => String::new(),
            own => format!("<script>{own}</script>\n"),
        };
        format!(
            "<!doctype html>\n<html lang=\"{lang}\"{dir}>\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n\
             <style>{STYLE}</style>\n{style}</head>\n<body>\n<main>\n{main}</main>\n\
             {script}</body>\n</html>\n",
            lang = escape(self.lang),
            title = self.title,
            main = self.main,
        )
    }
}

/// `text` safe inside HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `text` (escaped already) with `#TEAM#` and `#CHANNEL#` filled in:
/// the team and the conversation's channel a link's page names
/// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
pub fn with_names(text: &str, named: &crate::gateway::network::Named) -> String {
    text.replace("#TEAM#", &escape(&named.team_name))
        .replace("#CHANNEL#", &escape(named.channel_words))
}

/// `html` as an answer of `status`, with its own content security
/// `policy` where it has one (else the router's page policy applies,
/// [`super::Csp::page`]).
pub fn html_answer(status: StatusCode, html: String, policy: Option<&str>) -> Response {
    let mut res = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response();
    if let Some(csp) = policy.and_then(|p| HeaderValue::from_str(p).ok()) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    res
}
