//! The system file (`config/chatgate.toml`): `[server]`, `[store]` and
//! `[defaults]`, already overridden from the environment and interpolated.
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::de::from_table;
use super::files::{ServerSection, StoreSection, SystemFile, TelemetrySection};
use super::resolve::{resolve, Layer};
use super::validate::http_url;
use super::{
    ConfigError, ConnectionLimits, CustomerRefLogging, LogFormat, ServerConfig, Settings,
    StoreBackend, StoreConfig, TelemetryConfig,
};

/// The shortest pepper accepted, in bytes.
const MIN_PEPPER_BYTES: usize = 16;

/// The most connections `server.max_connections` may allow.
const MAX_CONNECTIONS: i64 = 1_000_000;

/// The longest `server.body_read_timeout`: well within the 30 s a request
/// may take as a whole, so a slow body is 408, never the deadline's 503.
const MAX_BODY_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// What the system file yields for the rest of loading.
pub(super) struct System {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub defaults: Settings,
    /// `[defaults]` as written: the lowest layer of every team's settings.
    pub defaults_table: toml::Table,
    pub teams_dir: String,
    pub channels_dir: String,
    pub telemetry: TelemetryConfig,
    pub audit: super::AuditConfig,
    pub approvals: super::ApprovalsConfig,
    pub mcp: super::McpConfig,
    pub operator: Option<std::sync::Arc<super::OperatorConfig>>,
}

pub(super) fn build(table: toml::Table, file: &str) -> Result<System, ConfigError> {
    let raw: SystemFile = from_table(table, file, "")?;
    let err = |key: &str, problem: &str| ConfigError::new(file, key, problem);
    let telemetry = telemetry(&raw.telemetry, file)?;
    let audit = super::audit::build(&raw.audit, file)?;
    let approvals = super::approvals::build(&raw.approvals, file)?;
    let mcp = super::mcp::build(&raw.mcp, file)?;
    let operator = super::operator::build(raw.operator, file)?.map(std::sync::Arc::new);
    let s = raw.server;

    let public_url = server_identity(&s, file)?;
    // The `Host` the MCP server answers at, parsed once here.
    let mcp = mcp.serving(&public_url);

    let log_format = match s.log_format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => return Err(err("server.log_format", "must be \"text\" or \"json\"")),
    };

    let limits = connection_limits(&s).map_err(|(key, problem)| err(key, &problem))?;
    let (metrics_token, log_customer_refs) =
        observability(&s).map_err(|(key, problem)| err(key, problem))?;

    let backend = store_backend(&raw.store, file)?;

    let defaults = resolve(&[Layer {
        file,
        prefix: "defaults".into(),
        table: &raw.defaults,
    }])?;

    Ok(System {
        telemetry,
        audit,
        approvals,
        mcp,
        operator,
        server: ServerConfig {
            listen: s.listen.trim().to_string(),
            public_url: public_url.as_str().trim_end_matches('/').to_string(),
            issuer: s.issuer,
            pepper: SecretString::from(s.pepper),
            limits,
            shutdown_drain: s.shutdown_drain.get(),
            log_format,
            metrics_token,
            log_customer_refs,
        },
        store: StoreConfig {
            backend,
            redis_url: raw.store.redis_url,
            cluster_nodes: raw.store.cluster_nodes,
            key_prefix: raw.store.key_prefix,
        },
        defaults,
        defaults_table: raw.defaults,
        teams_dir: s.teams_dir,
        channels_dir: s.channels_dir,
    })
}

/// `[server]`'s listen address, public URL, issuer, pepper and
/// directories checked; the public URL parsed.
fn server_identity(s: &ServerSection, file: &str) -> Result<Url, ConfigError> {
    let err = |key: &str, problem: &str| ConfigError::new(file, key, problem);
    if s.listen.trim().parse::<SocketAddr>().is_err() {
        return Err(err(
            "server.listen",
            "is not a socket address (write e.g. \"127.0.0.1:8080\")",
        ));
    }
    let public_url = http_url(&s.public_url).map_err(|p| err("server.public_url", &p))?;
    if public_url.query().is_some() || public_url.fragment().is_some() {
        return Err(err(
            "server.public_url",
            "must not have a query or a fragment",
        ));
    }
    if s.issuer.trim().is_empty() {
        return Err(err("server.issuer", "must not be empty"));
    }
    if s.pepper.len() < MIN_PEPPER_BYTES {
        return Err(err(
            "server.pepper",
            &format!("must be at least {MIN_PEPPER_BYTES} bytes long"),
        ));
    }
    for (key, dir) in [
        ("server.teams_dir", &s.teams_dir),
        ("server.channels_dir", &s.channels_dir),
    ] {
        if dir.trim().is_empty() {
            return Err(err(key, "must not be empty"));
        }
    }
    Ok(public_url)
}

/// `[store]`'s backend, once its Redis URLs and key prefix are checked
/// (whichever backend is chosen).
fn store_backend(store: &StoreSection, file: &str) -> Result<StoreBackend, ConfigError> {
    let err = |key: &str, problem: &str| ConfigError::new(file, key, problem);
    let backend = match store.backend.as_str() {
        "memory" => StoreBackend::Memory,
        "redis" => StoreBackend::Redis,
        _ => return Err(err("store.backend", "must be \"memory\" or \"redis\"")),
    };
    let redis_ok = Url::parse(&store.redis_url)
        .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix"));
    if !redis_ok {
        return Err(err("store.redis_url", "is not a redis:// or rediss:// URL"));
    }
    for (i, node) in store.cluster_nodes.iter().enumerate() {
        let node_ok = Url::parse(node).is_ok_and(|u| {
            matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if !node_ok {
            return Err(err(
                &format!("store.cluster_nodes[{i}]"),
                "is not a redis://host:port or rediss://host:port URL",
            ));
        }
    }
    let prefix = &store.key_prefix;
    if prefix.is_empty()
        || prefix
            .chars()
            .any(|c| c.is_whitespace() || c == '{' || c == '}')
    {
        return Err(err(
            "store.key_prefix",
            "must be non-empty, without spaces or braces",
        ));
    }
    Ok(backend)
}

/// `server.metrics_token` (`None` when empty) and `server.log_customer_refs`.
fn observability(
    s: &ServerSection,
) -> Result<(Option<SecretString>, CustomerRefLogging), (&'static str, &'static str)> {
    // A bearer token travels in a header: visible ASCII only.
    if !s.metrics_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err((
            "server.metrics_token",
            "must be visible ASCII characters without spaces (it is sent as a bearer token)",
        ));
    }
    let token = (!s.metrics_token.is_empty()).then(|| SecretString::from(s.metrics_token.clone()));
    let refs = match s.log_customer_refs.as_str() {
        "digest" => CustomerRefLogging::Digest,
        "plain" => CustomerRefLogging::Plain,
        _ => {
            return Err((
                "server.log_customer_refs",
                "must be \"digest\" or \"plain\"",
            ))
        }
    };
    Ok((token, refs))
}

/// `[server]` timeouts and the connection cap; `Err((key, problem))`.
fn connection_limits(s: &ServerSection) -> Result<ConnectionLimits, (&'static str, String)> {
    let header = s
        .header_read_timeout
        .enabled()
        .ok_or(("server.header_read_timeout", "must not be zero".to_string()))?;
    let body = s
        .body_read_timeout
        .enabled()
        .ok_or(("server.body_read_timeout", "must not be zero".to_string()))?;
    if body > MAX_BODY_READ_TIMEOUT {
        return Err((
            "server.body_read_timeout",
            "must be at most 20s (a request as a whole ends after 30s)".to_string(),
        ));
    }
    let keep_alive = s.keep_alive_timeout.enabled();
    if keep_alive.is_some_and(|k| k > header) {
        return Err((
            "server.keep_alive_timeout",
            "must not be longer than server.header_read_timeout, which already bounds the wait for the next request"
                .to_string(),
        ));
    }
    let count = |key: &'static str, v: i64, min: i64| {
        usize::try_from(v)
            .ok()
            .filter(|_| (min..=MAX_CONNECTIONS).contains(&v))
            .ok_or((key, format!("must be from {min} to {MAX_CONNECTIONS}")))
    };
    let max_connections = count("server.max_connections", s.max_connections, 1)?;
    let per_ip = count("server.max_connections_per_ip", s.max_connections_per_ip, 0)?;
    Ok(ConnectionLimits {
        header_read_timeout: header,
        keep_alive_timeout: keep_alive,
        body_read_timeout: body,
        max_connections,
        max_connections_per_ip: (per_ip > 0).then_some(per_ip),
        write_timeout: s
            .write_timeout
            .enabled()
            .ok_or(("server.write_timeout", "must not be zero".to_string()))?,
        max_streams_per_key: count("server.max_streams_per_key", s.max_streams_per_key, 1)?,
        max_streams_per_team: count("server.max_streams_per_team", s.max_streams_per_team, 1)?,
        max_streams: (max_connections / 2).max(1),
        max_waits_per_key: count("server.max_waits_per_key", s.max_waits_per_key, 1)?,
        max_waits: waits_in_all(count("server.max_waits", s.max_waits, 0)?, max_connections),
        max_mcp_sessions_per_key: count(
            "server.max_mcp_sessions_per_key",
            s.max_mcp_sessions_per_key,
            1,
        )?,
    })
}

/// The connections every waiting call together may hold: `written`, or a
/// quarter of `max_connections` when it is 0 or more (at least 1). With
/// the event streams' half, a quarter is always left to the requests that
/// wait on nobody (docs/operations.md#waiting-calls).
fn waits_in_all(written: usize, max_connections: usize) -> usize {
    let quarter = (max_connections / 4).max(1);
    match written {
        0 => quarter,
        n => n.min(quarter),
    }
}

/// `[telemetry]`: the endpoint from the file, else from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; a ratio outside 0.0..=1.0 is refused.
fn telemetry(raw: &TelemetrySection, file: &str) -> Result<TelemetryConfig, ConfigError> {
    if !(0.0..=1.0).contains(&raw.sample_ratio) {
        return Err(ConfigError::new(
            file,
            "telemetry.sample_ratio",
            "must be between 0.0 and 1.0",
        ));
    }
    let (key, written) = if raw.otlp_endpoint.trim().is_empty() {
        let env = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
        ("OTEL_EXPORTER_OTLP_ENDPOINT", env)
    } else {
        ("telemetry.otlp_endpoint", raw.otlp_endpoint.clone())
    };
    let otlp_endpoint = match written.trim() {
        "" => None,
        url => {
            let parsed = http_url(url).map_err(|p| ConfigError::new(file, key, &p))?;
            Some(parsed.as_str().trim_end_matches('/').to_string())
        }
    };
    let service_name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "chatgate".to_string());
    Ok(TelemetryConfig {
        otlp_endpoint,
        sample_ratio: raw.sample_ratio,
        service_name,
    })
}
