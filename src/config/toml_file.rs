//! The leaf every configuration module imports: [`ConfigError`], the one
//! line each problem becomes, and reading one TOML file into a table with
//! its path as the user wrote it. Imports nothing from `config`.
use std::path::{Component, Path, PathBuf};

/// A configuration problem: one line naming the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(file: &str, key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Reads and parses one TOML file. Syntax errors name the line and column;
/// they never quote the file's text (it may hold a secret).
pub(super) fn read_toml(path: &Path, file: &str) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file, "(file)", format!("cannot be read: {e}")))?;
    text.parse::<toml::Table>().map_err(|e| {
        let key = match e.span() {
            Some(span) => {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
                format!("line {line}, column {col}")
            }
            None => "(file)".to_string(),
        };
        let message = e.message().lines().collect::<Vec<_>>().join("; ");
        ConfigError::new(file, key, format!("invalid TOML: {message}"))
    })
}

/// When the file at `path` was last modified, if the system says.
pub(super) fn modified_at(path: &Path) -> Option<crate::time::Timestamp> {
    let since = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    i64::try_from(since.as_millis())
        .ok()
        .map(crate::time::Timestamp::from_unix_millis)
}

/// `path` with `.` and `name/..` removed, for messages ("config/../channels"
/// reads as "channels").
pub(super) fn display_path(path: &Path) -> String {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    let joined: PathBuf = out.iter().collect();
    if joined.as_os_str().is_empty() {
        ".".to_string()
    } else {
        joined.display().to_string()
    }
}

/// The folder `path` is in (`.` for a bare file name): what the paths a
/// file writes are relative to.
pub(super) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_path_folds_parent_components() {
        assert_eq!(
            display_path(Path::new("config/../channels/sms.toml")),
            "channels/sms.toml"
        );
        assert_eq!(
            display_path(Path::new("./config/chatgate.toml")),
            "config/chatgate.toml"
        );
        assert_eq!(display_path(Path::new("../x.toml")), "../x.toml");
        assert_eq!(
            display_path(Path::new("/etc/cg/../cg2/a.toml")),
            "/etc/cg2/a.toml"
        );
    }

    #[test]
    fn error_is_one_line_file_key_problem() {
        let e = ConfigError::new(
            "config/chatgate.toml",
            "server.listen",
            "is not a socket address",
        );
        assert_eq!(
            e.to_string(),
            "config/chatgate.toml: server.listen: is not a socket address"
        );
    }
}
