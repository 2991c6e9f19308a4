//! Start-up warnings, each logged once per process
//! (docs/operations.md#logs): a reload reads the files again and meets
//! the same findings, and says none of them again. Every such warning goes
//! through [`warn_once`], named by its [`StartupWarning`] and, for a
//! warning about one thing, by that thing
//! (docs/decisions/0340-start-up-warnings-once-per-process.md).
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// The start-up warnings: what the configuration or the start finds worth
/// saying, that is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StartupWarning {
    /// A `${NAME:-default}` took its default (a demo value): one per
    /// variable, file and key.
    DemoDefault,
    /// A `${file:PATH}` secret its group or others may read: one per file.
    SecretFileOpen,
    /// A team's `otp.advance_after` shorter than a ladder step's takeover:
    /// one line for every team, once.
    ShortAdvanceAfter,
    /// A team's `voice_channel` without `otp.voice_regions`: one line for
    /// every team, once.
    CallsAnywhere,
    /// `store.backend = "memory"`: the audit trail lives as long as the
    /// process.
    MemoryStore,
}

/// Runs `warn` (which logs the warning) the first time this process meets
/// `kind` about `subject` (`""` for a warning about the teams as a whole,
/// said once whatever a reload changes); never again after.
pub fn warn_once(kind: StartupWarning, subject: &str, warn: impl FnOnce()) {
    static WARNED: Mutex<BTreeSet<(StartupWarning, String)>> = Mutex::new(BTreeSet::new());
    let first = WARNED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((kind, subject.to_string()));
    if first {
        warn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_warning_is_said_once_per_kind_and_subject() {
        let mut said = Vec::new();
        for subject in ["once-test-a", "once-test-a", "once-test-b"] {
            warn_once(StartupWarning::SecretFileOpen, subject, || {
                said.push(subject)
            });
        }
        warn_once(StartupWarning::DemoDefault, "once-test-a", || {
            said.push("demo")
        });
        assert_eq!(said, ["once-test-a", "once-test-b", "demo"]);
    }
}
