//! `[mcp]` of the system file (docs/agents.md#who-may-reach-the-server):
//! the browser origins and the `Host` names the MCP server answers, its
//! guard against DNS rebinding. A request to `/mcp` with an `Origin` not
//! listed, or a `Host` that is neither `server.public_url`'s nor listed,
//! is refused before its key is read.
use serde::Deserialize;

use super::ConfigError;

/// `[mcp]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct McpSection {
    /// Origins (`scheme://host[:port]`, exactly) whose pages may call
    /// `/mcp`; default none.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Host names `/mcp` answers besides `server.public_url`'s, any port
    /// (or, written with a port, that one).
    #[serde(default = "default_allowed_hosts")]
    allowed_hosts: Vec<String>,
}

impl Default for McpSection {
    fn default() -> Self {
        McpSection {
            allowed_origins: Vec::new(),
            allowed_hosts: default_allowed_hosts(),
        }
    }
}

fn default_allowed_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "[::1]"]
        .map(String::from)
        .to_vec()
}

/// `[mcp]`, validated: origins and hosts in lower case.
#[derive(Debug, Clone, PartialEq)]
pub struct McpConfig {
    pub allowed_origins: Vec<String>,
    /// `(host, port)`; `None`: any port.
    pub allowed_hosts: Vec<(String, Option<u16>)>,
}

impl Default for McpConfig {
    fn default() -> Self {
        build(&McpSection::default(), "").unwrap_or(McpConfig {
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        })
    }
}

impl McpConfig {
    /// Whether a request's `Origin` may reach `/mcp`: one listed, exactly.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        self.allowed_origins.contains(&origin)
    }

    /// Whether a request's `Host` (`host[:port]`) may reach `/mcp`:
    /// `public_url`'s host with its port, or one listed.
    pub fn allows_host(&self, host: &str, public_url: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        let public = url::Url::parse(public_url).ok();
        let own = public.as_ref().and_then(|u| {
            let h = u.host_str()?.to_ascii_lowercase();
            Some((h, u.port_or_known_default()?))
        });
        let default_port = match public.as_ref().map(url::Url::scheme) {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        };
        if own.is_some_and(|(h, p)| h == name && port.or(default_port) == Some(p)) {
            return true;
        }
        self.allowed_hosts
            .iter()
            .any(|(h, p)| *h == name && (p.is_none() || *p == port))
    }
}

/// `host[:port]` in lower case: `None` when it is not one.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return None,
        };
        (host[..=end].to_string(), port)
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n.to_string(), Some(p)),
            None => (host.clone(), None),
        }
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c));
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    name_ok.then_some((name, port))
}

/// An origin as a browser sends it: `http(s)://host[:port]`, nothing more.
fn origin_problem(origin: &str) -> Option<String> {
    let bad = || {
        Some(format!(
            "{origin:?} is not an origin (scheme://host[:port])"
        ))
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return bad();
    };
    if !matches!(scheme, "http" | "https") || rest.contains(['/', '?', '#', '@']) {
        return bad();
    }
    if split_host(rest).is_none() || origin != origin.to_ascii_lowercase() {
        return bad();
    }
    None
}

pub(super) fn build(raw: &McpSection, file: &str) -> Result<McpConfig, ConfigError> {
    for origin in &raw.allowed_origins {
        if let Some(problem) = origin_problem(origin) {
            return Err(ConfigError::new(file, "mcp.allowed_origins", problem));
        }
    }
    let mut allowed_hosts = Vec::new();
    for host in &raw.allowed_hosts {
        let parsed = split_host(host).filter(|_| !host.contains(['/', '@']));
        let Some(parsed) = parsed else {
            let problem = format!("{host:?} is not a host name (host or host:port)");
            return Err(ConfigError::new(file, "mcp.allowed_hosts", problem));
        };
        allowed_hosts.push(parsed);
    }
    Ok(McpConfig {
        allowed_origins: raw.allowed_origins.clone(),
        allowed_hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_from(toml: &str) -> Result<McpConfig, String> {
        let raw: McpSection = toml::from_str(toml).map_err(|e| e.to_string())?;
        build(&raw, "chatgate.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn origins_are_exact_and_bad_ones_are_named() {
        let none = build_from("").unwrap();
        assert!(!none.allows_origin("http://localhost:3000"));
        let c = build_from("allowed_origins = [\"https://app.example.com:8443\"]").unwrap();
        assert!(c.allows_origin("https://app.example.com:8443"));
        assert!(!c.allows_origin("https://app.example.com"));
        assert!(!c.allows_origin("http://app.example.com:8443"));
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "ftp://x",
            "https://A.example",
        ] {
            let e = build_from(&format!("allowed_origins = [\"{bad}\"]")).unwrap_err();
            assert!(e.contains("mcp.allowed_origins"), "{bad}: {e}");
        }
        let e = build_from("allowed_hosts = [\"a/b\"]").unwrap_err();
        assert!(e.contains("mcp.allowed_hosts"), "{e}");
        assert!(
            build_from("allowed_origin = []").is_err(),
            "a typo is refused"
        );
    }

    #[test]
    fn hosts_are_public_url_s_with_its_port_or_listed_with_any() {
        let c = build_from("").unwrap();
        let public = "https://auth.example.com";
        assert!(c.allows_host("auth.example.com", public));
        assert!(c.allows_host("Auth.Example.com:443", public));
        assert!(!c.allows_host("auth.example.com:8443", public));
        assert!(c.allows_host("127.0.0.1:39211", public));
        assert!(c.allows_host("localhost", public));
        assert!(c.allows_host("[::1]:8080", public));
        assert!(!c.allows_host("evil.example.com", public));
        assert!(!c.allows_host("", public));
        assert!(c.allows_host("gw:8080", "http://gw:8080"));
        assert!(!c.allows_host("gw", "http://gw:8080"));
        let c = build_from("allowed_hosts = [\"chatgate.internal\", \"gw:81\"]").unwrap();
        assert!(c.allows_host("chatgate.internal:9000", public));
        assert!(c.allows_host("gw:81", public) && !c.allows_host("gw:82", public));
        assert!(
            !c.allows_host("localhost", public),
            "the list replaces the default"
        );
    }
}
