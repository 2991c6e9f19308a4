//! The URLs of a team or channel written through the operator API
//! (docs/operator-api.md#destinations): every string of a body that a URL
//! parser reads as a URL with a host (as the loaders read it: `http:host`
//! and `http:\\host` too), and every `host` member (an `smtp` channel's
//! server), names no address in a special-purpose registry
//! ([`crate::outbound::special`]: loopback, private, shared, link-local,
//! benchmarking, documentation, multicast, reserved …, an IPv6 form that
//! embeds one) nor `localhost` (unless `[operator]
//! allow_private_destinations`), and a URL carries no credential. A file
//! is not held to these: what a file names, the people who deploy the
//! gateway chose. A name is checked where the gateway connects
//! (`crate::outbound`), since it can resolve anywhere.

use url::{Host, Url};

use super::form::{escape, FormProblem};
use super::is_secret_member;
use crate::outbound::special;

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
        return Some(NOT_PUBLIC);
    }
    None
}

/// Why `text`, a server's host name or address (an `smtp` channel's
/// `host`), may not be written through the API; `None` when it names a
/// host elsewhere, or is no host at all (the channel's own check says so).
fn host_problem(text: &str) -> Option<&'static str> {
    let url = Url::parse(&format!("http://{}/", text.trim())).ok()?;
    let host = host_of(&url)?;
    beside_the_gateway(&host).then_some(NOT_PUBLIC)
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

/// What a URL or host that names a service beside the gateway is told.
const NOT_PUBLIC: &str = "must not name localhost or an address that is not public (loopback, private, shared, link-local, benchmarking, documentation, multicast, reserved, or an IPv6 form of one) ([operator] allow_private_destinations)";

/// Whether `host` names a service beside the gateway: `localhost` (and
/// its subdomains), or an address in a special-purpose registry.
fn beside_the_gateway(host: &Host<String>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(ip) => special((*ip).into()),
        Host::Ipv6(ip) => special((*ip).into()),
    }
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
            // The special-purpose ranges beyond loopback and private.
            "http://100.100.100.200/latest/meta-data",
            "http://198.18.0.1/",
            "http://192.0.0.170/",
            "http://192.0.2.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[::127.0.0.1]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "http://[ff02::1]/",
            "http://[fec0::1]/",
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
            "https://[2606:4700:4700::1111]/",
            "https://[64:ff9b::808:808]/",
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
            "100.64.0.1",
            "[64:ff9b::a00:1]",
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
