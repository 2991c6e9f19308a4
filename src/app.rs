//! Building and serving the app. (Implementation pending.)
use crate::config::Config;

/// Runs the gateway until Ctrl-C / SIGTERM.
pub async fn run(_config: Config) -> std::io::Result<()> {
    Ok(())
}
