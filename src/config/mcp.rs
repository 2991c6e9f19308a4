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
    /// `server.public_url`'s `Host`, parsed once as the configuration
    /// loads ([`McpConfig::serving`]); `None` without one.
    pub public_host: Option<PublicHost>,
}

/// The `Host` of `server.public_url`: its host in lower case, its port
/// (the scheme's when none is written), and the scheme's default port,
/// which a `Host` without a port means.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicHost {
    pub name: String,
    pub port: u16,
    pub default_port: Option<u16>,
}

impl Default for McpConfig {
    fn default() -> Self {
        build(&McpSection::default(), "").unwrap_or(McpConfig {
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            public_host: None,
        })
    }
}

impl McpConfig {
    /// This configuration serving at `public_url` (`server.public_url`,
    /// parsed): its `Host` taken apart once, here, for
    /// [`McpConfig::allows_host`].
    pub fn serving(self, public_url: &url::Url) -> Self {
        let default_port = match public_url.scheme() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        };
        let public_host = public_url.host_str().and_then(|h| {
            Some(PublicHost {
                name: h.to_ascii_lowercase(),
                port: public_url.port_or_known_default()?,
                default_port,
            })
        });
        McpConfig {
            public_host,
            ..self
        }
    }

    /// Whether a request's `Origin` may reach `/mcp`: one listed, exactly
    /// (the list is in lower case).
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim();
        self.allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether a request's `Host` (`host[:port]`) may reach `/mcp`:
    /// `public_url`'s host with its port, or one listed. Compared in
    /// place, nothing allocated.
    pub fn allows_host(&self, host: &str) -> bool {
        let Some((name, port)) = host_parts(host) else {
            return false;
        };
        let own = self.public_host.as_ref().is_some_and(|own| {
            own.name.eq_ignore_ascii_case(name) && port.or(own.default_port) == Some(own.port)
        });
        own || self
            .allowed_hosts
            .iter()
            .any(|(h, p)| h.eq_ignore_ascii_case(name) && (p.is_none() || *p == port))
    }
}

/// `host[:port]` in lower case: `None` when it is not one.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    host_parts(host).map(|(name, port)| (name.to_ascii_lowercase(), port))
}

/// `host[:port]`'s host, as written, and port: `None` when it is not one.
fn host_parts(host: &str) -> Option<(&str, Option<u16>)> {
    let host = host.trim();
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return None,
        };
        (&host[..=end], port)
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._[]:".contains(&c));
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
        public_host: None,
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

    /// Whether `c`, serving at `public_url`, lets `host` reach `/mcp`.
    fn allows(c: &McpConfig, host: &str, public_url: &str) -> bool {
        let url = url::Url::parse(public_url).unwrap();
        c.clone().serving(&url).allows_host(host)
    }

    #[test]
    fn hosts_are_public_url_s_with_its_port_or_listed_with_any() {
        let c = build_from("").unwrap();
        let public = "https://auth.example.com";
        assert!(allows(&c, "auth.example.com", public));
        assert!(allows(&c, "Auth.Example.com:443", public));
        assert!(!allows(&c, "auth.example.com:8443", public));
        assert!(allows(&c, "127.0.0.1:39211", public));
        assert!(allows(&c, "localhost", public));
        assert!(allows(&c, "[::1]:8080", public));
        assert!(!allows(&c, "evil.example.com", public));
        assert!(!allows(&c, "", public));
        assert!(allows(&c, "gw:8080", "http://gw:8080"));
        assert!(!allows(&c, "gw", "http://gw:8080"));
        let c = build_from("allowed_hosts = [\"chatgate.internal\", \"gw:81\"]").unwrap();
        assert!(allows(&c, "chatgate.internal:9000", public));
        assert!(allows(&c, "gw:81", public) && !allows(&c, "gw:82", public));
        assert!(
            !allows(&c, "localhost", public),
            "the list replaces the default"
        );
    }
}
