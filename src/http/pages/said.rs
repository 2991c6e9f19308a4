//! What a page says: a template text in the visitor's language
//! ([`Said`], docs/api.md#languages), drawn as a heading and what to do
//! next ([`render_said`]); and the few fixed English pages ([`Page`]).
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::frame::{escape, html_answer, Frame};
use crate::domain::settings::TextKey;

/// What a page says: its `<title>`, its heading, and what to do next.
pub struct Page {
    pub status: StatusCode,
    pub title: &'static str,
    pub heading: &'static str,
    pub advice: &'static str,
}

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
    use super::super::drawn;
    use super::*;

    #[test]
    fn a_code_page_shows_digits_only() {
        let said = Said {
            lang: "es".into(),
            text: "Escribe #CODE# <b>ya</b>\nVuelve".into(),
        };
        let html = drawn(render_said(StatusCode::OK, &said, Some("482913")));
        assert!(
            html.contains("<h1>Escribe <strong>482913</strong> &lt;b&gt;ya&lt;/b&gt;</h1>"),
            "{html}"
        );
        assert!(
            html.contains("<html lang=\"es\">") && html.contains("<p>Vuelve</p>"),
            "{html}"
        );
        let html = drawn(render_said(StatusCode::OK, &said, Some("<script>")));
        assert!(
            !html.contains("<script>") && html.contains("<strong></strong>"),
            "{html}"
        );
    }

    #[test]
    fn every_page_is_a_complete_accessible_document() {
        let templates = crate::domain::settings::Templates::default();
        let pages = templates
            .entries()
            .into_iter()
            .filter(|(k, _)| k.starts_with("page_"));
        for (key, template) in pages {
            let said = Said {
                lang: "en".into(),
                text: template.clone(),
            };
            let res = render_said(StatusCode::GONE, &said, Some("1234"));
            assert_eq!(res.status(), StatusCode::GONE);
            let html = drawn(res);
            let heading = template.lines().next().unwrap().replace("#CODE#", "1234");
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
