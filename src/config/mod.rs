//! Configuration: the system file (`config/chatgate.toml`), one file per team
//! (`config/teams/*.toml`) and one per channel (`channels/*.toml`).
//!
//! Loading happens in [`load`] (again, whole, on a reload: [`reload`]):
//! `${VAR}` and `${file:PATH}` interpolation, `CHATGATE_<SECTION>__<KEY>`
//! environment overrides, `deny_unknown_fields`, and validation. The result is
//! a [`Config`] in which every team's settings are already resolved
//! (system → team → team's channel), so request handling never merges layers.
mod api_teams;
mod api_urls;
mod approvals;
mod audit;
mod channel_json;
mod channels;
mod de;
mod deferred;
mod env;
mod every_problem;
mod files;
mod form;
mod interpolate;
mod key_holders;
mod load;
mod mcp;
mod mcp_oauth;
mod members;
mod number_checks;
mod number_verification;
mod oidc;
mod once;
mod operator;
mod print;
mod reload;
mod resolve;
mod restart_only;
mod secrets_go;
mod settings;
mod sms_length;
mod system;
mod team;
mod team_json;
mod team_sums;
mod teams;
#[cfg(test)]
mod tests;
mod texts;
mod toml_file;
mod validate;
mod wallet;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::channels::smtp::SmtpTls;
pub use crate::channels::ChannelKind;
pub use crate::domain::abuse::{Destinations, LockoutScope, NumberType, SmsRegion};
pub use crate::domain::customer_refs::CustomerRefLogging;
pub use crate::domain::secrets::SecurityKey;
pub use crate::domain::settings::{
    AuthMethod, Intent, LocaleSettings, LockoutSettings, LoginBinding, OtpSettings, PinSettings,
    Settings, StepUpSettings, Templates, Texts,
};
pub use crate::network_verification::NumberVerification;
pub use crate::time::Dur;
pub use api_urls::api_url_problems;
pub use approvals::ApprovalsConfig;
pub use audit::{AuditConfig, SyslogTarget, SyslogTls};
pub use channels::{
    for_transaction, shows_text, template, template_key, text, text_in, voice_text,
};
pub use deferred::{deferring, Deferred};
pub use env::Environment;
#[cfg(test)]
pub(crate) use files::team_file_members;
pub use form::{channel_place, is_secret_member, FormText};
pub use form::{escape as pointer_token, FormProblem, SECRET_MEMBERS};
pub use key_holders::{KeyHolder, KeyHolders};
pub use load::{load, load_all_but_sms_length, load_with_env};
pub use mcp::McpConfig;
pub use mcp_oauth::{
    audience_taken as mcp_audience_taken, pair_of_body as mcp_pair_of_body, McpOauth,
    DEFAULT_SCOPE as DEFAULT_MCP_SCOPE,
};
pub use oidc::{https_or_loopback, may_reach};
pub use once::{warn_once, StartupWarning};
pub use operator::{OperatorConfig, OperatorKey, OperatorRole};
pub use print::ConfigPrint;
pub use reload::{reload, Reload};
pub use restart_only::RestartOnly;
pub use secrets_go::{
    channel_secrets_moved, declared, secret_goes_to, team_secrets_moved, Declared,
};
pub use settings::TemplateOverrides;
pub use sms_length::{text_rows, TextRow};
pub use team_json::api_key_taken_at;
pub use team_sums::TeamSums;

/// The teams of a configuration by id: a persistent map, so the
/// configuration that puts one team in force shares every other team's
/// entry with the one it replaces, and [`imbl::OrdMap::diff`] finds what
/// two configurations differ in by the parts they do not share
/// (docs/decisions/0491-a-write-costs-its-own-team.md).
pub type Teams = imbl::OrdMap<String, Arc<Team>>;
pub use team::{
    ApiKey, ChannelConfig, ConsoleConfig, ConsoleOidc, ConsoleRoles, Dialogflow, OidcConfig,
    OnCredentialChange, Role, SsfConfig, Team, TeamWebhook,
};
pub use texts::{chosen_texts, ChosenText, PLACEHOLDERS};
pub use toml_file::ConfigError;
pub use validate::check_label;
#[cfg(test)]
pub use wallet::wallet_for_tests;
pub use wallet::{
    Claim, InvalidAnswer, Purpose, TrustedListConfig, WalletConfig, WalletCredential,
};

use secrecy::SecretString;

/// Everything `serve` needs, loaded and validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// System defaults (the `[defaults]` table), fully resolved.
    pub defaults: Settings,
    /// `[defaults]` as written: the lowest layer of a team checked later
    /// (an operator's body, docs/operator-api.md#the-representation).
    pub defaults_table: toml::Table,
    /// The print of `[defaults]` every team's starts from, made once and
    /// shared by every team (`ConfigPrint`'s layers).
    pub defaults_print: ConfigPrint,
    /// Teams by id, each shared so a request can hold its caller's team
    /// (`http/auth.rs`) while a reload replaces the configuration.
    pub teams: Teams,
    /// The teams' API keys, by digest: kept with `teams` (at the load and
    /// by [`Config::with_api_teams`]).
    pub key_holders: KeyHolders,
    /// What the teams add up to (channels listed, `[oidc]`, API teams,
    /// keyspaces): kept with `teams` as `key_holders` is.
    pub sums: TeamSums,
    /// Channels by name.
    pub channels: Arc<BTreeMap<String, ChannelConfig>>,
    /// What of the system file only a restart applies (a reload compares it).
    pub restart_only: RestartOnly,
    /// `[telemetry]`.
    pub telemetry: TelemetryConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// `[approvals]`.
    pub approvals: ApprovalsConfig,
    /// `[mcp]`: who may reach the MCP server (docs/agents.md#who-may-reach-the-server).
    pub mcp: McpConfig,
    /// `[operator]`: `None` while the operator API is off (docs/operator-api.md).
    pub operator: Option<Arc<OperatorConfig>>,
}

/// `[telemetry]`: where traces go, if anywhere (docs/operations.md#traces).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP base URL (`otlp_endpoint`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), without a trailing slash; `None`:
    /// traces are off.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces sampled (0.0..=1.0); a caller's sampled flag wins.
    pub sample_ratio: f64,
    /// `service.name`: `OTEL_SERVICE_NAME`, else `chatgate`.
    pub service_name: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// Base URL others use to reach this gateway (short links), no trailing slash.
    pub public_url: String,
    /// `iss` of login tokens, `aud` of pre-chat assertions.
    pub issuer: String,
    /// Server secret for keyed hashes of codes and PINs (and the reveal key).
    pub pepper: SecretString,
    /// What a connection may cost before it is dropped (hostile clients).
    pub limits: ConnectionLimits,
    /// How long `/readyz` answers 503 on SIGTERM before the server stops accepting.
    pub shutdown_drain: Duration,
    /// How log lines are written (stderr either way).
    pub log_format: LogFormat,
    /// The bearer token `GET /metrics` needs; `None`: public, without
    /// team-labelled series.
    pub metrics_token: Option<SecretString>,
    /// How log lines name a customer.
    pub log_customer_refs: CustomerRefLogging,
}

/// `server.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colour only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[server]` limits on connections and slow clients.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest wait for a complete request head (also bounds idle keep-alive).
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections close after this; `None` = no keep-alive.
    pub keep_alive_timeout: Option<Duration>,
    /// Longest wait for a request body: then 408 `request_timeout`.
    pub body_read_timeout: Duration,
    /// Connections served at once; more are answered 503 `overloaded`.
    pub max_connections: usize,
    /// Connections from one peer address at once; `None` = no such cap.
    pub max_connections_per_ip: Option<usize>,
    /// A connection that cannot write a byte this long is closed.
    pub write_timeout: Duration,
    /// Open event streams per API key, per team, and in all (half of
    /// `max_connections`, at least 1).
    pub max_streams_per_key: usize,
    pub max_streams_per_team: usize,
    pub max_streams: usize,
    /// Waiting calls (docs/operations.md#waiting-calls): MCP
    /// `get_verification` waits per API key, and every waiting call
    /// together (a quarter of `max_connections` at most, at least 1).
    pub max_waits_per_key: usize,
    pub max_waits: usize,
    /// Live MCP sessions per API key.
    pub max_mcp_sessions_per_key: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub redis_url: String,
    /// Redis Cluster seed nodes; when not empty, `redis_url` is unused.
    pub cluster_nodes: Vec<String>,
    pub key_prefix: String,
}

impl StoreConfig {
    /// Where the store is, for people: `memory`, `redis at host:port` or
    /// `redis cluster at host:port, …`; never a password or a path.
    pub fn location(&self) -> String {
        match self.backend {
            StoreBackend::Memory => "memory".to_string(),
            StoreBackend::Redis if !self.cluster_nodes.is_empty() => {
                let nodes: Vec<String> = self
                    .cluster_nodes
                    .iter()
                    .map(|n| redis_location(n))
                    .collect();
                format!("redis cluster at {}", nodes.join(", "))
            }
            StoreBackend::Redis => format!("redis at {}", redis_location(&self.redis_url)),
        }
    }
}

/// Host and port of a Redis URL, without credentials.
fn redis_location(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => u.scheme().to_string(),
        },
        Err(_) => "?".to_string(),
    }
}

impl Config {
    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.get(id).map(Arc::as_ref)
    }

    /// The team in force whose keys are made from `keyspace`
    /// (`store::keys::keyspace`): none for the keyspace of a deleted
    /// team, even when its id was written again since.
    pub fn team_in(&self, keyspace: &str) -> Option<&Arc<Team>> {
        let id = crate::store::keys::team_of(keyspace);
        self.teams.get(id).filter(|t| t.keyspace == keyspace)
    }

    /// The keyspaces of the teams in force (`store::keys::keyspace`): a
    /// team deleted and written again under its id is another keyspace.
    pub fn keyspaces(&self) -> impl Iterator<Item = &String> + Clone {
        self.teams.iter().map(|(_, t)| &t.keyspace)
    }

    /// The teams whose voice calls may go to any country: a
    /// `voice_channel` and empty `otp.voice_regions` (docs/api.md#codes-read-by-a-voice-call),
    /// by id.
    pub fn teams_calling_anywhere(&self) -> Vec<&str> {
        self.teams
            .values()
            .filter(|t| t.voice_channel.is_some() && t.settings.otp.voice_regions.is_empty())
            .map(|t| t.id.as_str())
            .collect()
    }

    /// Whether `channel`'s provider proves who writes in a conversation
    /// (its file's `vouches_for_sender`, by default its kind's): a
    /// conversation there may be recognized, and a code shown there
    /// proves who typed it back (docs/api.md#what-a-code-proves).
    pub fn vouches_for_sender(&self, channel: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|c| c.vouches_for_sender)
    }

    /// Whether a conversation on `channel` is a WhatsApp chat, named by a
    /// number or a business-scoped user id
    /// (docs/channels.md#business-scoped-user-ids).
    pub fn whatsapp_chat(&self, channel: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|c| c.kind.whatsapp_chat())
    }

    /// Whether `channel` sends codes as a WhatsApp authentication template.
    pub fn otp_template(&self, channel: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|c| c.kind.otp_template())
    }

    /// How long a conversation on `channel` of `team` is remembered after
    /// an authentication (docs/api.md#recognized-conversations):
    /// `recognize_for` when the channel vouches for its sender, else
    /// never (`None`).
    pub fn recognize_for(&self, team: &Team, channel: &str) -> Option<std::time::Duration> {
        if !self.vouches_for_sender(channel) {
            return None;
        }
        team.settings_for(channel).recognize_for.enabled()
    }
}
