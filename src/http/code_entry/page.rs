//! The page where a code or PIN is typed instead of the chat
//! (docs/api.md#codes-typed-on-the-gateways-page): a heading, one field
//! and one button, in a form that posts its token back to the link. Its
//! policy lets the form go to the gateway only.
use axum::http::StatusCode;
use axum::response::Response;

use crate::gateway::network::Named;
use crate::http::pages::{escape, one_form, only_value, with_names, Csp, Said};

/// The name of the form's code field.
const CODE_FIELD: &str = "code";

/// The field's and the button's stylesheet, beside the pages' own
/// (`pages::STYLE`).
const FORM_STYLE: &str = "\
form{margin:1.5rem 0 0;display:flex;flex-direction:column;gap:1rem}\
label{font-weight:600;margin-bottom:-.5rem}\
input{width:100%;min-height:3rem;padding:.5rem .75rem;border:.125rem solid var(--muted);\
border-radius:.5rem;background:var(--bg);color:var(--fg);font:inherit;font-size:1.5rem;\
letter-spacing:.25em;text-align:center}\
input:focus-visible{outline:.2rem solid var(--accent);outline-offset:.1rem}\
button{width:100%;min-height:3rem;border:0;border-radius:.5rem;background:var(--accent);\
color:#fff;font:inherit;font-weight:600;cursor:pointer}\
button:focus-visible{outline:.2rem solid var(--fg);outline-offset:.2rem}";

/// The code typed into the form (`application/x-www-form-urlencoded`);
/// `None` when it is missing, sent twice or longer than 64 bytes.
pub(super) fn typed_code(body: &[u8]) -> Option<String> {
    let code = only_value(body, CODE_FIELD).filter(|code| code.len() <= 64)?;
    Some(code.trim().to_string())
}

/// The form: `said`'s first line the heading (what the field is for),
/// with the team and channel `named`, its last (of two or more) the
/// button's label (else `check`), the lines between what to do; the field,
/// labelled `field` (`page_code_field`), asks for digits and offers the code the phone received
/// (`autocomplete="one-time-code"`); the form carries `token` and posts
/// to the page's own address.
pub(super) fn form(
    status: StatusCode,
    said: &Said,
    named: &Named,
    token: &str,
    (field, check): (&str, &str),
) -> Response {
    let field = format!(
        "<label for=\"{CODE_FIELD}\">{label}</label>\n\
         <input id=\"{CODE_FIELD}\" name=\"{CODE_FIELD}\" type=\"text\" \
         autocomplete=\"one-time-code\" inputmode=\"numeric\" pattern=\"[0-9]*\" \
         maxlength=\"20\" required autofocus aria-describedby=\"asked\">\n",
        label = escape(field),
    );
    let text = with_names(&escape(&said.text), named);
    let check = escape(check);
    one_form(
        status,
        &said.lang,
        &text,
        (token, &field, Some(&check)),
        FORM_STYLE,
        &policy(),
    )
}

/// The page's content security policy: the pages' own, with the form's
/// stylesheet, and a form that may go to the gateway only.
fn policy() -> String {
    Csp::new().styles(&[FORM_STYLE]).form_action("'self'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::pages::drawn;
    use axum::http::header;

    #[test]
    fn the_page_has_one_field_for_a_code_and_loads_nothing() {
        let said = Said {
            lang: "es".into(),
            text: "Escribe el código <ya> de #TEAM# (#CHANNEL#)".into(),
        };
        let named = Named {
            team_name: "Acme <Bank>".into(),
            channel_words: "SMS",
        };
        let res = form(
            StatusCode::OK,
            &said,
            &named,
            "t0k\"en",
            ("Código <tuyo>", "Comprobar"),
        );
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.ends_with("form-action 'self'"), "{csp}");
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        let html = drawn(res);
        assert!(html.contains("<html lang=\"es\">"), "{html}");
        assert!(html.contains(
            "<h1 id=\"asked\">Escribe el código &lt;ya&gt; de Acme &lt;Bank&gt; (SMS)</h1>"
        ));
        assert_eq!(html.matches("name=\"code\"").count(), 1);
        assert!(html.contains("autocomplete=\"one-time-code\" inputmode=\"numeric\""));
        assert!(html.contains("value=\"t0k&quot;en\""), "{html}");
        // The field has a label of its own, the heading describes it, and
        // the button says what it does.
        assert!(
            html.contains("<label for=\"code\">Código &lt;tuyo&gt;</label>"),
            "{html}"
        );
        assert!(html.contains("aria-describedby=\"asked\""), "{html}");
        assert!(html.contains(">Comprobar</button>"), "{html}");
        assert!(!html.contains("src=") && !html.contains("href="), "{html}");
    }

    #[test]
    fn a_typed_code_is_read_once_or_not_at_all() {
        assert_eq!(typed_code(b"code=123456").as_deref(), Some("123456"));
        assert_eq!(typed_code(b"form_token=x&code=+12+").as_deref(), Some("12"));
        assert_eq!(typed_code(b"code=1&code=1"), None);
        assert_eq!(typed_code(b"form_token=x"), None);
        let long = format!("code={}", "1".repeat(65));
        assert_eq!(typed_code(long.as_bytes()), None);
    }
}
