//! What this process knows of each team's audit trail
//! (docs/audit.md#resets): the highest `seq` it saw and the latest reset
//! recorded, from every head it read from the store and every sink's
//! cursor. A trail found shorter than that, with no reset recorded since,
//! continues with an `audit.trail_reset` entry
//! (docs/decisions/0300-a-reset-of-the-audit-trail-is-recorded.md).
//!
//! In memory only: a process started after a reset knows nothing of the
//! trail before it, and the sinks' cursors are the witnesses left.
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::audit::{seen, Found, Known};

/// By team, what this process knows of its trail.
#[derive(Debug, Default)]
pub struct Witness {
    teams: Mutex<HashMap<String, Known>>,
}

impl Witness {
    /// What is known of `team`'s trail (nothing: seq 0).
    pub fn known(&self, team: &str) -> Known {
        self.lock().get(team).cloned().unwrap_or_default()
    }

    /// `team`'s head as read from the store (`None`: no head).
    pub fn see(&self, team: &str, found: Option<&Found>) {
        let mut teams = self.lock();
        let known = teams.get(team).cloned().unwrap_or_default();
        let now = seen(&known, found);
        if now != known {
            teams.insert(team.to_string(), now);
        }
    }

    /// What a sink's cursor knew of `team`'s trail: the last `seq` it
    /// sent, on the chain of the reset it knew.
    pub fn vouch(&self, team: &str, cursor: &Known) {
        let found = Found {
            seq: cursor.seq,
            reset: cursor.reset.clone().map(|id| (0, id)),
        };
        self.see(team, Some(&found));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.teams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
