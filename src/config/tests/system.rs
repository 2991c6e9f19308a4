//! The system file: values, interpolation, environment overrides and errors.
use secrecy::ExposeSecret;

use super::{Fixture, PEPPER};
use crate::config::StoreBackend;

const SYS: &str = "config/chatgate.toml";

#[test]
fn system_values_are_read_and_public_url_loses_its_trailing_slash() {
    let config = Fixture::new().load().unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8080");
    assert_eq!(config.server.public_url, "http://127.0.0.1:8080");
    assert_eq!(config.server.issuer, "chatgate");
    assert_eq!(config.server.pepper.expose_secret(), PEPPER);
    assert_eq!(config.store.backend, StoreBackend::Memory);
    assert_eq!(config.store.key_prefix, "chatgate");
    assert_eq!(config.defaults.authenticated_ttl.get().as_secs(), 1800);
    assert_eq!(
        config.defaults.otp.ttl.get().as_secs(),
        180,
        "serde default"
    );
}

#[test]
fn interpolation_fills_variables_and_defaults() {
    let mut fx = Fixture::new();
    fx.edit(
        SYS,
        &format!("pepper = \"{PEPPER}\""),
        "pepper = \"${CHATGATE_PEPPER}\"",
    );
    fx.edit(SYS, "issuer = \"chatgate\"", "issuer = \"${bad name}\"");
    fx.expect_err(SYS, "server.issuer", "variable name");
    fx.edit(
        SYS,
        "issuer = \"${bad name}\"",
        "issuer = \"${FX_ISSUER:-from-default}\"",
    );
    fx.set_env("CHATGATE_PEPPER", "pepper-from-the-environment");
    let config = fx.load().unwrap();
    assert_eq!(
        config.server.pepper.expose_secret(),
        "pepper-from-the-environment"
    );
    assert_eq!(config.server.issuer, "from-default");
    fx.set_env("FX_ISSUER", "from-env");
    assert_eq!(fx.load().unwrap().server.issuer, "from-env");
}

#[test]
fn missing_variable_names_it_the_file_and_the_key() {
    let fx = Fixture::new();
    fx.edit(
        SYS,
        &format!("pepper = \"{PEPPER}\""),
        "pepper = \"${FX_NO_SUCH_PEPPER}\"",
    );
    fx.expect_err(
        SYS,
        "server.pepper",
        "environment variable FX_NO_SUCH_PEPPER is not set",
    );
}

#[test]
fn overrides_apply_and_plain_chatgate_names_do_not() {
    let mut fx = Fixture::new();
    fx.set_env("CHATGATE_STORE__BACKEND", "redis");
    fx.set_env("CHATGATE_SERVER__LISTEN", "0.0.0.0:9999");
    fx.set_env("CHATGATE_DEFAULTS__OTP__LENGTH", "8");
    fx.set_env("CHATGATE_DEFAULTS__LOCKOUT__WINDOW", "2h");
    fx.set_env("CHATGATE_PEPPER", "ordinary variable, not an override");
    let config = fx.load().unwrap();
    assert_eq!(config.store.backend, StoreBackend::Redis);
    assert_eq!(config.server.listen, "0.0.0.0:9999");
    assert_eq!(config.defaults.otp.length, 8);
    assert_eq!(config.defaults.lockout.window.get().as_secs(), 7200);
    assert_eq!(
        config.team("acme").unwrap().settings.otp.length,
        8,
        "teams inherit overrides"
    );
    assert_eq!(config.server.pepper.expose_secret(), PEPPER);
}

#[test]
fn an_override_that_breaks_the_config_is_named() {
    let mut fx = Fixture::new();
    fx.set_env("CHATGATE_STORE__BACKEND", "mysql");
    let e = fx.expect_err(SYS, "store.backend", "must be \"memory\" or \"redis\"");
    assert!(e.problem.contains("set by CHATGATE_STORE__BACKEND"), "{e}");
    fx.unset_env("CHATGATE_STORE__BACKEND");
    fx.set_env("CHATGATE_SERVER__COLOUR", "blue");
    fx.expect_err(SYS, "server.colour", "unknown key");
}

#[test]
fn bad_duration_unknown_key_and_wrong_type() {
    let fx = Fixture::new();
    fx.edit(
        SYS,
        "authenticated_ttl = \"30m\"",
        "authenticated_ttl = \"half an hour\"",
    );
    fx.expect_err(SYS, "defaults.authenticated_ttl", "is not a duration");
    fx.edit(
        SYS,
        "\"half an hour\"",
        "\"30m\"\nauthenticated_tll = \"1m\"",
    );
    fx.expect_err(SYS, "defaults.authenticated_tll", "unknown key");
    fx.edit(SYS, "authenticated_tll = \"1m\"", "");
    fx.edit(SYS, "length = 6", "length = \"six\"");
    fx.expect_err(SYS, "defaults.otp.length", "wrong type");
    fx.edit(
        SYS,
        "length = \"six\"",
        "length = 6\n[unknown_section]\na = 1",
    );
    fx.expect_err(SYS, "unknown_section", "unknown key");
}

#[test]
fn store_listen_and_public_url_are_checked() {
    let fx = Fixture::new();
    fx.edit(SYS, "backend = \"memory\"", "backend = \"postgres\"");
    fx.expect_err(SYS, "store.backend", "must be \"memory\" or \"redis\"");
    fx.edit(SYS, "\"postgres\"", "\"memory\"");
    fx.edit(SYS, "listen = \"127.0.0.1:8080\"", "listen = \"localhost\"");
    fx.expect_err(SYS, "server.listen", "is not a socket address");
    fx.edit(SYS, "\"localhost\"", "\"[::1]:8080\"");
    fx.edit(
        SYS,
        "public_url = \"http://127.0.0.1:8080/\"",
        "public_url = \"127.0.0.1:8080\"",
    );
    fx.expect_err(SYS, "server.public_url", "absolute http(s) URL");
    fx.edit(SYS, "\"127.0.0.1:8080\"", "\"ftp://gw.example\"");
    fx.expect_err(SYS, "server.public_url", "absolute http(s) URL");
}

#[test]
fn pepper_must_be_long_enough_and_is_never_quoted() {
    let fx = Fixture::new();
    fx.edit(SYS, PEPPER, "short-pepper");
    let e = fx.expect_err(SYS, "server.pepper", "at least 16 bytes");
    assert!(!e.to_string().contains("short-pepper"));
    fx.edit(
        SYS,
        "pepper = \"short-pepper\"",
        "pepper = 12345678901234567",
    );
    let e = fx.expect_err(SYS, "server.pepper", "wrong type");
    assert!(!e.to_string().contains("12345678901234567"));
}

#[test]
fn toml_syntax_errors_give_a_position_and_quote_nothing() {
    let fx = Fixture::new();
    fx.edit(
        SYS,
        &format!("pepper = \"{PEPPER}\""),
        &format!("pepper = \"{PEPPER}"),
    );
    let e = fx.load().unwrap_err();
    assert!(e.key.starts_with("line "), "{e}");
    assert!(e.problem.starts_with("invalid TOML"), "{e}");
    super::assert_no_secret(&e.to_string());
}

#[test]
fn settings_ranges_in_defaults() {
    let cases = [
        (
            "length = 6",
            "length = 3",
            "defaults.otp.length",
            "from 4 to 10",
        ),
        (
            "length = 6",
            "length = 11",
            "defaults.otp.length",
            "from 4 to 10",
        ),
        (
            "[defaults]",
            "[defaults.pin]\nmin_length = 0\n[defaults]",
            "defaults.pin.min_length",
            "at least 1",
        ),
        (
            "[defaults]",
            "[defaults.pin]\nmax_length = 21\n[defaults]",
            "defaults.pin.max_length",
            "at most 20",
        ),
        (
            "[defaults]",
            "[defaults.pin]\nmin_length = 9\nmax_length = 8\n[defaults]",
            "defaults.pin.min_length",
            "greater than pin.max_length",
        ),
        (
            "[defaults]",
            "[defaults.lockout]\nthreshold = 0\n[defaults]",
            "defaults.lockout.threshold",
            "at least 1",
        ),
    ];
    for (from, to, key, problem) in cases {
        let fx = Fixture::new();
        fx.edit(SYS, from, to);
        fx.expect_err(SYS, key, problem);
    }
}

#[test]
fn folders_are_relative_to_the_system_file() {
    let fx = Fixture::new();
    fx.append(SYS, "");
    fx.edit(
        SYS,
        "issuer = \"chatgate\"",
        "issuer = \"chatgate\"\nteams_dir = \"tenants\"",
    );
    fx.expect_err(SYS, "server.teams_dir", "cannot be read");
    std::fs::rename(fx.path("config/teams"), fx.path("config/tenants")).unwrap();
    assert_eq!(fx.load().unwrap().teams.len(), 2);
    fx.write("config/tenants/.hidden.toml", "not = toml = at all");
    fx.write("config/tenants/notes.txt", "ignored");
    assert_eq!(fx.load().unwrap().teams.len(), 2);
}

#[test]
fn cluster_nodes_are_read_checked_and_overridable_as_a_list() {
    let mut fx = Fixture::new();
    assert!(fx.load().unwrap().store.cluster_nodes.is_empty(), "default");
    fx.edit(
        SYS,
        "backend = \"memory\"",
        "backend = \"redis\"\ncluster_nodes = [\"redis://10.0.0.1:7000\", \"rediss://u:pw@10.0.0.2:7000\"]",
    );
    assert_eq!(
        fx.load().unwrap().store.cluster_nodes,
        ["redis://10.0.0.1:7000", "rediss://u:pw@10.0.0.2:7000"]
    );
    fx.edit(SYS, "\"rediss://u:pw@10.0.0.2:7000\"", "\"10.0.0.2:7000\"");
    fx.expect_err(SYS, "store.cluster_nodes[1]", "redis://host:port");
    fx.edit(SYS, "\"10.0.0.2:7000\"", "\"redis://10.0.0.2:7000\"");
    fx.set_env(
        "CHATGATE_STORE__CLUSTER_NODES",
        "[\"redis://10.0.0.9:7001\"]",
    );
    assert_eq!(
        fx.load().unwrap().store.cluster_nodes,
        ["redis://10.0.0.9:7001"]
    );
    fx.set_env("CHATGATE_STORE__CLUSTER_NODES", "redis://10.0.0.9:7001");
    let e = fx.expect_err(SYS, "store.cluster_nodes", "wrong type");
    assert!(
        e.problem.contains("set by CHATGATE_STORE__CLUSTER_NODES"),
        "{e}"
    );
}

#[test]
fn connection_limits_have_defaults_and_are_checked() {
    let mut fx = Fixture::new();
    let limits = fx.load().unwrap().server.limits;
    assert_eq!(limits.header_read_timeout.as_secs(), 10);
    assert_eq!(limits.keep_alive_timeout.map(|d| d.as_secs()), Some(5));
    assert_eq!(limits.body_read_timeout.as_secs(), 10);
    assert_eq!(limits.max_connections, 768);

    let server = "issuer = \"chatgate\"";
    fx.edit(
        SYS,
        server,
        "issuer = \"chatgate\"\nheader_read_timeout = \"20s\"\nkeep_alive_timeout = \"0s\"\nbody_read_timeout = \"3s\"\nmax_connections = 5000",
    );
    let limits = fx.load().unwrap().server.limits;
    assert_eq!(limits.header_read_timeout.as_secs(), 20);
    assert_eq!(limits.keep_alive_timeout, None, "0s = no keep-alive");
    assert_eq!(limits.body_read_timeout.as_secs(), 3);
    assert_eq!(limits.max_connections, 5000);

    fx.set_env("CHATGATE_SERVER__MAX_CONNECTIONS", "100");
    assert_eq!(fx.load().unwrap().server.limits.max_connections, 100);
    fx.unset_env("CHATGATE_SERVER__MAX_CONNECTIONS");

    let cases = [
        (
            "header_read_timeout = \"20s\"",
            "header_read_timeout = \"0s\"",
            "server.header_read_timeout",
            "must not be zero",
        ),
        (
            "body_read_timeout = \"3s\"",
            "body_read_timeout = \"0s\"",
            "server.body_read_timeout",
            "must not be zero",
        ),
        (
            "body_read_timeout = \"3s\"",
            "body_read_timeout = \"21s\"",
            "server.body_read_timeout",
            "at most 20s",
        ),
        (
            "keep_alive_timeout = \"0s\"",
            "keep_alive_timeout = \"21s\"",
            "server.keep_alive_timeout",
            "must not be longer than server.header_read_timeout",
        ),
        (
            "max_connections = 5000",
            "max_connections = 0",
            "server.max_connections",
            "from 1 to 1000000",
        ),
        (
            "max_connections = 5000",
            "max_connections = -3",
            "server.max_connections",
            "from 1 to 1000000",
        ),
        (
            "header_read_timeout = \"20s\"",
            "header_read_timeout = \"soon\"",
            "server.header_read_timeout",
            "is not a duration",
        ),
    ];
    for (from, to, key, problem) in cases {
        fx.edit(SYS, from, to);
        fx.expect_err(SYS, key, problem);
        fx.edit(SYS, to, from);
    }
    fx.load().unwrap();
}

#[test]
fn waiting_calls_and_mcp_sessions_have_defaults_and_never_take_more_than_a_quarter() {
    let fx = Fixture::new();
    let limits = fx.load().unwrap().server.limits;
    assert_eq!(limits.max_waits_per_key, 64);
    assert_eq!(limits.max_waits, 192, "a quarter of 768");
    assert_eq!(limits.max_mcp_sessions_per_key, 256);
    let server = "issuer = \"chatgate\"";
    let written = "issuer = \"chatgate\"\nmax_connections = 100\nmax_waits = 10\nmax_waits_per_key = 3\nmax_mcp_sessions_per_key = 5";
    fx.edit(SYS, server, written);
    let limits = fx.load().unwrap().server.limits;
    assert_eq!(
        (
            limits.max_waits,
            limits.max_waits_per_key,
            limits.max_mcp_sessions_per_key
        ),
        (10, 3, 5)
    );
    fx.edit(SYS, "max_waits = 10", "max_waits = 1000");
    assert_eq!(
        fx.load().unwrap().server.limits.max_waits,
        25,
        "never more than a quarter"
    );
    for (from, to, key) in [
        ("max_waits = 1000", "max_waits = -1", "server.max_waits"),
        (
            "max_waits_per_key = 3",
            "max_waits_per_key = 0",
            "server.max_waits_per_key",
        ),
        (
            "max_mcp_sessions_per_key = 5",
            "max_mcp_sessions_per_key = 0",
            "server.max_mcp_sessions_per_key",
        ),
    ] {
        fx.edit(SYS, from, to);
        fx.expect_err(SYS, key, "must be from");
        fx.edit(SYS, to, from);
    }
}

#[test]
fn log_format_defaults_to_text_is_overridable_and_checked() {
    use crate::config::LogFormat;
    let mut fx = Fixture::new();
    assert_eq!(fx.load().unwrap().server.log_format, LogFormat::Text);
    fx.set_env("CHATGATE_SERVER__LOG_FORMAT", "json");
    assert_eq!(fx.load().unwrap().server.log_format, LogFormat::Json);
    fx.set_env("CHATGATE_SERVER__LOG_FORMAT", "xml");
    let e = fx.expect_err(SYS, "server.log_format", "must be \"text\" or \"json\"");
    assert!(
        e.problem.contains("set by CHATGATE_SERVER__LOG_FORMAT"),
        "{e}"
    );
}

#[test]
fn an_issuer_that_is_a_team_id_refuses_to_start() {
    let mut fx = Fixture::new();
    fx.edit(SYS, "issuer = \"chatgate\"", "issuer = \"acme\"");
    let e = fx.expect_err(SYS, "server.issuer", "must not be a team id");
    assert!(e.problem.contains("acme.toml"), "{e}");
    // From the environment too, and with spaces around it.
    fx.edit(SYS, "issuer = \"acme\"", "issuer = \"chatgate\"");
    fx.load().unwrap();
    fx.set_env("CHATGATE_SERVER__ISSUER", " globex ");
    fx.expect_err(SYS, "server.issuer", "must not be a team id");
    // A look-alike that is not a team id is a different issuer.
    fx.set_env("CHATGATE_SERVER__ISSUER", "acme-gateway");
    fx.load().unwrap();
}

#[test]
fn metrics_token_and_log_customer_refs_are_read_and_checked() {
    use crate::config::CustomerRefLogging;
    let mut fx = Fixture::new();
    let config = fx.load().unwrap();
    assert!(config.server.metrics_token.is_none(), "empty by default");
    assert_eq!(config.server.log_customer_refs, CustomerRefLogging::Digest);
    fx.set_env("CHATGATE_SERVER__METRICS_TOKEN", "scrape-0123456789");
    fx.set_env("CHATGATE_SERVER__LOG_CUSTOMER_REFS", "plain");
    let config = fx.load().unwrap();
    let token = config
        .server
        .metrics_token
        .as_ref()
        .map(|t| t.expose_secret().to_string());
    assert_eq!(token.as_deref(), Some("scrape-0123456789"));
    assert_eq!(config.server.log_customer_refs, CustomerRefLogging::Plain);
    fx.set_env("CHATGATE_SERVER__LOG_CUSTOMER_REFS", "hashed");
    fx.expect_err(SYS, "server.log_customer_refs", "\"digest\" or \"plain\"");
    fx.set_env("CHATGATE_SERVER__LOG_CUSTOMER_REFS", "digest");
    fx.set_env("CHATGATE_SERVER__METRICS_TOKEN", "two words");
    let e = fx.expect_err(SYS, "server.metrics_token", "visible ASCII");
    assert!(!e.to_string().contains("two words"), "{e}");
}
