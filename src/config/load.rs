//! Reading and validating the configuration: the system file, then every
//! channel file, then every team file, into one [`Config`].
//!
//! The layers, in order (docs/configuration.md#settings):
//! 1. the serde defaults of each section (documented on the raw structs in
//!    `files.rs`), and the `Default` of [`super::Settings`] for a setting
//!    no layer writes;
//! 2. the TOML files;
//! 3. `CHATGATE_<SECTION>__<KEY>` environment overrides (system file only);
//! 4. `${NAME}` / `${NAME:-default}` references in string values, filled from
//!    the environment, and `${file:PATH}` from files (see `interpolate.rs`).
//!
//! Every problem stops loading with one [`ConfigError`]: one line naming the
//! file, the key and the problem, never a secret value.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::env::Environment;
use super::interpolate::interpolate_table;
use super::resolve::Layer;
use super::toml_file::{display_path, folder_of, read_toml};
use super::{channels, system, teams, Config, ConfigError, RestartOnly};

/// Loads `path` (the system file), its teams and channels, from the files and
/// the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &Environment::from_process())
}

/// [`load`] with an explicit environment (tests, tools): both `${NAME}`
/// references and `CHATGATE_…__…` overrides are read from `env` only.
pub fn load_with_env(path: &Path, env: &Environment) -> Result<Config, ConfigError> {
    load_keeping(path, env, None)
}

/// [`load_with_env`], with `[operator]` as `kept` says rather than as the
/// file now writes it (a reload: `[operator]` changes need a restart, and
/// the teams' and channels' forms are read back under the keys in force).
pub(super) fn load_keeping(
    path: &Path,
    env: &Environment,
    kept: Option<Kept>,
) -> Result<Config, ConfigError> {
    let config = load_sections(path, env, kept)?;
    super::sms_length::check(&config)?;
    super::validate::warn_short_advance_after(&config);
    super::validate::warn_of_calls_anywhere(&config);
    Ok(config)
}

/// [`load_with_env`] without its last check, the SMS length of the texts
/// (docs/configuration.md#sms-length): for `chatgate check-texts`, which
/// prints every length, those over the limit included.
pub fn load_all_but_sms_length(path: &Path, env: &Environment) -> Result<Config, ConfigError> {
    load_sections(path, env, None)
}

/// The error of a system file that is not there: how to name another.
const NO_SYSTEM_FILE: &str = "does not exist: name the system file with `--config PATH` \
     or the CHATGATE_CONFIG variable (the default, config/chatgate.toml, is read from \
     the folder chatgate runs in)";

/// What a reload keeps of the running configuration's system file.
pub(super) type Kept = Option<std::sync::Arc<super::OperatorConfig>>;

fn load_sections(
    path: &Path,
    env: &Environment,
    kept: Option<Kept>,
) -> Result<Config, ConfigError> {
    let file = display_path(path);
    if std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Err(ConfigError::new(&file, "(file)", NO_SYSTEM_FILE));
    }
    let mut table = read_toml(path, &file)?;
    let overrides = env.apply_overrides(&mut table, &file)?;
    let base = folder_of(path);
    interpolate_table(&mut table, env, &base, &file, "").map_err(|e| overrides.annotate(e))?;
    let restart_only = RestartOnly::of(&table);
    let mut system = system::build(table, &file).map_err(|e| overrides.annotate(e))?;
    if let Some(operator) = kept {
        system.operator = operator;
    }

    let secrets = system.operator.as_deref().map(|o| &o.secrets);
    let channels_dir = base.join(&system.channels_dir);
    let (channels, channel_warnings) = load_channels(&channels_dir, &file, env, secrets)?;

    let defaults = Layer {
        file: &file,
        prefix: "defaults".into(),
        table: &system.defaults_table,
    };
    let defaults_print = teams::defaults_print(&system.defaults_table);
    let inherited = teams::Inherited::new(
        defaults,
        &defaults_print,
        &system.defaults,
        secrets.map(teams::ReadBacks::of_file),
        &system.server.public_url,
    );
    let teams_dir = base.join(&system.teams_dir);
    let (teams_by_id, api_keys) = load_teams(&teams_dir, &file, env, &inherited, &channels)?;
    if let Some(operator) = &system.operator {
        teams::check_operator_keys(operator, &api_keys, &file)?;
    }

    // One pass over the teams, whatever the number of channels.
    let used: HashSet<&str> = teams_by_id
        .values()
        .flat_map(|t| t.channels_used())
        .collect();
    for (name, warnings) in channel_warnings {
        if used.contains(name.as_str()) {
            warnings.replay();
        }
    }
    let config = Config {
        path: path.to_path_buf(),
        server: system.server,
        store: system.store,
        defaults: system.defaults,
        defaults_table: system.defaults_table,
        defaults_print,
        key_holders: super::KeyHolders::of_teams(teams_by_id.values()),
        sums: super::TeamSums::of_teams(teams_by_id.values()),
        teams: teams_by_id,
        channels: channels.into(),
        restart_only,
        telemetry: system.telemetry,
        audit: system.audit,
        approvals: system.approvals,
        mcp: system.mcp,
        operator: system.operator,
    };
    check_issuer(&config, &file)?;
    super::validate::check_template_lengths(&config)?;
    super::texts::check_texts(&config, &file)?;
    Ok(config)
}

/// The API keys' digests seen in team files, each with its team and key.
type KeysSeen = HashMap<String, (String, String)>;

/// The team files of `dir`, by id, and the digests of their API keys
/// (each named by its team and key): two files of one id, or one key in
/// two places, is an error.
/// Their warnings about one file each (a `${NAME:-default}` taken, a
/// secret file open to others) are one line per kind, with the count.
fn load_teams(
    dir: &Path,
    file: &str,
    env: &Environment,
    inherited: &teams::Inherited<'_>,
    channels: &BTreeMap<String, super::ChannelConfig>,
) -> Result<(super::Teams, KeysSeen), ConfigError> {
    super::once::gathering(|| read_teams(dir, file, env, inherited, channels))
}

/// [`load_teams`], its warnings said one by one.
fn read_teams(
    dir: &Path,
    file: &str,
    env: &Environment,
    inherited: &teams::Inherited<'_>,
    channels: &BTreeMap<String, super::ChannelConfig>,
) -> Result<(super::Teams, KeysSeen), ConfigError> {
    let mut teams_by_id = super::Teams::new();
    let mut api_keys = HashMap::new();
    let mut audiences = Audiences::new();
    for path in toml_files(dir, file, "server.teams_dir")? {
        let team = teams::load_team(&path, env, inherited, channels)?;
        if let Some(first) = teams_by_id.get(&team.id) {
            return Err(ConfigError::new(
                &display_path(&path),
                "id",
                format!(
                    "team {:?} is already defined in {}",
                    team.id,
                    first.file.display()
                ),
            ));
        }
        teams::check_unique_api_keys(&team, &mut api_keys)?;
        check_unique_mcp_audience(&team, &mut audiences, &display_path(&path))?;
        teams_by_id.insert(team.id.clone(), std::sync::Arc::new(team));
    }
    Ok((teams_by_id, api_keys))
}

/// The teams read so far whose `[mcp] oauth` is written, by its issuer
/// and audience.
type Audiences = HashMap<(String, String), String>;

/// Two teams whose `[mcp] oauth` name one issuer and one audience would
/// each take the other's access tokens: the second is refused
/// (docs/agents.md#oauth-access-tokens). Found in `held`, the pairs of the
/// teams read before, not by going round them.
fn check_unique_mcp_audience(
    team: &super::Team,
    held: &mut Audiences,
    file: &str,
) -> Result<(), ConfigError> {
    let Some(oauth) = &team.mcp_oauth else {
        return Ok(());
    };
    let pair = (oauth.provider.issuer.clone(), oauth.audience.clone());
    match held.get(&pair) {
        Some(other) => Err(ConfigError::new(
            file,
            "mcp.oauth.audience",
            super::mcp_oauth::audience_taken(other).detail,
        )),
        None => {
            held.insert(pair, team.id.clone());
            Ok(())
        }
    }
}

/// Channels by name, each file of `dir` read, and each one's warnings
/// (a `${VAR:-default}` in use), kept until the teams are known: a
/// channel no team uses is not worth a warning.
type Loaded = (
    BTreeMap<String, super::ChannelConfig>,
    Vec<(String, super::Deferred)>,
);

fn load_channels(
    dir: &Path,
    file: &str,
    env: &Environment,
    secrets: Option<&crate::domain::secrets_cipher::SecretsCipher>,
) -> Result<Loaded, ConfigError> {
    let mut channels = BTreeMap::new();
    let mut channel_files: BTreeMap<String, String> = BTreeMap::new();
    let mut channel_warnings = Vec::new();
    for path in toml_files(dir, file, "server.channels_dir")? {
        let (channel, warnings) = super::deferring(|| channels::load_channel(&path, env, secrets));
        let channel = channel?;
        channel_warnings.push((channel.name.clone(), warnings));
        let shown = display_path(&path);
        if let Some(first) = channel_files.insert(channel.name.clone(), shown.clone()) {
            return Err(ConfigError::new(
                &shown,
                "name",
                format!("channel {:?} is already defined in {first}", channel.name),
            ));
        }
        channels.insert(channel.name.clone(), channel);
    }
    Ok((channels, channel_warnings))
}

/// A team id as issuer would make a login token (iss = issuer, aud = team)
/// read as that team's pre-chat assertion (iss = team, aud = issuer).
pub(super) fn check_issuer(config: &Config, file: &str) -> Result<(), ConfigError> {
    match config.teams.get(config.server.issuer.trim()) {
        Some(team) => Err(ConfigError::new(
            file,
            "server.issuer",
            format!(
                "must not be a team id (team {:?} of {}): login tokens and that team's pre-chat assertions would be interchangeable",
                team.id,
                team.file.display()
            ),
        )),
        None => Ok(()),
    }
}

/// The `*.toml` files directly in `dir`, sorted, dot-files skipped.
fn toml_files(dir: &Path, file: &str, key: &str) -> Result<Vec<PathBuf>, ConfigError> {
    let unreadable = |e: std::io::Error| {
        ConfigError::new(
            file,
            key,
            format!("folder {} cannot be read: {e}", display_path(dir)),
        )
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && name.ends_with(".toml") && !name.starts_with('.') {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}
