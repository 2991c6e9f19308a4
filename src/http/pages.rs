//! The HTML pages the gateway itself shows a customer (a short link that is
//! unknown, expired or used, or cannot be checked right now; the end of a
//! login at the team's identity provider, `oidc.rs`): small,
//! mobile-first, accessible, in the visitor's words. They echo nothing the
//! visitor sent and load nothing: their one stylesheet is inline, allowed by
//! its hash in the page CSP ([`super::PAGE_CSP`]).
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::domain::settings::TextKey;
use crate::error::Error;

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

/// `text` (escaped already) with `#TEAM#` and `#CHANNEL#` filled in:
/// the team and the conversation's channel a link's page names
/// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
pub(super) fn with_names(text: &str, named: &crate::gateway::network::Named) -> String {
    text.replace("#TEAM#", &escape(&named.team_name))
        .replace("#CHANNEL#", &escape(named.channel_words))
}

/// What a page says: its `<title>`, its heading, and what to do next.
pub struct Page {
    pub status: StatusCode,
    pub title: &'static str,
    pub heading: &'static str,
    pub advice: &'static str,
}

/// The pages' stylesheet: readable on a phone first (system font, large
/// type, one column), light or dark as the visitor's system prefers.
/// Its SHA-256 is in [`super::PAGE_CSP`] (a unit test keeps them equal).
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

/// One of the gateway's pages in a language: its tag and its template
/// text (a heading on the first line, what to do next on the rest;
/// docs/api.md#languages).
pub struct Said {
    pub lang: String,
    pub text: String,
}

impl Said {
    /// Template `key` as `speaks` (a link's team, channel and language)
    /// says it; a page of no interaction (`None`) speaks the first
    /// language of the visitor's `Accept-Language` (all its header lines)
    /// the system supports. `lang` is the language of the text shown: a
    /// key not translated falls back to the default language, and says so.
    pub fn of(
        config: &crate::config::Config,
        speaks: Option<&crate::gateway::Speaks>,
        headers: &HeaderMap,
        key: TextKey,
    ) -> Said {
        use crate::config::text_in;
        let team = speaks.and_then(|s| Some((s, config.team(&s.team)?)));
        if let Some((s, team)) = team {
            let settings = team.settings_for(&s.channel);
            let channel = config.channels.get(&s.channel);
            let (text, lang) = text_in(key, settings, channel, &s.locale);
            return Said {
                lang: lang.to_string(),
                text: text.to_string(),
            };
        }
        // Several header lines are one list (RFC 9110 5.3).
        let lines: Vec<&str> = headers
            .get_all(header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let wanted = crate::domain::locale::accept_language(&lines.join(","));
        let l = &config.defaults.locale;
        let lang = crate::domain::locale::negotiate(&wanted, &l.supported, &l.default);
        let (text, lang) = text_in(key, &config.defaults, None, lang);
        Said {
            lang: lang.to_string(),
            text: text.to_string(),
        }
    }
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
    res
}

/// A page of `status` saying `said`; `#CODE#` is `code` (digits only).
pub fn render_said(status: StatusCode, said: &Said, code: Option<&str>) -> Response {
    let code = code
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("");
    let text = escape(&said.text).replace("#CODE#", &format!("<strong>{code}</strong>"));
    let (heading, advice) = text.split_once('\n').unwrap_or((&text, ""));
    let advice: String = advice.lines().map(|l| format!("<p>{l}</p>\n")).collect();
    let html = Frame {
        lang: &said.lang,
        title: &heading.replace("<strong>", "").replace("</strong>", ""),
        main: &format!("<h1>{heading}</h1>\n{advice}"),
        ..Frame::default()
    }
    .html();
    html_answer(status, html, None)
}

/// A page's document, the one frame every page of the gateway's own is
/// drawn in: `lang` (right to left where it is written so), `title`, the
/// pages' stylesheet ([`STYLE`]) and the page's own `style` beside it,
/// `main` the page's content, `script` its one script. Each part but
/// `main` is written as it is: escaping it is the caller's.
#[derive(Default)]
pub(super) struct Frame<'a> {
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

/// An inline stylesheet's or script's source in a content security
/// policy: `'sha256-…'` of `text`.
pub(super) fn csp_hash(text: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text));
    format!("'sha256-{digest}'")
}

/// `text` safe inside HTML.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `html` as an answer of `status`, with its own content security
/// `policy` where it has one (else the router's page policy applies,
/// [`super::PAGE_CSP`]).
pub(super) fn html_answer(status: StatusCode, html: String, policy: Option<&str>) -> Response {
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

/// The page as a complete answer (the security headers are added by the
/// router's middleware: CSP, no framing, no referrer, `no-store`).
pub fn render(page: &Page) -> Response {
    let html = Frame {
        lang: "en",
        title: page.title,
        main: &format!("<h1>{}</h1>\n<p>{}</p>\n", page.heading, page.advice),
        ..Frame::default()
    }
    .html();
    html_answer(page.status, html, None)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn the_page_csp_allows_exactly_this_stylesheet() {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
        let want = format!("style-src 'sha256-{hash}'");
        assert!(
            super::super::PAGE_CSP.contains(&want),
            "PAGE_CSP must carry {want}"
        );
    }

    #[test]
    fn a_code_page_shows_digits_only() {
        let text = |res: Response| {
            let b = futures::executor::block_on(axum::body::to_bytes(res.into_body(), 1 << 16));
            String::from_utf8(b.unwrap().to_vec()).unwrap()
        };
        let said = Said {
            lang: "es".into(),
            text: "Escribe #CODE# <b>ya</b>\nVuelve".into(),
        };
        let html = text(render_said(StatusCode::OK, &said, Some("482913")));
        assert!(
            html.contains("<h1>Escribe <strong>482913</strong> &lt;b&gt;ya&lt;/b&gt;</h1>"),
            "{html}"
        );
        assert!(
            html.contains("<html lang=\"es\">") && html.contains("<p>Vuelve</p>"),
            "{html}"
        );
        let html = text(render_said(StatusCode::OK, &said, Some("<script>")));
        assert!(
            !html.contains("<script>") && html.contains("<strong></strong>"),
            "{html}"
        );
    }

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

    #[test]
    fn every_page_is_a_complete_accessible_document() {
        let templates = crate::domain::settings::Templates::default();
        let pages = templates
            .entries()
            .into_iter()
            .filter(|(k, _)| k.starts_with("page_"));
        for (key, text) in pages {
            let said = Said {
                lang: "en".into(),
                text: text.clone(),
            };
            let res = render_said(StatusCode::GONE, &said, Some("1234"));
            assert_eq!(res.status(), StatusCode::GONE);
            let html = futures::executor::block_on(axum::body::to_bytes(res.into_body(), 1 << 16))
                .unwrap();
            let html = String::from_utf8(html.to_vec()).unwrap();
            let heading = text.lines().next().unwrap().replace("#CODE#", "1234");
            for part in [
                "<html lang=\"en\">",
                "name=\"viewport\"",
                &format!("<title>{heading}</title>"),
                "<h1>",
            ] {
                assert!(html.contains(part), "{key}: {part} missing in {html}");
            }
        }
    }
}
