//! The waiting calls' budget (docs/operations.md#waiting-calls): the
//! requests that hold their connection while they wait — an MCP
//! `get_verification` waiting for a change, and the requests that wait on
//! a team's provider (`team_gate.rs`) — hold at most `server.max_waits`
//! connections together (a quarter of `max_connections` at most), and one
//! API key's `get_verification` calls at most `server.max_waits_per_key`.
//! With the event streams' half (`events::slots`), a quarter of the
//! connections is always left to the customers' pages, `/healthz`,
//! `/readyz` and every request that waits on nobody. A place is taken
//! without waiting for one: a call that finds none answers at once, or is
//! refused at once, as its endpoint says. The one budget lives as long as
//! the process (a reload keeps it; a `[server]` change needs a restart).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Waiting calls by (team, key id): key ids are unique within a team only.
type ByKey = Arc<Mutex<HashMap<(Arc<str>, Arc<str>), usize>>>;

/// The connections waiting calls hold, and each API key's share.
pub struct Waiting {
    size: usize,
    all: Arc<Semaphore>,
    per_key: usize,
    keys: ByKey,
}

/// One waiting call's place in all; given back when dropped.
#[derive(Debug)]
pub struct Place {
    _all: OwnedSemaphorePermit,
}

/// One waiting call of an API key: its key's place and one in all.
pub struct KeyPlace {
    _all: Place,
    keys: ByKey,
    id: (Arc<str>, Arc<str>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain counts: still right after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Waiting {
    /// `all` places in all (at least 1), `per_key` for each API key.
    pub fn new(all: usize, per_key: usize) -> Self {
        Waiting {
            size: all.max(1),
            all: Arc::new(Semaphore::new(all.max(1))),
            per_key,
            keys: Arc::default(),
        }
    }

    /// A place in all, if one is free.
    pub fn any(&self) -> Option<Place> {
        let permit = Arc::clone(&self.all).try_acquire_owned().ok()?;
        metrics::gauge!("chatgate_waiting_calls").increment(1.0);
        Some(Place { _all: permit })
    }

    /// A place for one more waiting call of `key` of `team`, if its key
    /// has fewer than `max_waits_per_key` and one in all is free.
    pub fn for_key(&self, team: &Arc<str>, key: &Arc<str>) -> Option<KeyPlace> {
        let id = (Arc::clone(team), Arc::clone(key));
        let mut keys = lock(&self.keys);
        if keys.get(&id).copied().unwrap_or(0) >= self.per_key {
            return None;
        }
        let all = self.any()?;
        *keys.entry(id.clone()).or_insert(0) += 1;
        Some(KeyPlace {
            _all: all,
            keys: Arc::clone(&self.keys),
            id,
        })
    }

    /// Waiting calls now, of every kind.
    pub fn held(&self) -> usize {
        self.size - self.all.available_permits()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!("chatgate_waiting_calls").decrement(1.0);
    }
}

impl Drop for KeyPlace {
    fn drop(&mut self) {
        let mut keys = lock(&self.keys);
        if let Some(n) = keys.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                keys.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_its_share_and_all_together_the_budget() {
        let waiting = Waiting::new(5, 2);
        let (acme, globex) = (Arc::from("acme"), Arc::from("globex"));
        let (a, b) = (Arc::from("bot"), Arc::from("bot-2"));
        let a1 = waiting.for_key(&acme, &a).unwrap();
        let _a2 = waiting.for_key(&acme, &a).unwrap();
        assert!(waiting.for_key(&acme, &a).is_none(), "past its key's share");
        // The same key id in another team is another key.
        let _g = waiting.for_key(&globex, &a).unwrap();
        let _b = waiting.for_key(&acme, &b).unwrap();
        // A provider wait takes the last place of all; then nobody waits.
        let provider = waiting.any().unwrap();
        assert_eq!(waiting.held(), 5);
        assert!(waiting.any().is_none());
        assert!(waiting.for_key(&acme, &b).is_none(), "no place in all");
        drop(a1);
        let again = waiting.for_key(&acme, &a);
        assert!(again.is_some(), "a place comes back");
        drop(provider);
        assert_eq!(waiting.held(), 4);
        drop(again);
        assert_eq!(waiting.held(), 3);
    }
}
