//! What a browser brings and is given: its cookies (read among the
//! others, and written `HttpOnly` under a path of their own, `Secure` on
//! https; their names are the domain's, `domain/browser.rs`), and the
//! answer a provider sends it back with, in the query.
use axum::http::{header, HeaderMap, HeaderValue};

use crate::gateway::ProviderAnswer;
use crate::oidc::OidcError;

/// `Set-Cookie` for the browser secret of a flow whose callback is under
/// `path`: `Lax`, so that the provider's redirect back carries it (`max_age`
/// 0 removes it).
pub fn state_cookie(public_url: &str, path: &str, name: &str, value: &str, max_age: u64) -> String {
    cookie_of(public_url, (path, name, value), max_age, "Lax")
}

/// [`state_cookie`], but `SameSite=Strict`: a cookie no other site's
/// link or form ever sends along.
pub fn strict_cookie(
    public_url: &str,
    path: &str,
    name: &str,
    value: &str,
    max_age: u64,
) -> String {
    cookie_of(public_url, (path, name, value), max_age, "Strict")
}

fn cookie_of(
    public_url: &str,
    (path, name, value): (&str, &str, &str),
    max_age: u64,
    same_site: &str,
) -> String {
    let secure = if public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    )
}

/// `cookie` set on an answer's `headers` (in place of any other it set).
pub fn set_cookie(headers: &mut HeaderMap, cookie: &str) {
    if let Ok(cookie) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
}

/// The value of the cookie `name` among the request's cookies.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (n, value) = c.trim().split_once('=')?;
            (n == name).then(|| value.to_string())
        })
}

/// Whether a browser cookie's value is one the gateway could have set:
/// 1..128 base64url characters.
pub fn sane_secret(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// This browser's secret in the cookie `name`, kept if it is sane, else a
/// new one.
pub fn browser_secret(headers: &HeaderMap, name: &str) -> String {
    cookie_value(headers, name)
        .filter(|b| sane_secret(b))
        .unwrap_or_else(crate::oidc::flow::random_value)
}

/// The provider's answer from the query; a parameter sent twice is refused
/// (RFC 6749 4.1.2), other parameters are ignored.
pub fn provider_answer(query: Option<&str>) -> Result<ProviderAnswer, OidcError> {
    let mut answer = ProviderAnswer::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match k.as_ref() {
            "code" => &mut answer.code,
            "state" => &mut answer.state,
            "error" => &mut answer.error,
            "iss" => &mut answer.iss,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(OidcError::BadState("a parameter sent twice"));
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_on_its_path_and_secure_on_https() {
        let c = state_cookie("https://gw.example", "/oidc/", "chatgate_oidc_ab", "v", 600);
        assert_eq!(
            c,
            "chatgate_oidc_ab=v; Path=/oidc/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!state_cookie("http://127.0.0.1:8080", "/oidc/", "n", "v", 600).contains("Secure"));
        let c = strict_cookie("https://gw.example", "/c/", "cg_cb", "v", 60);
        assert_eq!(
            c,
            "cg_cb=v; Path=/c/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn a_states_cookie_is_read_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chatgate_oidc_1=s1; chatgate_oidc_2=s2; b=2"),
        );
        assert_eq!(cookie_value(&h, "chatgate_oidc_2").as_deref(), Some("s2"));
        assert_eq!(cookie_value(&h, "chatgate_oidc_3"), None);
        assert_eq!(cookie_value(&HeaderMap::new(), "chatgate_oidc_1"), None);
    }

    #[test]
    fn only_a_sane_browser_secret_is_kept() {
        assert!(sane_secret("abc-_09") && !sane_secret("") && !sane_secret("a;b"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("cg_nb=abc-_09"));
        assert_eq!(browser_secret(&h, "cg_nb"), "abc-_09");
        h.insert(header::COOKIE, HeaderValue::from_static("cg_nb=a,b"));
        let fresh = browser_secret(&h, "cg_nb");
        assert!(fresh != "a,b" && sane_secret(&fresh), "{fresh}");
    }

    #[test]
    fn a_parameter_sent_twice_is_refused() {
        assert!(provider_answer(Some("code=a&state=b&state=c")).is_err());
        let a = provider_answer(Some("code=a&state=b&session_state=x")).unwrap();
        assert_eq!(
            (a.code.as_deref(), a.state.as_deref()),
            (Some("a"), Some("b"))
        );
    }
}
