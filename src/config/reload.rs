//! Reading the configuration again while running (on SIGHUP): the team
//! files, the channel files, `[defaults]` and the secret files they name,
//! as one new set (docs/operations.md#reloading-the-configuration).
//!
//! `${NAME}` references keep their start-up values: the loader reads the
//! environment captured at start, never the process's current one. The
//! sections only a restart applies (`[server]`, `[store]`, …) keep their
//! running values; the keys of them that changed are named so the operator
//! is told.
use super::env::Environment;
use super::load::{check_issuer, load_keeping};
use super::toml_file::display_path;
use super::{Config, ConfigError};

/// A new set, ready to be put in force.
#[derive(Debug)]
pub struct Reload {
    pub config: Config,
    /// Keys of the system file whose change needs a restart (not applied).
    pub restart_needed: Vec<String>,
}

/// Loads the files `running` was loaded from into a whole new set with
/// `running`'s restart-only sections, or the first problem (nothing of the
/// new set applies then).
pub fn reload(running: &Config, start_env: &Environment) -> Result<Reload, ConfigError> {
    let kept = Some(running.operator.clone());
    let mut config = load_keeping(&running.path, start_env, kept)?;
    let restart_needed = running.restart_only.changed_in(&config.restart_only);
    config.server = running.server.clone();
    config.store = running.store.clone();
    config.restart_only = running.restart_only.clone();
    // The issuer in force must still be no team's id.
    check_issuer(&config, &display_path(&running.path))?;
    Ok(Reload {
        config,
        restart_needed,
    })
}
