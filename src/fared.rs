//! How each destination a process calls fares, for logs that can be read
//! (docs/operations.md#logs): one warning when it starts failing, one line
//! when it answers again with how many attempts failed meanwhile, not a
//! line per attempt. Shared by the identity providers' polls
//! (`oidc::provider`) and the channels' sends (`channels`).
use std::collections::HashMap;
use std::sync::Mutex;

use crate::time::Timestamp;

/// What an attempt's outcome means for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fared {
    /// It failed, and had not been failing: warn.
    StartedFailing,
    /// It failed again: say nothing more.
    StillFailing,
    /// It answered after failing since `since`, `failed` attempts.
    Recovered { since: Timestamp, failed: u64 },
    /// It answered, as before.
    Fine,
}

/// The destinations that fail, by name: since when, and how many attempts
/// failed.
#[derive(Default)]
pub struct Failing {
    by_name: Mutex<HashMap<String, (Timestamp, u64)>>,
}

impl Failing {
    /// Notes that an attempt on destination `name` failed (`failed`) or
    /// was answered at `now`: what to log.
    pub fn fared(&self, name: &str, failed: bool, now: Timestamp) -> Fared {
        let mut failing = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        match (failed, failing.get_mut(name)) {
            (true, Some((_, n))) => {
                *n += 1;
                Fared::StillFailing
            }
            (true, None) => {
                failing.insert(name.to_string(), (now, 1));
                Fared::StartedFailing
            }
            (false, Some(_)) => {
                let (since, failed) = failing.remove(name).unwrap_or((now, 0));
                Fared::Recovered { since, failed }
            }
            (false, None) => Fared::Fine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_destination_is_told_once_and_its_recovery_once() {
        let f = Failing::default();
        let at = |s: i64| Timestamp::from_unix_seconds(1_800_000_000 + s);
        assert_eq!(f.fared("a", false, at(0)), Fared::Fine);
        assert_eq!(f.fared("a", true, at(1)), Fared::StartedFailing);
        assert_eq!(f.fared("a", true, at(2)), Fared::StillFailing);
        assert_eq!(
            f.fared("b", true, at(2)),
            Fared::StartedFailing,
            "each apart"
        );
        assert_eq!(
            f.fared("a", false, at(4)),
            Fared::Recovered {
                since: at(1),
                failed: 2
            }
        );
        assert_eq!(f.fared("a", false, at(5)), Fared::Fine);
    }
}
