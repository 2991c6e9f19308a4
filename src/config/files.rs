//! The raw shapes of the files, as written (after `${VAR}` interpolation).
//! Every struct refuses unknown keys; `load` turns them into the validated
//! types of `mod.rs` and `team.rs`.
//! A team's secrets are [`Secret`]s: the loader hands one its value only
//! under a name the JSON form seals (`members.rs`).
use serde::Deserialize;

use super::{Dur, OnCredentialChange, Role};
use crate::domain::secrets::Secret;

/// `config/chatgate.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SystemFile {
    pub server: ServerSection,
    #[serde(default)]
    pub store: StoreSection,
    /// System settings (shape of [`super::Settings`]); checked as a layer.
    #[serde(default)]
    pub defaults: toml::Table,
    #[serde(default)]
    pub telemetry: TelemetrySection,
    #[serde(default)]
    pub audit: super::audit::AuditSection,
    #[serde(default)]
    pub approvals: super::approvals::ApprovalsSection,
    /// `[mcp]`: who may reach the MCP server.
    #[serde(default)]
    pub mcp: super::mcp::McpSection,
    /// `[operator]`, read by `operator.rs`; absent: the operator API is off.
    pub operator: Option<toml::Table>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    /// Socket address to bind; default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// How others reach this gateway (absolute http(s) URL); required.
    pub public_url: String,
    /// `iss` of login tokens, `aud` of assertions; default `chatgate`.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Server secret (at least 16 bytes) keying hashes of codes at rest; required.
    pub pepper: String,
    /// Folder of team files, relative to the system file; default `teams`.
    #[serde(default = "default_teams_dir")]
    pub teams_dir: String,
    /// Folder of channel files, relative to the system file; default `../channels`.
    #[serde(default = "default_channels_dir")]
    pub channels_dir: String,
    /// Longest wait for a request's complete head, from the moment the
    /// server waits for one (a new connection, or the next request on a
    /// kept-alive one); then the connection is closed. Default `10s`; not zero.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Dur,
    /// A connection on which nothing arrives this long while no request is in
    /// flight is closed; `0s` = no keep-alive. At most `header_read_timeout`.
    /// Default `5s`.
    #[serde(default = "default_keep_alive_timeout")]
    pub keep_alive_timeout: Dur,
    /// Longest wait for a request body once a handler reads it; then 408
    /// `request_timeout`. Default `10s`; not zero, at most `20s`.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: Dur,
    /// Open connections served at once; over it a connection is answered
    /// 503 `overloaded` and closed. Default 768 (fits `ulimit -n` 1024).
    #[serde(default = "default_max_connections")]
    pub max_connections: i64,
    /// `> 0`: connections from one peer address at once; over it 503
    /// `overloaded`, closed. Default `0` (off: behind a proxy every peer is the proxy).
    #[serde(default)]
    pub max_connections_per_ip: i64,
    /// A connection that cannot write a byte of its answer this long is
    /// closed (also a live event stream). Default `10s`; not zero.
    #[serde(default = "default_write_timeout")]
    pub write_timeout: Dur,
    /// Open `GET /v1/events` streams per API key; over it 429. Default 64.
    #[serde(default = "default_max_streams_per_key")]
    pub max_streams_per_key: i64,
    /// Open `GET /v1/events` streams per team; over it 429. Default 256.
    #[serde(default = "default_max_streams_per_team")]
    pub max_streams_per_team: i64,
    /// MCP `get_verification` calls waiting at once per API key; past it
    /// a call answers at once. Default 64.
    #[serde(default = "default_max_waits_per_key")]
    pub max_waits_per_key: i64,
    /// Waiting calls of every kind together; `0` (default): a quarter of
    /// `max_connections`, which is also the most it may be.
    #[serde(default)]
    pub max_waits: i64,
    /// Live MCP sessions per API key; a new one past it ends the key's
    /// least recently used. Default 256.
    #[serde(default = "default_max_mcp_sessions_per_key")]
    pub max_mcp_sessions_per_key: i64,
    /// On SIGTERM, `/readyz` answers 503 this long while every request is
    /// still served (so a load balancer stops sending new ones), then the
    /// server stops accepting and finishes what is in flight. Default `5s`;
    /// `0s` stops at once.
    #[serde(default = "default_shutdown_drain")]
    pub shutdown_drain: Dur,
    /// Log lines on stderr: `text` (default; colour only on a terminal) or
    /// `json` (one object per line).
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Not empty: `GET /metrics` needs `Authorization: Bearer <it>`; empty
    /// (default): `/metrics` is public and has no team-labelled series.
    #[serde(default)]
    pub metrics_token: String,
    /// `digest` (default): log lines name a customer by a keyed digest of
    /// the `customer_ref`; `plain`: by the value.
    #[serde(default = "default_log_customer_refs")]
    pub log_customer_refs: String,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct StoreSection {
    /// `memory` (one process) or `redis`; default `memory`.
    pub backend: String,
    /// Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Redis Cluster seed nodes (`redis://host:port`); default none. When
    /// not empty, the redis backend runs in cluster mode and `redis_url` is
    /// unused.
    pub cluster_nodes: Vec<String>,
    /// Prefix of every Redis key; default `chatgate`.
    pub key_prefix: String,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: "memory".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            cluster_nodes: Vec::new(),
            key_prefix: "chatgate".into(),
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct TelemetrySection {
    /// OTLP/HTTP base URL; empty: `OTEL_EXPORTER_OTLP_ENDPOINT`, else off.
    pub otlp_endpoint: String,
    /// Share of new traces sampled, 0.0..=1.0; default 1.0.
    pub sample_ratio: f64,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
        }
    }
}

/// `config/teams/<any>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamFile {
    /// `[a-z0-9_-]{1,64}`; the file name does not matter.
    pub id: String,
    /// How the gateway's own pages name the team to a customer (its id
    /// when none).
    pub display_name: Option<String>,
    /// The team's login page; the token is added as `?token=`.
    pub login_url: String,
    /// Names of channels (from the channel files) the team may use.
    #[serde(default)]
    pub channels: Vec<String>,
    /// One of `channels`, a `twilio` or `whatsapp` channel, for `delivery = "sms"`.
    pub sms_channel: Option<String>,
    /// One of `channels`, an `smtp` channel, for `delivery = "email"`.
    pub email_channel: Option<String>,
    /// A `twilio_voice` channel, for `delivery = "voice"`; never one of
    /// `channels`.
    pub voice_channel: Option<String>,
    /// `[[security_keys]]`, each read as [`SecurityKeyEntry`].
    #[serde(default)]
    pub security_keys: Vec<toml::Table>,
    /// `[[api_keys]]`, each read as [`ApiKeyEntry`].
    #[serde(default)]
    pub api_keys: Vec<toml::Table>,
    pub webhook: Option<toml::Table>,
    /// `[audit]`: the team's copy of its audit trail.
    pub audit: Option<TeamAuditEntry>,
    /// `[oidc]`, read as [`OidcEntry`].
    pub oidc: Option<toml::Table>,
    /// `[console]`: who may act through the agent endpoints.
    pub console: Option<ConsoleEntry>,
    /// `[ssf]`, read as [`SsfEntry`].
    pub ssf: Option<toml::Table>,
    /// `[dialogflow]`: its Dialogflow CX webhook.
    pub dialogflow: Option<DialogflowEntry>,
    /// `[number_checks]`, read by `number_checks.rs`.
    pub number_checks: Option<toml::Table>,
    /// `[number_verification]`, read by `number_verification.rs`.
    pub number_verification: Option<toml::Table>,
    /// `[wallet]`, read by `wallet.rs`.
    pub wallet: Option<toml::Table>,
    /// `[mcp]`, read by `mcp_oauth.rs`.
    pub mcp: Option<toml::Table>,
    /// Overrides of `[defaults]`.
    #[serde(default)]
    pub settings: toml::Table,
    /// Overrides for one channel of the team: `[channel_settings.NAME]`.
    #[serde(default)]
    pub channel_settings: toml::Table,
}

/// The top-level members a team file may write, as `TeamFile` reads
/// them: what serde names when a file writes another.
#[cfg(test)]
pub(crate) fn team_file_members() -> Vec<String> {
    let mut other = toml::Table::new();
    other.insert("~".into(), toml::Value::Integer(0));
    let e = TeamFile::deserialize(other).expect_err("no team file has a member named ~");
    let message = e.to_string();
    let (_, listed) = (message.split_once("expected one of "))
        .unwrap_or_else(|| panic!("serde names the members it expects: {message}"));
    let listed = listed.lines().next().unwrap_or_default();
    (listed
        .split(", ")
        .map(|m| m.trim().trim_matches('`').to_string()))
    .filter(|m| !m.is_empty())
    .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecurityKeyEntry {
    pub kid: String,
    /// `whsec_` + base64 of at least 32 bytes.
    pub secret: Secret,
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiKeyEntry {
    pub id: String,
    pub role: Role,
    /// Hex SHA-256 of the key.
    pub sha256: String,
}

/// A team's `[dialogflow]` (docs/integrating-bot-platforms.md#dialogflow-cx).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DialogflowEntry {
    /// One of the team's channels: the conversations Dialogflow's sessions are.
    pub channel: String,
}

/// A team's `[audit]` (docs/audit.md#wiring-a-siem).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamAuditEntry {
    /// `{url, secret}`: where each entry is POSTed, signed.
    pub webhook: Option<toml::Table>,
}

/// A team's `[webhook]` (where events go).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhookEntry {
    pub url: String,
    /// `whsec_…`.
    pub secret: Secret,
}

/// A team's `[oidc]`: its OpenID Connect provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcEntry {
    /// `https` URL (or `http` on a loopback address); discovery is
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Written `${VAR}`; sent by HTTP basic auth at the token endpoint.
    pub client_secret: Secret,
    /// Default `["openid"]`; `openid` is always sent.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The string claim that becomes `customer.id`; default `sub`.
    #[serde(default = "default_customer_claim")]
    pub customer_claim: String,
    /// `> 0s`: sent as `max_age`; `auth_time` must be within it. Default `0s`.
    #[serde(default)]
    pub max_age: Dur,
    /// Not empty: sent, and the ID token's `acr` must be one of them.
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// Serve the provider's back-channel logout; default false.
    #[serde(default)]
    pub backchannel_logout: bool,
    /// Let bots ask for approval in the customer's app (CIBA poll mode);
    /// default false.
    #[serde(default)]
    pub ciba: bool,
}

/// A team's `[console]` (docs/api.md#a-person-behind-every-agent-action).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsoleEntry {
    /// An agent or admin key's reveal, logout, unlock or forget needs a
    /// person (`Chatgate-Actor`); default false.
    #[serde(default)]
    pub require_person: bool,
    /// Sign-ins started per second at most, in each instance; default 10.
    pub sign_in_rate: Option<i64>,
    /// `[console.oidc]`, read as [`ConsoleOidcEntry`].
    pub oidc: Option<toml::Table>,
}

/// A team's `[console.oidc]`: its workforce OpenID Connect provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsoleOidcEntry {
    /// As `[oidc] issuer`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The claim whose values give a person a role; default `groups`.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    #[serde(default)]
    pub agent_values: Vec<String>,
    #[serde(default)]
    pub admin_values: Vec<String>,
    /// Default `15m`.
    pub session_idle: Option<Dur>,
    /// Default `12h`.
    pub session_max: Option<Dur>,
    /// What a `Chatgate-Actor` token's `aud` contains; default `client_id`.
    pub actor_audience: Option<String>,
}

fn default_role_claim() -> String {
    "groups".into()
}

/// A team's `[ssf]`: its Shared Signals transmitter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SsfEntry {
    /// The transmitter's `iss`: every event token must name it.
    pub issuer: String,
    /// Its key set: `https` (or `http` on a loopback address).
    pub jwks_uri: String,
    /// This receiver, as the tokens' `aud` names it.
    pub audience: String,
    /// `logout` (default) or `ignore`.
    #[serde(default)]
    pub on_credential_change: OnCredentialChange,
}

fn default_customer_claim() -> String {
    "sub".into()
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_issuer() -> String {
    "chatgate".into()
}
fn default_teams_dir() -> String {
    "teams".into()
}
fn default_channels_dir() -> String {
    "../channels".into()
}
fn default_header_read_timeout() -> Dur {
    Dur::from_secs(10)
}
fn default_keep_alive_timeout() -> Dur {
    Dur::from_secs(5)
}
fn default_body_read_timeout() -> Dur {
    Dur::from_secs(10)
}
fn default_max_connections() -> i64 {
    768
}
fn default_write_timeout() -> Dur {
    Dur::from_secs(10)
}
fn default_max_streams_per_key() -> i64 {
    64
}
fn default_max_streams_per_team() -> i64 {
    256
}
fn default_max_waits_per_key() -> i64 {
    64
}
fn default_max_mcp_sessions_per_key() -> i64 {
    256
}
fn default_shutdown_drain() -> Dur {
    Dur::from_secs(5)
}
fn default_log_format() -> String {
    "text".into()
}
fn default_log_customer_refs() -> String {
    "digest".into()
}
