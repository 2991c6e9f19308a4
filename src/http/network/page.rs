//! The confirm page of a network link (docs/network-authentication.md#the-link):
//! the team and the conversation's channel named, one button, a form
//! that posts its token back to the link. Its policy lets the form go to
//! the gateway and, through the button's redirect, to the operator only.
use axum::http::StatusCode;
use axum::response::Response;

use crate::gateway::network::NetworkConfirm;
use crate::http::pages::{csp_hash, escape, html_answer, with_names, Frame, Said, STYLE};

/// The name of the form's token field.
const TOKEN_FIELD: &str = "form_token";

/// The button's stylesheet, beside the pages' own ([`STYLE`]).
const BUTTON_STYLE: &str = "\
form{margin:1.5rem 0 0}\
button{width:100%;min-height:3rem;border:0;border-radius:.5rem;background:var(--accent);\
color:#fff;font:inherit;font-weight:600;cursor:pointer}\
button:focus-visible{outline:.2rem solid var(--fg);outline-offset:.2rem}";

/// The button's label when the text names none (a text of one line).
const DEFAULT_LABEL: &str = "OK";

/// Whether a browser cookie's value is one the gateway could have set:
/// 1..128 base64url characters.
pub(in crate::http) fn sane_secret(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The form token of a posted form (`application/x-www-form-urlencoded`);
/// `None` when it is missing, sent twice or too long.
pub(in crate::http) fn form_token(body: &[u8]) -> Option<String> {
    let mut tokens = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == TOKEN_FIELD)
        .map(|(_, v)| v.into_owned());
    let token = tokens.next()?;
    (tokens.next().is_none() && token.len() <= 128).then_some(token)
}

/// The confirm page: `said`'s text with `#TEAM#` and `#CHANNEL#` filled
/// in, its first line the heading, its last (of two or more) the
/// button's label, the lines between what to do; the form carries
/// `confirm`'s form token and posts to the page's own address.
pub(super) fn confirm(said: &Said, confirm: &NetworkConfirm) -> Response {
    let text = with_names(&escape(&said.text), &confirm.named);
    let policy = policy(&confirm.form_action);
    let form = (confirm.form_token.as_str(), "");
    one_form(
        StatusCode::OK,
        &said.lang,
        &text,
        form,
        BUTTON_STYLE,
        &policy,
    )
}

/// A page of one form posting to the page's own address: `text`
/// (escaped) its first line the heading (with a field, `id="asked"`,
/// which the field names as its label), its last (of two or more) the button's label,
/// the lines between what to do; the form carries `token` and then
/// `field` (empty: a button alone); `style` the form's stylesheet beside
/// the pages' own ([`STYLE`]), `policy` the page's content security
/// policy. Shared by the confirm page and the page where a code is typed
/// (`http/code_entry/page.rs`).
pub(in crate::http) fn one_form(
    status: StatusCode,
    lang: &str,
    text: &str,
    (token, field): (&str, &str),
    style: &str,
    policy: &str,
) -> Response {
    let lines: Vec<&str> = text.lines().collect();
    let (heading, rest) = lines.split_first().map_or(("", &[][..]), |(h, r)| (*h, r));
    let (label, advice) = rest
        .split_last()
        .map_or((DEFAULT_LABEL, &[][..]), |(l, a)| (*l, a));
    let advice: String = advice.iter().map(|l| format!("<p>{l}</p>\n")).collect();
    let h1 = if field.is_empty() {
        "<h1>"
    } else {
        "<h1 id=\"asked\">"
    };
    let main = format!(
        "{h1}{heading}</h1>\n{advice}<form method=\"post\">\n\
         <input type=\"hidden\" name=\"{TOKEN_FIELD}\" value=\"{token}\">\n{field}\
         <button type=\"submit\">{label}</button>\n</form>\n",
        token = escape(token),
    );
    let html = Frame {
        lang,
        title: heading,
        style,
        main: &main,
        script: "",
    }
    .html();
    html_answer(status, html, Some(policy))
}

/// The page's content security policy: the pages' own, with the button's
/// stylesheet, and a form that may go to the gateway and, through the
/// button's redirect, where the provider says (`form_action`: the
/// operator's origin; for Vonage, whose redirects pass through the
/// customer's mobile operator, any `https` address).
fn policy(form_action: &str) -> String {
    format!(
        "default-src 'none'; style-src {} {}; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'self' {form_action}",
        csp_hash(STYLE),
        csp_hash(BUTTON_STYLE),
    )
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    fn body(res: Response) -> String {
        let b = futures::executor::block_on(axum::body::to_bytes(res.into_body(), 1 << 16));
        String::from_utf8(b.unwrap().to_vec()).unwrap()
    }

    fn confirming(team: &str) -> NetworkConfirm {
        NetworkConfirm {
            speaks: crate::gateway::Speaks {
                team: "acme".into(),
                channel: "webchat".into(),
                locale: "en".into(),
            },
            named: crate::gateway::network::Named {
                team_name: team.into(),
                channel_words: "SMS",
            },
            form_action: "https://op.example:8443".into(),
            left: std::time::Duration::from_secs(60),
            form_token: "t0k\"en".into(),
        }
    }

    #[test]
    fn the_page_names_the_team_and_channel_and_has_one_button() {
        let said = Said {
            lang: "en".into(),
            text: "#TEAM# asks about #CHANNEL#.\nOnly if you chat with #TEAM#.\nContinue".into(),
        };
        let res = confirm(&said, &confirming("Acme <Bank>"));
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.ends_with("form-action 'self' https://op.example:8443"),
            "{csp}"
        );
        let html = body(res);
        assert!(
            html.contains("<h1>Acme &lt;Bank&gt; asks about SMS.</h1>"),
            "{html}"
        );
        assert!(html.contains("<p>Only if you chat with Acme &lt;Bank&gt;.</p>"));
        assert_eq!(html.matches("<button").count(), 1);
        assert!(html.contains("<button type=\"submit\">Continue</button>"));
        assert!(html.contains("value=\"t0k&quot;en\""), "{html}");
        assert!(html.contains("<form method=\"post\">"));
    }

    #[test]
    fn a_one_line_text_has_a_button_all_the_same() {
        let said = Said {
            lang: "ar".into(),
            text: "#TEAM#".into(),
        };
        let html = body(confirm(&said, &confirming("Acme")));
        assert!(html.contains("<h1>Acme</h1>") && html.contains(">OK</button>"));
        assert!(html.contains("dir=\"rtl\""));
    }

    #[test]
    fn a_form_token_is_read_once_or_not_at_all() {
        assert_eq!(form_token(b"form_token=abc").as_deref(), Some("abc"));
        assert_eq!(form_token(b"x=1&form_token=a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(form_token(b"form_token=a&form_token=a"), None);
        assert_eq!(form_token(b""), None);
        assert_eq!(form_token(b"form_token=").as_deref(), Some(""));
        let long = format!("form_token={}", "a".repeat(129));
        assert_eq!(form_token(long.as_bytes()), None);
        assert!(sane_secret("abc-_09") && !sane_secret("") && !sane_secret("a;b"));
    }
}
