//! What this process knows of each team's store marker: whether the store
//! was found reset; and the writes of the markers, the store's own keys
//! (a team's, and each node's, which no team owns). What a marker says,
//! its checks and what a reset refuses are the `store_epoch` family's.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::records::put_versioned;
use super::Core;
use crate::error::Result;
use crate::store::{Commit, Op};
use crate::time::Timestamp;

/// Writes `marker` under `key` over version `expected` (0: absent),
/// living `ttl`: its version, or `None` when another writer came first.
pub(in crate::gateway) async fn write_marker<S: Serialize>(
    core: &Core,
    key: &str,
    expected: u64,
    marker: &S,
    ttl: Duration,
) -> Result<Option<u64>> {
    let (op, version) = put_versioned(key, expected, marker, Some(ttl))?;
    Ok(match core.store().commit(vec![op]).await? {
        Commit::Applied => Some(version),
        Commit::Conflict { .. } => None,
    })
}

/// Renews marker `key` for `ttl` from now.
pub(in crate::gateway) async fn renew_marker(core: &Core, key: &str, ttl: Duration) -> Result<()> {
    let touch = Op::Touch {
        key: key.to_string(),
        ttl,
    };
    core.store().commit(vec![touch]).await?;
    Ok(())
}

/// What this process knows of each team's marker.
#[derive(Default)]
pub struct StoreEpochs {
    teams: Mutex<HashMap<String, Seen>>,
    /// How many times this process found a node of the store that lost
    /// its data.
    losses: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
pub(in crate::gateway) struct Seen {
    /// The version of the marker last read or written here.
    pub(in crate::gateway) version: Option<u64>,
    /// The latest reset known: since then the store's data is whole.
    pub(in crate::gateway) reset_at: Option<Timestamp>,
    pub(in crate::gateway) renewed: Option<Timestamp>,
}

impl StoreEpochs {
    pub(in crate::gateway) fn seen(&self, team: &str) -> Seen {
        self.lock().get(team).copied().unwrap_or_default()
    }

    /// Records what a read of `team`'s marker found. A reset once noticed
    /// is never forgotten by a later write: a request and the periodic
    /// check may settle the same marker at once, and the one that read it
    /// before the loss must not undo the other's finding.
    pub(in crate::gateway) fn set(&self, team: &str, seen: Seen) {
        let mut teams = self.lock();
        let reset_at = match (teams.get(team).and_then(|s| s.reset_at), seen.reset_at) {
            (Some(old), Some(new)) => Some(old.max(new)),
            (old, new) => new.or(old),
        };
        teams.insert(team.to_string(), Seen { reset_at, ..seen });
    }

    /// A node of the store found to have lost its data.
    pub(in crate::gateway) fn lost(&self) {
        (self.losses).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many times a node of the store was found to have lost its data.
    pub(in crate::gateway) fn losses(&self) -> u64 {
        self.losses.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.teams.lock().unwrap_or_else(|e| e.into_inner())
    }
}
