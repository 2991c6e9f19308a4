//! The URLs of a team or channel written through the operator API
//! (docs/operator-api.md#destinations): every string of a body that a URL
//! parser reads as a URL with a host (as the loaders read it: `http:host`
//! and `http:\\host` too), and every `host` member (an `smtp` channel's
//! server), names no loopback, private, link-local or unspecified address
//! (unless `[operator] allow_private_destinations`), and a URL carries no
//! credential. A file is not held to these: what a file names, the people
//! who deploy the gateway chose.
use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::form::{escape, FormProblem};
use super::is_secret_member;

/// The words a query parameter's name holds when it carries a credential
/// (compared in lowercase).
const CREDENTIAL_WORDS: [&str; 6] = ["token", "key", "secret", "password", "sig", "auth"];

/// Every problem of the URLs of `body`, each at its pointer: a destination
/// beside the gateway (unless `allow_private`), a credential in it.
pub fn api_url_problems(body: &serde_json::Value, allow_private: bool) -> Vec<FormProblem> {
    let mut problems = Vec::new();
    walk(body, "", false, allow_private, &mut problems);
    problems
}

fn walk(
    value: &serde_json::Value,
    pointer: &str,
    secret: bool,
    allow_private: bool,
    problems: &mut Vec<FormProblem>,
) {
    use serde_json::Value as J;
    match value {
        // A secret is never read back, whatever it looks like.
        J::String(_) if secret => {}
        J::String(s) => {
            if let Some(detail) = url_problem(s, allow_private) {
                problems.push(FormProblem {
                    pointer: pointer.to_string(),
                    detail: detail.to_string(),
                });
            }
        }
        J::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(
                    v,
                    &format!("{pointer}/{i}"),
                    secret,
                    allow_private,
                    problems,
                );
            }
        }
        J::Object(members) => {
            for (name, v) in members {
                let at = format!("{pointer}/{}", escape(name));
                match v {
                    J::String(host) if name == "host" && !allow_private => {
                        if let Some(detail) = host_problem(host) {
                            problems.push(FormProblem {
                                pointer: at,
                                detail: detail.to_string(),
                            });
                        }
                    }
                    _ => walk(v, &at, is_secret_member(name), allow_private, problems),
                }
            }
        }
        _ => {}
    }
}

/// Why `text`, when a URL parser reads it as a URL with a host, may not be
/// written through the API; `None` for any other text. Every text is
/// parsed, not only those with `://`: the parser repairs `http:host`,
/// `http:\\host` and slashes split by a tab into the same address.
fn url_problem(text: &str, allow_private: bool) -> Option<&'static str> {
    let url = Url::parse(text).ok()?;
    let host = host_of(&url)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not carry credentials (user:password@): write them in a secret member");
    }
    let credential = |name: &str| {
        let name = name.to_ascii_lowercase();
        CREDENTIAL_WORDS.iter().any(|w| name.contains(w))
    };
    if url.query_pairs().any(|(name, _)| credential(&name)) {
        return Some("must not carry a credential in its query (a parameter named like a token, key, secret, password, signature or auth): write it in a secret member");
    }
    if !allow_private && beside_the_gateway(&host) {
        return Some("must not name a loopback, private, link-local or unspecified address, nor localhost ([operator] allow_private_destinations)");
    }
    None
}

/// Why `text`, a server's host name or address (an `smtp` channel's
/// `host`), may not be written through the API; `None` when it names a
/// host elsewhere, or is no host at all (the channel's own check says so).
fn host_problem(text: &str) -> Option<&'static str> {
    let url = Url::parse(&format!("http://{}/", text.trim())).ok()?;
    let host = host_of(&url)?;
    beside_the_gateway(&host).then_some(
        "must not name a loopback, private, link-local or unspecified address, nor localhost ([operator] allow_private_destinations)",
    )
}

/// The host of `url` as an `http` URL would read it, so that a scheme the
/// URL standard does not know (`tcp://2130706433`) names the address an
/// `http` client would reach.
fn host_of(url: &Url) -> Option<Host<String>> {
    let host = url.host()?.to_owned();
    if let Host::Domain(name) = &host {
        let again = Url::parse(&format!("http://{name}/")).ok();
        return Some(
            again
                .and_then(|u| u.host().map(|h| h.to_owned()))
                .unwrap_or(host),
        );
    }
    Some(host)
}

/// Whether `host` names a service beside the gateway: `localhost` (and
/// its subdomains), or a loopback, private (RFC 1918, RFC 4193),
/// link-local or unspecified address.
fn beside_the_gateway(host: &Host<String>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(ip) => v4_beside(*ip),
        Host::Ipv6(ip) => v6_beside(*ip),
    }
}

fn v4_beside(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.octets()[0] == 0
}

fn v6_beside(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_beside(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(url: &str, allow_private: bool) -> bool {
        url_problem(url, allow_private).is_some()
    }

    #[test]
    fn an_address_beside_the_gateway_is_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "https://localhost/",
            "https://api.LOCALHOST./x",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "tcp://127.0.0.1:6514",
            "wss://[fc00::2]/",
            // Spellings the URL parser repairs into the same address.
            "http:127.0.0.1:6379/",
            "http:\\\\10.0.0.1\\",
            "http:/\t/169.254.169.254/",
            "HTTPS:/localhost/",
            " http://127.0.0.1/",
        ] {
            assert!(refused(url, false), "{url}");
            assert!(!refused(url, true), "{url}");
        }
        for url in [
            "https://bot.example/events",
            "https://172.32.0.1/",
            "https://8.8.8.8/",
            "https://[2001:db8::1]/",
            "https://localhost.example/",
        ] {
            assert!(!refused(url, false), "{url}");
        }
    }

    #[test]
    fn a_credential_in_a_url_is_refused_even_where_private_addresses_are_allowed() {
        for url in [
            "https://user:pass@bot.example/",
            "https://user@bot.example/",
            "https:user:pass@bot.example/",
            "https://bot.example/?access_token=x",
            "https://bot.example/?API_KEY=x",
            "https://bot.example/?client_secret=x",
            "https://bot.example/?password=x",
            "https://bot.example/?sig=x",
            "https://bot.example/?Authorization=x",
            "https://bot.example/?a=1&x-auth=2",
        ] {
            assert!(refused(url, true), "{url}");
        }
        assert!(!refused("https://bot.example/?lang=en&team=acme", false));
    }

    #[test]
    fn every_url_of_a_body_is_named_by_its_pointer_and_other_text_is_left_alone() {
        let body = json!({
            "id": "newco",
            "login_url": "https://login.newco.example/?lang=en",
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret": "https://127.0.0.1/"},
            "oidc": {"issuer": "https://u:p@id.example"},
            "list": ["https://ok.example", "http://[::1]/"],
            "texts": {"otp": "Your code: go to http://10.0.0.1 now"},
            "a/b": "http://localhost/",
        });
        let problems = api_url_problems(&body, false);
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/a~1b", "/list/1", "/oidc/issuer", "/webhook/url"]
        );
        assert_eq!(api_url_problems(&body, true).len(), 1);
    }

    #[test]
    fn a_server_host_beside_the_gateway_is_refused_unless_allowed() {
        for host in [
            "127.0.0.1",
            "localhost",
            "10.0.0.7",
            "[::1]",
            "2130706433",
            " 192.168.0.2 ",
        ] {
            let body = json!({"kind": "smtp", "host": host, "port": 6379});
            let problems = api_url_problems(&body, false);
            assert_eq!(problems.len(), 1, "{host}");
            assert_eq!(problems[0].pointer, "/host");
            assert!(api_url_problems(&body, true).is_empty(), "{host}");
        }
        let elsewhere = json!({"kind": "smtp", "host": "smtp.example.com", "port": 587});
        assert!(api_url_problems(&elsewhere, false).is_empty());
    }
}
