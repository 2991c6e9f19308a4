//! Reading and validating the configuration files. (Implementation pending.)
use std::path::Path;

use super::Config;

/// A configuration problem: one line naming the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

/// Loads `path` (the system file), its teams and channels, from the files and
/// the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    Err(ConfigError {
        file: path.display().to_string(),
        key: "-".into(),
        problem: "todo".into(),
    })
}
