//! What this process knows of each team's audit trail
//! (docs/audit.md#resets): the highest `seq` it saw and the latest reset
//! recorded, from every head it read from the store and every sink's
//! cursor. A trail found shorter than that, with no reset recorded since,
//! continues with an `audit.trail_reset` entry
//! (docs/decisions/0300-a-reset-of-the-audit-trail-is-recorded.md).
//!
//! Beside it, the trails this process saw lost with their team's data
//! (its store marker found gone, its record written back): whatever it
//! knew of one, its next entry is that reset's until a chain records it
//! (docs/decisions/0503-a-trail-lost-with-its-team-s-data-is-known-lost.md).
//!
//! In memory only: a process started after a reset knows nothing of the
//! trail before it, and the sinks' cursors are the witnesses left.
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use crate::domain::audit::{loss_unrecorded, seen, Found, Known};

/// By team, what this process knows of its trail.
#[derive(Debug, Default)]
pub struct Witness {
    teams: Mutex<HashMap<String, Known>>,
    /// The teams whose trail this process saw lost, until it sees a
    /// chain that records the reset.
    lost: Mutex<HashSet<String>>,
}

impl Witness {
    /// What is known of `team`'s trail (nothing: seq 0).
    pub fn known(&self, team: &str) -> Known {
        self.lock().get(team).cloned().unwrap_or_default()
    }

    /// `team`'s trail is lost with its data: see [`Witness::lost`].
    pub fn lose(&self, team: &str) {
        let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        lost.insert(team.to_string());
    }

    /// Whether `team`'s trail, seen lost, lacks its reset in the head
    /// `found` (docs/audit.md#resets).
    pub fn lost(&self, team: &str, found: Option<&Found>) -> bool {
        let lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        lost.contains(team) && loss_unrecorded(found)
    }

    /// `team`'s head as read from the store (`None`: no head).
    pub fn see(&self, team: &str, found: Option<&Found>) {
        if !loss_unrecorded(found) {
            let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
            lost.remove(team);
        }
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
