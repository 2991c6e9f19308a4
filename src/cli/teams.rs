//! `chatgate teams export` and `chatgate teams import`
//! (docs/operations.md#backing-up-the-api-teams): every team and channel
//! written through the operator API as the store keeps it, sealed (only a
//! gateway holding the same `secrets_keys` opens it), printed as JSON, and
//! written back from it.
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::gateway::operator::look::Held;
use crate::gateway::operator::restore as operator_restore;
use crate::time::{Clock, SystemClock};

/// Runs `work` on a core of `config` on its store, in a runtime of its own.
fn on_store<T>(
    config: Config,
    work: impl AsyncFnOnce(&crate::gateway::Core) -> Result<T, String>,
) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    runtime.block_on(async {
        let core = crate::app::core_for_command(config)
            .await
            .map_err(|e| format!("cannot reach the store: {e}"))?;
        work(&core).await
    })
}

/// The API teams and channels of the store `config` names, as JSON.
pub fn export(config: Config) -> Result<String, String> {
    let held = on_store(config, async |core| {
        (operator_restore::export(core).await).map_err(|e| format!("cannot read the store: {e}"))
    })?;
    serde_json::to_string_pretty(&held).map_err(|e| e.to_string())
}

/// `file` (what `export` printed) written into the store `config` names:
/// the line to print, or why nothing (or not all) was written.
pub fn import(config: Config, file: &Path, replace: bool) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let held: Held = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not what `teams export` prints: {e}", file.display()))?;
    let now = SystemClock.now();
    let written = on_store(config, async |core| {
        let written = operator_restore::import(core, &held, replace, now).await;
        written.map_err(|e| format!("cannot write to the store: {e}"))
    })?;
    match written {
        Ok(restored) => {
            if !restored.moved.is_empty() {
                eprintln!("{}", moved_said(&restored.moved));
            }
            let kept = crate::gateway::operator::KEPT.iter();
            let kept = kept.map(|k| format!(" and {} {}", held.of(k).count(), k.exported_as));
            let kept: String = kept.collect();
            Ok(format!("imported {} teams{kept}", held.teams.len()))
        }
        Err(refused) => Err(format!(
            "nothing imported: {} (the store holds each already unless a file's is named; --replace writes over what the store holds)",
            refused.join(", ")
        )),
    }
}

/// The line saying that an import gave `moved` another `ETag` than its
/// file says (docs/operations.md#backing-up-the-api-teams).
pub fn moved_said(moved: &[String]) -> String {
    format!(
        "a new ETag for {}: the file's digest is not the one its body makes here (an export of an earlier version, a digest edited, or another first key of secrets_keys); If-Match with an ETag of before is refused",
        moved.join(", ")
    )
}

/// Prints what `result` says: the line on stdout (exit 0) or the error on
/// stderr (exit 1).
pub fn said(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}
