//! The command line (docs/configuration.md#command-line): `serve`, `check-config`,
//! `check-texts`, `keygen`, `sign`, `whatsapp-template`, `openapi`, `audit verify`,
//! `teams export` and `teams import` (cli/teams.rs).
//! Each command is a small function; the text they print is built by pure
//! functions so it can be tested.
mod audit;
mod teams;

use crate::telemetry::Traces;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::channels::{whatsapp, ChannelKind};
use crate::config::{self, Config, StoreBackend, Team};
use crate::domain::secrets::{
    decode_whsec, generate_api_key, generate_whsec, ApiKeyHash, MIN_KEY_BYTES,
};
use crate::domain::webhook_sig;
use crate::http::DocumentVersion;

/// Self-hosted authentication gateway for conversational messaging.
#[derive(Debug, Parser)]
#[command(name = "chatgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// The system configuration file.
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
        /// The address to listen on, e.g. `127.0.0.1:9090`: `[server]
        /// listen` (and CHATGATE_SERVER__LISTEN) for this run.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Validate everything `serve` would load, print a summary, exit 0 or 1.
    CheckConfig {
        /// The system configuration file.
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
    },
    /// Print the SMS segments of every text that can go through a twilio
    /// channel, one line per channel, language and key; exit 1 when one is
    /// over `locale.max_sms_segments`.
    CheckTexts {
        /// The system configuration file.
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
    },
    /// Print a new secret (and, for an API key, the `[[api_keys]]` block to configure).
    Keygen {
        #[arg(value_enum)]
        kind: KeyKind,
    },
    /// Print Standard Webhooks headers for a body (to test a login page).
    Sign {
        /// The security key (`whsec_…`); may also come from CHATGATE_SIGN_SECRET.
        #[arg(long, env = "CHATGATE_SIGN_SECRET", hide_env_values = true)]
        secret: String,
        /// File holding the exact body bytes (`-` for standard input).
        #[arg(long)]
        body: PathBuf,
        /// `webhook-id` (default `msg_<uuid>`).
        #[arg(long)]
        id: Option<String>,
        /// `webhook-timestamp` in unix seconds (default now).
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Print the JSON that creates a whatsapp channel's authentication
    /// template at Meta (`POST /{waba_id}/message_templates`).
    WhatsappTemplate {
        /// The channel's name (a `whatsapp` channel with `otp_template`).
        #[arg(long)]
        channel: String,
        /// The team whose `otp.ttl` the template follows, when several use
        /// the channel.
        #[arg(long)]
        team: Option<String>,
        /// The system configuration file.
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
    },
    /// The audit trail: `audit verify`.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The teams and channels written through the operator API: `teams
    /// export`, `teams import`, for backups.
    Teams {
        #[command(subcommand)]
        command: TeamsCommand,
    },
    /// Print the OpenAPI document `GET /openapi.json?version=` answers for
    /// this configuration (its server is `server.public_url`).
    Openapi {
        /// `3.1`, or the same API as OpenAPI `3.0` or Swagger `2.0`.
        #[arg(long, default_value = "3.1", value_parser = parse_version)]
        version: DocumentVersion,
        /// The system configuration file.
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check an export's chain (JSON lines, or `GET /v1/audit` answers)
    /// and, with `--head`, its signed head; exit 0 or 1.
    Verify {
        /// The public keys (a JWKS): a file, or an `http(s)://` URL such as
        /// `{public_url}/.well-known/chatgate-audit-keys`.
        #[arg(long)]
        keys: Option<String>,
        /// A `GET /v1/audit/head` answer.
        #[arg(long)]
        head: Option<PathBuf>,
        /// The entries (default: standard input).
        file: Option<PathBuf>,
    },
    /// Print, as JSON lines (`GET /v1/audit`'s entries, for `audit
    /// verify`), the trail the API team last deleted under an id left.
    Export {
        /// The team's id.
        #[arg(long)]
        team: String,
        /// The trail of the team deleted under that id (the only trail
        /// this command prints: a team in force answers `GET /v1/audit`).
        #[arg(long, required = true)]
        deleted: bool,
        /// The system configuration file (its store).
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Print every team and channel written through the operator API as
    /// the store keeps it: JSON, secrets sealed.
    Export {
        /// The system configuration file.
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
    },
    /// Write back what `teams export` printed; an id the store holds is
    /// refused (nothing is written) unless `--replace`.
    Import {
        /// What `teams export` printed.
        file: PathBuf,
        /// Write over the teams and channels the store holds.
        #[arg(long)]
        replace: bool,
        /// The system configuration file.
        #[arg(long, env = "CHATGATE_CONFIG", default_value = "config/chatgate.toml")]
        config: PathBuf,
    },
}

fn parse_version(s: &str) -> Result<DocumentVersion, String> {
    DocumentVersion::parse(s).ok_or_else(|| format!("{s:?} is not one of 3.1, 3.0 and 2.0"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// A team security key (`whsec_…`).
    SecurityKey,
    /// A webhook signing secret (`whsec_…`).
    WebhookSecret,
    /// An API key, and a whole `[[api_keys]]` block for a team file.
    ApiKey,
    /// An Ed25519 private key (PKCS#8 PEM) for `[audit] signing_key`.
    AuditSigningKey,
    /// An Ed25519 private key (PKCS#8 PEM) for `[approvals] signing_key`.
    ApprovalSigningKey,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config, listen } => {
            if let Some(listen) = listen {
                // Before any thread starts: `--listen` is the override
                // variable, so a reload (SIGHUP) keeps it too.
                std::env::set_var("CHATGATE_SERVER__LISTEN", listen);
            }
            serve(&config)
        }
        Command::CheckConfig { config } => check_config(&config),
        Command::CheckTexts { config } => check_texts(&config),
        Command::Keygen { kind } => {
            print!("{}", keygen(kind));
            ExitCode::SUCCESS
        }
        Command::Sign {
            secret,
            body,
            id,
            timestamp,
        } => sign(&secret, &body, id, timestamp),
        Command::WhatsappTemplate {
            channel,
            team,
            config,
        } => whatsapp_template(&config, &channel, team.as_deref()),
        Command::Openapi { version, config } => openapi(&config, version),
        Command::Audit {
            command: AuditCommand::Verify { keys, head, file },
        } => audit_verify(keys.as_deref(), head.as_deref(), file.as_deref()),
        Command::Audit {
            command: AuditCommand::Export { team, config, .. },
        } => audit_export(&config, &team),
        Command::Teams { command } => api_teams(command),
    }
}

/// `teams export` and `teams import`.
fn api_teams(command: TeamsCommand) -> ExitCode {
    let path = match &command {
        TeamsCommand::Export { config } | TeamsCommand::Import { config, .. } => config,
    };
    let config = match load_warning_to_stderr(path) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    teams::said(match command {
        TeamsCommand::Export { .. } => teams::export(config),
        TeamsCommand::Import { file, replace, .. } => teams::import(config, &file, replace),
    })
}

fn audit_verify(keys: Option<&str>, head: Option<&Path>, file: Option<&Path>) -> ExitCode {
    let read =
        |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let input = match file {
        Some(path) => read(path),
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map(|_| text)
                .map_err(|e| format!("standard input: {e}"))
        }
    };
    let head = head.map(read).transpose();
    let keys = keys.map(read_keys).transpose();
    let checked = match (input, head, keys) {
        (Ok(input), Ok(head), Ok(keys)) => audit::verify(&input, head.as_deref(), keys.as_deref()),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
    };
    match checked {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(line) => fail(&line),
    }
}

/// Prints the trail the API team last deleted under `team` left, one
/// entry a line; exit 1 when there is none, or the store cannot be read.
fn audit_export(path: &Path, team: &str) -> ExitCode {
    let config = match load_warning_to_stderr(path) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    match audit::export_deleted(&config, team) {
        Ok(entries) => {
            let mut out = std::io::stdout().lock();
            for entry in entries {
                if writeln!(out, "{entry}").is_err() {
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(line) => fail(&line),
    }
}

/// The JWKS at `source`: a file, or fetched from an `http(s)://` URL.
fn read_keys(source: &str) -> Result<String, String> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("keys: {e}"))?;
    runtime.block_on(async {
        let answer = reqwest::Client::new()
            .get(source)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("keys: {source}: {e}"))?;
        answer
            .text()
            .await
            .map_err(|e| format!("keys: {source}: {e}"))
    })
}

fn openapi(path: &Path, version: DocumentVersion) -> ExitCode {
    match load_warning_to_stderr(path) {
        Ok(config) => {
            println!("{}", crate::http::openapi_document(&config, version));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn serve(path: &Path) -> ExitCode {
    // The log format is in the config: lines raised while loading it (a
    // `${VAR:-default}` in use) are kept and written once it is known (in
    // text when the config is broken, before its one-line error).
    let (loaded, deferred) = crate::telemetry::deferring(|| config::load(path));
    let format = loaded
        .as_ref()
        .map_or(config::LogFormat::Text, |c| c.server.log_format);
    let traces = match loaded.as_ref().map(|c| Traces::start(&c.telemetry)) {
        Ok(Ok(traces)) => traces,
        Ok(Err(e)) => {
            crate::telemetry::init(format);
            deferred.replay();
            return fail(&e.to_string());
        }
        Err(_) => None,
    };
    crate::telemetry::init_traced(format, traces.as_ref());
    deferred.replay();
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let served = runtime.block_on(crate::app::run(config));
    // What is still queued goes to the collector (bounded by its time-out).
    if let Some(traces) = traces {
        traces.shutdown();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("chatgate: {e}")),
    }
}

fn check_config(path: &Path) -> ExitCode {
    match load_warning_to_stderr(path) {
        Ok(config) => {
            print!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn check_texts(path: &Path) -> ExitCode {
    let env = config::Environment::from_process();
    match warnings_to_stderr(|| config::load_all_but_sms_length(path, &env)) {
        Ok(config) => {
            let rows = config::text_rows(&config);
            print!("{}", texts_table(&rows));
            let over: Vec<&config::TextRow> = rows.iter().filter(|r| r.over).collect();
            for r in &over {
                eprintln!(
                    "{} {} {}: {} segments, over locale.max_sms_segments",
                    r.channel, r.tag, r.key, r.segments
                );
            }
            match over.is_empty() {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// What `check-texts` prints: `CHANNEL TAG KEY ENCODING SEGMENTS`, one
/// line per row.
pub fn texts_table(rows: &[config::TextRow]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}\n",
                r.channel, r.tag, r.key, r.encoding, r.segments
            )
        })
        .collect()
}

/// Loads the configuration; its warnings go to stderr, so stdout holds
/// only what the command prints.
fn load_warning_to_stderr(path: &Path) -> Result<Config, config::ConfigError> {
    warnings_to_stderr(|| config::load(path))
}

/// Runs `load` with its log lines written to stderr.
fn warnings_to_stderr<T>(load: impl FnOnce() -> T) -> T {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, load)
}

fn whatsapp_template(path: &Path, channel: &str, team: Option<&str>) -> ExitCode {
    let config = match load_warning_to_stderr(path) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    match template_body(&config, channel, team) {
        Ok(body) => {
            println!("{body:#}");
            ExitCode::SUCCESS
        }
        Err(line) => fail(&line),
    }
}

/// What `whatsapp-template` prints: the body that creates `channel`'s
/// authentication template at Meta, its lifetime the `otp.ttl` of the team
/// that uses the channel (`team` chooses when several do), or the one line
/// that says why there is none (docs/channels.md#authentication-templates).
pub fn template_body(
    config: &Config,
    channel: &str,
    team: Option<&str>,
) -> Result<serde_json::Value, String> {
    let Some(cfg) = config.channels.get(channel) else {
        let names = join(config.channels.keys().cloned());
        return Err(format!("no channel {channel:?} (channels: {names})"));
    };
    let ChannelKind::Whatsapp(keys) = &cfg.kind else {
        return Err(format!(
            "channel {channel:?} is of kind {}: only a whatsapp channel has an authentication template",
            cfg.kind.name()
        ));
    };
    let Some(name) = &keys.otp_template else {
        return Err(format!(
            "channel {channel:?} has no otp_template (in {})",
            cfg.file.display()
        ));
    };
    let users: Vec<&Team> = config
        .teams
        .values()
        .map(AsRef::as_ref)
        .filter(|t: &&Team| t.uses_channel(channel))
        .collect();
    let team = match (team, users.as_slice()) {
        (Some(id), _) => match users.iter().find(|t| t.id == id) {
            Some(t) => *t,
            None if config.teams.contains_key(id) => {
                return Err(format!("team {id:?} does not use channel {channel:?}"))
            }
            None => return Err(format!("no team {id:?}")),
        },
        (None, []) => return Err(format!("no team uses channel {channel:?}")),
        (None, [one]) => *one,
        (None, several) => {
            let ids = join(several.iter().map(|t| t.id.clone()));
            return Err(format!(
                "channel {channel:?} is used by teams {ids}: choose one with --team"
            ));
        }
    };
    let ttl = team.otp_ttl_through(channel);
    let body = |code: &str| whatsapp::authentication_template(name, code, ttl);
    if keys.otp_template_languages.is_empty() {
        return Ok(body(&keys.otp_template_language));
    }
    // One body per distinct language code (docs/api.md#languages).
    let mut codes = vec![keys.otp_template_language.as_str()];
    for code in keys.otp_template_languages.values() {
        if !codes.contains(&code.as_str()) {
            codes.push(code);
        }
    }
    Ok(serde_json::Value::Array(
        codes.into_iter().map(body).collect(),
    ))
}

fn sign(secret: &str, body: &Path, id: Option<String>, timestamp: Option<i64>) -> ExitCode {
    let key = match decode_whsec(secret) {
        Ok(k) => k,
        Err(p) => return fail(&format!("--secret: {p}")),
    };
    if key.len() < MIN_KEY_BYTES {
        eprintln!("note: this secret is shorter than {MIN_KEY_BYTES} bytes; chatgate refuses such keys in its configuration");
    }
    let bytes = if body.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(body)
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return fail(&format!("{}: cannot be read: {e}", body.display())),
    };
    let id = id.unwrap_or_else(|| format!("msg_{}", uuid::Uuid::now_v7()));
    let timestamp = timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp());
    print!("{}", sign_headers(&key, &id, timestamp, &bytes));
    ExitCode::SUCCESS
}

fn fail(line: &str) -> ExitCode {
    eprintln!("{line}");
    ExitCode::FAILURE
}

/// What `keygen` prints: the secret, and for an API key its `sha256` line.
pub fn keygen(kind: KeyKind) -> String {
    match kind {
        KeyKind::SecurityKey | KeyKind::WebhookSecret => format!("{}\n", generate_whsec()),
        KeyKind::ApiKey => api_key_block(&generate_api_key()),
        // Encoding 32 random bytes as PKCS#8 cannot fail.
        KeyKind::AuditSigningKey | KeyKind::ApprovalSigningKey => {
            crate::domain::audit_keys::new_signing_key_pem().unwrap_or_default()
        }
    }
}

/// What `keygen api-key` prints for `key`: the key, then a whole
/// `[[api_keys]]` block to paste into a team file, which holds only its
/// digest (docs/configuration.md#command-line).
pub fn api_key_block(key: &str) -> String {
    let hash = ApiKeyHash::of_key(key).to_hex();
    let id = format!("key-{}", &hash[..8]);
    format!(
        "{key}\n\n\
         # Give the key above to its caller; paste this block into the team's file\n\
         # (config/teams/<team>.toml), with the role it needs: bot, agent, admin or auditor.\n\
         [[api_keys]]\n\
         id = \"{id}\"\n\
         role = \"bot\"\n\
         sha256 = \"{hash}\"\n"
    )
}

/// The three Standard Webhooks headers, one per line.
pub fn sign_headers(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let signature = webhook_sig::sign(key, id, timestamp, body);
    format!("webhook-id: {id}\nwebhook-timestamp: {timestamp}\nwebhook-signature: {signature}\n")
}

/// The `check-config` summary. Names, ids and roles only: never a secret or hash.
pub fn summary(config: &Config) -> String {
    let mut out = format!("config: {} is valid\n", config.path.display());
    out += &format!("listen: {}\n", config.server.listen);
    out += &format!("public_url: {}\n", config.server.public_url);
    out += &match config.store.backend {
        StoreBackend::Memory => "store: memory\n".to_string(),
        StoreBackend::Redis => format!(
            "store: {} (key prefix {:?})\n",
            config.store.location(),
            config.store.key_prefix
        ),
    };
    out += &format!(
        "channels: {}\n",
        join(
            config
                .channels
                .values()
                .map(|c| format!("{} ({})", c.name, c.kind.name()))
        )
    );
    out += &format!("teams: {}\n", config.teams.len());
    for team in config.teams.values() {
        out += &format!("team {}:\n", team.id);
        out += &format!("  channels: {}\n", join(team.channels.iter().cloned()));
        if let Some(sms) = &team.sms_channel {
            out += &format!("  sms_channel: {sms}\n");
        }
        if let Some(email) = &team.email_channel {
            out += &format!("  email_channel: {email}\n");
        }
        let kids = team.security_keys.iter().map(|k| {
            if k.primary {
                format!("{} (primary)", k.kid)
            } else {
                k.kid.clone()
            }
        });
        out += &format!("  security keys: {}\n", join(kids));
        out += &format!(
            "  api keys: {}\n",
            join(
                team.api_keys
                    .iter()
                    .map(|k| format!("{} ({})", k.id, k.role.as_str()))
            )
        );
        if let Some(d) = &team.dialogflow {
            out += &format!("  dialogflow: channel {}\n", d.channel);
        }
        if let Some(w) = &team.webhook {
            out += &format!("  event webhook: {}\n", w.url.host_str().unwrap_or("?"));
        }
        if let Some(o) = &team.oidc {
            out += &format!(
                "  identity provider: {} (client {}; customer from {})\n",
                o.issuer, o.client_id, o.customer_claim
            );
        }
    }
    out
}

fn join(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    if all.is_empty() {
        "none".to_string()
    } else {
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    use super::*;

    #[test]
    fn sign_matches_the_standard_webhooks_vector() {
        let key = decode_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let out = sign_headers(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            out,
            "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\n\
             webhook-timestamp: 1614265330\n\
             webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n"
        );
    }

    #[test]
    fn decode_whsec_refuses_bad_input_without_repeating_it() {
        assert!(decode_whsec("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        let e = decode_whsec("whsec_not*base64secret").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert!(decode_whsec("whsec_").is_err());
    }

    #[test]
    fn keygen_prints_usable_secrets() {
        for kind in [KeyKind::SecurityKey, KeyKind::WebhookSecret] {
            let out = keygen(kind);
            assert_eq!(out.lines().count(), 1);
            assert!(crate::domain::secrets::parse_whsec(out.trim()).is_ok());
        }
        for kind in [KeyKind::AuditSigningKey, KeyKind::ApprovalSigningKey] {
            let pem = keygen(kind);
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
            let keys = crate::domain::audit_keys::SigningKeys::from_pem(&pem, &[]).unwrap();
            assert_eq!(keys.jwks().keys.len(), 1);
        }
        // The key, then a whole `[[api_keys]]` block that a team file reads.
        let out = keygen(KeyKind::ApiKey);
        let key = out.lines().next().unwrap();
        assert!(key.starts_with("cg_"), "{out}");
        let block = out.split_once("[[api_keys]]").unwrap().1;
        let table: toml::Table = format!("[[api_keys]]{block}").parse().unwrap();
        let entry = &table["api_keys"][0];
        assert_eq!(entry["role"].as_str(), Some("bot"), "{out}");
        assert!(entry["id"].as_str().unwrap().starts_with("key-"), "{out}");
        assert_eq!(
            entry["sha256"].as_str(),
            Some(ApiKeyHash::of_key(key).to_hex().as_str())
        );
    }

    /// The signing keys keygen prints are RFC 8410's PKCS#8 v1 form
    /// (checked byte by byte, always), which the gateway's loader reads,
    /// and so do `openssl pkey` and Python's `cryptography` where they
    /// are installed (each says so when it is not).
    #[test]
    fn keygen_signing_keys_are_pkcs8_v1_that_openssl_reads() {
        for (kind, name) in [
            (KeyKind::AuditSigningKey, "audit-signing-key"),
            (KeyKind::ApprovalSigningKey, "approval-signing-key"),
        ] {
            let cli = Cli::try_parse_from(["chatgate", "keygen", name]).unwrap();
            assert!(matches!(cli.command, Command::Keygen { kind: k } if k == kind));
            let pem = keygen(kind);
            crate::domain::audit_keys::tests::assert_v1(&pem);
            assert!(crate::domain::audit_keys::SigningKeys::from_pem(&pem, &[]).is_ok());
            let dir =
                std::env::temp_dir().join(format!("chatgate-keygen-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("key.pem");
            std::fs::write(&file, &pem).unwrap();
            match std::process::Command::new("openssl")
                .args(["pkey", "-noout", "-in"])
                .arg(&file)
                .output()
            {
                Ok(out) => assert!(
                    out.status.success(),
                    "openssl pkey refused the {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("SKIPPED: openssl pkey ({e})"),
            }
            let script = "import sys\n\
                try:\n    from cryptography.hazmat.primitives.serialization import load_pem_private_key\n\
                except ImportError:\n    sys.exit(3)\n\
                load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n";
            match std::process::Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(&file)
                .output()
            {
                Ok(out) if out.status.code() == Some(3) => {
                    eprintln!("SKIPPED: Python's cryptography is not installed")
                }
                Ok(out) => assert!(
                    out.status.success(),
                    "cryptography refused the {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("SKIPPED: python3 ({e})"),
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn samples_load_without_environment_and_summary_hides_secrets() {
        let env = config::Environment::from_pairs(Vec::<(String, String)>::new());
        let config = config::load_with_env(Path::new("config/chatgate.toml"), &env).unwrap();
        let out = summary(&config);
        assert!(
            out.contains("team acme:") && out.contains("acme-admin (admin)"),
            "{out}"
        );
        assert!(out.contains("security keys: 2026-11 (primary)"), "{out}");
        for team in config.teams.values() {
            for key in &team.api_keys {
                assert!(!out.contains(&key.sha256.to_hex()));
            }
            for key in &team.security_keys {
                assert!(!out.contains(&B64.encode(key.secret.expose())));
            }
        }
        assert!(!out.contains("demo-pepper"));
    }

    #[test]
    fn summary_names_cluster_nodes_without_their_passwords() {
        let env = config::Environment::from_pairs([
            ("CHATGATE_STORE__BACKEND", "redis"),
            (
                "CHATGATE_STORE__CLUSTER_NODES",
                r#"["redis://:pw-s3cret@10.0.0.1:7000", "redis://10.0.0.2:7001"]"#,
            ),
        ]);
        let config = config::load_with_env(Path::new("config/chatgate.toml"), &env).unwrap();
        let out = summary(&config);
        assert!(
            out.contains("store: redis cluster at 10.0.0.1:7000, 10.0.0.2:7001"),
            "{out}"
        );
        assert!(!out.contains("s3cret"), "{out}");
    }

    #[test]
    fn command_line_parses() {
        let cli = Cli::try_parse_from([
            "chatgate",
            "sign",
            "--secret",
            "whsec_x",
            "--body",
            "b.json",
            "--timestamp",
            "5",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Sign {
                timestamp: Some(5),
                id: None,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["chatgate", "keygen", "api-key"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Keygen {
                kind: KeyKind::ApiKey
            }
        ));
        let cli = Cli::try_parse_from(["chatgate", "check-config", "--config", "x.toml"]).unwrap();
        assert!(
            matches!(cli.command, Command::CheckConfig { config } if config == Path::new("x.toml"))
        );
        assert!(Cli::try_parse_from(["chatgate", "keygen", "nonsense"]).is_err());
        let cli =
            Cli::try_parse_from(["chatgate", "whatsapp-template", "--channel", "wa"]).unwrap();
        assert!(
            matches!(cli.command, Command::WhatsappTemplate { channel, team: None, .. } if channel == "wa")
        );
        let cli = Cli::try_parse_from([
            "chatgate",
            "whatsapp-template",
            "--channel",
            "wa",
            "--team",
            "acme",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::WhatsappTemplate { team: Some(t), .. } if t == "acme")
        );
        assert!(Cli::try_parse_from(["chatgate", "whatsapp-template"]).is_err());
        let cli = Cli::try_parse_from(["chatgate", "openapi"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Openapi {
                version: DocumentVersion::V3_1,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["chatgate", "openapi", "--version", "2.0"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Openapi {
                version: DocumentVersion::V2_0,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["chatgate", "openapi", "--version", "3.2"]).is_err());
    }
}
