//! The one-form page: a heading, what to do, one form that posts its
//! token (and a field, if the page asks for one) back to the page's own
//! address, one button. The network link's confirm page and the page
//! where a code is typed are drawn with it.
use axum::http::StatusCode;
use axum::response::Response;

use super::frame::{escape, html_answer, Frame};

/// The name of the form's token field.
const TOKEN_FIELD: &str = "form_token";

/// The button's label when the text names none (a text of one line).
const DEFAULT_LABEL: &str = "OK";

/// The value of field `name` of a form (`application/x-www-form-urlencoded`,
/// a posted body or a query) sent once; `None` when it is missing or sent
/// twice.
pub fn only_value(form: &[u8], name: &str) -> Option<String> {
    let mut values = url::form_urlencoded::parse(form)
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned());
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

/// The form token of a posted form; `None` when it is missing, sent twice
/// or too long.
pub fn form_token(body: &[u8]) -> Option<String> {
    only_value(body, TOKEN_FIELD).filter(|token| token.len() <= 128)
}

/// A page of one form posting to the page's own address: `text`
/// (escaped) its first line the heading (with a field, `id="asked"`,
/// which the field names as what it is for), its last (of two or more) the button's label
/// (else `button`, else "OK"),
/// the lines between what to do; the form carries `token` and then
/// `field` (empty: a button alone); `style` the form's stylesheet beside
/// the pages' own, `policy` the page's content security policy.
pub fn one_form(
    status: StatusCode,
    lang: &str,
    text: &str,
    (token, field, button): (&str, &str, Option<&str>),
    style: &str,
    policy: &str,
) -> Response {
    let lines: Vec<&str> = text.lines().collect();
    let (heading, rest) = lines.split_first().map_or(("", &[][..]), |(h, r)| (*h, r));
    let (label, advice) = rest
        .split_last()
        .map_or((button.unwrap_or(DEFAULT_LABEL), &[][..]), |(l, a)| (*l, a));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_token_is_read_once_or_not_at_all() {
        assert_eq!(form_token(b"form_token=abc").as_deref(), Some("abc"));
        assert_eq!(form_token(b"x=1&form_token=a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(form_token(b"form_token=a&form_token=a"), None);
        assert_eq!(form_token(b""), None);
        assert_eq!(form_token(b"form_token=").as_deref(), Some(""));
        let long = format!("form_token={}", "a".repeat(129));
        assert_eq!(form_token(long.as_bytes()), None);
    }
}
