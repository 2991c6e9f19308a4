//! Start-up warnings, each logged once per process
//! (docs/operations.md#logs): a reload reads the files again and meets
//! the same findings, and says none of them again. Every such warning goes
//! through [`warn_once`], named by its [`StartupWarning`] and, for a
//! warning about one thing, by that thing
//! (docs/decisions/0340-start-up-warnings-once-per-process.md).
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
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

/// How many things a gathered warning's line names ([`gathering`]).
const NAMED: usize = 3;

/// A warning about one thing met while [`gathering`]: its text, and the
/// thing.
type Met = (&'static str, String);

thread_local! {
    /// The warnings [`gathering`] keeps, by kind.
    static GATHERED: RefCell<Option<BTreeMap<StartupWarning, Vec<Met>>>> =
        const { RefCell::new(None) };
}

/// Runs `load` (the team files read, on this thread), keeping each
/// warning about one thing that [`warn_or_gather`] meets, then logs one
/// line per kind: its text, how many things, and the first few
/// (docs/operations.md#logs): 10,000 team files that meet one warning
/// each are one line, not 10,000.
pub fn gathering<T>(load: impl FnOnce() -> T) -> T {
    let outer = GATHERED.with(|g| g.borrow_mut().replace(BTreeMap::new()));
    let out = load();
    let gathered = GATHERED.with(|g| std::mem::replace(&mut *g.borrow_mut(), outer));
    for (kind, met) in gathered.unwrap_or_default() {
        let Some((text, _)) = met.first() else {
            continue;
        };
        let first: Vec<&str> = met.iter().take(NAMED).map(|(_, t)| t.as_str()).collect();
        let first = first.join("; ");
        tracing::warn!(warning = ?kind, count = met.len(), first = %first, "{text}");
    }
    out
}

/// [`warn_once`] of a warning about `subject`, said in `text`: kept for
/// its kind's one line while [`gathering`], else `warn` logs it.
pub fn warn_or_gather(
    kind: StartupWarning,
    subject: &str,
    text: &'static str,
    warn: impl FnOnce(),
) {
    warn_once(kind, subject, || {
        let kept = GATHERED.with(|g| match g.borrow_mut().as_mut() {
            Some(gathered) => {
                let met = gathered.entry(kind).or_default();
                met.push((text, subject.to_string()));
                true
            }
            None => false,
        });
        if !kept {
            warn();
        }
    });
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

    #[test]
    fn warnings_met_while_gathering_are_one_line_per_kind_with_the_count() {
        let ((), kept) = crate::config::deferring(|| {
            gathering(|| {
                for n in 0..50 {
                    let subject = format!("gather-test-{n}");
                    warn_or_gather(StartupWarning::DemoDefault, &subject, "a default", || {
                        panic!("logged one by one")
                    });
                }
                // Met before: said no more.
                warn_or_gather(
                    StartupWarning::DemoDefault,
                    "gather-test-0",
                    "a default",
                    || panic!("said twice"),
                );
            })
        });
        let lines = kept.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("a default"), "{lines:?}");
        assert!(lines[0].contains("count=50"), "{lines:?}");
        assert!(
            lines[0].contains("gather-test-0; gather-test-1; gather-test-2")
                && !lines[0].contains("gather-test-3"),
            "{lines:?}"
        );
    }
}
